"""Fixed-point formats, exact power-of-two requantization, and straight-through fake quantization.

An *integer activation* is an integer held in a float tensor (float32 or float64). A
:class:`QFormat` says how to read it: real value = ``q * 2**-frac_bits`` with ``lo <= q <= hi``.
Between layers an accumulator is rescaled by a power of two, rounded (half to even, as
``torch.round``) and clamped: every step is exact in binary floating point, so the result is
the same on every machine. The training twins compute the very same numbers in the real
domain (``q * 2**-frac_bits``) and pass gradients straight through the rounding.

Example::

    fmt = QFormat(frac_bits=4, lo=-127, hi=127)
    q = requantize(torch.tensor([100.0, -3000.0]), shift=3, lo=fmt.lo, hi=fmt.hi)  # [12., -127.]
    x = fake_quant(torch.randn(5, requires_grad=True), fmt)   # training: on the 1/16 grid
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch

__all__ = ["QFormat", "requantize", "fake_quant", "round_ste", "exact_mode"]


@dataclass(frozen=True)
class QFormat:
    """Fixed-point format of an integer activation.

    frac_bits: the real value is ``q * 2**-frac_bits`` (may be negative or zero).
    lo, hi:    inclusive integer range of ``q``; ``lo = 0`` after a ReLU.
    """

    frac_bits: int
    lo: int = -127
    hi: int = 127

    def __post_init__(self) -> None:
        if self.lo > self.hi:
            raise ValueError(f"QFormat lo={self.lo} > hi={self.hi}")

    @property
    def max_abs(self) -> int:
        """Largest |q| this format allows (used by the accumulation bound)."""
        return max(abs(self.lo), abs(self.hi))

    @property
    def scale(self) -> float:
        """Real value of one integer step, ``2**-frac_bits``."""
        return 2.0 ** -self.frac_bits

    def relu(self) -> "QFormat":
        """The same format with the negative half cut off."""
        return QFormat(self.frac_bits, max(self.lo, 0), self.hi)


def requantize(acc: torch.Tensor, shift: int, lo: int, hi: int) -> torch.Tensor:
    """``clamp(round(acc * 2**-shift), lo, hi)``: exact for integer ``acc`` below the dtype's exact range.

    acc: integer-valued float tensor, any shape. shift: power-of-two exponent (negative multiplies).
    Returns the same shape and dtype.
    """
    return torch.clamp(torch.round(acc * (2.0 ** -shift)), lo, hi)


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return grad


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """``torch.round`` forward, identity gradient (straight-through estimator)."""
    return _RoundSTE.apply(x)


def fake_quant(x: torch.Tensor, fmt: QFormat) -> torch.Tensor:
    """Real-domain twin of :func:`requantize`: snap ``x`` to ``fmt``'s grid and range.

    Forward: ``clamp(round(x * 2**f), lo, hi) * 2**-f``. Backward: identity inside the range,
    zero outside (the clamp's gradient), so a ReLU format (lo = 0) also trains like a ReLU.
    """
    step = 2.0 ** fmt.frac_bits
    clamped = torch.clamp(x * step, fmt.lo, fmt.hi)
    return round_ste(clamped) / step


@contextlib.contextmanager
def exact_mode() -> Iterator[None]:
    """Context for the coding path: no autograd, full-precision float32 matmuls, no TF32/bf16.

    Restores every setting it changed on exit; nothing is changed at import time.
    """
    saved_prec = torch.get_float32_matmul_precision()
    saved_cuda_mm = torch.backends.cuda.matmul.allow_tf32
    saved_cudnn = torch.backends.cudnn.allow_tf32
    saved_bf16 = getattr(torch.backends.cuda.matmul, "allow_bf16_reduced_precision_reduction", None)
    saved_fp16 = getattr(torch.backends.cuda.matmul, "allow_fp16_reduced_precision_reduction", None)
    try:
        torch.set_float32_matmul_precision("highest")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        if saved_bf16 is not None:
            torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
        if saved_fp16 is not None:
            torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
        with torch.no_grad():
            yield
    finally:
        torch.set_float32_matmul_precision(saved_prec)
        torch.backends.cuda.matmul.allow_tf32 = saved_cuda_mm
        torch.backends.cudnn.allow_tf32 = saved_cudnn
        if saved_bf16 is not None:
            torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = saved_bf16
        if saved_fp16 is not None:
            torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = saved_fp16
