"""Integer-exact 2-D convolutions (plain and transposed) and their fake-quantized training twin.

An exact convolution takes integer activations held in a float64 tensor, multiplies by integer
weights and adds an integer bias: every product and every partial sum is an integer far below
2**53 (bounded at export, :meth:`ExactConv2d.max_abs_accumulator`), so float64 adds them without
rounding in any order -- the result is the same on every machine, thread count, batch split,
instruction set and device, whatever algorithm the backend picks for the convolution (except
Winograd/FFT-style ones, which torch does not use for float64). Then a power-of-two rescale,
``round`` and clamp (:func:`~gencodec.exact.quant.requantize`).

``QuantConv2d`` is the training twin: float weights snapped to the same grids with straight-through
gradients, so the exported layer computes exactly what it computed (scaled by ``2**frac_bits``).

Example::

    layer = QuantConv2d(64, 96, 5, QFormat(4, -2**14, 2**14), QFormat(6, 0, 2**16), stride=2, transposed=True)
    y = layer(z)                 # training, real values
    exact = layer.export()       # integer weights and bias
    y_int = exact(z_int)         # == y * 2**6 bit for bit (z_int = z * 2**4)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ExactnessError
from .quant import QFormat, fake_quant, requantize

__all__ = ["ExactConv2d", "QuantConv2d", "FLOAT64_EXACT"]

#: accumulators must stay below this for float64 sums of integers to be exact
FLOAT64_EXACT = 2**53


def _conv(x, w, b, stride: int, transposed: bool):
    k = w.shape[-1]
    if transposed:
        return F.conv_transpose2d(x, w, b, stride=stride, padding=k // 2, output_padding=stride - 1)
    return F.conv2d(x, w, b, stride=stride, padding=k // 2)


class ExactConv2d(nn.Module):
    """``requantize(conv(x, W) + b, shift)`` on integer activations, in float64.

    weight: integers, (out, in, k, k) or, transposed, (in, out, k, k); bias: (out,) integers in
    accumulator units (``2**-(in_fmt.frac_bits + w_frac_bits)``); shift: in + w - out fraction bits
    (None: return the raw accumulator). Padding ``k // 2``; a transposed layer multiplies the size
    by ``stride`` exactly (CompressAI's ``deconv``).
    """

    def __init__(self, weight, bias, shift: int | None, in_fmt: QFormat, out_fmt: QFormat | None, stride: int,
                 transposed: bool):
        super().__init__()
        self.register_buffer("weight", weight.detach().clone().to(torch.float64))
        self.register_buffer("bias", bias.detach().clone().to(torch.float64))
        self.shift, self.in_fmt, self.out_fmt = shift, in_fmt, out_fmt
        self.stride, self.transposed = int(stride), bool(transposed)
        bound = self.max_abs_accumulator()
        if bound >= FLOAT64_EXACT:
            raise ExactnessError(f"convolution accumulator bound {bound} is not below 2**53")

    def max_abs_accumulator(self) -> int:
        """Largest |partial sum| any input within ``in_fmt`` can produce."""
        w = self.weight.abs().transpose(0, 1) if self.transposed else self.weight.abs()  # (out, in, k, k)
        per_out = w.flatten(1).sum(dim=1) if w.numel() else torch.zeros(0, dtype=torch.float64)
        return int(torch.max(per_out * self.in_fmt.max_abs + self.bias.abs()).item()) if per_out.numel() else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) integers within ``in_fmt`` (any float dtype) -> float64 integers."""
        acc = _conv(x.to(torch.float64), self.weight, self.bias, self.stride, self.transposed)
        if self.shift is None:
            return acc
        return requantize(acc, self.shift, self.out_fmt.lo, self.out_fmt.hi)


class QuantConv2d(nn.Module):
    """Fake-quantized convolution (plain or transposed); ``export()`` gives its :class:`ExactConv2d`.

    in_fmt: format the input is snapped to; out_fmt: format of the output (``lo = 0`` acts as a
    ReLU), or None for a last layer whose accumulator the caller reads (real values, on the
    accumulator's grid). w_frac_bits / w_max: integer weights ``|w_q| <= w_max`` worth
    ``w_q * 2**-w_frac_bits``.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, in_fmt: QFormat, out_fmt: QFormat | None,
                 stride: int = 1, transposed: bool = False, w_frac_bits: int = 10, w_max: int = 2**14,
                 bias_max: int = 2**40):
        super().__init__()
        self.in_fmt, self.out_fmt = in_fmt, out_fmt
        self.stride, self.transposed = stride, transposed
        self.w_fmt = QFormat(w_frac_bits, -w_max, w_max)
        self.b_fmt = QFormat(in_fmt.frac_bits + w_frac_bits, -bias_max, bias_max)
        shape = (in_ch, out_ch, kernel, kernel) if transposed else (out_ch, in_ch, kernel, kernel)
        self.weight = nn.Parameter(torch.empty(shape))
        fan_in = in_ch * kernel * kernel / (stride * stride if transposed else 1)
        bound = 1.0 / math.sqrt(fan_in)
        nn.init.uniform_(self.weight, -bound, bound)
        self.bias = nn.Parameter(torch.zeros(out_ch))

    @property
    def acc_frac_bits(self) -> int:
        return self.in_fmt.frac_bits + self.w_fmt.frac_bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = fake_quant(x, self.in_fmt)
        y = _conv(x, fake_quant(self.weight, self.w_fmt), fake_quant(self.bias, self.b_fmt), self.stride,
                  self.transposed)
        return y if self.out_fmt is None else fake_quant(y, self.out_fmt)

    @torch.no_grad()
    def export(self) -> ExactConv2d:
        w = torch.round(fake_quant(self.weight, self.w_fmt) * 2.0**self.w_fmt.frac_bits).cpu()
        b = torch.round(fake_quant(self.bias, self.b_fmt) * 2.0**self.b_fmt.frac_bits).cpu()
        shift = None if self.out_fmt is None else self.acc_frac_bits - self.out_fmt.frac_bits
        return ExactConv2d(w, b, shift, self.in_fmt, self.out_fmt, self.stride, self.transposed)
