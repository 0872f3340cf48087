"""Integer-exact inference and the neural codec contract: every probability the coder sees is a
pure function of data and model, the same on every machine.

Layers hold small integers in float tensors, rescale by powers of two and round/clamp, so outputs
are bit-identical across machines, threads, batch splits and CPU instruction sets (see
docs/EXACTNESS.md). Each exact layer has a fake-quantized training twin whose ``export()``
returns it.

Modules: quant (formats, requantize, fake quant, exact_mode), layers (ExactLinear, QuantLinear),
check (load-time accumulator bounds), fastpath (the numpy coding path: pre-scaled products,
rounding, strided windows), logistic (discretized logistic tables), intlog (integer code
lengths), detmath (machine-independent table construction), contract (schedules, exact models,
sessions, hooks) and driver (the one coding loop over a schedule).

Example::

    from gencodec.exact import QFormat, QuantLinear, exact_mode
    layer = QuantLinear(8, 32, QFormat(0, 0, 255), QFormat(4, 0, 127))
    ...train on real values...
    exact = layer.export()                          # integer weights, checked accumulator bound
    with exact_mode():
        ints = exact(pixels.float())

    stream, bits = driver.encode(model, symbols)    # any ExactModel (gencodec.exact.contract)
"""

from .check import EXACT_LIMIT, check_accumulators
from .contract import ExactModel, Hook, Schedule, Session, wavefront_groups
from .layers import ExactLinear, QuantLinear, check_input_range
from .logistic import DiscretizedLogistic
from .quant import QFormat, exact_mode, fake_quant, requantize, round_ste

__all__ = [
    "QFormat",
    "requantize",
    "fake_quant",
    "round_ste",
    "exact_mode",
    "ExactLinear",
    "QuantLinear",
    "check_input_range",
    "EXACT_LIMIT",
    "check_accumulators",
    "DiscretizedLogistic",
    "Schedule",
    "Session",
    "ExactModel",
    "Hook",
    "wavefront_groups",
]
