"""``bytemodel``: a context-mixing model over the bits of any file, learned while it codes.

Bitwise coding (PAQ style): each byte is coded as 8 binary decisions, most significant bit first,
each under a probability that mixes several context models. Binary decisions keep every model a
single adaptive probability per context (no 256-entry tables to build per symbol), and the mix
is a small integer dot product. Every number is an integer (numpy int64/uint64 arithmetic, lookup
tables built once with :mod:`gencodec.exact.detmath`), so both sides compute the same bits on any
machine.

- **Context models** (``ORDERS``): the partial byte with the previous 1, 2, 3, 4 and 6 bytes, the
  current word, and the partial byte alone, hashed into one table of 16-bit probabilities with
  a hit count each; a probability moves towards each coded bit by 1/(count + 1.5) (fast while a
  context is new, slower as it fills), counts saturating at ``LIMITS``.
- **Match model**: where the last 5 bytes were seen before (a hash table of positions, shared by
  the segments, a pointer used only once both sides know the byte it points at), the bits of the
  byte that followed them are predicted, with a confidence learned by match length.
- **Mixer**: the models' stretched probabilities ``ln(p / (1 - p))`` (a 4096-entry table) and a
  bias enter a linear mixer whose weights are chosen by the partial byte and the match state and trained online by
  the coding error; its output is squashed back (a table) to a 12-bit probability.
- **Lockstep segments**: the input is cut into segments coded side by side, one bit of every
  segment per group (:meth:`ExactByteModel.schedule`), so each numpy operation works on all of them
  at once. The tables are shared: after each group every segment's update is added in segment
  order, so the model learns from the whole file.

The model has no weights yet (its config is its identity); a pretrained network as one more mixer
input is the next step (issue 14).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import GencodecError
from ..exact.contract import Schedule
from . import modelfile

PROB_BITS = 12  # the coder sees p(bit = 1) as p / 4096, 1 <= p <= 4095
ORDERS = ("o1", "o2", "o3", "o4", "o6", "word", "o0")  # the context models, in mixer input order
LIMITS = (127, 255, 255, 255, 255, 255, 60)  # count limits: lower adapts faster (chosen on text-train files, never Canterbury)
SHARED = 24  # a shared mixer row, APM point or match confidence takes up to this many steps per group (chosen on text-train)
MATCH_MIN = 5  # bytes of context the match model looks up
MATCH_LEN_CAP = 15  # match lengths above this share one confidence
WEIGHT_LIMIT = 1 << 22  # |mixer weight| <= 64 (in units of 2**-16): the dot product stays far inside int64
STRETCH_SCALE = 256  # stretch(p) = round(256 ln(p / (1 - p))), |.| <= 2047
_MASK64 = (1 << 64) - 1
_PRIMES = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
                    0xA0761D6478BD642F, 0xE7037ED1A0B428DB, 0x8EBC6AF09C88C6E3], dtype=np.uint64)


@dataclass(frozen=True)
class ByteModelConfig:
    version: int = 1  # the arithmetic of this module: bumped whenever a change would code differently
    table_bits: int = 22  # at most 2**table_bits entries per context model
    segment_min: int = 256  # a segment holds between segment_min ...
    segment_max: int = 2048  # ... and segment_max bytes,
    segments: int = 64  # aiming at this many segments
    mixer_shift: int = 16  # mixer weights are w / 2**mixer_shift
    learning_rate: int = 14  # mixer step: input * err * lr / 2**16 (err in 1/4096)

    def segment_length(self, n: int) -> int:
        return min(self.segment_max, max(self.segment_min, -(-n // self.segments)))

    def bits_for(self, n: int) -> int:
        """Table size for an input of n bytes: no larger than the input needs (fast start-up on small files)."""
        return min(self.table_bits, max(16, (8 * max(n, 1)).bit_length() + 1))


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(stretch (4096,), squash (4095,) indexed by x + 2047, 65536 / (n + 1.5) (256,)) int64."""
    from ..exact.detmath import CTX, D, det_round

    p = np.arange(1 << PROB_BITS, dtype=np.float64)
    pc = np.clip(p, 0.5, 4095.5)  # stretch(0) and stretch(4096) are never used; keep them finite
    est = STRETCH_SCALE * np.log(pc / (4096 - pc))
    stretch = det_round(est, lambda idx: [CTX.multiply(D(STRETCH_SCALE), CTX.ln(CTX.divide(D(float(pc[i])), CTX.subtract(D(4096), D(float(pc[i]))))))
                                          for i in idx])
    stretch = np.clip(stretch, -2047, 2047)
    x = np.arange(-2047, 2048, dtype=np.float64)
    est = 4096 / (1 + np.exp(-x / STRETCH_SCALE))
    squash = det_round(est, lambda idx: [CTX.divide(D(4096), CTX.add(1, CTX.exp(CTX.divide(D(float(-x[i])), D(STRETCH_SCALE)))))
                                         for i in idx])
    squash = np.clip(squash, 1, (1 << PROB_BITS) - 1)
    recip = det_round(65536 / (np.arange(256) + 1.5), lambda idx: [CTX.divide(D(65536), CTX.add(D(i), D("1.5"))) for i in idx])
    return stretch.astype(np.int64), squash.astype(np.int64), recip.astype(np.int64)


_LUTS: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


def luts() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    global _LUTS
    if _LUTS is None:
        _LUTS = _tables()
    return _LUTS


def _shared_add(table: np.ndarray, idx: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Add to each entry of ``table`` (along its first axis) the deltas aimed at it in one group,
    summed up to SHARED of them and averaged beyond (the sum divided by ceil(k / SHARED), floored):
    the many segments of a group in one context move it as at most SHARED steps would, not k steps
    at once, which made a mixer oscillate (integers only; the same on both sides). Returns the
    entries touched."""
    if table.shape[0] <= 4096:  # a small table (mixer rows, match confidences): count over all of it
        cnt = np.bincount(idx, minlength=table.shape[0])
        uniq = np.flatnonzero(cnt)
        sums = np.zeros(table.shape, np.int64)
        np.add.at(sums, idx, delta)
        sums, cnt = sums[uniq], cnt[uniq]
    else:
        uniq, inv, cnt = np.unique(idx, return_inverse=True, return_counts=True)
        sums = np.zeros((uniq.size,) + delta.shape[1:], np.int64)
        np.add.at(sums, inv, delta)
    div = (cnt + SHARED - 1) // SHARED
    table[uniq] += sums // (div if delta.ndim == 1 else div[:, None])
    return uniq


class ExactByteModel:
    """Implements :class:`gencodec.exact.contract.ExactModel` over bits (n bytes, 8), MSB first."""

    arch = "bytemodel"
    trusted_tables = True  # rows [4096 - p, p] with 1 <= p <= 4095: integers >= 1 by construction

    def __init__(self, cfg: ByteModelConfig = ByteModelConfig()):
        self.cfg = cfg
        self.model_id = modelfile.model_id(self.config_dict(), self.state())

    def config_dict(self) -> dict[str, Any]:
        return asdict(self.cfg)

    def save(self, path, card: dict[str, Any] | None = None) -> None:
        """A model file of this config (gencodec.models.modelfile), e.g. for ``model=PATH``."""
        modelfile.save(self, path, card)

    def state(self) -> dict[str, Any]:
        return {}  # nothing pretrained yet: every number is learned from the input

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, Any]) -> "ExactByteModel":
        try:
            cfg = ByteModelConfig(**config)
        except TypeError as e:
            raise GencodecError(f"bytemodel config does not fit: {e}") from None
        if cfg.version != ByteModelConfig.version:
            raise GencodecError(f"bytemodel version {cfg.version} is not this gencodec's ({ByteModelConfig.version})")
        return cls(cfg)

    def schedule(self, shape: Sequence[int]) -> Schedule:
        """Bits (n, 8): group 8 p + b holds bit b of byte p of every segment that long; rounds every
        512 groups (the encoder's progress reports; this model has no hooks)."""
        n = shape[0]
        seg = self.cfg.segment_length(n)
        starts = np.arange(0, n, seg, dtype=np.int64 if 8 * n >= 1 << 31 else np.int32)  # int32: half the memory
        groups = []
        for p in range(min(n, seg)):
            rows = 8 * (starts[starts + p < n] + p)
            groups.extend(rows + b for b in range(8))
        return Schedule(tuple(groups), 8 * n, tuple(range(0, len(groups), 512)) or (0,))

    def parallel(self, symbols: np.ndarray):
        return None  # every table depends on what was learned from the bits before it

    def session(self, shape: Sequence[int]) -> "MixSession":
        return MixSession(self, shape[0])

    def freqs(self, p: np.ndarray) -> tuple[np.ndarray, float]:
        out = np.empty((p.size, 2), np.float64)
        out[:, 1] = p
        out[:, 0] = (1 << PROB_BITS) - p
        return out, float(1 << PROB_BITS)


class MixSession:
    """Both sides' state: per segment its history (the last 8 bytes, the current word, the partial
    byte), shared context tables and mixer weights."""

    def __init__(self, model: ExactByteModel, n: int):
        cfg = self.cfg = model.cfg
        self.stretch, self.squash, self.recip = luts()
        self.n, self.seg = n, cfg.segment_length(n)
        n_seg = -(-n // self.seg) if n else 0
        self.starts = np.arange(n_seg, dtype=np.int64) * self.seg
        bits = cfg.bits_for(n)
        self.mask = np.uint64((1 << bits) - 1)
        m = len(ORDERS)
        self.offsets = (np.arange(m, dtype=np.int64) << bits)[:, None]  # (m, 1): each model's part of the table
        self.prob = np.full(m << bits, 1 << 15, np.int64)  # p(bit = 1) in 1/65536
        self.count = np.zeros(m << bits, np.int32)  # <= 255
        self.limit_of, self.bits = np.array(LIMITS, np.int64), bits
        # mixer weights by (match model active, partial byte); inputs: the context models, the match model, a bias
        self.weights = np.full((512, m + 2), (1 << cfg.mixer_shift) // 4, np.int64)
        # the match model: where the last MATCH_MIN bytes were seen before, and whether the byte after
        # them continues here (its bits predicted, with a confidence learned by match length)
        self.buf = np.zeros(n, np.uint8)
        mbits = min(22, max(12, n.bit_length() + 1))
        self.mshift = np.uint64(64 - mbits)
        self.mtab = np.zeros(1 << mbits, np.int64)  # hash -> 1 + the position after those bytes (0: none)
        self.mptr = np.full(n_seg, -1, np.int64)
        self.mlen = np.zeros(n_seg, np.int64)
        self.mprob = np.full(MATCH_LEN_CAP + 1, 3 << 14, np.int64)  # p(the predicted bit is right) by length
        self.bias_row = np.full((1, n_seg), 256, np.int64)
        # the APM: by (previous byte, partial byte), 33 interpolation points over the stretched mix
        points = (np.arange(33) * 128 - 2048).clip(-2047, 2047) + 2047
        self.apm = np.tile(self.squash[points] * 16, (1 << 16, 1)).reshape(-1)
        self.hist = np.zeros(n_seg, np.uint64)  # the last 8 bytes, newest lowest
        self.word = np.zeros(n_seg, np.uint64)
        self.c0 = np.ones(n_seg, np.int64)  # the partial byte with a leading 1
        self.ctx = np.zeros((m, n_seg), np.uint64)  # each model's hash of the byte context
        self.p, self.k = 0, n_seg  # byte position within the segments; segments still going
        self.bit = 0
        self.out = np.zeros((n, 8), np.uint8)
        self._byte_contexts()

    def _byte_contexts(self) -> None:
        h, w = self.hist, self.word
        ctx = [h & np.uint64(0xFF), h & np.uint64(0xFFFF), h & np.uint64(0xFFFFFF), h & np.uint64(0xFFFFFFFF),
               h & np.uint64(0xFFFFFFFFFFFF), w, np.zeros_like(h)]
        with np.errstate(over="ignore"):
            for i, c in enumerate(ctx):
                self.ctx[i] = (c + np.uint64(i + 1)) * _PRIMES[i]

    def next(self) -> np.ndarray:
        k = self.k = int(np.count_nonzero(self.starts + self.p < self.n))
        c0 = self.c0[:k].astype(np.uint64)
        with np.errstate(over="ignore"):
            spread = (self.ctx[:, :k] >> np.uint64(20)) + c0 * np.uint64(0x2F0F1)
        self.idx = self.offsets + (spread & self.mask).astype(np.int64)  # (m, k)
        st = self.stretch[self.prob[self.idx] >> 4]  # (m, k)
        ptr = self.mptr[:k]
        pbyte = self.buf[np.maximum(ptr, 0)].astype(np.int64) | 256
        shift = 8 - self.bit
        self.active = (ptr >= 0) & ((pbyte >> shift) == self.c0[:k])  # the match still agrees with this byte
        self.expected = (pbyte >> (shift - 1)) & 1
        self.mlen_idx = np.minimum(self.mlen[:k], MATCH_LEN_CAP)
        sm = self.stretch[self.mprob[self.mlen_idx] >> 4] * (2 * self.expected - 1) * self.active
        self.inputs = np.concatenate([st, sm[None, :], self.bias_row[:, :k]])  # + bias
        self.wrow = self.c0[:k] + 256 * self.active
        dot = np.clip(np.einsum("ij,ji->j", self.inputs, self.weights[self.wrow]) >> self.cfg.mixer_shift, -2047, 2047)
        self.pmix = self.squash[dot + 2047]
        # the APM refines the mix by context: interpolated between the two nearest of its 33 points
        pos = dot + 2048  # 1 .. 4095
        lo, w = pos >> 7, pos & 127
        row = ((self.hist[:k] & np.uint64(0xFF)).astype(np.int64) << 8 | self.c0[:k]) * 33
        self.apm_idx = row + lo + (w >> 6)  # the nearer point learns
        refined = (self.apm[row + lo] * (128 - w) + self.apm[row + lo + 1] * w) >> 11  # 12-bit
        self.pfinal = np.clip((self.pmix + 3 * refined) >> 2, 1, (1 << PROB_BITS) - 1)
        return self.pfinal

    def push(self, bits: np.ndarray) -> None:
        k, idx = self.k, self.idx
        bits = np.asarray(bits, np.int64)
        # the context models: towards the bit by 1/(count + 1.5), all segments' updates added in order
        target = bits << 16
        delta = ((target[None, :] - self.prob[idx]) * self.recip[self.count[idx]]) >> 16
        flat = idx.ravel()
        np.add.at(self.prob, flat, delta.ravel())  # summed: each segment's evidence counts
        self.prob[flat] = np.clip(self.prob[flat], 32, 65536 - 32)
        np.add.at(self.count, flat, 1)
        self.count[flat] = np.minimum(self.count[flat], self.limit_of[flat >> self.bits])
        # the mixer: w += inputs * err * lr / 2**16
        err = ((bits << PROB_BITS) - self.pmix) * self.cfg.learning_rate
        rows_w = _shared_add(self.weights, self.wrow, ((self.inputs * err[None, :]) >> 16).T)
        self.weights[rows_w] = np.clip(self.weights[rows_w], -WEIGHT_LIMIT, WEIGHT_LIMIT)
        # the APM's nearer point moves 1/64 of the way to the bit
        a = self.apm_idx
        _shared_add(self.apm, a, ((bits << 16) - self.apm[a]) >> 6)
        act = self.active
        if act.any():
            li = self.mlen_idx[act]
            right = (bits[act] == self.expected[act]).astype(np.int64) << 16
            _shared_add(self.mprob, li, (right - self.mprob[li]) >> 5)
            np.clip(self.mprob, 32, 65536 - 32, out=self.mprob)
        rows = self.starts[:k] + self.p
        self.out[rows, self.bit] = bits
        self.c0[:k] = (self.c0[:k] << 1) | bits
        self.bit += 1
        if self.bit == 8:
            byte = (self.c0[:k] & 0xFF).astype(np.uint64)
            self.hist[:k] = (self.hist[:k] << np.uint64(8)) | byte
            letter = ((byte | np.uint64(32)) >= np.uint64(97)) & ((byte | np.uint64(32)) <= np.uint64(122))
            with np.errstate(over="ignore"):
                grown = (self.word[:k] + (byte | np.uint64(32))) * np.uint64(0x100000001B3)
            self.word[:k] = np.where(letter, grown, np.uint64(0))
            self.c0[:k] = 1
            self._match(rows, byte.astype(np.int64))
            self.bit, self.p = 0, self.p + 1
            self._byte_contexts()

    def _match(self, rows: np.ndarray, byte: np.ndarray) -> None:
        """After the byte at ``rows`` (one per active segment): extend or drop each segment's match,
        look up a new one where there is none, and record where these MATCH_MIN bytes end."""
        k, p_next = rows.size, self.p + 1
        self.buf[rows] = byte
        ptr, ln = self.mptr[:k], self.mlen[:k]
        cont = (ptr >= 0) & (self.buf[np.maximum(ptr, 0)] == byte)
        ptr = np.where(cont, ptr + 1, -1)
        ln = np.where(cont, ln + 1, 0)
        if p_next >= MATCH_MIN:
            with np.errstate(over="ignore"):
                h = (((self.hist[:k] & np.uint64((1 << 8 * MATCH_MIN) - 1)) * _PRIMES[0]) >> self.mshift).astype(np.int64)
            cand = self.mtab[h] - 1
            take = (ptr < 0) & (cand >= 0)
            ptr = np.where(take, cand, ptr)
            _, first = np.unique(h[::-1], return_index=True)  # one entry per hash: the last segment's
            keep = k - 1 - first
            self.mtab[h[keep]] = rows[keep] + 2
        # a pointer is usable only where both sides know the byte it points at
        known = (ptr >= 0) & (ptr < self.n) & (ptr - ptr // self.seg * self.seg < p_next)
        self.mptr[:k] = np.where(known, ptr, -1)
        self.mlen[:k] = np.where(known, ln, 0)

    def result(self) -> np.ndarray:
        return self.out
