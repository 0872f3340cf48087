"""``hyperprior``: the learned lossy image codec (gencodec.models.hyperprior), with rate control.

Parameters (one of quality, psnr and bpp): ``quality`` -- a number in [1 - EXTRAPOLATE, L +
EXTRAPOLATE] (L = the ladder's length, which the declared range follows; default 4, or L if
smaller). Qualities 1..L are the trained ladder, fractions interpolate its gains geometrically, and
beyond either end the gains are extrapolated from the end pair (coarser or finer steps than any
trained point: a lower or higher rate than the ladder reaches, at a less efficient trade-off than a
trained point would give; chosen on held-out training photos, where rate and PSNR stay monotone
over the whole range). ``step`` (with quality) -- a residual layer (:mod:`.residual`): the
difference between the image and what the latents restore, in steps of this size (1 to 255; step 1
restores the encoder's pixels, but another machine's float synthesis may differ by a level in a
few pixels, so it is not a lossless mode). ``psnr`` -- the smallest file whose PSNR is at least
this; ``bpp`` -- the best PSNR whose file (its frame included) has at most this many bits per pixel.

Rate control tries the ladder's end first and goes beyond it only when the ladder cannot meet the
target, then bisects the continuous quality (RATE_STEPS tries, each reusing the one analysis
transform: only the hyper-transforms, the coder and -- for ``psnr`` -- the synthesis run again).
Then residual layers over the LAYER_BASES trained points below the answer compete (the ladder's
top ones when no quality meets the target): for each, the largest step that reaches the PSNR, or
the smallest that fits the budget (bisected; a layer costs no network pass). The transforms cap
the PSNR a quality reaches; a layer has none, so every PSNR target is met.

Modes: RGB; L through replication (restored as L); RGBA and LA with the alpha plane coded
losslessly beside the colour (PNG). The frame stores the quality, the step when there is a layer,
and a checksum (CRC-32) of the latent symbols and then the layer's, which decoding verifies before
any pixel is made.

Payload: ``u32 alpha length | alpha PNG | u32 escapes length | escapes | range-coded symbols``
(no alpha: length 0); with a layer, ``... | escapes | u32 symbols length | range-coded symbols |
layer``. Escapes: the latents beyond their tables (coded as the overflow symbol), in coding order,
zigzag LEB128 varints. The layer's contexts: each pixel's class from the mean scale index of the
latents above it (:func:`residual_classes`).
"""
from __future__ import annotations

import io
import math
import struct
import zlib
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image

from ..codec import Encoded, Param
from ..errors import CorruptFileError, GencodecError, UnsupportedInputError
from ..models import zoo
from . import residual
from .neural import NeuralCodec

__all__ = ["HyperpriorCodec", "DEFAULT_QUALITY", "FRAME_ALLOWANCE"]

DEFAULT_QUALITY = 4.0
RATE_STEPS = 9  # bisection steps of rate control (the quality interval shrinks by 2**-9)
LAYER_BASES = 4  # rate control tries residual layers over this many ladder points below its answer
EXTRAPOLATE = 2.0  # qualities reach this many ladder steps beyond each end of the ladder (extrapolated gains)
REFINE_TRIES = 3  # rate control with effort: refined trials aimed at the target
MIN_STEP = 0.05  # ... the least quality step after a refined trial that missed it
#: bytes of frame around the payload that ``bpp`` budgets for when the caller does not say (the
#: API passes the exact frame size: ``frame_size(params, payload_length)``)
FRAME_ALLOWANCE = 160


def _crc(symbols: np.ndarray, residual_symbols: np.ndarray | None = None) -> str:
    """CRC-32 of the symbols, then of a residual layer's symbols (int32 little-endian)."""
    crc = zlib.crc32(np.ascontiguousarray(symbols, dtype="<i4").tobytes())
    if residual_symbols is not None:
        crc = zlib.crc32(np.ascontiguousarray(residual_symbols, dtype="<i4").tobytes(), crc)
    return f"{crc & 0xFFFFFFFF:08x}"


def pack_escapes(values: np.ndarray) -> bytes:
    out = bytearray()
    for v in values.tolist():
        u = (v << 1) ^ (v >> 63)  # zigzag
        while True:
            byte, u = u & 0x7F, u >> 7
            out.append(byte | (0x80 if u else 0))
            if not u:
                break
    return bytes(out)


def unpack_escapes(data: bytes, limit: int = 1 << 30) -> np.ndarray:
    values, u, shift = [], 0, 0
    for byte in data:
        u |= (byte & 0x7F) << shift
        shift += 7
        if shift > 70 or abs(u) > limit << 1:
            raise CorruptFileError("hyperprior payload: an escaped latent out of range")
        if not byte & 0x80:
            values.append((u >> 1) ^ -(u & 1))
            u, shift = 0, 0
    if shift:
        raise CorruptFileError("hyperprior payload: truncated escapes")
    return np.asarray(values, np.int64)


def _psnr(a: np.ndarray, b: np.ndarray, rows: int = 256) -> float:
    """PSNR of two uint8 images of one shape: integer squared errors summed a band of rows at a time."""
    sse = sum(int(np.square(a[i : i + rows].astype(np.int32) - b[i : i + rows], dtype=np.int64).sum())
              for i in range(0, a.shape[0], rows))
    return math.inf if sse == 0 else 10 * math.log10(255.0**2 * a.size / sse)


RESIDUAL_CLASSES = 8  # activity classes of the residual layer's contexts
RESIDUAL_CLASS_WIDTH = 6  # of the mean scale index over the latent channels (chosen on held-out training photos)


def activity(tables: Any) -> tuple[np.ndarray, int]:
    """The latents' scale indices summed over their channels, (4h, 4w) int64 (exact tables: both
    sides agree), and the channel count: what :func:`residual_classes` reads."""
    return tables.idx.sum(0), tables.idx.shape[0]


def residual_classes(act: tuple[np.ndarray, int], height: int, width: int) -> np.ndarray:
    """The residual layer's class of each pixel (H, W): the mean scale index of the latents above it
    (a latent covers 16 x 16 pixels) in classes of RESIDUAL_CLASS_WIDTH."""
    total, channels = act
    cls = np.minimum(RESIDUAL_CLASSES - 1, total // (RESIDUAL_CLASS_WIDTH * channels))
    return np.repeat(np.repeat(cls, 16, 0), 16, 1)[:height, :width]


@dataclass
class _Trial:
    """One candidate file: the latents at a quality, perhaps a residual layer over them."""

    q: float
    sym: np.ndarray
    y_sym: np.ndarray
    means: np.ndarray
    activity: tuple[np.ndarray, int]  # the residual layer's context source (:func:`activity`)
    escapes: bytes
    stream: bytes
    ideal: float  # the latents' code length (bits)
    clamped: int
    layer: residual.Layer | None = None
    base: np.ndarray | None = None  # what the latents restore (the target's mode), once computed
    psnr: float | None = None
    refined: int = 0  # the effort its latents were refined at for the image (0: not refined)

    @property
    def step(self) -> int | None:
        return None if self.layer is None else self.layer.step

    def body(self) -> bytes:
        """The payload after the alpha section."""
        head = struct.pack("<I", len(self.escapes)) + self.escapes
        if self.layer is None:
            return head + self.stream
        return head + struct.pack("<I", len(self.stream)) + self.stream + self.layer.data

    def params(self) -> dict[str, Any]:
        p: dict[str, Any] = {"quality": self.q,
                             "latents": _crc(self.sym, None if self.layer is None else self.layer.symbols)}
        if self.step is not None:
            p["step"] = self.step
        return p

    def ideal_bits(self, payload: int) -> float:
        """The code length: the latents' and the residual symbols' ideal bits, every other byte of a
        payload of this length at its size."""
        coded = len(self.stream) + (0 if self.layer is None else len(self.layer.data))
        extra = 0.0 if self.layer is None else self.layer.ideal_bits + 8 * (len(self.layer.data) - self.layer.stream_bytes)
        return self.ideal + extra + 8 * (payload - coded)


class _Coder:
    """The encoder's trials for one image: the analysis once, then latents per quality, pixels and
    PSNR on demand, residual layers over a trial."""

    def __init__(self, model: Any, rgb: np.ndarray, target: np.ndarray, n_alpha: int, frame_size: Any):
        self.model, self.target, self.n_alpha, self.frame_size = model, target, n_alpha, frame_size
        self.analysis = model.analyse(rgb)
        self.n_pixels = rgb.shape[0] * rgb.shape[1]
        self._points: dict[float, _Trial] = {}  # trials at whole qualities: the search's ends, the layers' bases

    def trial(self, q: float, refine: int = 0) -> _Trial:
        from ..exact import driver

        if q in self._points and not refine:
            return self._points[q]
        a = self.analysis
        sym, y_sym, means = a.at(q, refine=refine)
        stream, ideal = driver.encode(self.model, sym, params=self.model.parallel(sym, a.tables))
        t = _Trial(q, sym, y_sym, means, activity(a.tables), pack_escapes(a.escapes), stream, ideal, a.clamped,
                   refined=refine)
        if float(q).is_integer() and not refine:
            self._points[q] = t
        return t

    def cost(self, t: _Trial) -> float:
        """The rate-distortion cost the model was trained for, on the real file and pixels:
        lambda(q) * MSE + bits per pixel (MSE on the 0..255 scale)."""
        from ..models.hyperprior_refine import ladder_lambda  # torch: not for `gencodec codecs`

        mse = 255.0**2 * 10 ** (-self.psnr(t) / 10) if math.isfinite(self.psnr(t)) else 0.0
        return ladder_lambda(self.model.cfg.lambdas, t.q) * mse + 8 * self.size(t) / self.n_pixels

    def refined(self, t: _Trial, effort: int) -> _Trial:
        """``t``, or the same quality with latents refined at ``effort`` if that file is better: a lower
        rate-distortion cost. A trial with a residual layer is kept as it is."""
        if t.layer is not None:
            return t
        r = self.trial(t.q, refine=effort)
        return r if self.cost(r) < self.cost(t) else t

    def base(self, t: _Trial) -> np.ndarray:
        if t.base is None:
            px = self.analysis.pixels(t.y_sym, t.means, t.q)
            t.base = np.asarray(Image.fromarray(px).convert("L")) if self.target.ndim == 2 else px
        return t.base

    def pixels(self, t: _Trial) -> np.ndarray:
        """What decompress restores from this trial on this machine."""
        return self.base(t) if t.layer is None else t.layer.reconstruction

    def psnr(self, t: _Trial) -> float:
        if t.psnr is None:
            t.psnr = _psnr(self.pixels(t), self.target)
        return t.psnr

    def size(self, t: _Trial) -> int:
        """The frame's bytes (exact when the API passed ``frame_size``)."""
        n = 4 + self.n_alpha + len(t.body())
        return n + FRAME_ALLOWANCE if self.frame_size is None else self.frame_size(t.params(), n)

    def classes(self, t: _Trial) -> np.ndarray:
        return residual_classes(t.activity, self.analysis.height, self.analysis.width)

    def layered(self, t: _Trial, step: int) -> _Trial:
        layer = residual.encode(self.target, self.base(t), step, self.classes(t))
        return replace(t, layer=layer, psnr=None)

    def step_for_psnr(self, t: _Trial, value: float) -> int:
        """The largest step whose layer over ``t`` reaches ``value`` dB (step 1 restores the image)."""
        base = self.base(t)

        def reaches(step: int) -> bool:
            return _psnr(residual.quantize(self.target, base, step)[1], self.target) >= value

        if reaches(255):
            return 255
        a, b = 1, 255  # a reaches it, b does not
        while b - a > 1:
            mid = (a + b) // 2
            a, b = (mid, b) if reaches(mid) else (a, mid)
        return a

    def step_for_bpp(self, t: _Trial, value: float) -> _Trial | None:
        """``t`` with the layer of the smallest step that keeps the file within ``value`` bits per
        pixel, or None if even step 255 does not fit."""
        def fits(step: int) -> _Trial | None:
            c = self.layered(t, step)
            return c if 8 * self.size(c) / self.n_pixels <= value else None

        if 8 * self.size(t) / self.n_pixels > value:
            return None
        best = fits(255)
        if best is None:
            return None
        low = fits(1)
        if low is not None:
            return low
        a, b = 1, 255  # a does not fit, b does
        while b - a > 1:
            mid = (a + b) // 2
            c = fits(mid)
            if c is None:
                a = mid
            else:
                b, best = mid, c
        return best


class HyperpriorCodec(NeuralCodec):
    name = "hyperprior"
    kind = "lossy-image"
    arch = "hyperprior"
    description = "learned lossy: mean-scale hyperprior autoencoder, exact entropy parameters, a quality ladder"
    modes = frozenset({"L", "LA", "RGB", "RGBA"})
    rate_control = True  # takes psnr= / bpp= (and frame_size= from the API for bpp)
    MAX_SIDE = 65535
    default_max_pixels = 1 << 26  # 67 MP: a few minutes and about 9 GB to decode (docs/RELIABILITY.md)
    max_pixels_reason = " that hyperprior decodes by default"

    @property
    def params(self) -> tuple[Param, ...]:  # type: ignore[override]
        """Declared from the model's own ladder (its file's header: no weights are loaded for it)."""
        L = self.n_qualities
        lo, hi = self.quality_range
        return (Param("quality", "float", min(DEFAULT_QUALITY, float(L)), lo, hi,
                      f"position on the model's ladder 1..{L} (fractions interpolate; beyond it, extrapolated gains)"),
                Param("psnr", "float", None, 0, 100, "rate control: the smallest file with at least this PSNR"),
                Param("bpp", "float", None, 0, 64, "rate control: the best PSNR within this many bits per pixel"),
                Param("step", "int", None, 1, 255, "with quality: a residual layer, the difference to the decoded "
                      "image in steps of this size (smaller: higher PSNR, more bits)"),
                Param("effort", "int", 0, 0, 2, "1, 2: refine the latents for this image (about 120 or 450 synthesis passes "
                      "with gradients: a slower encode, about 5 % fewer bits for the PSNR; decoding unchanged)"))

    def __init__(self, model=None):
        super().__init__(model)
        self._header_levels: int | None = None  # the ladder's length as the model file's header gives it

    @property
    def n_qualities(self) -> int:
        """The ladder's length: the loaded model's, else its file's header's (read once)."""
        if self._model is None and self._header_levels is None and self.model_path is not None \
                and self.model_path.is_file():
            try:
                self._header_levels = len(zoo.config_of(self.model_path)["lambdas"])
            except (GencodecError, KeyError, TypeError):
                pass  # loading the model says what is wrong with it
        if self._model is None and self._header_levels is not None:
            return self._header_levels
        return self.model.cfg.levels

    @property
    def bench_qualities(self) -> tuple[int, ...]:
        """What a benchmark sweeps: the model's trained ladder, 1..L (the shipped model: 1..8)."""
        return tuple(range(1, self.n_qualities + 1))

    # -- parameters -----------------------------------------------------------------------------
    def _target(self, params: dict[str, Any]) -> str:
        """Which of quality, psnr and bpp the call gives (at most one; default quality)."""
        params = dict(params)
        given = [k for k in ("quality", "psnr", "bpp") if params.get(k) is not None]
        for k in ("quality", "psnr", "bpp", "effort"):
            params.pop(k, None)
        self.check_no_params(params)
        if len(given) > 1:
            raise UnsupportedInputError(f"codec {self.name!r}: give one of quality, psnr and bpp, not {' and '.join(given)}")
        return given[0] if given else "quality"

    @property
    def quality_range(self) -> tuple[float, float]:
        """(lowest, highest) quality: the ladder 1..L and EXTRAPOLATE steps beyond each end."""
        return 1.0 - EXTRAPOLATE, self.n_qualities + EXTRAPOLATE

    def _quality(self, value: Any) -> float:
        ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
        lo, hi = self.quality_range
        if not ok or not math.isfinite(float(value)) or not lo <= float(value) <= hi:
            raise UnsupportedInputError(f"codec {self.name!r}: quality must be a number from {lo:g} to {hi:g} (1 to "
                                        f"{self.n_qualities}: the trained ladder; beyond: extrapolated), not {value!r}")
        return float(value)

    # -- encode ---------------------------------------------------------------------------------
    def encode(self, img: Image.Image, **params: Any) -> Encoded:
        self.check_mode(img)
        params = dict(params)
        frame_size = params.pop("frame_size", None)
        step = params.pop("step", None)
        effort = next(p for p in self.params if p.name == "effort").check(self.name, params.get("effort", 0))
        if effort and self.model.cfg.distortion != "mse":
            raise UnsupportedInputError(f"codec {self.name!r}: effort refines the latents for MSE; this model was "
                                        f"trained for {self.model.cfg.distortion}")
        kind = self._target(params)
        value = params.get(kind, min(DEFAULT_QUALITY, float(self.n_qualities)))
        if step is not None:
            if kind != "quality":
                raise UnsupportedInputError(f"codec {self.name!r}: step goes with quality (rate control "
                                            f"chooses its own residual layer)")
            step = next(p for p in self.params if p.name == "step").check(self.name, step)
        if img.width < 1 or img.height < 1:
            raise UnsupportedInputError(f"cannot code an empty image ({img.width}x{img.height} pixels)")
        if max(img.size) > self.MAX_SIDE:
            raise UnsupportedInputError(f"codec {self.name!r} codes images up to {self.MAX_SIDE} pixels a side")
        alpha = self._alpha(img)
        target = np.asarray(img.convert("L")) if img.mode in ("L", "LA") else np.asarray(img.convert("RGB"))
        coder = _Coder(self.model, np.asarray(img.convert("RGB")), target, len(alpha), frame_size)
        if kind == "quality":
            best = coder.trial(self._quality(value))
            if effort:
                best = coder.refined(best, effort)
            if step is not None:
                best = coder.layered(best, step)
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise UnsupportedInputError(f"codec {self.name!r}: {kind} must be a positive number, not {value!r}")
            best = self._rate_control(coder, kind, float(value))
            if effort and best.layer is None:
                best = self._refined_search(coder, kind, float(value), best, effort)
        payload = struct.pack("<I", len(alpha)) + alpha + best.body()
        stats = {"ideal_bits": best.ideal_bits(len(payload)), "model_ideal_bits": best.ideal,
                 "quality": best.q, "clamped_latents": best.clamped, "psnr": coder.psnr(best),
                 "residual_step": best.step, "refined": best.refined}
        return Encoded(payload, best.params(), stats)

    def trials(self, rgb: np.ndarray) -> "_Coder":
        """The encoder's trials for an RGB image ((H, W, 3) uint8): what rate control searches --
        ``trial(q)``, ``layered(t, step)``, ``step_for_psnr``, ``size``, ``psnr`` (for benchmarks)."""
        return _Coder(self.model, rgb, rgb, 0, None)

    def _rate_control(self, coder: "_Coder", kind: str, value: float) -> "_Trial":
        """psnr: the smallest file that reaches it; bpp: the best PSNR that fits. The ladder first,
        bisecting the continuous quality; then residual layers over the LAYER_BASES trained points
        below the answer (the ladder's top ones when the target lies beyond it: a PSNR no quality
        reaches, or bits the top cannot use) compete with it."""
        if kind == "psnr":
            def good(t: _Trial) -> bool:
                return coder.psnr(t) >= value
        else:
            def good(t: _Trial) -> bool:
                return 8 * coder.size(t) / coder.n_pixels <= value

        # the points in order from the likeliest to succeed: the extrapolated end, the ladder's end,
        # the ladder's other end, the extrapolated other end. ``ok`` ends as a point known to
        # succeed and ``other`` as its neighbour that does not (then bisected).
        want_low = kind == "psnr"
        lo, hi = self.quality_range
        l_top = float(self.n_qualities)
        far_ok, end_ok, end_other, far_other = (hi, l_top, 1.0, lo) if want_low else (lo, 1.0, l_top, hi)
        beyond_top = False  # the target lies beyond the ladder's top
        ok: _Trial | None = coder.trial(end_ok)
        other = None
        if not good(ok):  # the ladder cannot: its extrapolated end, then bisect up to it
            beyond_top = want_low
            far = coder.trial(far_ok)
            if good(far):
                ok, other = far, end_ok
            elif want_low:
                ok = None  # only a residual layer reaches it
            else:
                least = 8 * coder.size(far) / coder.n_pixels
                raise UnsupportedInputError(f"codec {self.name!r}: {value} bits per pixel is below what quality "
                                            f"{far_ok:g} needs ({least:.4f} bits per pixel)")
        else:
            res = coder.trial(end_other)
            if good(res):  # the whole ladder meets it: then perhaps beyond its other end too
                beyond_top = not want_low
                ok, other = res, far_other
                res = coder.trial(other)
                if good(res):
                    ok, other = res, None
            else:
                other = end_other
        if ok is not None and other is not None:
            a, b = ok.q, other
            for _ in range(RATE_STEPS):
                mid = (a + b) / 2
                res = coder.trial(mid)
                if good(res):
                    ok, a = res, mid
                else:
                    b = mid
        # residual layers over the ladder points below the answer compete: above the middle of the
        # shipped ladder, a layer over a lower point is often the smaller file (held-out photos)
        top = self.n_qualities if ok is None or beyond_top else min(self.n_qualities, math.ceil(ok.q) - 1)
        bases = [coder.trial(float(q)) for q in range(max(1, top - LAYER_BASES + 1), top + 1)]
        if want_low:
            layered = [coder.layered(t, coder.step_for_psnr(t, value)) for t in bases]
            return min([t for t in (ok, *layered) if t is not None], key=coder.size)
        layered = [t for t in (coder.step_for_bpp(b, value) for b in bases) if t is not None]
        return max([ok, *layered], key=lambda t: (coder.psnr(t), -coder.size(t)))

    def _refined_search(self, coder: "_Coder", kind: str, value: float, best: "_Trial", effort: int) -> "_Trial":
        """Rate control's answer refined: refinement moves a quality's PSNR and size (at low
        qualities it trades a little PSNR for many bits), so the refined file that meets the target
        best lies at another quality. Up to REFINE_TRIES refined trials, from the answer's quality,
        each next one aimed just inside the target by the plain curve's slope there (the refined
        curve is too noisy for secants: its PSNR is not monotone in the quality at this scale),
        at least MIN_STEP further when a trial missed; the best that meets the target wins (psnr:
        the smallest, bpp: the sharpest) if it beats the plain answer."""
        lo, hi = self.quality_range
        up = 1.0 if kind == "psnr" else -1.0  # the direction that helps a trial which missed

        def f(t: _Trial) -> float:  # what the target constrains
            return coder.psnr(t) if kind == "psnr" else 8 * coder.size(t) / coder.n_pixels

        def good(t: _Trial) -> bool:
            return math.isfinite(f(t)) and (f(t) >= value if kind == "psnr" else f(t) <= value)

        def rank(t: _Trial) -> tuple[float, float]:  # lower is better
            return (coder.size(t), -coder.psnr(t)) if kind == "psnr" else (-coder.psnr(t), coder.size(t))

        aim = value + 0.03 if kind == "psnr" else value * 0.995
        q = best.q
        dq = 0.25 if q + 0.25 <= hi else -0.25
        slope = (f(coder.trial(q + dq)) - f(best)) / dq  # plain: PSNR or bpp per quality step
        if not (math.isfinite(slope) and slope > 0):
            return best
        winner = best
        for _ in range(REFINE_TRIES):
            r = coder.trial(q, refine=effort)
            ok = good(r)
            if ok and rank(r) < rank(winner):
                winner = r
            step = (aim - f(r)) / slope
            if not ok and up * step < MIN_STEP:
                step = up * MIN_STEP
            nxt = min(max(q + step, lo), hi)
            if abs(nxt - q) < 1e-3:
                break
            q = nxt
        return winner

    @staticmethod
    def _alpha(img: Image.Image) -> bytes:
        if img.mode not in ("LA", "RGBA"):
            return b""
        buf = io.BytesIO()
        img.getchannel("A").save(buf, format="PNG", optimize=True)
        return buf.getvalue()

    # -- decode ---------------------------------------------------------------------------------
    def decode(self, payload: bytes, header: Any) -> Image.Image:
        from ..exact import driver

        self.check_model(header)
        if header.mode not in self.modes:
            raise CorruptFileError(f"a {self.name} frame cannot hold image mode {header.mode!r}")
        params = dict(header.params or {})
        if set(params) not in ({"quality", "latents"}, {"quality", "latents", "step"}):
            raise CorruptFileError(f"{self.name} frame params must be quality, latents and perhaps step, "
                                   f"not {sorted(params)}")
        step = params.get("step")
        if step is not None and (isinstance(step, bool) or not isinstance(step, int) or not 1 <= step <= 255):
            raise CorruptFileError(f"{self.name} frame: bad residual step {step!r}")
        try:
            q = self._quality(params["quality"])
        except UnsupportedInputError:
            raise CorruptFileError(f"{self.name} frame: bad quality {params['quality']!r}") from None
        if len(payload) < 4:
            raise CorruptFileError(f"{self.name} payload truncated")
        (n_alpha,) = struct.unpack_from("<I", payload)
        if 4 + n_alpha > len(payload) or (n_alpha > 0) != (header.mode in ("LA", "RGBA")):
            raise CorruptFileError(f"{self.name} payload: bad alpha section")
        alpha_png, rest = payload[4 : 4 + n_alpha], payload[4 + n_alpha :]
        if len(rest) < 4:
            raise CorruptFileError(f"{self.name} payload truncated")
        (n_esc,) = struct.unpack_from("<I", rest)
        if 4 + n_esc > len(rest):
            raise CorruptFileError(f"{self.name} payload: bad escapes section")
        escapes, stream = unpack_escapes(rest[4 : 4 + n_esc]), rest[4 + n_esc :]
        layer = b""
        if step is not None:  # u32 stream length | stream | residual layer
            if len(stream) < 4 or 4 + struct.unpack_from("<I", stream)[0] > len(stream):
                raise CorruptFileError(f"{self.name} payload: bad latent stream section")
            n_stream = struct.unpack_from("<I", stream)[0]
            stream, layer = stream[4 : 4 + n_stream], stream[4 + n_stream :]
        model = self.model
        shape = model.symbol_shape(header.height, header.width)
        sym = driver.decode(model, shape, stream)
        q_res, classes = None, None
        if step is not None:  # the layer's symbols need only the exact tables
            classes = residual_classes(activity(model.complete_tables(sym)), header.height, header.width)
            channels = () if header.mode in ("L", "LA") else (3,)
            q_res = residual.decode_symbols(layer, step, classes, (header.height, header.width, *channels))
        if _crc(sym, q_res) != params["latents"]:
            raise CorruptFileError("latents differ from the encoder's (checksum): the file is damaged, or this "
                                   "machine computed other tables (please report)")  # (a residual layer's too)
        try:
            px = model.synthesise(sym, q, header.height, header.width, escapes)
        except ValueError as e:
            raise CorruptFileError(f"{self.name} payload: {e}") from None
        img = Image.fromarray(px)
        if header.mode in ("L", "LA"):
            img = img.convert("L")
        if q_res is not None:
            img = Image.fromarray(residual.apply(np.asarray(img), q_res, step))
        if n_alpha:
            try:
                a = Image.open(io.BytesIO(alpha_png))
                a.load()
            except Exception:
                raise CorruptFileError(f"{self.name} payload: damaged alpha plane") from None
            if a.size != img.size or a.mode != "L":
                raise CorruptFileError(f"{self.name} payload: alpha plane of the wrong size or mode")
            img = Image.merge(header.mode, (*img.split(), a))
        return img
