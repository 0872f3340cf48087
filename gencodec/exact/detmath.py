"""Platform-independent integer tables from transcendental functions.

Lookup tables (the integer log table of :mod:`gencodec.exact.intlog`) are built from formulas. ``numpy.exp``
may differ in the last bit between CPUs (numpy dispatches to SIMD kernels per instruction set), so a
value that lands next to a rounding boundary could round differently on another machine. Here
every entry is computed in float64, and any entry whose float estimate lies within
``GUARD`` of a rounding boundary is recomputed with :mod:`decimal` (correctly rounded, pure
software, identical everywhere). The result is the floor of the exact real value on every machine.

Example::

    est = 1000.0 / (1.0 + np.exp(-z))                      # float64 estimate, any shape
    q = det_floor(est, lambda idx: [D(1000) / (1 + (-D(float(z.flat[i]))).exp()) for i in idx])
"""

from __future__ import annotations

import decimal
from typing import Callable, Iterable, Sequence

import numpy as np

__all__ = ["det_floor", "det_round", "CTX", "D"]

#: Decimal context: 50 significant digits, far beyond float64's error on these values. Every
#: Decimal operation here goes through it explicitly (never ``+`` / ``**``, which would use the
#: caller's thread-local context, possibly changed by other code).
CTX = decimal.Context(prec=50, rounding=decimal.ROUND_HALF_EVEN)
#: Estimates closer than this to an integer boundary are recomputed exactly. float64 values
#: here are below 2**30, so their absolute error is below 1e-6 by a wide margin.
GUARD = 1e-6


def D(x: float | int | str) -> decimal.Decimal:
    """Exact Decimal of a float/int (a float64 converts exactly)."""
    return CTX.create_decimal(x) if isinstance(x, str) else decimal.Decimal(x)


def det_floor(
    estimate: np.ndarray,
    exact: Callable[[Sequence[int]], Iterable[decimal.Decimal]],
    nonnegative: bool = False,
) -> np.ndarray:
    """``floor`` of values given as a float64 ``estimate`` and an exact fallback.

    estimate: float64 array, any shape. exact(flat_indices) -> exact values at those flat indices.
    nonnegative: the exact values are known to be >= 0, so estimates below ``1 - GUARD`` floor
    to 0 without a fallback (tiny tail probabilities). Returns int64 of the same shape: floor of
    the exact values, identical on every machine.
    """
    est = np.asarray(estimate, dtype=np.float64)
    if nonnegative:
        est = np.where(est < 1.0 - GUARD, 0.5, est)  # 0.5 floors to 0 and is far from a boundary
    out = np.floor(est)
    frac = est - out
    near = np.flatnonzero((frac < GUARD) | (frac > 1.0 - GUARD))
    if near.size:
        values = list(exact(near.tolist()))
        flat = out.reshape(-1)
        for i, v in zip(near.tolist(), values):
            flat[i] = float(v.to_integral_value(rounding=decimal.ROUND_FLOOR))
    return out.astype(np.int64)


def det_round(
    estimate: np.ndarray,
    exact: Callable[[Sequence[int]], Iterable[decimal.Decimal]],
) -> np.ndarray:
    """Round half up (``floor(x + 1/2)``) of values given as estimate + exact fallback; int64."""
    half = decimal.Decimal("0.5")
    return det_floor(np.asarray(estimate, dtype=np.float64) + 0.5, lambda idx: (CTX.add(v, half) for v in exact(idx)))
