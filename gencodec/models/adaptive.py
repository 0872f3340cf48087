"""Online, integer-exact adaptation of a model's (mean, scale index) per subpixel.

A context-mixing style secondary stage for the ``pixelcnn`` codec (after the network and the
per-image remap). For every subpixel it picks one correction ``(mean + b, scale index + j)``,
``|b| <= max_bias``, ``|j| <= max_shift``, the candidate that would have coded the subpixels seen
so far *in the same context* in the fewest bits. The state per context is the accumulated
integer code length of every candidate, halved when the context's count passes ``halve_at``
(recency). A context is::

    (channel, input scale index // idx_bucket, bucket(eW + eN), bucket(earlier channels' e))

where ``e = symbol - input mean`` is the error of the (uncorrected) input prediction, eW / eN
those of the same channel at the left / upper neighbour (0 outside the image), and "earlier
channels' e" the errors of channels 0..c-1 of the *same* pixel (channel 1 uses e0; channel 2
uses e1 and e0), which the network uses only through its small heads.

Everything is integer (numpy int64): the code-length table is ``16 * 256 - floor(256 *
log2(freq))`` of the model's integer cdf, computed exactly from the bit length of ``freq**256``
(no floating point); argmin ties go to the first candidate, which is "no change". So the
corrected tables are a pure function of already-coded symbols and the model's outputs.

Schedule (wavefronts, see ``gencodec.codecs.image_lossless``). Per wavefront t, with
``pos = adapter.positions(ys, xs)`` of its pixels, for each channel c in order: ``mean, idx =
adapter.correct(c, pos, mean, idx)``, code / decode the symbols with those tables, then
``adapter.update(c, pos, sym)``. ``update(c)`` must come before ``correct(c + 1)`` of the same
wavefront (channel c+1's context reads channel c's error of the same pixel). ``correct`` only reads
the state, and halving is deferred to the next ``correct`` of that channel, so a wavefront may be
split into any number of ``correct`` calls followed by any number of ``update`` calls with the
same result. :meth:`OnlineAdapter.replay` is the encoder's whole-image pass with the same result.

Cost (2-core CPU, 768 x 512 RGB, 2301 wavefronts): about 0.35 s for ``replay`` and 0.5-0.6 s
for the decoder's per-wavefront calls; the state is ~16k contexts x 26 int64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["AdaptiveConfig", "OnlineAdapter", "code_length_table", "wavefront_pixels"]


@dataclass(frozen=True)
class AdaptiveConfig:
    max_bias: int = 3  # candidate mean offsets -max_bias..max_bias
    max_shift: int = 2  # candidate scale-index shifts -max_shift..max_shift
    idx_bucket: int = 4  # input scale indices per context bucket
    halve_at: int = 256  # halve a context's costs and count when its count exceeds this
    # bucket edges (np.searchsorted side="right": bucket = number of edges <= value), symmetric
    nb_edges: tuple[int, ...] = (-11, -4, -1, 2, 5, 12)  # for eW + eN
    ch_edges: tuple[int, ...] = (-10, -4, -1, 2, 5, 11)  # for each earlier channel's e


def code_length_table(cdf: np.ndarray) -> np.ndarray:
    """cdf (S, 512) int (the model's :class:`DiscretizedLogistic` cdf) -> (S, 511) int64 costs.

    Entry [s, r + 255] is the code length, in 1/256 bit, of residual r under scale index s for an
    interior symbol: ``16 * 256 - floor(256 * log2(f))`` with ``f = cdf[s, r+256] - cdf[s, r+255] + 1``
    (the frequency ``DiscretizedLogistic.rows`` gives). ``floor(256 * log2 f)`` is
    ``(f ** 256).bit_length() - 1`` in exact integer arithmetic.
    """
    cdf = np.asarray(cdf, dtype=np.int64)
    freq = cdf[:, 1:] - cdf[:, :-1] + 1
    values, inv = np.unique(freq, return_inverse=True)
    if values[0] < 1 or values[-1] > 1 << 16:
        raise ValueError("cdf is not monotone or exceeds 2**16")
    log256 = np.array([(int(f) ** 256).bit_length() - 1 for f in values], dtype=np.int64)
    return (16 * 256 - log256[inv]).reshape(freq.shape)


def wavefront_pixels(t: int, h: int, w: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """(ys, xs) int64 of wavefront t = step * y + x, increasing y (the decoder's order)."""
    y_lo = max(0, -(-(t - w + 1) // step))
    ys = np.arange(y_lo, min(h - 1, t // step) + 1)
    return ys, t - step * ys


class OnlineAdapter:
    """Adaptive state for one image of ``n_coded`` channels, H x W pixels.

    cdf: the model's integer cdf table (S, 512), S = number of scale indices.
    All per-pixel arguments are 1-D integer arrays of one length n: pos (from :meth:`positions`),
    mean (0..255), idx (0..S-1), sym (0..255). Internally everything is int64; the per-pixel
    planes are padded by one zero row above and one zero column to the left, so neighbours
    outside the image read an error of 0.
    """

    def __init__(self, cdf: np.ndarray, n_coded: int, h: int, w: int, cfg: AdaptiveConfig = AdaptiveConfig()):
        self.cfg = cfg
        self.n_coded, self.h, self.w = n_coded, h, w
        cost = code_length_table(cdf)  # (S, 511) int64
        s_n = self.n_scales = cost.shape[0]
        b, j = cfg.max_bias, cfg.max_shift
        cand = [(0, 0)] + [(bb, jj) for bb in range(-b, b + 1) for jj in range(-j, j + 1) if (bb, jj) != (0, 0)]
        self.bias = np.array([c[0] for c in cand], np.int64)  # (n_cand,), "no change" first
        self.shift = np.array([c[1] for c in cand], np.int64)
        nc = self.n_cand = len(cand)
        # cost3[cand, s, e + 510]: cost of error e (symbol - input mean, -510..510) for input index s
        e = np.arange(-510, 511)
        r = np.clip(e[None, None, :] - self.bias[:, None, None] + 255, 0, 510)
        si = np.clip(np.arange(s_n)[None, :, None] + self.shift[:, None, None], 0, s_n - 1)
        # row idx_in * 1021 + e + 510: [1 (the count), cost of each candidate], contiguous per pixel
        cost3 = np.concatenate([np.ones((1, s_n, 1021), np.int64), cost[si, r]])  # (1 + n_cand, S, 1021)
        self._cost_rows = np.ascontiguousarray(cost3.transpose(1, 2, 0).reshape(s_n * 1021, 1 + nc))
        # corrected outputs by table: [cand * 256 + mean], [cand * S + idx]
        self._mean_out = np.clip(np.arange(256)[None, :] + self.bias[:, None], 0, 255).reshape(-1)
        self._idx_out = np.clip(np.arange(s_n)[None, :] + self.shift[:, None], 0, s_n - 1).reshape(-1)
        # context = ((c * n_idx + idx // idx_bucket) * n_nb + nb bucket) * n_prev + prev buckets,
        # built from lookup tables already multiplied by their strides
        n_ch = len(cfg.ch_edges) + 1
        n_idx = -(-s_n // cfg.idx_bucket)
        n_nb = len(cfg.nb_edges) + 1
        n_prev = n_ch ** max(n_coded - 1, 0)
        self._ctx_base = np.arange(n_coded, dtype=np.int64) * (n_idx * n_nb * n_prev)
        self._lut_idx = (np.arange(s_n) // cfg.idx_bucket) * (n_nb * n_prev)
        self._lut_nb = np.searchsorted(np.array(cfg.nb_edges), np.arange(-1020, 1021), "right") * n_prev  # [eW+eN+1020]
        ch = np.searchsorted(np.array(cfg.ch_edges), np.arange(-510, 511), "right")  # [e + 510]
        # channel c: most significant bucket is channel c-1, then c-2, ...
        self._lut_ch = [[ch * n_ch ** (c - 1 - p) for p in range(c)] for c in range(n_coded)]
        n_ctx = n_coded * n_idx * n_nb * n_prev
        # per context: [count, accumulated cost of each candidate in 1/256 bit]
        self.state = np.zeros((n_ctx, 1 + nc), np.int64)
        self._cols = np.arange(1 + nc, dtype=np.int64)
        self._pending: list[list[np.ndarray]] = [[] for _ in range(n_coded)]  # contexts over halve_at
        pw = w + 1
        self._pw = pw
        self.err = np.zeros((n_coded, (h + 1) * pw), np.int64)  # symbol - input mean, 0 until coded
        self.ctx = np.zeros((n_coded, (h + 1) * pw), np.int64)  # each subpixel's context (from correct)
        self._key = np.zeros((n_coded, (h + 1) * pw), np.int64)  # idx_in * 1021 + 510 - mean_in

    # -- helpers ---------------------------------------------------------------------------------
    def positions(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Pixel coordinates ys, xs (n,) -> positions (n,) int64 for :meth:`correct` / :meth:`update`
        (compute once per wavefront, use for every channel)."""
        return (np.asarray(ys, np.int64) + 1) * self._pw + np.asarray(xs, np.int64) + 1

    def _context(self, c: int, q: np.ndarray, idx: np.ndarray) -> np.ndarray:
        e = self.err[c]
        k = self._lut_idx[idx] + self._lut_nb[e[q - 1] + e[q - self._pw] + 1020] + self._ctx_base[c]
        for p, lut in enumerate(self._lut_ch[c]):
            k += lut[self.err[p][q] + 510]
        return k

    def _halve(self, c: int) -> None:
        if not self._pending[c]:
            return
        hot = np.concatenate(self._pending[c]) if len(self._pending[c]) > 1 else self._pending[c][0]
        self._pending[c].clear()
        n = self.state[hot, 0]
        times = np.zeros_like(n)
        while True:  # smallest number of halvings that brings each count to <= halve_at
            over = (n >> times) > self.cfg.halve_at
            if not over.any():
                break
            times += over
        # a context listed twice gets the same value written twice: no double halving
        self.state[hot] = self.state[hot] >> times[:, None]

    # -- the two steps ---------------------------------------------------------------------------
    def correct(self, c: int, pos: np.ndarray, mean: np.ndarray, idx: np.ndarray):
        """Channel c at pixels ``pos`` (n,) (from :meth:`positions`) with input mean, idx (n,) int
        -> corrected (mean, idx), int64 (n,) each.

        Reads the state only (besides applying deferred halving); records the pixels' contexts
        and inputs for :meth:`update`. Needs channels < c of these pixels already updated.
        """
        self._halve(c)
        q = pos
        mean, idx = np.asarray(mean, np.int64), np.asarray(idx, np.int64)
        k = self._context(c, q, idx)
        self.ctx[c][q] = k
        self._key[c][q] = idx * 1021 + 510 - mean
        best = np.take(self.state, k, axis=0)[:, 1:].argmin(axis=1)  # ties -> first candidate: no change
        return self._mean_out[best * 256 + mean], self._idx_out[best * self.n_scales + idx]

    def update(self, c: int, pos: np.ndarray, sym: np.ndarray) -> None:
        """Channel c's coded symbols sym (n,) int at positions ``pos`` (n,) that went through
        :meth:`correct`."""
        q = pos
        key = self._key[c][q] + np.asarray(sym, np.int64)  # idx_in * 1021 + (sym - mean_in) + 510
        self.err[c][q] = key % 1021 - 510
        k = self.ctx[c][q]
        self._accumulate(c, k, key)

    def _accumulate(self, c: int, k: np.ndarray, key: np.ndarray) -> None:
        add = np.take(self._cost_rows, key, axis=0)  # (n, 1 + n_cand): 1, then costs
        np.add.at(self.state.reshape(-1), ((k * (1 + self.n_cand))[:, None] + self._cols).ravel(), add.ravel())
        hot = k[self.state[k, 0] > self.cfg.halve_at]
        if hot.size:
            self._pending[c].append(hot)

    # -- encoder ---------------------------------------------------------------------------------
    def replay(self, symbols: np.ndarray, mean: np.ndarray, idx: np.ndarray, step: int):
        """Encoder: symbols, mean, idx (n_coded, H, W) int -> corrected (mean, idx) (n_coded, H, W) int64.

        The result equals what a decoder calling correct / update per wavefront t = step * y + x
        and channel sees (tested). Faster than that loop: errors and contexts depend only on
        symbols and inputs, so they are computed for the whole image at once, and the channels of
        one wavefront (disjoint contexts) share one state step. Use on a fresh adapter.
        """
        h, w, nc = self.h, self.w, self.n_coded
        if h * w == 0:
            return np.zeros((nc, h, w), np.int64), np.zeros((nc, h, w), np.int64)
        symbols = np.asarray(symbols, np.int64).reshape(nc, -1)
        mean = np.asarray(mean, np.int64).reshape(nc, -1)
        idx = np.asarray(idx, np.int64).reshape(nc, -1)
        ys, xs = np.divmod(np.arange(h * w, dtype=np.int64), w)
        q = self.positions(ys, xs)
        self.err[:, q] = symbols - mean
        k = np.stack([self._context(c, q, idx[c]) for c in range(nc)])  # (nc, H*W)
        key = idx * 1021 + 510 + symbols - mean
        self.ctx[:, q] = k
        self._key[:, q] = key - symbols
        order = np.argsort(step * ys + xs, kind="stable")  # wavefronts, increasing y inside
        counts = np.bincount(step * ys + xs)
        k, key = k[:, order].ravel(), key[:, order]
        # per wavefront t: subpixels of all channels, contiguous when ordered (t, c, y)
        t_of = np.repeat(np.arange(counts.size), counts)
        sub = np.lexsort((np.repeat(np.arange(nc), order.size), np.tile(t_of, nc)))  # (t, c, y)
        k = k[sub]
        key = key.ravel()[sub]
        bounds = np.concatenate([[0], np.cumsum(counts * nc)])
        best = np.zeros(k.size, np.int64)
        for t in range(counts.size):
            a, b = bounds[t], bounds[t + 1]
            if a == b:
                continue
            for c in range(nc):
                self._halve(c)
            kt = k[a:b]
            best[a:b] = self.state[kt][:, 1:].argmin(axis=1)
            self._accumulate_all(kt, key[a:b])
        # back to (c, H*W) planes
        inv = np.empty_like(sub)
        inv[sub] = np.arange(sub.size)
        best = best[inv].reshape(nc, -1)
        out_best = np.empty_like(best)
        out_best[:, order] = best
        out_m = self._mean_out[out_best * 256 + mean].reshape(nc, h, w)
        out_i = self._idx_out[out_best * self.n_scales + idx].reshape(nc, h, w)
        return out_m, out_i

    def _accumulate_all(self, k: np.ndarray, key: np.ndarray) -> None:
        """:meth:`_accumulate` for contexts of any channels; pending halvings go to channel 0's list
        (all channels' lists are flushed before the next wavefront in :meth:`replay`)."""
        self._accumulate(0, k, key)
