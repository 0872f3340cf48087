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


def _precision_knobs() -> list[object]:
    """Backends with an ``fp32_precision`` setting (torch >= 2.9); [] on older torch."""
    b = torch.backends
    if not hasattr(b, "fp32_precision"):
        return []
    names = [("cuda", "matmul"), ("cudnn",), ("cudnn", "conv"), ("cudnn", "rnn"),
             ("mkldnn",), ("mkldnn", "matmul"), ("mkldnn", "conv")]
    knobs: list[object] = [b]
    for path in names:
        obj: object = b
        for part in path:
            obj = getattr(obj, part, None)
        if obj is not None and hasattr(obj, "fp32_precision"):
            knobs.append(obj)
    return knobs


@contextlib.contextmanager
def exact_mode() -> Iterator[None]:
    """Context for the coding path: no autograd, IEEE float32 matmuls/convolutions (no TF32, no
    bf16 reduced precision) on every backend, CPU oneDNN included.

    Uses torch's ``fp32_precision`` settings where they exist (torch >= 2.9; mixing them with the
    legacy calls is an error there), else the legacy ones. Restores everything on exit; nothing
    is changed at import time.
    """
    knobs = _precision_knobs()
    if knobs:
        saved = [k.fp32_precision for k in knobs]  # type: ignore[attr-defined]
        try:
            for k in knobs:
                k.fp32_precision = "ieee"  # type: ignore[attr-defined]
            with torch.no_grad():
                yield
        finally:
            for k, v in zip(knobs, saved):
                k.fp32_precision = v  # type: ignore[attr-defined]
        return
    saved_prec = torch.get_float32_matmul_precision()
    saved_cuda_mm = torch.backends.cuda.matmul.allow_tf32
    saved_cudnn = torch.backends.cudnn.allow_tf32
    try:
        torch.set_float32_matmul_precision("highest")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        with torch.no_grad():
            yield
    finally:
        torch.set_float32_matmul_precision(saved_prec)
        torch.backends.cuda.matmul.allow_tf32 = saved_cuda_mm
        torch.backends.cudnn.allow_tf32 = saved_cudnn
