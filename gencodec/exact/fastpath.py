"""The exact numpy fast path: integer networks as float32 matrix products, rounded by torch.

Every exact model's coding path runs here (pixelcnn's parallel pass, its wavefront decoder and
its per-image fit alike). Weights and biases are integers pre-multiplied by a power of two
(:func:`scaled`), so a product's every partial sum is an integer below 2**24 times that power:
exact in float32 in any order, under any BLAS kernel or thread count. A requantization is then a
rounding and a clamp (:func:`round_clip`), exact operations everywhere. Also here: the clip ufunc
and strided row windows for hot loops, and :func:`serial_torch`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from .quant import QFormat

try:  # the clip ufunc itself, without np.clip's Python wrapper (called ~20,000 times per decode)
    from numpy._core.umath import clip  # numpy >= 2
except ImportError:  # numpy 1.x
    from numpy.core.umath import clip

__all__ = ["clip", "row_windows", "scaled", "prescaled", "dense", "round_clip", "serial_torch", "BlasThreads"]


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


def prescaled(layer) -> tuple[np.ndarray, np.ndarray, QFormat]:
    """An :class:`~gencodec.exact.layers.ExactLinear` for the numpy path: (weight (in, out) and bias
    (out,) times 2**-shift as float32, output format)."""
    return scaled(layer.weight.numpy().T, layer.shift), scaled(layer.bias.numpy(), layer.shift), layer.out_fmt


def dense(x: np.ndarray, layer: tuple[np.ndarray, np.ndarray, QFormat]) -> np.ndarray:
    """What ``ExactLinear.forward`` computes, on the numpy path: x (N, in) integer activations
    (float32) and a :func:`prescaled` layer -> (N, out) integer activations (float32, a new array).
    Run it inside :func:`serial_torch`."""
    w, b, fmt = layer
    y = x @ w
    y += b
    return round_clip(y, fmt)


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


MARGIN = 0.95  # BlasThreads keeps one thread only where it took less than this share of the default's time


class BlasThreads:
    """Whether numpy's BLAS runs the coding path's products with its default thread count or with one
    thread, whichever a timed probe of the real work found faster on this machine (the bits are the
    same either way: every product is exact). Two BLAS threads won on some two-core machines and lost
    on others, where their spinning between small products took the core the rest of the loop needs.

    A loop calls :meth:`step` before each step with that step's amount of work. Steps of at least
    MIN_WORK take part (small steps are not what the choice is for: threads cost more than they
    bring there): after WARM of them, blocks of BLOCK alternate between the default and one thread
    (ROUNDS blocks each, so that both see steps of every size), and the faster per unit of work is
    kept for the rest of the process -- one thread only where it was clearly faster (by more than
    1 - MARGIN: the probe is short, and the default wins a tie). Run
    the loop inside :meth:`scope`, which applies the choice and restores the library's setting after.
    Nothing is tuned where threadpoolctl is missing, BLAS has one thread anyway, or the user set a
    thread count (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS)."""

    WARM, BLOCK, ROUNDS, MIN_WORK = 8, 8, 8, 128

    def __init__(self) -> None:
        self.choice: int | None = None  # None: not decided; 0: the default; 1: one thread
        self._ctl = None
        self._limited = None
        self._t = self._work = None
        self._costs = [0.0, 0.0]
        self._amounts = [0, 0]
        self._k = 0

    def _controller(self):
        if self._ctl is None:
            self._ctl = False
            if any(os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")):
                return False
            try:
                from threadpoolctl import ThreadpoolController
            except ImportError:  # pragma: no cover - a dependency
                return False
            ctl = ThreadpoolController().select(user_api="blas")
            if any(info["num_threads"] > 1 for info in ctl.info()):
                self._ctl = ctl
        return self._ctl

    def _set(self, one: bool) -> None:
        if one and self._limited is None:
            self._limited = self._ctl.limit(limits=1)
        elif not one and self._limited is not None:
            self._limited.restore_original_limits()
            self._limited = None

    @contextmanager
    def scope(self) -> Iterator[None]:
        if not self._controller():
            yield
            return
        self._k, self._t = 0, None
        self._set(self.choice == 1)
        try:
            yield
        finally:
            self._set(False)

    def step(self, work: int) -> None:
        if self.choice is not None or not self._ctl:
            return
        now = time.perf_counter()
        k = self._k  # steps that took part so far
        if self._t is not None and k > self.WARM:  # the step that just ended ran under its block's setting
            last = (k - 1 - self.WARM) // self.BLOCK % 2
            self._costs[last] += now - self._t
            self._amounts[last] += self._work
        self._t = None
        if work < self.MIN_WORK:
            return
        self._k = k + 1
        done = k - self.WARM
        if done == 2 * self.BLOCK * self.ROUNDS:
            per = [c / max(a, 1) for c, a in zip(self._costs, self._amounts)]
            self.choice = int(per[1] < MARGIN * per[0])
            self._set(self.choice == 1)
            return
        if done >= 0 and done % self.BLOCK == 0:
            self._set(done // self.BLOCK % 2 == 1)
        self._t, self._work = time.perf_counter(), work
