"""Integer-exact neural inference: every probability the coder sees is a pure function of data and model.

Layers hold small integers in float tensors, convolve by im2col + matmul, rescale by powers of two
and round/clamp, so outputs are bit-identical across machines, threads, batch splits and CPU
instruction sets (see docs/EXACTNESS.md). Each exact layer has a fake-quantized training twin
whose ``export()`` returns it.

Example::

    from gencodec.exact import QFormat, QuantLinear, exact_mode, export_model, prepare_exact
    net = torch.nn.Sequential(QuantLinear(8, 32, QFormat(0, 0, 255), QFormat(4, 0, 127)),
                              QuantLinear(32, 4, QFormat(4, 0, 127), QFormat(4, -127, 127)))
    ...train net on real values...
    exact = prepare_exact(export_model(net))       # checks accumulation bounds, picks float32/64
    with exact_mode():
        logits_int = exact(pixels.float())

    tables = LogisticTables()                       # residual coding: integer mean + scale index
    freqs = tables.freqs(mean_q, scale_idx)         # (N, 256) float64 integers, rows sum to 2**20

Modules: quant (formats, requantize, fake quant, exact_mode), layers (Linear/Conv2d + twins, causal
helpers), stack (cached causal conv stacks), lut (table nonlinearities, integer softmax), matmul
(activation products), freqs (integer tables), check (load-time bounds), protocol (schedules and
the model/coder contract), detmath (machine-independent table construction).
"""

from .check import EXACT_LIMIT, accumulation_bounds, check_exact, prepare_exact, required_dtype
from .freqs import ExpTable, IntCategorical, LogisticTables, logits_to_freqs
from .layers import (
    ExactConv2d,
    ExactLinear,
    QuantConv2d,
    QuantLinear,
    causal_mask,
    check_input_range,
    export_model,
    shift_down,
    shift_right,
)
from .lut import ExactLUT, ExactSoftmax, QuantLUT, QuantSoftmax, int_softmax, make_table
from .matmul import ExactMatMul, QuantMatMul
from .protocol import (
    Schedule,
    Session,
    TableModel,
    decode_with_model,
    encode_with_model,
    tables_in_order,
    wavefront_schedule,
)
from .quant import QFormat, exact_mode, fake_quant, requantize, round_ste
from .stack import CausalConvStack, StackCache, causal_reach

__all__ = [
    "QFormat",
    "requantize",
    "fake_quant",
    "round_ste",
    "exact_mode",
    "ExactLinear",
    "ExactConv2d",
    "QuantLinear",
    "QuantConv2d",
    "shift_down",
    "shift_right",
    "causal_mask",
    "export_model",
    "check_input_range",
    "ExpTable",
    "logits_to_freqs",
    "IntCategorical",
    "LogisticTables",
    "EXACT_LIMIT",
    "accumulation_bounds",
    "required_dtype",
    "check_exact",
    "prepare_exact",
    "make_table",
    "ExactLUT",
    "QuantLUT",
    "int_softmax",
    "ExactSoftmax",
    "QuantSoftmax",
    "ExactMatMul",
    "QuantMatMul",
    "Schedule",
    "Session",
    "TableModel",
    "wavefront_schedule",
    "encode_with_model",
    "decode_with_model",
    "tables_in_order",
    "CausalConvStack",
    "StackCache",
    "causal_reach",
]
