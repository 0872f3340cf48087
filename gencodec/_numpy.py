"""numpy helpers for hot loops (no torch import)."""

try:  # the clip ufunc itself, without np.clip's Python wrapper (called ~20,000 times per decode)
    from numpy._core.umath import clip  # numpy >= 2
except ImportError:  # numpy 1.x
    from numpy.core.umath import clip

__all__ = ["clip"]
