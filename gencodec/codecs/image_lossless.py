"""``pixelcnn``: lossless images coded with the exact PixelCNN model and a range coder.

Path of one image (L3C style: model -> tables -> coder -> file in one place)::

    pixels (3, H, W) --ExactPixelCNN.tables_parallel--> integer (mean, scale index) per subpixel
         --DiscretizedLogistic.freqs--> (N, 256) integer tables --RangeEncoder--> stream

Symbols are written in the decoder's order: wavefronts ``t = (r + 1) * y + x`` (r = the model's
reach to the right), within a wavefront channel by channel, within a channel by row. The
decoder walks the wavefronts, evaluating the model on all pixels of one wavefront at once
((r+1)·H + W steps of one batched trunk pass and one batched decode per channel); the
encoder computes every table in one parallel pass, and the exact core makes them identical.

Modes: RGB is coded R, G | R, B | R, G. L is coded as one channel (the model sees the grey image
as R = G = B). RGBA and LA code the colour through the model and the alpha plane as PNG.
"1", "P" (palette) and "I;16" go through a classical fallback (PNG), recorded in the params.

Adaptation: first the encoder refits the end of each channel's head (output layer, hidden-unit
biases) to a sample of the image's rows (:mod:`.headfit`, header param ``fit``; stored where it
pays, a few hundred bytes): the decoder simply runs the model with those integers. Then it maps
each (channel, predicted scale index) group to the scale index and mean offset that fit this
image best (:func:`choose_remap`, a two-pass integer recalibration stored in the payload when it
saves more than it costs); the decoder applies the same integer maps, so exactness is untouched.
Then, while coding, per-image histograms of the residuals are mixed into the tables
(:class:`OnlineHistograms`, header param ``hist``): both sides count the symbols already coded, in
rounds of wavefronts, with integers only.

Payload (model path): u32 LE length of the stream | range-coded stream | u16 LE length of the
remap | zlib(scale remap as uint8 (n_coded, n_scales), mean offsets (in 1/D levels, |.| <= 3 D) + 128 as uint8) |
with ``fit``: u16 LE length | :func:`.headfit.pack_fit` | alpha PNG (if any).
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .. import progress
from .._numpy import clip as _clip, row_windows
from ..codec import Codec, Encoded
from ..errors import CorruptFileError, GencodecError, ModelMismatchError

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "weights" / "pixelcnn.safetensors"
#: earlier shipped models, kept so that files they wrote still decode: pixelcnn-<model id>.safetensors
ARCHIVE = DEFAULT_MODEL.parent / "archive"
FALLBACK_MODES = {"1", "P", "I;16"}


def wavefront_order(h: int, w: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels in decoding order: (flat indices (H*W,) sorted by wavefront then row, counts per wavefront)."""
    t = (step * np.arange(h)[:, None] + np.arange(w)[None, :]).ravel()  # (H*W,)
    order = np.argsort(t, kind="stable")  # ties keep row-major order: increasing y
    counts = np.bincount(t, minlength=step * (h - 1) + w) if t.size else np.zeros(0, np.int64)
    return order, counts


class PixelCNNCodec(Codec):
    name = "pixelcnn"
    kind = "lossless-image"
    modes = frozenset({"L", "LA", "RGB", "RGBA", "1", "P", "I;16"})
    auto_modes = frozenset({"L", "LA", "RGB", "RGBA"})  # the others would only go through PNG
    description = "PixelCNN-family neighbourhood model, integer-exact, wavefront decoding (L/LA/RGB/RGBA; P, 1, I;16 via PNG)"

    def __init__(self, model: str | Path | None = None):
        self.model_path = Path(model) if model is not None else DEFAULT_MODEL
        self._model = None

    # -- model ----------------------------------------------------------------------------------
    def unavailable_reason(self) -> str | None:
        if not self.model_path.is_file():
            return f"model file {self.model_path} not found"
        import importlib.util

        for module in ("torch", "constriction"):  # found, not imported: listing codecs stays fast
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed"
        return None

    @property
    def model(self):
        if self._model is None:
            from ..models.pixelcnn import ExactPixelCNN

            self._model = ExactPixelCNN.load(self.model_path)
        return self._model

    @property
    def model_id(self) -> bytes:
        return self.model.model_id

    _archived: dict[bytes, "PixelCNNCodec"] = {}

    def for_model_id(self, model_id: bytes) -> "PixelCNNCodec | None":
        if model_id == self.model_id:
            return self
        if self.model_path != DEFAULT_MODEL or not model_id:  # a user's model: no substitutes
            return None
        if model_id not in self._archived:
            path = ARCHIVE / f"pixelcnn-{model_id.hex()}.safetensors"
            if not path.is_file():
                return None
            codec = PixelCNNCodec(model=path)
            if codec.model_id != model_id:  # pragma: no cover - a misnamed archive file
                return None
            self._archived[model_id] = codec
        return self._archived[model_id]

    # -- encode ---------------------------------------------------------------------------------
    def encode(self, img: Any, **params: Any) -> Encoded:
        self.check_no_params(params)
        self.check_mode(img)
        if img.mode in FALLBACK_MODES:  # the registered PNG codec, its params kept in ours
            from ..registry import get_codec

            enc = get_codec("png").encode(img)
            return Encoded(enc.payload, {"coding": "png", **({"png": enc.params} if enc.params else {})}, {},
                           uses_model=False)
        planes, n_coded, alpha = _planes(img)
        stream, ideal, remap, fit = self.encode_planes(planes, n_coded)
        payload = struct.pack("<I", len(stream)) + stream + struct.pack("<H", len(remap)) + remap
        out_params: dict[str, Any] = {"coding": "model", "hist": HIST_VERSION}
        if fit:
            from .headfit import FIT_VERSION

            payload += struct.pack("<H", len(fit)) + fit
            out_params["fit"] = FIT_VERSION
        if alpha is not None:
            from PIL import Image

            from ..imageio import png_bytes

            alpha_png = png_bytes(Image.fromarray(alpha, "L"))
            payload += alpha_png
            out_params["alpha"] = "png"
        n_sub = planes.shape[1] * planes.shape[2] * n_coded
        stats = {"ideal_bits": ideal + 8 * (len(payload) - len(stream)), "model_ideal_bits": ideal,
                 "model_ideal_bpsp": ideal / max(n_sub, 1)}
        return Encoded(payload, out_params, stats)

    def encode_planes(self, planes: np.ndarray, n_coded: int, adapt: bool = True,
                      hist: bool | None = None, fit: bool | None = None) -> tuple[bytes, float, bytes, bytes]:
        """planes (3, H, W) uint8 -> (range-coded stream, ideal bits, packed scale remap or b"",
        packed per-image heads or b"").

        Channels >= n_coded are not coded. With ``adapt`` the heads are refitted to the image
        (:meth:`_tables`, kept where they pay) and the per-image scale remap
        (:func:`choose_remap`) is applied when it saves more than it costs to store. ``hist``
        (default: ``adapt``) mixes the online histograms (:class:`OnlineHistograms`) into the tables;
        the decoder must be told the same (header param ``hist``). ``fit`` (default: ``adapt``)
        switches the refitted heads alone.
        """
        from ..coding import RangeEncoder
        from ..models.pixelcnn import CDF_TOTAL

        m = self.model
        _, h, w = planes.shape
        with progress.part(0, 2):  # the parallel pass is the first half of an encode's progress
            mean, idx, fit = self._tables(planes, n_coded, fit=adapt if fit is None else fit)  # (n_coded, H, W) each
        packed = b""
        if adapt and h * w:
            remap, bias, gain_bits = choose_remap(m.dist, planes[:n_coded], mean, idx)
            packed = pack_remap(remap, bias)
            if gain_bits > 8 * (len(packed) + 2):
                chan = np.arange(n_coded)[:, None, None]
                mean = np.clip(mean + bias[chan, idx], 0, 255 * m.cfg.mean_steps)
                idx = remap[chan, idx]
            else:
                packed = b""
        hist = OnlineHistograms(m.cfg, n_coded) if (adapt if hist is None else hist) else None
        order, counts = wavefront_order(h, w, m.cfg.reach_right + 1)
        t_of = np.repeat(np.arange(counts.size), counts)  # wavefront of each pixel in `order`
        enc = RangeEncoder()
        sym_planes = planes[:n_coded].reshape(n_coded, -1)
        mean, idx = mean.reshape(n_coded, -1), idx.reshape(n_coded, -1)
        start = 0
        with progress.part(1, 2):  # the coding rounds are the second half of an encode's progress
            while start < order.size:  # one chunk per round of wavefronts (the histograms' update period)
                stop = int(np.searchsorted(t_of, (t_of[start] // HIST_ROUND + 1) * HIST_ROUND, side="left"))
                pix, tt = order[start:stop], t_of[start:stop]
                # (t, c, y) order: key t * n_coded + c, stable over the row order inside a wavefront
                keys = (tt[None, :] * n_coded + np.arange(n_coded)[:, None]).ravel()  # (n_coded * P,)
                sub = np.argsort(keys, kind="stable")
                chan = np.repeat(np.arange(n_coded), pix.size)[sub]
                flat = np.tile(pix, n_coded)[sub]
                md, s_idx, sym = mean[chan, flat], idx[chan, flat], sym_planes[chan, flat].astype(np.int64)
                freqs = m.dist.freqs(md, s_idx)
                total = CDF_TOTAL
                if hist is not None:
                    total = hist.mix(freqs, chan, md, s_idx, totals=True)
                    hist.add(chan, sym, freqs)
                    hist.update()
                enc.encode(sym, freqs, validate=False, total=total)
                start = stop
                progress.report(stop, order.size)
        return enc.finish(), enc.ideal_bits, packed, fit

    def _tables(self, planes: np.ndarray, n_coded: int, fit: bool):
        """The parallel pass -> (mean, scale index (n_coded, H, W), packed per-image heads or b"").

        With ``fit``, each channel's head is first refitted to a sample of rows (:mod:`.headfit`: its
        output layer, and shifts of its hidden units); the pass then evaluates both heads at once,
        and a channel keeps its refit only where, over the whole image, it saves clearly more than
        its integers cost to store (:data:`headfit.MARGIN`)."""
        from . import headfit

        m = self.model
        _, h, w = planes.shape
        if not fit or h * w < headfit.MIN_PIXELS:
            mean, idx = m.tables_parallel(planes, n_coded)
            return mean, idx, b""
        tables = headfit.CostTables(m.dist)
        rows = list(headfit.sample_rows(h, w))
        samples = m.head_samples(planes, rows, n_coded)
        fits = {}
        for c, (acc, p, x) in enumerate(samples):
            w, b, shift = headfit.fit_channel(acc, p, x, m, c, tables)
            layer = m.heads[c][1]
            if shift.any() or not (np.array_equal(w, layer.weight.numpy()) and np.array_equal(b, layer.bias.numpy())):
                fits[c] = (w, b, shift)
        models = [m, headfit.fitted_model(m, fits)] if fits else [m]
        means, idxs = m.tables_parallel_multi(planes, models, n_coded, known=(rows, samples))
        if not fits:
            return means[0], idxs[0], b""
        d = m.cfg.mean_steps
        keep = {}
        for c in fits:  # whole-image integer costs (1/1024 bit), against the stored integers' cost
            k = [d * planes[c].astype(np.int64) - mi[c] + 255 * d for mi in means]
            saved = tables.cost[idxs[0][c], k[0]].sum() - tables.cost[idxs[1][c], k[1]].sum()
            if saved > headfit.MARGIN * 8 * 1024 * len(headfit.pack_fit({c: fits[c]}, m)):
                keep[c] = fits[c]
        for c in keep:
            means[0][c], idxs[0][c] = means[1][c], idxs[1][c]
        return means[0], idxs[0], headfit.pack_fit(keep, m) if keep else b""

    # -- decode ---------------------------------------------------------------------------------
    def decode(self, payload: bytes, header: Any):
        from PIL import Image

        coding = header.params.get("coding")
        if header.model_id and header.model_id != self.model_id:
            raise ModelMismatchError(
                f"this file was coded with pixelcnn model {header.model_id.hex()}, but the model offered "
                f"({self.model_path}) is {self.model_id.hex()}; decode with --model pointing at the model that wrote it"
            )
        if coding == "png":
            import dataclasses

            from ..registry import get_codec

            inner = dataclasses.replace(header, codec="png", params=dict(header.params.get("png", {})))
            return get_codec("png").decode(payload, inner)
        if coding != "model":
            raise CorruptFileError(f"pixelcnn: unknown coding {coding!r} in the header")
        if not header.model_id:
            raise CorruptFileError("pixelcnn: a model-coded frame without a model id")
        if len(payload) < 4:
            raise CorruptFileError("pixelcnn payload is truncated")
        (n_stream,) = struct.unpack_from("<I", payload)
        stream, rest = payload[4 : 4 + n_stream], payload[4 + n_stream :]
        if len(stream) != n_stream or len(rest) < 2:
            raise CorruptFileError("pixelcnn payload is truncated")
        (n_remap,) = struct.unpack_from("<H", rest)
        packed, rest = rest[2 : 2 + n_remap], rest[2 + n_remap :]
        if len(packed) != n_remap:
            raise CorruptFileError("pixelcnn payload is truncated")
        mode, h, w = header.mode, header.height, header.width
        n_coded = 1 if mode in ("L", "LA") else 3
        cfg = self.model.cfg
        remap = unpack_remap(packed, n_coded, cfg.n_scales, MAX_BIAS * cfg.mean_steps) if n_remap else None
        hist = header.params.get("hist")
        if hist not in (None, HIST_VERSION):
            raise CorruptFileError(f"pixelcnn: unknown adaptation hist={hist!r} (written by a newer gencodec?)")
        model = self.model
        fit = header.params.get("fit")
        if fit is not None:
            from . import headfit

            if fit not in (1, headfit.FIT_VERSION):  # 1: output layers only
                raise CorruptFileError(f"pixelcnn: unknown adaptation fit={fit!r} (written by a newer gencodec?)")
            if len(rest) < 2:
                raise CorruptFileError("pixelcnn payload is truncated")
            (n_fit,) = struct.unpack_from("<H", rest)
            blob, rest = rest[2 : 2 + n_fit], rest[2 + n_fit :]
            if len(blob) != n_fit:
                raise CorruptFileError("pixelcnn payload is truncated")
            model = headfit.fitted_model(model, headfit.unpack_fit(blob, model, n_coded, fit))
        planes = self.decode_planes(stream, h, w, n_coded, remap=remap, hist=hist is not None, model=model)
        colour = Image.fromarray(planes[0], "L") if n_coded == 1 else Image.fromarray(planes.transpose(1, 2, 0), "RGB")
        if mode in ("LA", "RGBA"):
            if header.params.get("alpha") != "png":
                raise CorruptFileError("pixelcnn: alpha plane missing")
            with Image.open(io.BytesIO(rest)) as a:
                alpha = a.convert("L")
            if alpha.size != (w, h):
                raise CorruptFileError("pixelcnn: alpha plane has the wrong size")
            colour.putalpha(alpha)
            colour = colour.convert(mode) if colour.mode != mode else colour
        return colour

    def decode_planes(self, stream: bytes, h: int, w: int, n_coded: int,
                      remap: tuple[np.ndarray, np.ndarray] | None = None, hist: bool = False,
                      record: np.ndarray | None = None, model=None) -> np.ndarray:
        """Wavefront decoder: stream -> planes (3, H, W) uint8 (channels >= n_coded copy channel 0).

        remap: (scale remap, mean offsets), each (n_coded, n_scales), written by the encoder, or None.
        hist: mix the online histograms into the tables (as the encoder did with ``adapt``).
        record: optional int64 array (2, n_coded, H, W) that receives the (mean, scale index) used
        for every subpixel (for tests comparing against the encoder's parallel tables).
        model: the model to decode with (default: this codec's; a file's refitted heads
        give another, :meth:`ExactPixelCNN.with_outputs`).
        """
        from ..coding import RangeDecoder
        from ..exact import exact_mode
        from ..models.pixelcnn import colour_bases, head_extra, med_and_features, phase_index, serial_torch

        m = self.model if model is None else model
        cfg = m.cfg
        top, left, _ = cfg.pad
        step = cfg.reach_right + 1
        padded = np.full((3, h + top, w + left + cfg.reach_right), 128, dtype=np.int32)
        hp, wp = padded.shape[1:]
        # flat index of every context pixel of (y, x) = y * wp + x + offs: (3, K), channel-major
        offs = np.array([(dy + top) * wp + dx + left for dy, dx in cfg.offsets])
        offs = np.arange(3)[:, None] * (hp * wp) + offs[None, :]
        flat = padded.reshape(-1)
        dec = RangeDecoder(stream)
        counts = OnlineHistograms(cfg, n_coded) if hist else None
        n_steps = step * (h - 1) + w if h and w else 0
        with exact_mode(), serial_torch():
            for t in range(n_steps):
                if counts is not None and t % HIST_ROUND == 0:  # a new round: count the last one
                    counts.update()
                if t % PROGRESS_EVERY == 0:
                    progress.report(t, n_steps)
                y_lo = max(0, -(-(t - w + 1) // step))
                ys = np.arange(y_lo, min(h - 1, t // step) + 1)
                xs = t - step * ys
                if ys.size == 0:  # a tall narrow image leaves some wavefronts empty
                    continue
                pos = (ys + top) * wp + xs + left  # where the wavefront's pixels go in each padded plane
                nb = flat.take((ys * wp + xs)[:, None, None] + offs)  # (n, 3, K)
                p, feats = med_and_features(nb, cfg)  # (n, 3), (n, F)
                bases = colour_bases(nb, p, cfg) if cfg.colour_preds else None
                pre = m.heads_pre(m.trunk_forward(feats, phase_index(ys, xs)))
                resid = np.zeros((ys.size, 3), np.int64)
                for c in range(n_coded):
                    mean, idx = m.head_forward(c, pre, head_extra(c, resid, bases, cfg), p[:, c])
                    if record is not None:
                        record[0, c, ys, xs] = mean
                        record[1, c, ys, xs] = idx
                    if remap is not None:
                        mean = _clip(mean + remap[1][c, idx], 0, 255 * cfg.mean_steps)
                        idx = remap[0][c, idx]
                    freqs = m.dist.freqs(mean, idx)
                    if counts is not None:
                        counts.mix(freqs, c, mean, idx)
                        sym = dec.decode(freqs, validate=False)
                        counts.add(c, sym, freqs)
                    else:
                        sym = dec.decode(freqs, validate=False)
                    flat[pos + c * (hp * wp)] = sym
                    resid[:, c] = sym - p[:, c]
                if n_coded == 1:
                    flat[pos + hp * wp] = flat[pos + 2 * hp * wp] = sym
                if xs[-1] == 0 and ys[-1] + 1 < h:  # left padding of the next row
                    y0 = ys[-1]
                    padded[:, y0 + 1 + top, :left] = padded[:, y0 + top, left : left + 1]
                if xs[0] == w - 1:  # right padding of this row
                    y1 = ys[0]
                    padded[:, y1 + top, left + w :] = padded[:, y1 + top, left + w - 1 : left + w]
        progress.report(n_steps, n_steps)
        return padded[:, top:, left : left + w].astype(np.uint8)


PROGRESS_EVERY = 64  # wavefronts between two progress reports of the decoder

MAX_BIAS = 3  # the per-image adaptation may move a group's means by up to this many levels

HIST_VERSION = 1  # header param "hist": the online histograms below, with these constants
HIST_ROUND = 8  # wavefronts per round: counts and costs are updated between rounds
HIST_WINDOW = 32  # symbols around the mean that get histogram counts
HIST_WEIGHTS = (0, 32, 128, 512)  # candidate weights of a count (model rows sum to 2**16)
LOG_BITS = 10  # integer code lengths in 1/1024 bit
COST_EVERY = 4  # the weights are charged on every 4th symbol of a round (in coding order)


def _log_table() -> np.ndarray:
    """LUT[i] = round(1024 log2(1 + (i + 1/2) / 1024)), i < 1024: the same integers on every machine."""
    from ..exact.detmath import CTX, D, det_round

    n = 1 << LOG_BITS
    i = np.arange(n, dtype=np.float64)
    ln2 = CTX.ln(D(2))
    return det_round(n * np.log2(1 + (i + 0.5) / n),
                     lambda idx: [CTX.divide(CTX.multiply(D(n), CTX.ln(CTX.add(1, CTX.divide(D(k) + D("0.5"), D(n))))), ln2)
                                  for k in idx])


_LUT: np.ndarray | None = None


def ilog2(v: np.ndarray) -> np.ndarray:
    """1024 log2(v) for integers 1 <= v < 2**53 (float64), as int64 (the pinned table's value for
    the mantissa's 1/1024 bin): frexp and the table are exact, so the same integers on every machine."""
    global _LUT
    if _LUT is None:
        _LUT = _log_table()
    m, e = np.frexp(v)  # v = m 2**e, m in [1/2, 1)
    i = np.floor((m - 0.5) * (2 << LOG_BITS)).astype(np.int64)
    return (e.astype(np.int64) - 1) * (1 << LOG_BITS) + _LUT[i]


class OnlineHistograms:
    """Per-image residual histograms mixed into the model's tables, identically on both sides.

    Counts are kept per group (channel, scale index, md mod D) over the residual k = D x - md (the
    symbol's offset from the mean in 1/D levels). A symbol's table is the model's row (2**16 in all)
    plus w times its group's counts on the HIST_WINDOW symbols around the mean: the image's own
    statistics take over where it has many -- e.g. the spiky colour residuals of 4:2:0 photos, which a
    logistic fits poorly. The weight w is chosen per channel among HIST_WEIGHTS (0: the model alone)
    as the one that would have coded that channel's symbols so far in the fewest bits, counted with
    an integer log2 (:func:`ilog2`). Counts and costs are integers, updated only between rounds of
    HIST_ROUND wavefronts with every symbol of the round, so the encoder (chunk by round) and the
    decoder (wavefront by wavefront) see the same numbers; table entries stay far below 2**53.
    """

    def __init__(self, cfg, n_coded: int):
        from ..models.pixelcnn import CDF_TOTAL  # loaded with the model already

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
    s = dist.cfg.n_scales
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


def _planes(img) -> tuple[np.ndarray, int, np.ndarray | None]:
    """PIL image -> (planes (3, H, W) uint8, channels coded, alpha (H, W) uint8 or None)."""
    arr = np.asarray(img)
    if img.mode in ("L", "LA"):
        grey = arr if img.mode == "L" else arr[..., 0]
        alpha = None if img.mode == "L" else np.ascontiguousarray(arr[..., 1])
        return np.ascontiguousarray(np.broadcast_to(grey, (3,) + grey.shape)), 1, alpha
    if img.mode in ("RGB", "RGBA"):
        alpha = np.ascontiguousarray(arr[..., 3]) if img.mode == "RGBA" else None
        return np.ascontiguousarray(arr[..., :3].transpose(2, 0, 1)), 3, alpha
    raise GencodecError(f"pixelcnn: no model path for mode {img.mode}")  # pragma: no cover
