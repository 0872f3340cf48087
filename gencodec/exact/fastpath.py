"""The exact numpy fast path: integer networks as float32 matrix products, rounded by torch.

Every exact model's coding path runs here (pixelcnn's parallel pass, its wavefront decoder and
its per-image fit alike). Weights and biases are integers pre-multiplied by a power of two
(:func:`scaled`), so a product's every partial sum is an integer below 2**24 times that power:
exact in float32 in any order, under any BLAS kernel or thread count. A requantization is then a
rounding and a clamp (:func:`round_clip`), exact operations everywhere. Also here: the clip ufunc
and strided row windows for hot loops, and :func:`serial_torch`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from .quant import QFormat

try:  # the clip ufunc itself, without np.clip's Python wrapper (called ~20,000 times per decode)
    from numpy._core.umath import clip  # numpy >= 2
except ImportError:  # numpy 1.x
    from numpy.core.umath import clip

__all__ = ["clip", "row_windows", "scaled", "round_clip", "serial_torch"]


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


def scaled(a: np.ndarray, shift: int) -> np.ndarray:
    """a * 2**-shift as float32: exact (a power of two), and so is every partial sum of a matmul
    with such weights, since each is an integer partial sum (below 2**24) times 2**-shift."""
    return (np.asarray(a, np.float64) * 2.0**-shift).astype(np.float32)


def round_clip(y: np.ndarray, fmt: QFormat) -> np.ndarray:
    """The rest of :func:`gencodec.exact.requantize` on an accumulator already scaled by 2**-shift
    (round half to even), in place. Done by torch on the same memory: its rounding and clamping
    are exact operations like numpy's (the same numbers on every instruction set) and about three
    times faster than ``np.rint`` and ``np.clip``. Run it inside :func:`serial_torch`."""
    t = torch.from_numpy(y)
    t.round_()
    t.clamp_(fmt.lo, fmt.hi)
    return y


@contextmanager
def serial_torch() -> Iterator[None]:
    """torch single-threaded inside (restored on exit). On the coding path torch only rounds and
    clamps between numpy's matrix products; an OpenMP team of torch's woken between those products
    fights numpy's BLAS threads for the cores (a 768x512 decode took 7-10 s instead of 1.5 s on two
    threads)."""
    n = torch.get_num_threads()
    if n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)
