"""The byte model's coding loop compiled with numba: the same integers as the numpy reference
(:class:`gencodec.models.bytemodel.MixSession`), segment by segment inside compiled loops.

The reference does each step as a few dozen numpy operations over all lockstep segments; their
per-call overhead, not the arithmetic, bounds its speed (about 0.3 ms a group, whatever the
segment count). Here a group is three compiled calls. Every operation is integer arithmetic on
int64/uint64 (numba follows Python and numpy: ``//`` and ``>>`` floor, uint64 products wrap), read
and written in the same order as the reference's vectorized steps (every update of a group is
computed from the tables as they were before the group, then added), so the bits are identical:
tests/test_bytemodel.py runs both on the same inputs and compares every table.

The net's forward pass stays in numpy (its matrix products are BLAS work already); the kernels
read its running sums.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["FastMixSession"]

U = np.uint64


@njit(cache=True, nogil=True)
def _next(k, bit, c0, ctx, offsets, spread_mul, mask, prob, stretch, squash, mptr, buf, mlen, mprob, cap, has_net, cum,
          weights, mixer_shift, hist, apm, idx, inputs, active, expected, mlen_idx, wrow, pmix, apm_idx, out):
    m = ctx.shape[0]
    for j in range(k):
        cj = c0[j]
        for i in range(m):
            spread = (ctx[i, j] >> U(20)) + U(cj) * spread_mul
            ix = offsets[i] + np.int64(spread & mask)
            idx[i, j] = ix
            inputs[i, j] = stretch[prob[ix] >> 4]
        ptr = mptr[j]
        pbyte = np.int64(buf[ptr if ptr > 0 else 0]) | 256
        shift = 8 - bit
        act = ptr >= 0 and (pbyte >> shift) == cj
        exp = (pbyte >> (shift - 1)) & 1
        li = mlen[j] if mlen[j] < cap else cap
        active[j], expected[j], mlen_idx[j] = act, exp, li
        inputs[m, j] = stretch[mprob[li] >> 4] * (2 * exp - 1) if act else 0
        n = m + 1
        if has_net:
            span = 256 >> bit
            lo = (cj - (1 << bit)) * span
            total = cum[j, lo + span] - cum[j, lo]
            ones = cum[j, lo + span] - cum[j, lo + span // 2]
            p = (ones << 12) // total
            p = 1 if p < 1 else (4095 if p > 4095 else p)
            inputs[n, j] = stretch[p]
            n += 1
        inputs[n, j] = 256
        wr = cj + (256 if act else 0)
        wrow[j] = wr
        dot = 0
        for i in range(n + 1):
            dot += inputs[i, j] * weights[wr, i]
        dot >>= mixer_shift
        dot = -2047 if dot < -2047 else (2047 if dot > 2047 else dot)
        pm = squash[dot + 2047]
        pmix[j] = pm
        pos = dot + 2048
        lo = pos >> 7
        w = pos & 127
        row = ((np.int64(hist[j] & U(0xFF)) << 8) | cj) * 33
        apm_idx[j] = row + lo + (w >> 6)
        refined = (apm[row + lo] * (128 - w) + apm[row + lo + 1] * w) >> 11
        pf = (pm + 3 * refined) >> 2
        out[j] = 1 if pf < 1 else (4095 if pf > 4095 else pf)


@njit(cache=True, nogil=True)
def _push(k, bits, idx, prob, count, recip, limit_of, table_bits, inputs, n_in, pmix, lr, weights, wrow, w_sum, w_cnt,
          w_limit, shared, apm, apm_idx, apm_sum, apm_cnt, active, expected, mlen_idx, mprob, m_sum, m_cnt, deltas):
    m = idx.shape[0]
    # the context models: every delta from the tables before this group, then all added
    for i in range(m):
        for j in range(k):
            ix = idx[i, j]
            deltas[i, j] = (((bits[j] << 16) - prob[ix]) * recip[count[ix]]) >> 16
    for i in range(m):
        for j in range(k):
            prob[idx[i, j]] += deltas[i, j]
            count[idx[i, j]] += 1
    for i in range(m):
        for j in range(k):
            ix = idx[i, j]
            v = prob[ix]
            prob[ix] = 32 if v < 32 else (65504 if v > 65504 else v)
            lim = limit_of[ix >> table_bits]
            if count[ix] > lim:
                count[ix] = lim
    # the mixer: per row the sum of its segments' steps, divided by ceil(count / shared)
    for j in range(k):
        err = ((bits[j] << 12) - pmix[j]) * lr
        r = wrow[j]
        w_cnt[r] += 1
        for i in range(n_in):
            w_sum[r, i] += (inputs[i, j] * err) >> 16
    for j in range(k):
        r = wrow[j]
        c = w_cnt[r]
        if c:
            div = (c + shared - 1) // shared
            for i in range(n_in):
                v = weights[r, i] + w_sum[r, i] // div
                weights[r, i] = -w_limit if v < -w_limit else (w_limit if v > w_limit else v)
                w_sum[r, i] = 0
            w_cnt[r] = 0
    # the APM's nearer point, 1/64 of the way to the bit
    for j in range(k):
        a = apm_idx[j]
        apm_sum[a] += ((bits[j] << 16) - apm[a]) >> 6
        apm_cnt[a] += 1
    for j in range(k):
        a = apm_idx[j]
        c = apm_cnt[a]
        if c:
            apm[a] += apm_sum[a] // ((c + shared - 1) // shared)
            apm_sum[a] = 0
            apm_cnt[a] = 0
    # the match model's confidence by length
    any_active = False
    for j in range(k):
        if active[j]:
            any_active = True
            li = mlen_idx[j]
            right = (1 << 16) if bits[j] == expected[j] else 0
            m_sum[li] += (right - mprob[li]) >> 5
            m_cnt[li] += 1
    if any_active:
        for li in range(mprob.shape[0]):
            c = m_cnt[li]
            if c:
                mprob[li] += m_sum[li] // ((c + shared - 1) // shared)
                m_sum[li] = 0
                m_cnt[li] = 0
            v = mprob[li]
            mprob[li] = 32 if v < 32 else (65504 if v > 65504 else v)


@njit(cache=True, nogil=True)
def _end_byte(k, p, n, seg, rows, c0, hist, word, buf, mptr, mlen, mtab, mshift, prime0, match_min, v2,
              line, prev_line, last_pos, rcand, rcount, rlen, confirm, tmp_ptr, tmp_ln, hashes):
    for j in range(k):
        byte = c0[j] & 0xFF
        b = U(byte)
        hist[j] = (hist[j] << U(8)) | b
        lc = b | U(32)
        if lc >= U(97) and lc <= U(122):
            word[j] = (word[j] + lc) * U(0x100000001B3)
        else:
            word[j] = U(0)
        c0[j] = 1
        buf[rows[j]] = byte
    # the match model: extend or drop, look up a new match, record where these bytes end
    p_next = p + 1
    for j in range(k):
        ptr = mptr[j]
        if ptr >= 0 and buf[ptr] == buf[rows[j]]:
            tmp_ptr[j], tmp_ln[j] = ptr + 1, mlen[j] + 1
        else:
            tmp_ptr[j], tmp_ln[j] = -1, 0
    if p_next >= match_min:
        low = U((1 << (8 * match_min)) - 1)
        for j in range(k):
            hashes[j] = np.int64(((hist[j] & low) * prime0) >> mshift)
        for j in range(k):
            cand = mtab[hashes[j]] - 1
            if tmp_ptr[j] < 0 and cand >= 0:
                tmp_ptr[j] = cand
        for j in range(k):
            mtab[hashes[j]] = rows[j] + 2  # the last segment's entry wins
    for j in range(k):
        ptr = tmp_ptr[j]
        if ptr >= 0 and ptr < n and ptr - ptr // seg * seg < p_next:
            mptr[j], mlen[j] = ptr, tmp_ln[j]
        else:
            mptr[j], mlen[j] = -1, 0
    if v2:  # lines and records
        for j in range(k):
            byte = np.int64(buf[rows[j]])
            t = rows[j]
            if byte == 10:
                prev_line[j] = line[j]
                line[j] = t + 1
            l0, l1, l2 = last_pos[j, byte, 0], last_pos[j, byte, 1], last_pos[j, byte, 2]
            d1, d2, d3 = t - l0, l0 - l1, l1 - l2
            cand = l2 >= 0 and d1 == d2 and d2 == d3 and d1 >= 2
            if cand:
                if d1 == rcand[j]:
                    rcount[j] += 1
                else:
                    rcount[j] = 1
                rcand[j] = d1
                if rcount[j] >= confirm:
                    rlen[j] = d1
            last_pos[j, byte, 0], last_pos[j, byte, 1], last_pos[j, byte, 2] = t, l0, l1


@njit(cache=True, nogil=True)
def _contexts(k, p, n, starts, hist, word, buf, v2, line, prev_line, rlen, primes, ctx):
    last = n - 1
    for j in range(k):
        h = hist[j]
        c = np.empty(ctx.shape[0], np.uint64)
        c[0], c[1], c[2] = h & U(0xFF), h & U(0xFFFF), h & U(0xFFFFFF)
        c[3], c[4], c[5], c[6] = h & U(0xFFFFFFFF), h & U(0xFFFFFFFFFFFF), word[j], U(0)
        if v2:
            c[7] = (h >> U(8)) & U(0xFF)
            t = starts[j] + p
            above = prev_line[j] + (t - line[j])
            ba = np.int64(buf[min(max(above, 0), last)]) if (prev_line[j] >= 0 and above < line[j]) else 256
            c[8] = U(ba | (np.int64(h & U(0xFF)) << 9))
            r = rlen[j]
            b1 = np.int64(buf[min(max(t - r, 0), last)]) if (r > 0 and t - r >= starts[j]) else 256
            b2 = np.int64(buf[min(max(t - 2 * r, 0), last)]) if (r > 0 and t - 2 * r >= starts[j]) else 256
            c[9] = U(b1 | (b2 << 9) | (min(r, 1 << 20) << 18))
        for i in range(ctx.shape[0]):
            ctx[i, j] = (c[i] + U(i + 1)) * primes[i]


@njit(cache=True, nogil=True)
def _embed(emb, b1, buf, rows, starts, context, out):
    """The net's first-layer sums for the byte at each row: its bias plus the embedding of each of
    the previous ``context`` bytes of its segment (byte 0 before the segment's start), as
    ``emb[windows(...) + offsets].sum(1) + b1`` (integers below 2**24: exact in float32)."""
    for j in range(rows.shape[0]):
        for h in range(out.shape[1]):
            out[j, h] = b1[h]
        for o in range(context):
            pos = rows[j] - 1 - o
            base = o * 256 + (np.int64(buf[pos]) if pos >= starts[j] else 0)
            for h in range(out.shape[1]):
                out[j, h] += emb[base, h]


@njit(cache=True, nogil=True)
def _cumulative(z, exp, span, out):
    """Running sums of the softmax weights exp[min(max - z, span - 1)] per row, as
    :meth:`ExactByteNet.cumulative`."""
    for j in range(z.shape[0]):
        top = z[j, 0]
        for v in range(1, 256):
            if z[j, v] > top:
                top = z[j, v]
        out[j, 0] = 0
        for v in range(256):
            d = top - z[j, v]
            out[j, v + 1] = out[j, v] + exp[d if d < span else span - 1]


class FastMixSession:
    """What :class:`~gencodec.models.bytemodel.MixSession` computes, with compiled loops. It takes
    over the reference's freshly built state (tables, limits, the first contexts) and the model's
    constants, and works on them."""

    def __init__(self, ref, *, match_len_cap: int, weight_limit: int, shared: int, primes: np.ndarray,
                 match_min: int, record_confirm: int):
        self.__dict__.update(ref.__dict__)
        self.match_len_cap, self.weight_limit, self.shared = match_len_cap, weight_limit, shared
        self.primes, self.match_min, self.record_confirm = primes, match_min, record_confirm
        m, k = self.ctx.shape
        n_in = self.weights.shape[1]
        self.idx = np.zeros((m, max(k, 1)), np.int64)
        self.inputs = np.zeros((n_in, max(k, 1)), np.int64)
        self.deltas = np.zeros((m, max(k, 1)), np.int64)
        self.active = np.zeros(max(k, 1), np.bool_)
        self.expected = np.zeros(max(k, 1), np.int64)
        self.mlen_idx = np.zeros(max(k, 1), np.int64)
        self.wrow = np.zeros(max(k, 1), np.int64)
        self.pmix = np.zeros(max(k, 1), np.int64)
        self.apm_idx = np.zeros(max(k, 1), np.int64)
        self.pfinal = np.zeros(max(k, 1), np.int64)
        self.w_sum = np.zeros(self.weights.shape, np.int64)
        self.w_cnt = np.zeros(self.weights.shape[0], np.int64)
        self.apm_sum = np.zeros(self.apm.shape, np.int64)
        self.apm_cnt = np.zeros(self.apm.shape, np.int32)
        self.m_sum = np.zeros(self.mprob.shape, np.int64)
        self.m_cnt = np.zeros(self.mprob.shape, np.int64)
        self.tmp_ptr = np.zeros(max(k, 1), np.int64)
        self.tmp_ln = np.zeros(max(k, 1), np.int64)
        self.hashes = np.zeros(max(k, 1), np.int64)
        self.offsets_m = self.offsets[:, 0].copy()
        self.bits_in = np.zeros(max(k, 1), np.int64)
        self.cum = np.zeros((max(k, 1), 257), np.int64)
        if self.net is not None:
            self.h_net = np.zeros((max(k, 1), self.net.cfg.hidden), np.float32)
        if not self.v2:  # placeholders the kernels never read
            self.line = self.prev_line = self.rcand = self.rcount = self.rlen = np.zeros(1, np.int64)
            self.last_pos = np.zeros((1, 256, 3), np.int64)

    def next(self) -> np.ndarray:
        k = self.k = int(np.count_nonzero(self.starts + self.p < self.n))
        if self.stepper is not None and self.bit == 0:
            z = self.stepper.logits_at(self.buf, self.starts[:k], self.p)
            _cumulative(z, self.net.exp, self.net.exp.size, self.cum)
        elif self.net is not None and self.bit == 0:
            net = self.net
            h = self.h_net[:k]
            _embed(net.emb, net.b1, self.buf, self.starts[:k] + self.p, self.starts, net.cfg.context, h)
            _cumulative(net.logits_from_sums(h), net.exp, net.exp.size, self.cum)
        _next(k, self.bit, self.c0, self.ctx, self.offsets_m, self.spread, self.mask, self.prob, self.stretch, self.squash,
              self.mptr, self.buf, self.mlen, self.mprob, self.match_len_cap, self.net is not None, self.cum,
              self.weights, self.cfg.mixer_shift, self.hist, self.apm, self.idx, self.inputs, self.active,
              self.expected, self.mlen_idx, self.wrow, self.pmix, self.apm_idx, self.pfinal)
        return self.pfinal[:k]

    def push(self, bits: np.ndarray) -> None:
        k = self.k
        b = self.bits_in[:k]
        b[:] = bits
        _push(k, b, self.idx, self.prob, self.count, self.recip, self.limit_of, self.bits, self.inputs,
              self.weights.shape[1], self.pmix, self.cfg.learning_rate, self.weights, self.wrow, self.w_sum,
              self.w_cnt, self.weight_limit, self.shared, self.apm, self.apm_idx, self.apm_sum, self.apm_cnt,
              self.active, self.expected, self.mlen_idx, self.mprob, self.m_sum, self.m_cnt, self.deltas)
        rows = self.starts[:k] + self.p
        self.out[rows, self.bit] = b
        self.c0[:k] = (self.c0[:k] << 1) | b
        self.bit += 1
        if self.bit == 8:
            _end_byte(k, self.p, self.n, self.seg, rows, self.c0, self.hist, self.word, self.buf, self.mptr,
                      self.mlen, self.mtab, self.mshift, self.primes[0], self.match_min, self.v2, self.line,
                      self.prev_line, self.last_pos, self.rcand, self.rcount, self.rlen, self.record_confirm,
                      self.tmp_ptr, self.tmp_ln, self.hashes)
            self.bit, self.p = 0, self.p + 1
            _contexts(k, self.p, self.n, self.starts, self.hist, self.word, self.buf, self.v2, self.line,
                      self.prev_line, self.rlen, self.primes, self.ctx)

    def result(self) -> np.ndarray:
        return self.out
