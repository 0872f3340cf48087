"""``hyperprior``: the learned lossy image codec (gencodec.models.hyperprior), with rate control.

Parameters (one of them): ``quality`` -- a number in [1 - EXTRAPOLATE, L + EXTRAPOLATE] (L = the
ladder's length, which the declared range follows; default 4, or L if smaller). Qualities 1..L are
the trained ladder, fractions interpolate its gains geometrically, and beyond either end the gains
are extrapolated from the end pair (coarser or finer steps than any trained point: a lower or higher
rate than the ladder reaches, at a less efficient trade-off than a trained point would give; chosen
on held-out training photos, where rate and PSNR stay monotone over the whole range). ``psnr`` --
the smallest file whose PSNR is at least this; ``bpp`` -- the best PSNR whose file (its frame
included) has at most this many bits per pixel. Rate control tries the ladder's end first and goes
beyond it only when the ladder cannot meet the target, then bisects the continuous quality
(RATE_STEPS tries, each reusing the one analysis transform: only the hyper-transforms, the coder
and -- for ``psnr`` -- the synthesis run again).

Modes: RGB; L through replication (restored as L); RGBA and LA with the alpha plane coded
losslessly beside the colour (PNG). The frame stores the quality and a checksum of the latents
(CRC-32 of the symbols), which decoding verifies before any pixel is made.

Payload: ``u32 alpha length | alpha PNG | u32 escapes length | escapes | range-coded symbols``
(no alpha: length 0). Escapes: the latents beyond their tables (coded as the overflow symbol), in
coding order, zigzag LEB128 varints.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from typing import Any

import numpy as np
from PIL import Image

from ..codec import Encoded, Param
from ..errors import CorruptFileError, GencodecError, UnsupportedInputError
from ..models import zoo
from .neural import NeuralCodec

__all__ = ["HyperpriorCodec", "DEFAULT_QUALITY", "FRAME_ALLOWANCE"]

DEFAULT_QUALITY = 4.0
RATE_STEPS = 9  # bisection steps of rate control (the quality interval shrinks by 2**-9)
EXTRAPOLATE = 2.0  # qualities reach this many ladder steps beyond each end of the ladder (extrapolated gains)
#: bytes of frame around the payload that ``bpp`` budgets for when the caller does not say (the
#: API passes the exact frame size: ``frame_size(params, payload_length)``)
FRAME_ALLOWANCE = 160


def _crc(symbols: np.ndarray) -> str:
    return f"{zlib.crc32(np.ascontiguousarray(symbols, dtype='<i4').tobytes()) & 0xFFFFFFFF:08x}"


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


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


class HyperpriorCodec(NeuralCodec):
    name = "hyperprior"
    kind = "lossy-image"
    arch = "hyperprior"
    description = "learned lossy: mean-scale hyperprior autoencoder, exact entropy parameters, a quality ladder"
    modes = frozenset({"L", "LA", "RGB", "RGBA"})
    rate_control = True  # takes psnr= / bpp= (and frame_size= from the API for bpp)
    MAX_SIDE = 65535
    default_max_pixels = 1 << 26  # about a minute to decode on two cores
    max_pixels_reason = " that hyperprior decodes by default"

    @property
    def params(self) -> tuple[Param, ...]:  # type: ignore[override]
        """Declared from the model's own ladder (its file's header: no weights are loaded for it)."""
        L = self.n_qualities
        lo, hi = self.quality_range
        return (Param("quality", "float", min(DEFAULT_QUALITY, float(L)), lo, hi,
                      f"position on the model's ladder 1..{L} (fractions interpolate; beyond it, extrapolated gains)"),
                Param("psnr", "float", None, 0, 100, "rate control: the smallest file with at least this PSNR"),
                Param("bpp", "float", None, 0, 64, "rate control: the best PSNR within this many bits per pixel"))

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
        for k in ("quality", "psnr", "bpp"):
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
        from ..exact import driver

        self.check_mode(img)
        params = dict(params)
        frame_size = params.pop("frame_size", None)
        kind = self._target(params)
        value = params.get(kind, min(DEFAULT_QUALITY, float(self.n_qualities)))
        if img.width < 1 or img.height < 1:
            raise UnsupportedInputError(f"cannot code an empty image ({img.width}x{img.height} pixels)")
        if max(img.size) > self.MAX_SIDE:
            raise UnsupportedInputError(f"codec {self.name!r} codes images up to {self.MAX_SIDE} pixels a side")
        rgb = np.asarray(img.convert("RGB"))
        alpha = self._alpha(img)
        model = self.model
        analysis = model.analyse(rgb)
        target = np.asarray(img.convert("L")) if img.mode in ("L", "LA") else rgb
        n_pixels = img.width * img.height

        def trial(q: float):
            sym, y_sym, means = analysis.at(q)
            stream, ideal = driver.encode(model, sym)
            escapes = pack_escapes(analysis.escapes)
            body = struct.pack("<I", len(escapes)) + escapes + stream  # escapes count at their size
            return sym, y_sym, means, body, ideal + 8 * (len(body) - len(stream)), analysis.clamped

        def restored(y_sym, means, q):
            px = analysis.pixels(y_sym, means, q)
            return np.asarray(Image.fromarray(px).convert("L")) if target.ndim == 2 else px

        if kind == "quality":
            q = self._quality(value)
            sym, y_sym, means, stream, ideal, clamped = trial(q)
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise UnsupportedInputError(f"codec {self.name!r}: {kind} must be a positive number, not {value!r}")
            def size(res, q) -> int:
                n = len(res[3]) + len(alpha) + 4
                if frame_size is None:
                    return n + FRAME_ALLOWANCE
                return frame_size({"quality": q, "latents": _crc(res[0])}, n)

            def good(res, q) -> bool:
                if kind == "psnr":
                    return _psnr(restored(res[1], res[2], q), target) >= value
                return 8 * size(res, q) / n_pixels <= value

            # psnr: the smallest quality that reaches it; bpp: the largest that fits. The points in
            # order from the likeliest to succeed: the extrapolated end, the ladder's end, the ladder's
            # other end, the extrapolated other end. The ladder's ends are tried first; ``ok`` ends as
            # a point known to succeed and ``other`` as its neighbour that does not (then bisected).
            want_low = kind == "psnr"
            lo, hi = self.quality_range
            l_top = float(self.n_qualities)
            far_ok, end_ok, end_other, far_other = (hi, l_top, 1.0, lo) if want_low else (lo, 1.0, l_top, hi)
            ok, res_ok = end_ok, trial(end_ok)
            if not good(res_ok, ok):  # the ladder cannot: its extrapolated end, then bisect up to it
                res_far = trial(far_ok)
                if not good(res_far, far_ok):
                    if want_low:
                        best = _psnr(restored(res_far[1], res_far[2], far_ok), target)
                        what = f"PSNR {value} dB is beyond this model (quality {far_ok:g} reaches {best:.2f} dB)"
                    else:
                        least = 8 * size(res_far, far_ok) / n_pixels
                        what = (f"{value} bits per pixel is below what quality {far_ok:g} needs "
                                f"({least:.4f} bits per pixel)")
                    raise UnsupportedInputError(f"codec {self.name!r}: {what}")
                ok, res_ok, other = far_ok, res_far, end_ok
            else:
                other = end_other
                res = trial(other)
                if good(res, other):  # the whole ladder meets it: then perhaps beyond its other end too
                    ok, res_ok, other = other, res, far_other
                    res = trial(other)
                    if good(res, other):
                        ok, res_ok = other, res
            if other != ok:
                for _ in range(RATE_STEPS):
                    mid = (ok + other) / 2
                    res = trial(mid)
                    if good(res, mid):
                        ok, res_ok = mid, res
                    else:
                        other = mid
            q = ok
            sym, y_sym, means, stream, ideal, clamped = res_ok
        measured = _psnr(restored(y_sym, means, q), target)  # what decompress restores on this machine
        payload = struct.pack("<I", len(alpha)) + alpha + stream
        stats = {"ideal_bits": ideal + 8 * (len(alpha) + 4), "model_ideal_bits": ideal, "quality": q,
                 "clamped_latents": clamped, "psnr": measured}
        return Encoded(payload, {"quality": q, "latents": _crc(sym)}, stats)

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
        if set(params) != {"quality", "latents"}:
            raise CorruptFileError(f"{self.name} frame params must be quality and latents, not {sorted(params)}")
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
        model = self.model
        shape = model.symbol_shape(header.height, header.width)
        sym = driver.decode(model, shape, stream)
        if _crc(sym) != params["latents"]:
            raise CorruptFileError("latents differ from the encoder's (checksum): the file is damaged, or this "
                                   "machine computed other tables (please report)")
        try:
            px = model.synthesise(sym, q, header.height, header.width, escapes)
        except ValueError as e:
            raise CorruptFileError(f"{self.name} payload: {e}") from None
        img = Image.fromarray(px)
        if header.mode in ("L", "LA"):
            img = img.convert("L")
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
