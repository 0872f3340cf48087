"""``pixelcnn``: lossless images coded with the exact PixelCNN model and a range coder.

Path of one image, through the neural codec contract (:mod:`gencodec.exact.driver`)::

    pixels (n_coded, H, W) --ExactPixelCNN.parallel--> integer (mean, scale index) per subpixel
         --hooks (remap, histograms)--> (N, 256) integer tables --RangeEncoder--> stream

The model's schedule (:meth:`ExactPixelCNN.schedule`) is wavefronts ``t = (r + 1) * y + x`` (r =
the model's reach to the right), within a wavefront channel by channel, within a channel by row.
The decoder walks the wavefronts (:class:`~gencodec.models.pixelcnn.WavefrontSession`: one
batched trunk pass and one batched decode per channel); the encoder computes every table in one
parallel pass, and the exact core makes them identical.

Modes: RGB is coded R, G | R, B | R, G. L is coded as one channel (the model sees the grey image
as R = G = B). RGBA and LA code the colour through the model and the alpha plane as PNG. Other
modes are ``auto``'s business (it hands them to the next codec); frames that earlier versions
wrote for "1", "P" and "I;16" with PNG inside (``coding: png``) still decode.

Adaptation: first the encoder refits the end of each channel's head (output layer, hidden-unit
biases) to a sample of the image's rows (:mod:`gencodec.models.pixelcnn_headfit`, header param ``fit``; stored where it
pays, a few hundred bytes): the decoder simply runs the model with those integers. Then it maps
each (channel, predicted scale index) group to the scale index and mean offset that fit this
image best (:func:`choose_remap`, a two-pass integer recalibration stored in the payload when it
saves more than it costs); the decoder applies the same integer maps, so exactness is untouched.
Then, while coding, per-image histograms of the residuals are mixed into the tables
(:class:`~gencodec.models.pixelcnn_adapt.OnlineHistograms`, header param ``hist``): both sides count the symbols already coded, in
rounds of wavefronts, with integers only.

Payload (model path): u32 LE length of the stream | range-coded stream | u16 LE length of the
remap | zlib(scale remap as uint8 (n_coded, n_scales), mean offsets (in 1/D levels, |.| <= 3 D) + 128 as uint8) |
with ``fit``: u16 LE length | :func:`~gencodec.models.pixelcnn_headfit.pack_fit` | alpha PNG (if any).
"""

from __future__ import annotations

import dataclasses
import io
import struct
from typing import Any

import numpy as np

from .. import progress
from ..codec import Encoded
from ..errors import CorruptFileError, GencodecError
from ..models import zoo
from .neural import NeuralCodec

#: the shipped model file (earlier shipped ones: the archives, found by model id: gencodec.models.zoo)
DEFAULT_MODEL = zoo.default_weights("pixelcnn")


class PixelCNNCodec(NeuralCodec):
    name = "pixelcnn"
    kind = "lossless-image"
    arch = "pixelcnn"
    modes = frozenset({"L", "LA", "RGB", "RGBA"})
    frame_modes = modes | {"1", "P", "I;16"}  # earlier versions framed those as PNG inside ("coding": "png")
    description = "PixelCNN-family neighbourhood model, integer-exact, wavefront decoding (L, LA, RGB, RGBA)"
    #: decoding costs time in proportion to the pixels (about 10^5 a second on two cores): frames
    #: beyond this are refused unless a limit is given explicitly (--max-pixels, GENCODEC_MAX_PIXELS)
    default_max_pixels = 1 << 24
    max_pixels_reason = " that pixelcnn decodes by default (about 10^5 pixels a second on two cores)"

    # -- encode ---------------------------------------------------------------------------------
    def encode(self, img: Any, **params: Any) -> Encoded:
        from ..models.pixelcnn_headfit import FIT_VERSION
        from ..models.pixelcnn_adapt import HIST_VERSION

        self.check_no_params(params)
        self.check_mode(img)
        planes, n_coded, alpha = to_planes(img)
        stream, ideal, remap, fit = self.encode_planes(planes, n_coded)
        payload = struct.pack("<I", len(stream)) + stream + struct.pack("<H", len(remap)) + remap
        out_params: dict[str, Any] = {"coding": "model", "hist": HIST_VERSION}
        if fit:
            payload += struct.pack("<H", len(fit)) + fit
            out_params["fit"] = FIT_VERSION
        if alpha is not None:
            from PIL import Image

            from ..imageio import png_bytes

            payload += png_bytes(Image.fromarray(alpha, "L"))
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
        (kept where they pay) and the per-image scale remap (:func:`choose_remap`) is applied when
        it saves more than it costs to store. ``hist`` (default: ``adapt``) mixes the online
        histograms into the tables; the decoder must be told the same (header param ``hist``).
        ``fit`` (default: ``adapt``) switches the refitted heads alone.
        """
        from ..exact import driver
        from ..models.pixelcnn import PlaneParams
        from ..models.pixelcnn_adapt import HistHook, RemapHook, choose_remap, pack_remap
        from ..models.pixelcnn_headfit import fit_and_tables

        m = self.model
        _, h, w = planes.shape
        with progress.part(0, 2):  # the parallel pass is the first half of an encode's progress
            if adapt if fit is None else fit:
                mean, idx, packed_fit = fit_and_tables(m, planes, n_coded)
            else:
                (mean, idx), packed_fit = m.tables_parallel(planes, n_coded), b""
        hooks = []
        packed = b""
        if adapt and h * w:
            remap, bias, gain_bits = choose_remap(m.dist, planes[:n_coded], mean, idx)
            packed = pack_remap(remap, bias)
            if gain_bits > 8 * (len(packed) + 2):
                hooks.append(RemapHook(remap, bias, m.cfg.mean_steps))
            else:
                packed = b""
        if adapt if hist is None else hist:
            hooks.append(HistHook(m.cfg, n_coded, totals=True))
        with progress.part(1, 2):  # the coding rounds are the second half of an encode's progress
            # every table comes from (mean, idx): the base model's schedule and law code them (the
            # refitted heads are in the parameters already; the decoder rebuilds their model)
            stream, ideal = driver.encode(m, planes[:n_coded], hooks, params=PlaneParams(mean, idx))
        return stream, ideal, packed, packed_fit

    # -- decode ---------------------------------------------------------------------------------
    def decode(self, payload: bytes, header: Any):
        from PIL import Image

        from ..models.pixelcnn_adapt import HIST_VERSION, MAX_BIAS, unpack_remap

        coding = header.params.get("coding")
        unknown = set(header.params) - {"coding", "hist", "fit", "alpha", "png"}
        if unknown:
            raise CorruptFileError(f"{self.name}: unknown params {sorted(unknown)} in the header")
        self.check_model(header)
        if coding == "png":  # written by earlier versions for modes 1, P and I;16
            from .classic_image import PNGCodec

            return PNGCodec().decode(payload, dataclasses.replace(header, codec="png", params=dict(header.params.get("png", {}))))
        if coding != "model":
            raise CorruptFileError(f"{self.name}: unknown coding {coding!r} in the header")
        if not header.model_id:
            raise CorruptFileError(f"{self.name}: a model-coded frame without a model id")
        if len(payload) < 4:
            raise CorruptFileError(f"{self.name} payload is truncated")
        (n_stream,) = struct.unpack_from("<I", payload)
        stream, rest = payload[4 : 4 + n_stream], payload[4 + n_stream :]
        if len(stream) != n_stream or len(rest) < 2:
            raise CorruptFileError(f"{self.name} payload is truncated")
        (n_remap,) = struct.unpack_from("<H", rest)
        packed, rest = rest[2 : 2 + n_remap], rest[2 + n_remap :]
        if len(packed) != n_remap:
            raise CorruptFileError(f"{self.name} payload is truncated")
        mode, h, w = header.mode, header.height, header.width
        if mode not in self.modes:
            raise CorruptFileError(f"{self.name}: a model-coded frame of mode {mode!r}")
        n_coded = 1 if mode in ("L", "LA") else 3
        cfg = self.model.cfg
        remap = unpack_remap(packed, n_coded, cfg.n_scales, MAX_BIAS * cfg.mean_steps) if n_remap else None
        hist = header.params.get("hist")
        if hist not in (None, HIST_VERSION):
            raise CorruptFileError(f"{self.name}: unknown adaptation hist={hist!r} (written by a newer gencodec?)")
        model = self.model
        fit = header.params.get("fit")
        if fit is not None:
            from ..models import pixelcnn_headfit as headfit

            if fit not in (1, headfit.FIT_VERSION):  # 1: output layers only
                raise CorruptFileError(f"{self.name}: unknown adaptation fit={fit!r} (written by a newer gencodec?)")
            if len(rest) < 2:
                raise CorruptFileError(f"{self.name} payload is truncated")
            (n_fit,) = struct.unpack_from("<H", rest)
            blob, rest = rest[2 : 2 + n_fit], rest[2 + n_fit :]
            if len(blob) != n_fit:
                raise CorruptFileError(f"{self.name} payload is truncated")
            model = headfit.fitted_model(model, headfit.unpack_fit(blob, model, n_coded, fit))
        planes = self.decode_planes(stream, h, w, n_coded, remap=remap, hist=hist is not None, model=model)
        colour = Image.fromarray(planes[0], "L") if n_coded == 1 else Image.fromarray(planes.transpose(1, 2, 0), "RGB")
        if mode in ("LA", "RGBA"):
            if header.params.get("alpha") != "png":
                raise CorruptFileError(f"{self.name}: alpha plane missing")
            with Image.open(io.BytesIO(rest)) as a:
                alpha = a.convert("L")
            if alpha.size != (w, h):
                raise CorruptFileError(f"{self.name}: alpha plane has the wrong size")
            colour.putalpha(alpha)
            colour = colour.convert(mode) if colour.mode != mode else colour
        return colour

    def decode_planes(self, stream: bytes, h: int, w: int, n_coded: int,
                      remap: tuple[np.ndarray, np.ndarray] | None = None, hist: bool = False,
                      model=None) -> np.ndarray:
        """The wavefront decoder: stream -> planes (3, H, W) uint8 (channels >= n_coded copy channel 0).

        remap: (scale remap, mean offsets), each (n_coded, n_scales), written by the encoder, or None.
        hist: mix the online histograms into the tables (as the encoder did with ``adapt``).
        model: the model to decode with (default: this codec's; a file's refitted heads
        give another, :meth:`ExactPixelCNN.with_outputs`).
        """
        from ..exact import driver
        from ..models.pixelcnn_adapt import HistHook, RemapHook

        m = self.model if model is None else model
        hooks = [RemapHook(*remap, m.cfg.mean_steps)] if remap is not None else []
        if hist:
            hooks.append(HistHook(m.cfg, n_coded, totals=False))
        symbols = driver.decode(m, (n_coded, h, w), stream, hooks).astype(np.uint8)
        return np.ascontiguousarray(np.broadcast_to(symbols, (3, h, w))) if n_coded == 1 else symbols


def to_planes(img) -> tuple[np.ndarray, int, np.ndarray | None]:
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
