"""Per-image adaptation of pixelcnn's tables, as hooks of the coding driver (run alike by the
encoder, a round at a time, and the decoder, a group at a time):

- :class:`RemapHook`: the encoder maps each (channel, predicted scale index) group to the scale
  index and mean offset that fit this image best (:func:`choose_remap`, stored in the payload
  where it saves more than it costs); both sides apply the same integer maps to the parameters.
- :class:`HistHook`: per-image histograms of the residuals mixed into the tables
  (:class:`OnlineHistograms`, header param ``hist``): both sides count the symbols already coded,
  updating between rounds of wavefronts, with integers only.
"""

from __future__ import annotations

import zlib

import numpy as np

from ..errors import CorruptFileError
from ..exact.contract import Hook
from ..exact.fastpath import clip as _clip, row_windows
from ..exact.intlog import ilog2
from ..exact.logistic import CDF_TOTAL

MAX_BIAS = 3  # the per-image adaptation may move a group's means by up to this many levels

HIST_VERSION = 1  # header param "hist": the online histograms below, with these constants
HIST_WINDOW = 32  # symbols around the mean that get histogram counts
HIST_WEIGHTS = (0, 32, 128, 512)  # candidate weights of a count (model rows sum to 2**16)
COST_EVERY = 4  # the weights are charged on every 4th symbol of a round (in coding order)


class OnlineHistograms:
    """Per-image residual histograms mixed into the model's tables, identically on both sides.

    Counts are kept per group (channel, scale index, md mod D) over the residual k = D x - md (the
    symbol's offset from the mean in 1/D levels). A symbol's table is the model's row (2**16 in all)
    plus w times its group's counts on the HIST_WINDOW symbols around the mean: the image's own
    statistics take over where it has many -- e.g. the spiky colour residuals of 4:2:0 photos, which a
    logistic fits poorly. The weight w is chosen per channel among HIST_WEIGHTS (0: the model alone)
    as the one that would have coded that channel's symbols so far in the fewest bits, counted with
    an integer log2 (:func:`ilog2`). Counts and costs are integers, updated only between rounds of
    ROUND_WAVEFRONTS wavefronts (the schedule's rounds) with every symbol of the round, so the encoder (chunk by round) and the
    decoder (wavefront by wavefront) see the same numbers; table entries stay far below 2**53.
    """

    def __init__(self, cfg, n_coded: int):
        self.row_total = float(CDF_TOTAL)  # what every model row sums to
        self.d, self.n_scales, self.n_coded = cfg.mean_steps, cfg.n_scales, n_coded
        self.n_k = 510 * self.d + 1
        # float64 holding integers (exact below 2**53): gathered straight into the float64 tables
        self.counts = np.zeros(n_coded * self.n_scales * self.d * self.n_k, np.float64)
        self.cost = np.zeros((n_coded, len(HIST_WEIGHTS)), np.int64)
        self._weights = np.array(HIST_WEIGHTS, np.float64)
        self._w = np.zeros(n_coded)  # each channel's weight this round
        self._pending: list[tuple] = []
        # windows[i] = counts[i + d j], j < HIST_WINDOW: a group's counts of the symbols x0 .. x0 + W - 1
        # (read-only strided view: one row gather per symbol instead of an (N, W) index array)
        self._windows = row_windows(self.counts, HIST_WINDOW, self.d)
        self._row0 = np.zeros(0, np.int64)  # 0, 256, 512, ...: row starts in a flattened table
        # by mean md: the first symbol x0 of the window, and md's share of a counts index (see mix)
        md = np.arange(255 * self.d + 1)
        self._x0 = _clip(md // self.d - (HIST_WINDOW // 2 - 1), 0, 256 - HIST_WINDOW)
        self._key_md = (md % self.d) * self.n_k - md + 255 * self.d
        self._last = None

    def mix(self, freqs: np.ndarray, chan, md, idx, totals: bool = False) -> np.ndarray | None:
        """freqs (N, 256) float64 model rows of symbols with (chan, md, idx) -> add w x counts, in place;
        with ``totals``, returns the rows' sums (N,) float64.

        chan: one channel (int) or one per symbol. Call :meth:`add` next with the same symbols."""
        d, n = self.d, freqs.shape[0]
        md, idx = np.asarray(md, np.int64), np.asarray(idx, np.int64)  # int16 tables would overflow below
        x0 = self._x0[md]  # the window: symbols x0 .. x0 + W - 1
        # counts index of symbol x: group * n_k + d x - md + 255 d, group = (chan, idx, md mod d)
        key0 = idx * (d * self.n_k) + self._key_md[md]
        key0 += chan * (self.n_scales * d * self.n_k)
        w = self._w[chan]
        if self._row0.size < n:
            self._row0 = np.arange(0, 256 * max(n, 2 * self._row0.size), 256)
        total = np.full(n, self.row_total) if totals else None
        if n and (w.any() if np.ndim(w) else w):
            h = self._windows[key0 + d * x0]  # (N, W)
            # rows i * 256 + x0_i of this view are the windows of the tables: add w x counts there
            view = row_windows(freqs, HIST_WINDOW, writeable=True)
            view[self._row0[:n] + x0] += (w[:, None] if np.ndim(w) else w) * h
            if totals:
                total += w * h.sum(axis=1)
        self._last = (key0, x0, w)
        return total

    def add(self, chan, sym, freqs: np.ndarray) -> None:
        """The symbols just coded under the tables :meth:`mix` made (``freqs``); counted, and charged to
        each candidate weight, at the next :meth:`update` (the counts are still those of this round)."""
        key0, x0, w = self._last
        sym = np.asarray(sym, np.int64)
        f_sym = freqs.reshape(-1)[self._row0[: sym.size] + sym] if sym.size else np.zeros(0)
        self._pending.append((key0, x0, sym, f_sym, chan, w))

    def update(self) -> None:
        """End of a round: charge each weight what it would have cost on the round's symbols, then count them."""
        if not self._pending:
            return
        parts = list(zip(*self._pending))
        self._pending = []
        sizes = [a.size for a in parts[2]]
        key0, x0, sym, f_sym = (np.concatenate(a) for a in parts[:4])
        # per-call channel and weight: one number (decoder) or one per symbol (encoder)
        if all(np.ndim(v) == 0 for v in parts[4]):  # the decoder: one channel per call
            chan, w = np.repeat(np.array(parts[4], np.int64), sizes), np.repeat(np.array(parts[5], np.float64), sizes)
        else:
            chan, w = (np.concatenate([np.broadcast_to(v, (k,)) for v, k in zip(vals, sizes)]) for vals in parts[4:])
        d = self.d
        keys = key0 + d * sym
        # charge the weights on every COST_EVERY-th symbol of the round (in coding order: the same on both sides)
        key0, x0, sym, f_sym, chan, w = (a[::COST_EVERY] for a in (key0, x0, sym, f_sym, chan, w))
        h = self._windows[key0 + d * x0]  # (N, W): the counts the round used
        rel = sym - x0
        inside = (rel >= 0) & (rel < HIST_WINDOW)
        h_sym = np.where(inside, h[np.arange(sym.size), np.clip(rel, 0, HIST_WINDOW - 1)], 0)
        f_model = f_sym - w * h_sym  # the model's own frequency of each symbol
        ws = self._weights[None, :]
        bits = ilog2(self.row_total + ws * h.sum(axis=1)[:, None]) - ilog2(f_model[:, None] + ws * h_sym[:, None])
        for k in range(len(HIST_WEIGHTS)):  # sums of integers below 2**53: exact in float64, in any order
            self.cost[:, k] += np.bincount(chan, weights=bits[:, k], minlength=self.n_coded).astype(np.int64)
        seen, times = np.unique(keys, return_counts=True)  # (faster than np.add.at)
        self.counts[seen] += times
        self._w = self._weights[np.argmin(self.cost, axis=1)]  # ties: the smaller weight


def choose_remap(dist, symbols: np.ndarray, mean: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-image adaptation: for every (channel, predicted scale index) group, the scale index and
    the mean offset (|offset| <= MAX_BIAS levels, counted in the model's mean steps 1/D) that code
    this image's residuals best.

    symbols, mean (md, see DiscretizedLogistic), idx: (n_coded, H, W) -> (remap (n_coded, S) int64,
    bias (n_coded, S) int64 in mean steps, estimated bits saved). The estimate uses interior bins
    (edge pixels' tails aside); coding then uses the remapped integers exactly, so the decoder's
    tables still equal the encoder's.
    """
    n_coded = symbols.shape[0]
    s = dist.n_scales
    d_steps = dist.steps
    max_bias = MAX_BIAS * d_steps
    neg_log2 = dist.interior_costs()  # (S, n_res): residual k = D * x - md, index k + 255 * D
    n_res = neg_log2.shape[1]
    resid = d_steps * symbols.astype(np.int64) - mean + 255 * d_steps  # (n_coded, H, W) in [0, n_res)
    keys = ((np.arange(n_coded)[:, None, None] * s + idx) * n_res + resid).ravel()
    hist = np.bincount(keys, minlength=n_coded * s * n_res).reshape(n_coded, s, n_res).astype(np.float64)
    big = 16.0 + np.zeros((s, max_bias))
    costs = []
    for b in range(-max_bias, max_bias + 1):  # residual after moving the mean by b: k - b
        shifted = np.concatenate([big, neg_log2, big], axis=1)[:, max_bias - b : max_bias - b + n_res]
        costs.append(hist @ shifted.T)  # (n_coded, S predicted, S used)
    cost = np.stack(costs, axis=-1).reshape(n_coded, s, -1)  # (n_coded, S, S * n_bias)
    best = np.argmin(cost, axis=2)
    remap, bias = best // (2 * max_bias + 1), best % (2 * max_bias + 1) - max_bias
    base = np.diagonal(costs[max_bias], axis1=1, axis2=2).sum()
    gain = base - np.take_along_axis(cost, best[..., None], axis=2).sum()
    return remap.astype(np.int64), bias.astype(np.int64), float(gain)


def pack_remap(remap: np.ndarray, bias: np.ndarray) -> bytes:
    return zlib.compress(np.concatenate([remap.ravel(), bias.ravel() + 128]).astype(np.uint8).tobytes(), 9)


def unpack_remap(packed: bytes, n_coded: int, n_scales: int, max_bias: int = MAX_BIAS) -> tuple[np.ndarray, np.ndarray]:
    try:
        raw = np.frombuffer(zlib.decompress(packed), np.uint8).astype(np.int64)
    except zlib.error:
        raise CorruptFileError("pixelcnn: damaged scale remap") from None
    n = n_coded * n_scales
    if raw.size != 2 * n or raw[:n].max() >= n_scales or np.abs(raw[n:] - 128).max() > max_bias:
        raise CorruptFileError("pixelcnn: scale remap does not fit the model")
    return raw[:n].reshape(n_coded, n_scales), (raw[n:] - 128).reshape(n_coded, n_scales)


class RemapHook(Hook):
    """Applies a per-image remap: (scale remap, mean offsets), each (n_coded, n_scales), to the
    parameters (channel, md, scale index)."""

    def __init__(self, remap: np.ndarray, bias: np.ndarray, mean_steps: int):
        self.remap, self.bias, self.top = remap, bias, 255 * mean_steps

    def params(self, params):
        chan, md, idx = params
        return chan, _clip(md + self.bias[chan, idx], 0, self.top), self.remap[chan, idx]


class HistHook(Hook):
    """:class:`OnlineHistograms` as a hook. ``totals``: return each table's sum (the encoder's
    ideal bits need it; the decoder does not)."""

    def __init__(self, cfg, n_coded: int, totals: bool):
        self.hist, self.totals = OnlineHistograms(cfg, n_coded), totals

    def mix(self, freqs, params, total):
        chan, md, idx = params
        t = self.hist.mix(freqs, chan, md, idx, totals=self.totals)
        return t if self.totals else total

    def coded(self, symbols, freqs, params):
        self.hist.add(params[0], symbols, freqs)

    def end_round(self):
        self.hist.update()
