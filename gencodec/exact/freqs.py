"""Integer frequency tables from integer model outputs: softmax logits, and (mixtures of)
discretized logistics via precomputed per-scale CDF tables.

Every table here is a pure integer function of integer inputs, every entry >= 1, with a fixed
total. The two distributions each serve training (``log_prob`` on real values, differentiable,
straight-through on the quantized parameters) and coding (``freqs`` on the integer parameters the
exact network outputs), so the loss and the coder agree.

Example (residual coding with a scale table, the fast path)::

    tables = LogisticTables(n_values=256, n_scales=64, mean_frac_bits=2)
    # training: mean_real in [0, 255], scale_idx_real in [0, 63] (real-valued network outputs)
    nll_nats = -tables.log_prob(x.float(), mean_real, scale_idx_real).sum()
    # coding: integer outputs of the exact network (mean in units of 1/4, scale index)
    freqs = tables.freqs(mean_q, scale_idx)          # (N, 256) integer float64, rows sum to 2**20
    enc.encode(x, freqs)

    cat = IntCategorical(ExpTable(frac_bits=4))      # softmax over K symbols
    freqs = cat.freqs(logits_int)                    # logits in units of 1/16 nat -> (..., K)
"""

from __future__ import annotations

import functools
import math
from decimal import Decimal

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ExactnessError
from .detmath import CTX, D, det_floor, det_round, dsigmoid
from .quant import round_ste

__all__ = ["ExpTable", "logits_to_freqs", "IntCategorical", "LogisticTables"]


# ---------------------------------------------------------------------------------------------
# softmax logits -> frequencies
# ---------------------------------------------------------------------------------------------
class ExpTable:
    """``table[d] = round(2**out_bits * exp(-d * 2**-frac_bits))`` for d = 0, 1, ... until it is 0.

    The same on every machine (see :mod:`gencodec.exact.detmath`). ``table``: int64 (n,), read-only.
    """

    def __init__(self, frac_bits: int = 4, out_bits: int = 16):
        self.frac_bits = int(frac_bits)
        self.out_bits = int(out_bits)
        self.table = _exp_table(self.frac_bits, self.out_bits)
        self._table_t = torch.from_numpy(self.table.copy())

    def __repr__(self) -> str:
        return f"ExpTable(frac_bits={self.frac_bits}, out_bits={self.out_bits}, n={self.table.size})"

    def lookup(self, d: torch.Tensor) -> torch.Tensor:
        """exp table at non-negative integer distances ``d`` (any shape, integer-valued) -> int64."""
        t = self._table_t if d.device.type == "cpu" else self._table_t.to(d.device)
        idx = torch.clamp(d.to(torch.int64), 0, t.numel() - 1)
        return t[idx]


@functools.lru_cache(maxsize=16)
def _exp_table(frac_bits: int, out_bits: int) -> np.ndarray:
    n = int(math.ceil((out_bits + 1) * math.log(2) * 2**frac_bits)) + 2
    d = np.arange(n, dtype=np.float64)
    est = np.exp(-d * 2.0**-frac_bits) * 2.0**out_bits
    scale = D(2**out_bits)
    step = CTX.power(D(2), -frac_bits)
    table = det_round(est, lambda idx: (CTX.multiply(scale, CTX.exp(CTX.minus(CTX.multiply(D(i), step)))) for i in idx))
    table[-1] = 0  # beyond the table everything rounds to zero
    table.flags.writeable = False
    return table


def logits_to_freqs(logits: torch.Tensor, exp_table: ExpTable, total_bits: int = 16) -> torch.Tensor:
    """Integer softmax: integer logits (..., K) in units of ``2**-exp_table.frac_bits`` nat ->
    int64 (..., K), every entry >= 1, each row summing to exactly ``2**total_bits``.

    e_k = exp_table[max(l) - l_k]; f_k = 1 + floor(e_k * (T - K) / sum(e)); the remainder
    (< K) goes to the first most probable symbol. All int64 arithmetic: exact on any device.
    """
    k = logits.shape[-1]
    total = 2**total_bits
    if total < 2 * k:
        raise ExactnessError(f"total 2**{total_bits} too small for {k} symbols")
    if 2 ** (exp_table.out_bits + total_bits) * k >= 2**62:
        raise ExactnessError("logits_to_freqs: products would overflow int64")
    lg = logits.to(torch.int64)
    d = lg.max(dim=-1, keepdim=True).values - lg
    e = exp_table.lookup(d)  # (..., K), the max has e = 2**out_bits > 0
    f = 1 + torch.div(e * (total - k), e.sum(dim=-1, keepdim=True), rounding_mode="floor")
    rest = total - f.sum(dim=-1, keepdim=True)  # 0 <= rest < K
    # +1 to the `rest` most probable symbols (ties by index): rank of each symbol by e, descending
    order = torch.sort(-e, dim=-1, stable=True).indices
    rank = torch.empty_like(order).scatter_(-1, order, torch.arange(k, device=e.device).expand_as(order))
    return f + (rank < rest).to(torch.int64)


class IntCategorical:
    """Softmax over K symbols: ``log_prob`` for training, ``freqs`` for coding.

    Real logits in nats are trained; the exact network outputs them as integers in units of
    ``2**-exp_table.frac_bits`` nat (give its last layer that output format).
    """

    def __init__(self, exp_table: ExpTable | None = None, total_bits: int = 16):
        self.exp_table = exp_table or ExpTable()
        self.total_bits = total_bits

    def log_prob(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """logits (..., K) real nats, x (...) ints -> log-probabilities (...) in nats."""
        return torch.gather(F.log_softmax(logits, dim=-1), -1, x.long().unsqueeze(-1)).squeeze(-1)

    def freqs(self, logits_int: torch.Tensor) -> torch.Tensor:
        """Integer logits (..., K) -> int64 tables (..., K), rows summing to 2**total_bits."""
        return logits_to_freqs(logits_int, self.exp_table, self.total_bits)


# ---------------------------------------------------------------------------------------------
# discretized logistic (mixtures) via scale tables
# ---------------------------------------------------------------------------------------------
class LogisticTables:
    """Discretized logistic over values 0..V-1 with an integer mean and an integer scale index.

    mean: integer ``mean_q`` in units of ``2**-mean_frac_bits`` (clamped to [0, V-1]).
    scale: index i in [0, n_scales) of a geometric ladder from ``scale_min`` to ``scale_max``.
    For each (scale, mean phase) one integer CDF over the residual x - floor(mean) in
    [-(V-1), V-1] is built once (every cell >= 1, total 2**total_bits, default 2**20: the +1 floor costs ~0.001 bit/symbol
    there, 0.01 at 2**16); the table of one symbol
    is a slice of it with the tails folded into values 0 and V-1, so rows sum to exactly
    2**total_bits and every entry is >= 1. Building a row costs a gather and a difference.

    Attributes: ``scales`` float64 (S,), ``cdf`` int64 (S, P, 2V), both read-only.
    """

    def __init__(
        self,
        n_values: int = 256,
        n_scales: int = 64,
        scale_min: float = 0.1,
        scale_max: float = 64.0,
        mean_frac_bits: int = 2,
        total_bits: int = 20,
    ):
        self.n_values = int(n_values)
        self.n_scales = int(n_scales)
        self.scale_min = float(scale_min)
        self.scale_max = float(scale_max)
        self.mean_frac_bits = int(mean_frac_bits)
        self.total_bits = int(total_bits)
        self.scales, self.cdf = _logistic_bank(
            self.n_values, self.n_scales, self.scale_min, self.scale_max, self.mean_frac_bits, self.total_bits
        )
        self._log_ratio = math.log(self.scale_max / self.scale_min) / max(self.n_scales - 1, 1)
        # float64 copy of the CDF bank (exact: totals < 2**53) so rows come out ready for the coder
        self._windows = np.lib.stride_tricks.sliding_window_view(
            self.cdf.reshape(-1).astype(np.float64), self.n_values + 1
        )

    def __repr__(self) -> str:
        return (f"LogisticTables(n_values={self.n_values}, n_scales={self.n_scales}, scale_min={self.scale_min}, "
                f"scale_max={self.scale_max}, mean_frac_bits={self.mean_frac_bits}, total_bits={self.total_bits})")

    @property
    def total(self) -> int:
        return 2**self.total_bits

    # -- parameters -----------------------------------------------------------------------------
    def clamp_params(self, mean_q: np.ndarray, scale_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Integer parameters clamped to their ranges (what ``freqs`` uses): two int64 arrays."""
        p = 2**self.mean_frac_bits
        m = np.clip(np.asarray(mean_q).astype(np.int64), 0, (self.n_values - 1) * p)
        s = np.clip(np.asarray(scale_idx).astype(np.int64), 0, self.n_scales - 1)
        return m, s

    def quantize(self, mean: torch.Tensor, scale_idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Real (trained) parameters -> the real values of their quantized, clamped versions.

        Straight-through: gradients pass the rounding. mean in [0, V-1] on a 2**-mean_frac_bits
        grid; scale index an integer in [0, n_scales). Returns (mean, scale) where scale is the
        logistic scale in value units.
        """
        p = 2.0**self.mean_frac_bits
        m = torch.clamp(round_ste(torch.clamp(mean * p, 0, (self.n_values - 1) * p)), 0, (self.n_values - 1) * p) / p
        i = round_ste(torch.clamp(scale_idx, 0, self.n_scales - 1))
        return m, self.scale_min * torch.exp(i * self._log_ratio)

    # -- training ---------------------------------------------------------------------------------
    def log_prob(self, x: torch.Tensor, mean: torch.Tensor, scale_idx: torch.Tensor) -> torch.Tensor:
        """Log-probability in nats of integer values ``x`` (any shape, float or int) under the
        discretized logistic with quantized ``mean`` and ``scale_idx`` (real, same shape)."""
        m, s = self.quantize(mean, scale_idx)
        return _discretized_logistic_logp(x.to(m.dtype), m, s, self.n_values)

    def mixture_log_prob(self, x: torch.Tensor, means: torch.Tensor, scale_idx: torch.Tensor,
                         weight_logits: torch.Tensor) -> torch.Tensor:
        """Mixture over the last axis: x (...), means/scale_idx/weight_logits (..., M) -> (...) nats."""
        m, s = self.quantize(means, scale_idx)
        comp = _discretized_logistic_logp(x.to(m.dtype).unsqueeze(-1), m, s, self.n_values)
        return torch.logsumexp(comp + F.log_softmax(weight_logits, dim=-1), dim=-1)

    # -- coding -----------------------------------------------------------------------------------
    def freqs(self, mean_q: np.ndarray | torch.Tensor, scale_idx: np.ndarray | torch.Tensor) -> np.ndarray:
        """Integer tables for N symbols: mean_q (N,), scale_idx (N,) integers -> (N, V) float64
        holding integers (the coder's input dtype), every entry >= 1, every row summing to
        2**total_bits. Memory: 8·V bytes per row: build and code large inputs in chunks of ~1000
        rows (measured fastest: the rows stay in cache between building and coding)."""
        V = self.n_values
        P = 2**self.mean_frac_bits
        m, s = self.clamp_params(_np(mean_q), _np(scale_idx))
        m_int, phase = np.divmod(m, P)
        start = (s * P + phase) * (2 * V) + (V - 1 - m_int)  # (N,)
        rows = self._windows[start]  # (N, V+1) CDF values at the value boundaries
        f = np.diff(rows, axis=1)
        f[:, 0] = rows[:, 1]  # fold the lower tail into value 0
        f[:, -1] = self.total - rows[:, V - 1]  # and the upper tail into value V-1
        return f

    def mixture_freqs(self, means_q: np.ndarray | torch.Tensor, scale_idx: np.ndarray | torch.Tensor,
                      weights: np.ndarray | torch.Tensor) -> np.ndarray:
        """Mixture of M components: means_q, scale_idx (N, M) ints; weights (N, M) integers >= 0
        with a fixed row sum W (e.g. :func:`logits_to_freqs` of the weight logits) -> (N, V) float64
        holding integers >= 1, rows summing to W·2**total_bits (exact while that is below 2**53)."""
        mq, si, w = _np(means_q), _np(scale_idx), _np(weights).astype(np.int64)
        if w.min(initial=0) < 0:
            raise ExactnessError("mixture weights must be >= 0")
        if int(w.sum(axis=1).max(initial=0)) * self.total >= 2**53:
            raise ExactnessError("mixture total would leave float64's exact integer range")
        out = np.zeros((mq.shape[0], self.n_values), dtype=np.float64)
        for k in range(mq.shape[1]):
            out += w[:, k : k + 1] * self.freqs(mq[:, k], si[:, k])
        return out


def _np(a: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _discretized_logistic_logp(x: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor, n_values: int) -> torch.Tensor:
    """log P(x) for a logistic(mean, scale) discretized to integers 0..V-1, tails folded into the
    end values (PixelCNN++ edge cases), computed stably. Shapes broadcast; result in nats."""
    centered = x - mean
    plus = (centered + 0.5) / scale
    minus = (centered - 0.5) / scale
    log_cdf_plus = plus - F.softplus(plus)  # log sigmoid(plus)
    log_one_minus_cdf_min = -F.softplus(minus)  # log (1 - sigmoid(minus))
    # sigmoid(a) - sigmoid(b) = sigmoid(a) * (1 - sigmoid(b)) * (1 - exp(b - a)): stable in both tails
    log_mid = log_cdf_plus + log_one_minus_cdf_min + torch.log(-torch.expm1(minus - plus))
    out = torch.where(x <= 0, log_cdf_plus, torch.where(x >= n_values - 1, log_one_minus_cdf_min, log_mid))
    return out


@functools.lru_cache(maxsize=8)
def _logistic_bank(V: int, S: int, s_min: float, s_max: float, mean_frac_bits: int, total_bits: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(scales (S,), cdf (S, P, 2V)) built deterministically; cdf[..., 0] = 0, cdf[..., -1] = total."""
    P = 2**mean_frac_bits
    total = 2**total_bits
    n_cells = 2 * V - 1
    if total < 4 * n_cells:
        raise ExactnessError(f"total 2**{total_bits} too small for {V} values")
    # scale ladder, exactly in Decimal then to float64 (identical everywhere)
    d_ratio = CTX.divide(D(s_max), D(s_min))
    d_scales = [CTX.multiply(D(s_min), CTX.power(d_ratio, CTX.divide(D(i), D(max(S - 1, 1))))) for i in range(S)]
    scales = np.array([float(s) for s in d_scales])
    k = np.arange(-(V - 1), V - 1, dtype=np.float64)  # interior boundaries at k + 1/2 - phase
    budget = total - n_cells
    cdf = np.zeros((S, P, 2 * V), dtype=np.int64)
    for si in range(S):
        for ph in range(P):
            z = (k + 0.5 - ph / P) / scales[si]  # exact boundaries, float64 estimate of z
            with np.errstate(over="ignore"):
                c = 1.0 / (1.0 + np.exp(-z))
            cells = np.diff(np.concatenate([[0.0], c, [1.0]]))  # (n_cells,)

            def exact(idx: list[int], si: int = si, ph: int = ph) -> list[Decimal]:
                out = []
                for j in idx:  # cell j lies between boundaries j-1 and j
                    hi = D(1) if j == n_cells - 1 else dsigmoid(_dz(j, V, ph, P, d_scales[si]))
                    lo = D(0) if j == 0 else dsigmoid(_dz(j - 1, V, ph, P, d_scales[si]))
                    out.append(CTX.multiply(CTX.subtract(hi, lo), D(budget)))
                return out

            f = 1 + det_floor(cells * budget, exact, nonnegative=True)
            rest = total - int(f.sum())  # 0 <= rest < n_cells: +1 to the `rest` largest cells
            f[np.argsort(-f, kind="stable")[:rest]] += 1
            cdf[si, ph, 1:] = np.cumsum(f)
    scales.flags.writeable = False
    cdf.flags.writeable = False
    return scales, cdf


def _dz(b: int, V: int, ph: int, P: int, scale: Decimal) -> Decimal:
    """Exact z of interior boundary b (0-based): (k + 1/2 - ph/P) / scale with k = b - (V-1)."""
    num = CTX.add(D(b - (V - 1)), CTX.subtract(Decimal("0.5"), CTX.divide(D(ph), D(P))))
    return CTX.divide(num, scale)
