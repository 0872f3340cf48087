"""Integer-exact Linear and its fake-quantized training twin.

``ExactLinear`` takes and returns *integer activations* (integers held in float32 tensors, see
:class:`~gencodec.exact.quant.QFormat`): an integer accumulator ``x @ W.T + b`` with a plain
matmul, then ``requantize(acc, shift, lo, hi)``. As long as every accumulation stays below 2**24
(checked at load, :func:`gencodec.exact.check.check_accumulators`) the result is the same on every
machine, thread count, batch split and CPU instruction set. Coding paths run the same integers
through :mod:`gencodec.exact.fastpath` (numpy products of pre-scaled weights).

``QuantLinear`` holds float weights and works on real values; its forward snaps weights, bias and
output onto the same grids (straight-through gradients), so it computes exactly what the exported
``ExactLinear`` computes, scaled by ``2**-frac_bits``.

Example::

    fmt_in, fmt_h = QFormat(4, -255, 255), QFormat(4, 0, 255)
    layer = QuantLinear(27, 64, fmt_in, fmt_h, w_frac_bits=7)
    y_real = layer(x)                       # train on real values
    exact = layer.export()                  # ExactLinear, integer buffers
    with exact_mode():
        y_int = exact(x * 16)               # == y_real * 16, bit for bit
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ExactnessError
from .quant import QFormat, fake_quant, requantize

__all__ = ["ExactLinear", "QuantLinear", "check_input_range"]


def check_input_range(x: torch.Tensor, fmt: QFormat, where: str) -> None:
    """Raise ``ExactnessError`` unless ``x`` holds integers inside ``[fmt.lo, fmt.hi]`` (NaN fails too)."""
    if x.numel() == 0:
        return
    if x.is_floating_point() and not torch.equal(x, torch.round(x)):
        raise ExactnessError(f"{where}: input holds non-integers (an exact layer takes integer activations)")
    lo, hi = torch.aminmax(x)
    if not (float(lo) >= fmt.lo and float(hi) <= fmt.hi):
        raise ExactnessError(f"{where}: input range [{float(lo)}, {float(hi)}] outside [{fmt.lo}, {fmt.hi}]")


# ---------------------------------------------------------------------------------------------
# exact layers
# ---------------------------------------------------------------------------------------------
def _max_abs_accumulator(layer: nn.Module) -> int:
    """Largest |partial sum| any input in ``layer.in_fmt`` can produce (exact Python integers).

    """
    w = layer.weight.double().abs().flatten(1).sum(dim=1)  # (out,)
    b = layer.bias.double().abs()
    return int(torch.max(w * layer.in_fmt.max_abs + b).item()) if w.numel() else 0


class ExactLinear(nn.Module):
    """``requantize(x @ W.T + b, shift)`` on integer activations.

    weight: (out, in) integers; bias: (out,) integers in accumulator units
    (``2**-(in_fmt.frac_bits + w_frac_bits)``); shift = in + w - out fraction bits.
    forward: x (..., in) integers within ``in_fmt`` -> (..., out) integers within ``out_fmt``.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, shift: int, in_fmt: QFormat, out_fmt: QFormat):
        super().__init__()
        self.register_buffer("weight", weight.detach().clone().to(torch.float32))
        self.register_buffer("bias", bias.detach().clone().to(torch.float32))
        self.shift = int(shift)
        self.in_fmt = in_fmt
        self.out_fmt = out_fmt

    max_abs_accumulator = _max_abs_accumulator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_range(x, self.in_fmt, "ExactLinear")
        x = x.to(self.weight.dtype)
        acc = torch.matmul(x, self.weight.t()) + self.bias  # (..., out)
        return requantize(acc, self.shift, self.out_fmt.lo, self.out_fmt.hi)


# ---------------------------------------------------------------------------------------------
# training twins
# ---------------------------------------------------------------------------------------------
def _bias_fmt(in_fmt: QFormat, w_frac_bits: int, bias_max: int) -> QFormat:
    return QFormat(in_fmt.frac_bits + w_frac_bits, -bias_max, bias_max)


class QuantLinear(nn.Module):
    """Fake-quantized Linear; ``export()`` gives the :class:`ExactLinear` computing the same numbers.

    in_fmt/out_fmt: formats of input and output activations (``out_fmt.lo = 0`` acts as ReLU).
    w_frac_bits: weights are integers ``w_q`` with real value ``w_q * 2**-w_frac_bits``,
    ``|w_q| <= w_max``. bias_max: bound on the integer bias (accumulator units).
    forward: x (..., in) real -> (..., out) real, on ``out_fmt``'s grid.
    """

    def quantized_bias(self) -> torch.Tensor:
        if self.bias is None:
            return torch.zeros(self.weight.shape[0], device=self.weight.device, dtype=self.weight.dtype)
        return fake_quant(self.bias, self.b_fmt)

    def _exact_ints(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(integer weight, integer bias in accumulator units, requantize shift), on the CPU."""
        w = torch.round(self.quantized_weight() * 2.0**self.w_fmt.frac_bits)
        b = torch.round(self.quantized_bias() * 2.0**self.b_fmt.frac_bits)
        shift = self.in_fmt.frac_bits + self.w_fmt.frac_bits - self.out_fmt.frac_bits
        return w.cpu(), b.cpu(), shift


    def __init__(
        self,
        in_features: int,
        out_features: int,
        in_fmt: QFormat,
        out_fmt: QFormat,
        w_frac_bits: int = 7,
        w_max: int = 127,
        bias: bool = True,
        bias_max: int = 2**20,
    ):
        super().__init__()
        self.in_fmt, self.out_fmt = in_fmt, out_fmt
        self.w_fmt = QFormat(w_frac_bits, -w_max, w_max)
        self.b_fmt = _bias_fmt(in_fmt, w_frac_bits, bias_max)
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def quantized_weight(self) -> torch.Tensor:
        return fake_quant(self.weight, self.w_fmt)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = fake_quant(x, self.in_fmt)
        y = F.linear(x, self.quantized_weight(), self.quantized_bias())
        return fake_quant(y, self.out_fmt)

    @torch.no_grad()
    def export(self) -> ExactLinear:
        w, b, shift = self._exact_ints()
        return ExactLinear(w, b, shift, self.in_fmt, self.out_fmt)
