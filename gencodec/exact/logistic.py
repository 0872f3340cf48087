"""Discretized logistic tables over 0..255: an integer mean (in 1/D levels) and a scale index
-> an integer frequency table, from one integer cdf table per model (no transcendental function
is evaluated while coding). The one logistic table implementation of gencodec: pixelcnn codes
its residuals with it, and its training loss (:meth:`DiscretizedLogistic.log2_prob`) is the same
law in closed form.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ExactnessError, GencodecError
from .fastpath import row_windows

__all__ = ["CDF_TOTAL", "N_SYMBOLS", "DiscretizedLogistic"]

CDF_TOTAL = 1 << 16  # every frequency table sums to this
N_SYMBOLS = 256


class DiscretizedLogistic:
    """Discretized logistic over 0..255 with mean md / D (md integer, D = 2**mean_frac_bits) and an
    integer scale index; the edge bins take the tails.

    Coding uses ``cdf`` (n_scales, n_points) integers ``round(sigmoid(d_j / s) * (2**16 - 256))`` at
    the offsets d_j = (j - (n_points - 1) / 2) / D that a bin edge x - mean +- 1/2 can take (D = 1: 512
    points j - 255.5; D = 2: 1023 points), computed once at export and stored with the weights, so
    no transcendental function is ever evaluated while coding. A row of frequencies adds one count
    per symbol, so every symbol has frequency >= 1 and every row sums to 2**16. Training uses the
    same law in closed form: p = p_logistic * (1 - 2**-8) + 2**-16.
    """

    def __init__(self, n_scales: int, log_scale_min: float, log_scale_max: float, mean_frac_bits: int = 0,
                 cdf: np.ndarray | None = None):
        self.n_scales, self.log_scale_min, self.log_scale_max = n_scales, log_scale_min, log_scale_max
        self.steps = 1 << mean_frac_bits
        self.n_means = 255 * self.steps + 1
        self.n_points = 512 * self.steps - (self.steps - 1)
        self.cdf = self.make_cdf() if cdf is None else np.asarray(cdf, dtype=np.int64)
        if self.cdf.shape != (n_scales, self.n_points):
            raise GencodecError(f"cdf table has shape {self.cdf.shape}, expected {(n_scales, self.n_points)}")
        self._flat: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def make_cdf(self) -> np.ndarray:
        """The integer cdf table of this law (computed once, at export; stored with the weights)."""
        d_steps, n_points = self.steps, self.n_points
        log_s = torch.linspace(self.log_scale_min, self.log_scale_max, self.n_scales, dtype=torch.float64)
        d = (torch.arange(n_points, dtype=torch.float64) - (n_points - 1) / 2) / d_steps
        cdf = torch.sigmoid(d[None, :] * torch.exp(-log_s)[:, None]) * (CDF_TOTAL - N_SYMBOLS)
        return torch.round(cdf).to(torch.int64).numpy()  # (S, n_points)

    def interior_costs(self) -> np.ndarray:
        """(S, 510 * D + 1) bits of an interior symbol x at residual k = D * x - md (index k + 255 * D)."""
        freq = self.cdf[:, self.steps :] - self.cdf[:, : -self.steps] + 1
        return np.log2(CDF_TOTAL) - np.log2(freq)

    # -- training --------------------------------------------------------------------------------
    def log2_prob(self, x: torch.Tensor, mean: torch.Tensor, scale_idx: torch.Tensor) -> torch.Tensor:
        """log2 p(x) elementwise. x: integers 0..255; mean: 0..255; scale_idx: 0..n_scales-1 (real)."""
        step = (self.log_scale_max - self.log_scale_min) / (self.n_scales - 1)
        inv_s = torch.exp(-(self.log_scale_min + scale_idx * step))
        c = x - mean
        ac = c.abs()
        mid = torch.sigmoid(-(ac - 0.5) * inv_s) - torch.sigmoid(-(ac + 0.5) * inv_s)  # symmetric, no cancellation
        low = torch.sigmoid((0.5 - mean) * inv_s)  # x == 0 takes the left tail
        high = torch.sigmoid((mean - 254.5) * inv_s)  # x == 255 takes the right tail
        p = torch.where(x <= 0, low, torch.where(x >= 255, high, mid))
        p = p * (1.0 - N_SYMBOLS / CDF_TOTAL) + 1.0 / CDF_TOTAL
        return torch.log2(p)

    # -- coding ----------------------------------------------------------------------------------
    def _check_cdf(self) -> None:
        """A cdf non-decreasing within [0, 2**16 - 256] gives every table entry >= 1 and rows summing
        to 2**16 (they telescope), so that is what is checked."""
        cdf = self.cdf
        if cdf.min() < 0 or cdf.max() > CDF_TOTAL - N_SYMBOLS or np.any(np.diff(cdf, axis=1) < 0):
            raise ExactnessError("logistic cdf table is not monotone within [0, 2**16 - 256]")

    def _tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(flat cdf, flat bin table, windows, tails), float64. bin[s, j] = C[s, j] - C[s, j - D] + 1,
        stored by phase: bins[s, r, k] = bin[s, D k + r]; windows is a read-only strided view of it
        whose row i = (s D + r) 512 + k holds bins[s, r, k : k + 256], so the table of a mean
        md = D q - r (0 <= r < D) is row (s D + r) 512 + 256 - q: one fancy-indexed row gather,
        cache-sized. tails[s (255 D + 1) + md] = the entries of symbols 0 and 255 (:func:`_tails`)."""
        if self._flat is None:
            self._check_cdf()
            d, s = self.steps, self.n_scales
            c = self.cdf.astype(np.float64)
            bins = np.ones((s, 2 * N_SYMBOLS * d))  # padded past the last point, never read as a symbol's entry
            bins[:, d : self.n_points] += c[:, d:] - c[:, :-d]
            phased = np.ascontiguousarray(bins.reshape(s, 2 * N_SYMBOLS, d).transpose(0, 2, 1)).reshape(-1)
            windows = row_windows(phased, N_SYMBOLS)
            md = np.arange(255 * d + 1)
            up0 = (np.arange(s)[:, None] * self.n_points + (N_SYMBOLS * d - md)).reshape(-1)  # j_up(0) of (s, md)
            tails = np.stack(_tails(c.reshape(-1), up0, up0 + 254 * d), axis=1)  # (s (255 D + 1), 2)
            self._flat = (c.reshape(-1), bins.reshape(-1), windows, tails)
        return self._flat

    def freqs(self, mean: np.ndarray, scale_idx: np.ndarray) -> np.ndarray:
        """Integer tables (N, 256) as float64 for means md (N,) in 0..255 * D and scale_idx (N,).

        Entry x is ``C[j_up] - C[j_up - D] + 1`` with ``j_up = D * x - md + 256 D`` (the bin edge
        above x, as an index into the cdf row of scale_idx), the first symbol taking the left tail
        and the last the right one.
        """
        _, _, windows, tails = self._tables()
        d = self.steps
        md, s = np.asarray(mean, np.int64), np.asarray(scale_idx, np.int64)
        q = -(-md // d)
        out = windows[(s * d + d * q - md) * (2 * N_SYMBOLS) + (N_SYMBOLS - q)]
        edge = tails[s * (255 * d + 1) + md]
        out[:, 0], out[:, -1] = edge[:, 0], edge[:, 1]
        return out

    def prob_freq(self, x: np.ndarray, mean: np.ndarray, scale_idx: np.ndarray) -> np.ndarray:
        """The table entry of symbol x alone (what :meth:`freqs` would hold at x), float64, any shape."""
        c, bins, _, _ = self._tables()
        d, x, s = self.steps, np.asarray(x, np.int64), np.asarray(scale_idx, np.int64)
        j_up = d * (x + N_SYMBOLS) - np.asarray(mean, np.int64)
        f = bins.take(s * (2 * N_SYMBOLS * d) + j_up)
        up = s * self.n_points + j_up
        left, right = _tails(c, up, up - d)
        return np.where(x == 0, left, np.where(x == N_SYMBOLS - 1, right, f))


def _tails(cdf_flat: np.ndarray, up_first: np.ndarray, low_last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Table entries of the edge symbols, from flat cdf indices: symbol 0 takes everything below its
    upper edge ``up_first``, symbol 255 everything above its lower edge ``low_last`` (+1 each, the floor)."""
    return cdf_flat.take(up_first) + 1, CDF_TOTAL - N_SYMBOLS + 1 - cdf_flat.take(low_last)
