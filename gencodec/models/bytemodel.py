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
  context is new, slower as it fills), counts saturating at ``LIMITS``. Version 2 adds three
  (``ORDERS_V2``): the byte two back alone (a sparse context), the byte above (same column of the
  previous line) with the previous byte, for text tables, and the bytes one and two records back
  with the record length, for fixed-width binary records (a length is found where byte values
  recur at equal distances, PAQ's record model).
- **Match model**: where the last 5 bytes were seen before (a hash table of positions, shared by
  the segments, a pointer used only once both sides know the byte it points at), the bits of the
  byte that followed them are predicted, with a confidence learned by match length.
- **Pretrained net** (version 2, :mod:`gencodec.models.bytenet`): a small causal network trained
  on text, code and data gives each byte a distribution from the previous 16 bytes; the mixer
  takes its p(bit = 1 | the bits of the byte so far). It carries what an input too short to learn
  from cannot teach (a small file is coded a fifth smaller), and helps long ones by a few percent.
- **Mixer**: the models' stretched probabilities ``ln(p / (1 - p))`` (a 4096-entry table) and a
  bias enter a linear mixer whose weights are chosen by the partial byte and the match state and
  trained online by the coding error; its output is squashed back (a table) to a 12-bit
  probability, which an APM refines by the previous byte.
- **Lockstep segments**: the input is cut into segments coded side by side, one bit of every
  segment per group (:meth:`ExactByteModel.schedule`), so each numpy operation works on all of them
  at once. The tables are shared: after each group every segment's update is added in segment
  order, so the model learns from the whole file.

Version 1 (the mixer alone, no tensors) stays codable: its frames name its model id, kept in the
archive (:mod:`gencodec.models.zoo`).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from ..errors import GencodecError
from ..exact.contract import Schedule
from . import modelfile
from .bytenet import running_sums, windows

if TYPE_CHECKING:
    from .bytenet import ExactByteNet

PROB_BITS = 12  # the coder sees p(bit = 1) as p / 4096, 1 <= p <= 4095
ORDERS = ("o1", "o2", "o3", "o4", "o6", "word", "o0")  # the context models, in mixer input order
LIMITS = (127, 255, 255, 255, 255, 255, 60)  # count limits: lower adapts faster (chosen on text-train files, never Canterbury)
# version 2 adds: the byte two back (a sparse context), the byte above (same column, previous line)
# with the previous byte, and the bytes one and two records back (the record length detected per segment)
ORDERS_V2 = ORDERS + ("s2", "col", "rec")
LIMITS_V2 = LIMITS + (255, 255, 255)
RECORD_CONFIRM = 2  # a record length is taken once this many byte values in a row repeat at it
SHARED = 24  # a shared mixer row, APM point or match confidence takes up to this many steps per group (chosen on text-train)
MATCH_MIN = 5  # bytes of context the match model looks up
MATCH_LEN_CAP = 15  # match lengths above this share one confidence
WEIGHT_LIMIT = 1 << 22  # |mixer weight| <= 64 (in units of 2**-16): the dot product stays far inside int64
STRETCH_SCALE = 256  # stretch(p) = round(256 ln(p / (1 - p))), |.| <= 2047
_MASK64 = (1 << 64) - 1
_PRIMES = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
                    0xA0761D6478BD642F, 0xE7037ED1A0B428DB, 0x8EBC6AF09C88C6E3, 0x589965CC75374CC3,
                    0x1D8E4E27C47D124F, 0xFF51AFD7ED558CCD], dtype=np.uint64)


VERSIONS = (1, 2)  # 1: the mixer alone (its frames keep decoding); 2: + the pretrained net as a mixer input


@dataclass(frozen=True)
class ByteModelConfig:
    version: int = 2  # the arithmetic of this module: bumped whenever a change would code differently
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


def net_from_state(net_cfg: dict[str, Any], tensors: dict[str, Any]):
    """The pretrained net of a model file: :mod:`.bytenet` (no ``arch`` in its config) or
    :mod:`.byte_transformer` (``arch: byte-transformer``)."""
    if net_cfg.get("arch") == "byte-transformer":
        from .byte_transformer import ByteTransformerConfig, ExactByteTransformer

        return ExactByteTransformer(ByteTransformerConfig.from_dict(net_cfg), tensors)
    from .bytenet import ByteNetConfig, ExactByteNet

    return ExactByteNet(ByteNetConfig.from_dict(net_cfg), tensors)


class ExactByteModel:
    """Implements :class:`gencodec.exact.contract.ExactModel` over bits (n bytes, 8), MSB first."""

    arch = "bytemodel"
    trusted_tables = True  # rows [4096 - p, p] with 1 <= p <= 4095: integers >= 1 by construction

    def __init__(self, cfg: ByteModelConfig = ByteModelConfig(), net: "ExactByteNet | None" = None):
        if cfg.version not in VERSIONS:
            raise GencodecError(f"bytemodel version {cfg.version} is not one this gencodec codes ({VERSIONS})")
        if net is not None and cfg.version < 2:
            raise GencodecError("bytemodel version 1 has no net")
        self.cfg, self.net = cfg, net
        self.model_id = modelfile.model_id(self.config_dict(), self.state())

    def config_dict(self) -> dict[str, Any]:
        d = asdict(self.cfg)
        if self.net is not None:
            d["net"] = self.net.cfg.to_dict()
        return d

    def save(self, path, card: dict[str, Any] | None = None) -> None:
        """A model file of this config (gencodec.models.modelfile), e.g. for ``model=PATH``."""
        modelfile.save(self, path, card)

    def state(self) -> dict[str, Any]:
        return dict(self.net.tensors) if self.net is not None else {}  # without a net: all learned from the input

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, Any]) -> "ExactByteModel":
        config = dict(config)
        net_cfg = config.pop("net", None)
        try:
            cfg = ByteModelConfig(**config)
        except TypeError as e:
            raise GencodecError(f"bytemodel config does not fit: {e}") from None
        net = None
        if net_cfg is not None:
            try:
                net = net_from_state(net_cfg, tensors)
            except (TypeError, ValueError, KeyError, AttributeError) as e:
                raise GencodecError(f"bytemodel net does not fit its config: {e}") from None
        elif tensors:
            raise GencodecError("bytemodel file holds tensors but no net config")
        return cls(cfg, net)

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

    @contextmanager
    def coding(self) -> Iterator[None]:
        """What the driver codes in: torch and numpy's BLAS on one thread. The net's products are
        small (at most a few thousand rows a step); BLAS threads spinning between them only took
        the core from the rest of the loop (the bits are the same either way: every product is exact)."""
        from threadpoolctl import threadpool_limits

        from ..exact.fastpath import serial_torch

        with serial_torch(), threadpool_limits(1, user_api="blas"):
            yield

    def session(self, shape: Sequence[int]) -> "MixSession":
        """The compiled loop (:mod:`gencodec.models.bytemix_fast`) where numba is installed, else the
        numpy reference below: the same bits either way."""
        try:
            from .bytemix_fast import FastMixSession
        except ImportError:  # pragma: no cover - numba is a dependency; the reference still codes
            return MixSession(self, shape[0])
        return FastMixSession(MixSession(self, shape[0]), match_len_cap=MATCH_LEN_CAP, weight_limit=WEIGHT_LIMIT,
                              shared=SHARED, primes=_PRIMES, match_min=MATCH_MIN, record_confirm=RECORD_CONFIRM)

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
        self.v2 = cfg.version >= 2
        # a context's partial bytes: spread over the table (version 1), or side by side from its hash,
        # so that the bits of one byte read neighbouring entries (version 2: fewer cache misses)
        self.spread = np.uint64(1 if self.v2 else 0x2F0F1)
        orders, limits = (ORDERS_V2, LIMITS_V2) if self.v2 else (ORDERS, LIMITS)
        m = len(orders)
        self.offsets = (np.arange(m, dtype=np.int64) << bits)[:, None]  # (m, 1): each model's part of the table
        self.prob = np.full(m << bits, 1 << 15, np.int64)  # p(bit = 1) in 1/65536
        self.count = np.zeros(m << bits, np.int32)  # <= 255
        self.limit_of, self.bits = np.array(limits, np.int64), bits
        # mixer weights by (match model active, partial byte); inputs: the context models, the match model, a bias
        self.net = model.net  # the pretrained net: one more mixer input (version 2)
        # a net with state (the byte transformer's key/value caches) steps through the segments in lockstep
        self.stepper = self.net.stepper(n_seg) if getattr(self.net, "stateful", False) else None
        self.weights = np.full((512, m + 2 + (self.net is not None)), (1 << cfg.mixer_shift) // (6 if self.v2 else 4), np.int64)
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
        if self.v2:  # lines and records, per segment (positions within the segment only: both sides know them)
            self.line = self.starts.copy()  # where the current line starts
            self.prev_line = np.full(n_seg, -1, np.int64)  # where the previous one started (-1: none yet)
            self.last_pos = np.full((n_seg, 256, 3), -1, np.int64)  # the last 3 positions of each byte value
            self.rcand = np.zeros(n_seg, np.int64)  # the last distance seen repeating 3 times
            self.rcount = np.zeros(n_seg, np.int64)  # how many times in a row
            self.rlen = np.zeros(n_seg, np.int64)  # the record length in use (0: none)
        self.p, self.k = 0, n_seg  # byte position within the segments; segments still going
        self.bit = 0
        self.out = np.zeros((n, 8), np.uint8)
        self._byte_contexts()

    def _byte_contexts(self) -> None:
        h, w = self.hist, self.word
        ctx = [h & np.uint64(0xFF), h & np.uint64(0xFFFF), h & np.uint64(0xFFFFFF), h & np.uint64(0xFFFFFFFF),
               h & np.uint64(0xFFFFFFFFFFFF), w, np.zeros_like(h)]
        if self.v2:
            ctx += self._v2_contexts()
        with np.errstate(over="ignore"):
            for i, c in enumerate(ctx):
                self.ctx[i] = (c + np.uint64(i + 1)) * _PRIMES[i]

    def _v2_contexts(self) -> list[np.ndarray]:
        """(byte two back; byte above | previous byte << 9; bytes one and two records back | length << 18)
        for the byte at position ``p`` of each segment (256: that byte is not there)."""
        h, t, st = self.hist, self.starts + self.p, self.starts
        last = self.n - 1

        def byte_at(pos, ok):
            return np.where(ok, self.buf[np.clip(pos, 0, last)].astype(np.int64), 256)

        s2 = (h >> np.uint64(8)) & np.uint64(0xFF)
        above = self.prev_line + (t - self.line)
        b_above = byte_at(above, (self.prev_line >= 0) & (above < self.line))
        col = (b_above | ((h & np.uint64(0xFF)).astype(np.int64) << 9)).astype(np.uint64)
        r = self.rlen
        b1 = byte_at(t - r, (r > 0) & (t - r >= st))
        b2 = byte_at(t - 2 * r, (r > 0) & (t - 2 * r >= st))
        rec = (b1 | b2 << 9 | np.minimum(r, 1 << 20) << 18).astype(np.uint64)
        return [s2, col, rec]

    def next(self) -> np.ndarray:
        k = self.k = int(np.count_nonzero(self.starts + self.p < self.n))
        c0 = self.c0[:k].astype(np.uint64)
        with np.errstate(over="ignore"):
            spread = (self.ctx[:, :k] >> np.uint64(20)) + c0 * self.spread
        self.idx = self.offsets + (spread & self.mask).astype(np.int64)  # (m, k)
        st = self.stretch[self.prob[self.idx] >> 4]  # (m, k)
        ptr = self.mptr[:k]
        pbyte = self.buf[np.maximum(ptr, 0)].astype(np.int64) | 256
        shift = 8 - self.bit
        self.active = (ptr >= 0) & ((pbyte >> shift) == self.c0[:k])  # the match still agrees with this byte
        self.expected = (pbyte >> (shift - 1)) & 1
        self.mlen_idx = np.minimum(self.mlen[:k], MATCH_LEN_CAP)
        sm = self.stretch[self.mprob[self.mlen_idx] >> 4] * (2 * self.expected - 1) * self.active
        if self.net is None:
            self.inputs = np.concatenate([st, sm[None, :], self.bias_row[:, :k]])  # + bias
        else:
            if self.bit == 0 and self.stepper is not None:  # the net's distribution of this byte, once per byte
                self.cum = running_sums(self.net.weights_of(self.stepper.logits_at(self.buf, self.starts[:k], self.p)))
            elif self.bit == 0:
                rows = self.starts[:k] + self.p
                self.cum = self.net.cumulative(windows(self.buf, rows, self.starts[:k], self.net.cfg.context))
            sn = self.stretch[self.net.bit_probs(self.cum, self.c0[:k], self.bit)]
            self.inputs = np.concatenate([st, sm[None, :], sn[None, :], self.bias_row[:, :k]])
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
            if self.v2:
                self._lines_records(rows, byte.astype(np.int64))
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

    def _lines_records(self, rows: np.ndarray, byte: np.ndarray) -> None:
        """After the byte at ``rows``: a newline starts a line; a byte value seen at three equal
        distances in a row proposes that distance as the record length, taken once RECORD_CONFIRM
        proposals in a row agree."""
        k = rows.size
        nl = byte == 10
        self.prev_line[:k] = np.where(nl, self.line[:k], self.prev_line[:k])
        self.line[:k] = np.where(nl, rows + 1, self.line[:k])
        seg = np.arange(k)
        lp = self.last_pos[seg, byte]  # (k, 3), newest first
        d1, d2, d3 = rows - lp[:, 0], lp[:, 0] - lp[:, 1], lp[:, 1] - lp[:, 2]
        cand = (lp[:, 2] >= 0) & (d1 == d2) & (d2 == d3) & (d1 >= 2)
        again = cand & (d1 == self.rcand[:k])
        self.rcount[:k] = np.where(again, self.rcount[:k] + 1, np.where(cand, 1, self.rcount[:k]))
        self.rcand[:k] = np.where(cand, d1, self.rcand[:k])
        self.rlen[:k] = np.where(cand & (self.rcount[:k] >= RECORD_CONFIRM), d1, self.rlen[:k])
        self.last_pos[seg, byte] = np.stack([rows, lp[:, 0], lp[:, 1]], axis=1)

    def result(self) -> np.ndarray:
        return self.out
