"""Lookup-table nonlinearities and the integer softmax that attention needs.

An exact nonlinearity maps an integer activation ``q`` (format ``in_fmt``) to
``table[q - in_fmt.lo]``, where ``table = round(fn(q * 2**-in_frac) * 2**out_frac)`` clamped to
``out_fmt``; tables are built deterministically (:mod:`gencodec.exact.detmath`), so they are the
same on every machine. The training twin :class:`QuantLUT` returns the very same table values in
its forward pass and the smooth function's gradient in its backward pass.

Example::

    act = QuantLUT("tanh", QFormat(4, -127, 127), QFormat(6, -64, 64))
    y = act(x_real)                  # training
    exact = act.export()             # ExactLUT: table lookup on integer activations

    sm = ExactSoftmax(in_frac_bits=4, out_bits=12)   # scores in 1/16 nat -> weights summing to <= 4096
"""

from __future__ import annotations

from decimal import Decimal
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..errors import ExactnessError
from .detmath import CTX, D, det_round, dsigmoid
from .freqs import ExpTable
from .layers import check_input_range
from .quant import QFormat, fake_quant

__all__ = ["LUT_FUNCTIONS", "make_table", "ExactLUT", "QuantLUT", "ExactSoftmax", "QuantSoftmax", "int_softmax"]


def _dtanh(z: Decimal) -> Decimal:
    return CTX.subtract(CTX.multiply(D(2), dsigmoid(CTX.multiply(D(2), z))), D(1))


def _dexp(z: Decimal) -> Decimal:
    return CTX.exp(z) if z > -1000 else Decimal(0)


#: name -> (float64 numpy function, exact Decimal function, torch function for gradients)
LUT_FUNCTIONS: dict[str, tuple[Callable, Callable, Callable]] = {
    "sigmoid": (lambda x: 1.0 / (1.0 + np.exp(-x)), dsigmoid, torch.sigmoid),
    "tanh": (np.tanh, _dtanh, torch.tanh),
    "exp": (np.exp, _dexp, torch.exp),
    "silu": (lambda x: x / (1.0 + np.exp(-x)), lambda z: CTX.multiply(z, dsigmoid(z)), nn.functional.silu),
}


def make_table(fn_name: str, in_fmt: QFormat, out_fmt: QFormat) -> np.ndarray:
    """int64 table (hi - lo + 1,): ``clamp(round(fn(q * 2**-in_frac) * 2**out_frac))`` for q in
    [in_fmt.lo, in_fmt.hi]; rounding half up; identical on every machine."""
    if fn_name not in LUT_FUNCTIONS:
        raise ValueError(f"unknown LUT function {fn_name!r} (known: {', '.join(LUT_FUNCTIONS)})")
    if in_fmt.hi - in_fmt.lo + 1 > 2**20:
        raise ExactnessError("lookup table over more than 2**20 inputs")
    f_np, f_dec, _ = LUT_FUNCTIONS[fn_name]
    q = np.arange(in_fmt.lo, in_fmt.hi + 1, dtype=np.float64)
    with np.errstate(over="ignore"):
        est = np.clip(f_np(q * 2.0**-in_fmt.frac_bits) * 2.0**out_fmt.frac_bits, -2.0**40, 2.0**40)
    step_in = CTX.power(D(2), -in_fmt.frac_bits)
    scale_out = CTX.power(D(2), out_fmt.frac_bits)

    def exact(idx: list[int]) -> list[Decimal]:
        return [CTX.multiply(f_dec(CTX.multiply(D(in_fmt.lo + i), step_in)), scale_out) for i in idx]

    return np.clip(det_round(est, exact), out_fmt.lo, out_fmt.hi)


class ExactLUT(nn.Module):
    """Table lookup on integer activations: x (any shape) in ``in_fmt`` -> same shape in ``out_fmt``."""

    def __init__(self, table: torch.Tensor, in_fmt: QFormat, out_fmt: QFormat):
        super().__init__()
        if table.numel() != in_fmt.hi - in_fmt.lo + 1:
            raise ValueError("table length does not match the input format")
        self.register_buffer("table", table.detach().clone().to(torch.float32))
        self.in_fmt, self.out_fmt = in_fmt, out_fmt

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_range(x, self.in_fmt, "ExactLUT")
        idx = (x - self.in_fmt.lo).to(torch.int64)
        return self.table[idx].to(x.dtype)


class QuantLUT(nn.Module):
    """Training twin of :class:`ExactLUT`: forward = the table's values (real domain), backward =
    the smooth function's gradient at the quantized input."""

    def __init__(self, fn_name: str, in_fmt: QFormat, out_fmt: QFormat):
        super().__init__()
        self.fn_name, self.in_fmt, self.out_fmt = fn_name, in_fmt, out_fmt
        table = torch.from_numpy(make_table(fn_name, in_fmt, out_fmt)).to(torch.float32)
        self.register_buffer("table", table)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq = fake_quant(x, self.in_fmt)
        smooth = LUT_FUNCTIONS[self.fn_name][2](xq)
        idx = (torch.round(xq.detach() * 2.0**self.in_fmt.frac_bits) - self.in_fmt.lo).to(torch.int64)
        exact = self.table.to(x.dtype)[idx] * 2.0**-self.out_fmt.frac_bits
        return smooth + (exact - smooth).detach()

    @torch.no_grad()
    def export(self) -> ExactLUT:
        return ExactLUT(self.table.cpu(), self.in_fmt, self.out_fmt)


def int_softmax(scores: torch.Tensor, exp_table: ExpTable, out_bits: int) -> torch.Tensor:
    """Integer softmax over the last axis: integer scores (..., K) in units of
    ``2**-exp_table.frac_bits`` nat -> int64 weights ``floor(e_k * 2**out_bits / sum(e))``
    (each in [0, 2**out_bits], row sums in (2**out_bits - K, 2**out_bits]). Exact int64 math."""
    if exp_table.out_bits + out_bits > 40:
        raise ExactnessError("int_softmax: exp_table.out_bits + out_bits must be <= 40")
    s = scores.to(torch.int64)
    e = exp_table.lookup(s.max(dim=-1, keepdim=True).values - s)  # (..., K) int64
    return torch.div(e * 2**out_bits, e.sum(dim=-1, keepdim=True), rounding_mode="floor")


class ExactSoftmax(nn.Module):
    """Attention softmax on integer scores; output integer weights in units of ``2**-out_bits``."""

    def __init__(self, in_frac_bits: int = 4, out_bits: int = 12, exp_out_bits: int = 16):
        super().__init__()
        self.exp_table = ExpTable(in_frac_bits, exp_out_bits)
        self.out_bits = out_bits
        self.out_fmt = QFormat(out_bits, 0, 2**out_bits)

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        return int_softmax(scores, self.exp_table, self.out_bits).to(scores.dtype)


class QuantSoftmax(nn.Module):
    """Training twin of :class:`ExactSoftmax`: real scores (nats) -> real weights; forward equals the
    exact integer result times ``2**-out_bits``; backward is the float softmax's."""

    def __init__(self, in_frac_bits: int = 4, out_bits: int = 12, exp_out_bits: int = 16, score_max: int = 2**15):
        super().__init__()
        self.in_fmt = QFormat(in_frac_bits, -score_max, score_max)
        self.in_frac_bits, self.out_bits, self.exp_out_bits = in_frac_bits, out_bits, exp_out_bits
        self.exp_table = ExpTable(in_frac_bits, exp_out_bits)

    def forward(self, scores: torch.Tensor, dim: int = -1) -> torch.Tensor:
        sq = fake_quant(scores, self.in_fmt).movedim(dim, -1)
        smooth = torch.softmax(sq, dim=-1)
        exact = int_softmax(torch.round(sq.detach() * 2.0**self.in_frac_bits), self.exp_table, self.out_bits)
        out = smooth + (exact.to(smooth.dtype) * 2.0**-self.out_bits - smooth).detach()
        return out.movedim(-1, dim)

    def export(self) -> ExactSoftmax:
        return ExactSoftmax(self.in_frac_bits, self.out_bits, self.exp_out_bits)

