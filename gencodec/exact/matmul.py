"""Exact product of two integer activations (attention's ``q @ k.T`` and ``weights @ v``).

``ExactMatMul`` computes ``requantize(a @ b, shift)``; its accumulation bound is
``inner_dim * a_fmt.max_abs * b_fmt.max_abs``, checked at load like any layer's. The training twin
``QuantMatMul`` computes the same numbers in the real domain.

Example::

    qk = QuantMatMul(QFormat(4), QFormat(4), QFormat(4, -2**15, 2**15), inner_dim=32)
    scores = qk(q, k.transpose(-1, -2))      # (B, T, T) real, on the 1/16 grid
    exact_qk = qk.export()                   # ExactMatMul on integer activations
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import check_input_range
from .quant import QFormat, fake_quant, requantize

__all__ = ["ExactMatMul", "QuantMatMul"]


class ExactMatMul(nn.Module):
    """a (..., M, K) in ``a_fmt`` @ b (..., K, N) in ``b_fmt`` -> (..., M, N) in ``out_fmt``;
    shift = a_frac + b_frac - out_frac; K must not exceed ``inner_dim``."""

    def __init__(self, a_fmt: QFormat, b_fmt: QFormat, out_fmt: QFormat, inner_dim: int):
        super().__init__()
        self.a_fmt, self.b_fmt, self.out_fmt, self.inner_dim = a_fmt, b_fmt, out_fmt, int(inner_dim)
        self.shift = a_fmt.frac_bits + b_fmt.frac_bits - out_fmt.frac_bits

    def max_abs_accumulator(self) -> int:
        return self.inner_dim * self.a_fmt.max_abs * self.b_fmt.max_abs

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape[-1] > self.inner_dim:
            raise ValueError(f"inner dimension {a.shape[-1]} exceeds the checked bound {self.inner_dim}")
        check_input_range(a, self.a_fmt, "ExactMatMul(a)")
        check_input_range(b, self.b_fmt, "ExactMatMul(b)")
        return requantize(torch.matmul(a, b.to(a.dtype)), self.shift, self.out_fmt.lo, self.out_fmt.hi)


class QuantMatMul(nn.Module):
    """Training twin of :class:`ExactMatMul` on real values."""

    def __init__(self, a_fmt: QFormat, b_fmt: QFormat, out_fmt: QFormat, inner_dim: int):
        super().__init__()
        self.a_fmt, self.b_fmt, self.out_fmt, self.inner_dim = a_fmt, b_fmt, out_fmt, int(inner_dim)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return fake_quant(torch.matmul(fake_quant(a, self.a_fmt), fake_quant(b, self.b_fmt)), self.out_fmt)

    def export(self) -> ExactMatMul:
        return ExactMatMul(self.a_fmt, self.b_fmt, self.out_fmt, self.inner_dim)
