"""Integer code lengths: ``ilog2(v)`` = 1024 log2(v) by a pinned table, the same on every machine.

Adaptive parts of a codec compare code lengths to decide (which histogram weight, which per-image
refit); both sides must decide alike, so they count bits in these integers, never with ``np.log2``.
"""

from __future__ import annotations

import numpy as np

from .detmath import CTX, D, det_round

__all__ = ["LOG_BITS", "ilog2", "log_table"]

LOG_BITS = 10  # integer code lengths in 1/1024 bit


def log_table() -> np.ndarray:
    """LUT[i] = round(1024 log2(1 + (i + 1/2) / 1024)), i < 1024: the same integers on every machine."""
    n = 1 << LOG_BITS
    i = np.arange(n, dtype=np.float64)
    ln2 = CTX.ln(D(2))
    return det_round(n * np.log2(1 + (i + 0.5) / n),
                     lambda idx: [CTX.divide(CTX.multiply(D(n), CTX.ln(CTX.add(1, CTX.divide(D(k) + D("0.5"), D(n))))), ln2)
                                  for k in idx])


_LUT: np.ndarray | None = None


def ilog2(v: np.ndarray) -> np.ndarray:
    """1024 log2(v) for integers 1 <= v < 2**53 (float64), as int64 (the pinned table's value for
    the mantissa's 1/1024 bin): frexp and the table are exact, so the same integers on every machine."""
    global _LUT
    if _LUT is None:
        _LUT = log_table()
    m, e = np.frexp(v)  # v = m 2**e, m in [1/2, 1)
    i = np.floor((m - 0.5) * (2 << LOG_BITS)).astype(np.int64)
    return (e.astype(np.int64) - 1) * (1 << LOG_BITS) + _LUT[i]
