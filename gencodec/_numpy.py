"""numpy helpers for hot loops (no torch import)."""

import numpy as np

try:  # the clip ufunc itself, without np.clip's Python wrapper (called ~20,000 times per decode)
    from numpy._core.umath import clip  # numpy >= 2
except ImportError:  # numpy 1.x
    from numpy.core.umath import clip

__all__ = ["clip", "row_windows"]


def row_windows(a: np.ndarray, width: int, step: int = 1, writeable: bool = False) -> np.ndarray:
    """A strided view of the C-contiguous array ``a`` (read flat) whose row i is
    ``a.flat[i : i + step * width : step]``: gathering rows ``view[idx]`` reads (or, writeable,
    updates) a window per index without building an (N, width) index array. Rows overlap."""
    if not a.flags.c_contiguous:
        raise ValueError("row_windows needs a C-contiguous array")
    item = a.itemsize
    view = np.ndarray((a.size - step * (width - 1), width), a.dtype, a, 0, (item, step * item))
    view.flags.writeable = writeable
    return view
