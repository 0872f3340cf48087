"""Classical image codecs behind the Codec interface: references and fallbacks.

Lossless: PNG, WebP lossless, JPEG XL lossless, JPEG 2000 (reversible 5/3 + RCT). Each keeps the
image mode exactly; modes a format cannot store are mapped reversibly (see ``image_planes``).
Lossy: JPEG, WebP, AVIF, JPEG XL, each with ``quality`` (default 75). Lossy codecs take L and RGB
images only (no alpha, no palette: PSNR is defined on those) and refuse other modes.

Every encoder runs single-threaded with fixed settings, so the same pixels give the same bytes
(for a given library version). Payloads are the format's own file (codestream for JPEG 2000),
preceded by the palette for P images.
"""

from __future__ import annotations

import dataclasses
import io
from typing import Any

import numpy as np
from PIL import Image

from ..codec import Codec, Encoded, Param
from ..errors import CorruptFileError, LimitError, UnsupportedInputError
from . import image_planes

DEFAULT_QUALITY = 75


def _int_param(codec: Codec, params: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    """Pop ``key`` from ``params``: an int in [lo, hi]; refuse anything else and unknown keys."""
    value = params.pop(key, default)
    codec.check_no_params(params)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise UnsupportedInputError(f"codec {codec.name!r}: {key} must be an integer from {lo} to {hi}, not {value!r}")
    return int(value)


def _check_side(codec: Codec, img: Image.Image, max_side: int) -> None:
    if img.width > max_side or img.height > max_side:
        raise UnsupportedInputError(
            f"codec {codec.name!r} codes images up to {max_side} pixels a side, not {img.width}x{img.height}"
        )


def _open(data: bytes, header: Any, fmt: str) -> Image.Image:
    """Open a bitstream of format ``fmt`` (Pillow's name; no other format is tried, so a frame
    labelled with the wrong codec is refused), checking its size against the header before decoding."""
    try:
        im = Image.open(io.BytesIO(data), formats=[fmt])
    except Image.DecompressionBombError:
        raise LimitError(f"Pillow refuses to decode images of over {2 * Image.MAX_IMAGE_PIXELS} pixels") from None
    except Image.UnidentifiedImageError:
        raise CorruptFileError(f"payload is not a {fmt} bitstream") from None
    if im.size != (header.width, header.height):
        raise CorruptFileError(f"payload holds a {im.width}x{im.height} image, the header says {header.width}x{header.height}")
    im.load()
    return im


JXL_MAGIC = (b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")  # bare codestream, ISOBMFF container
J2K_MAGIC = b"\xff\x4f\xff\x51"


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _check_magic(data: bytes, magics: tuple[bytes, ...], label: str) -> None:
    if not any(data.startswith(m) for m in magics):
        raise CorruptFileError(f"payload is not a {label} bitstream")


def _array_to_image(arr: np.ndarray, mode: str) -> Image.Image:
    """A PIL image of ``mode`` from a decoded (H, W[, C]) uint8/uint16 array."""
    if mode == "I;16":
        if arr.dtype != np.uint16 or arr.ndim != 2:
            raise CorruptFileError(f"decoded {arr.dtype} array of shape {arr.shape} for a 16-bit grey image")
        return Image.fromarray(np.ascontiguousarray(arr))
    channels = len(Image.new(mode, (1, 1)).getbands())
    if arr.dtype != np.uint8:
        raise CorruptFileError(f"decoded {arr.dtype} samples for an 8-bit {mode} image")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if (arr.ndim == 2 and channels != 1) or (arr.ndim == 3 and arr.shape[2] != channels):
        raise CorruptFileError(f"decoded array of shape {arr.shape} for a {mode} image")
    return Image.frombytes(mode, (arr.shape[1], arr.shape[0]), np.ascontiguousarray(arr).tobytes())


# ---------------------------------------------------------------------------------------------
# lossless


class _LosslessImageCodec(Codec):
    """Shared lossless path: map the mode (image_planes), code the plane, undo the mapping."""

    kind = "lossless-image"
    native: frozenset[str] = frozenset()

    def encode(self, img: Image.Image, **params: Any) -> Encoded:
        self.check_mode(img)
        options = self._options(dict(params))
        plane = image_planes.to_plane(img, self.native)
        bitstream = self._encode_plane(plane.image, **options)
        return Encoded(plane.side + bitstream, dict(plane.params))

    def decode(self, payload: bytes, header: Any) -> Image.Image:
        side, bitstream = image_planes.split_payload(payload, header.params)
        mode = image_planes.plane_mode(header.mode, header.params)
        plane = self._decode_plane(bitstream, mode, header)
        if plane.size != (header.width, header.height):
            raise CorruptFileError(f"payload holds a {plane.width}x{plane.height} image, the header says {header.width}x{header.height}")
        return image_planes.from_plane(plane, header.mode, header.params, side)

    def _options(self, params: dict[str, Any]) -> dict[str, Any]:
        self.check_no_params(params)
        return {}

    def native_payload(self, payload: bytes, header: Any) -> bytes:
        """The bitstream without gencodec's side bytes (a palette); it holds the coded plane (e.g.
        a P image as its RGB(A) colours where the format has no palette)."""
        return image_planes.split_payload(payload, header.params)[1]

    def _encode_plane(self, plane: Image.Image, **options: Any) -> bytes:  # pragma: no cover - interface
        raise NotImplementedError

    def _decode_plane(self, bitstream: bytes, mode: str, header: Any) -> Image.Image:  # pragma: no cover
        raise NotImplementedError


class PNGCodec(_LosslessImageCodec):
    """PNG at zlib level 9; of several filter/strategy choices the smallest file is kept.

    Candidates: Pillow's adaptive per-row filter with zlib strategies default and filtered, and
    libpng (imagecodecs) with fixed filters sub, up, paeth and its adaptive "all", each with
    strategies default and filtered. On Kodak the winner varies by image (1-3% apart);
    trying all ten costs 1-2 s for a 768x512 photo. Decoding needs no parameters.
    """

    name = "png"
    description = "PNG, zlib level 9 with the best filter strategy"
    native_suffix = ".png"
    native = frozenset({"1", "L", "LA", "RGB", "RGBA", "I;16"})
    modes = image_planes.supported_modes(native)

    def _encode_plane(self, plane: Image.Image) -> bytes:
        candidates = []
        for strategy in (0, 1):  # zlib Z_DEFAULT_STRATEGY, Z_FILTERED
            buf = io.BytesIO()
            plane.save(buf, format="PNG", compress_level=9, compress_type=strategy)
            candidates.append(buf.getvalue())
        if plane.mode != "1":
            import imagecodecs

            arr = np.asarray(plane)
            for png_filter in ("SUB", "UP", "PAETH", "ALL"):
                for strategy in ("DEFAULT", "FILTERED"):
                    candidates.append(
                        bytes(imagecodecs.png_encode(
                            arr, level=9, strategy=getattr(imagecodecs.PNG.STRATEGY, strategy),
                            filter=getattr(imagecodecs.PNG.FILTER, png_filter),
                        ))
                    )
        return min(candidates, key=len)  # first of the smallest: deterministic

    def _decode_plane(self, bitstream: bytes, mode: str, header: Any) -> Image.Image:
        return _open(bitstream, header, "PNG")


class WebPLosslessCodec(_LosslessImageCodec):
    """WebP lossless (Pillow/libwebp): method 6, quality 100, exact (RGB under alpha 0 kept).

    WebP stores RGB and RGBA; L, LA, "1" and P are mapped onto them; 16-bit grey is refused.
    """

    name = "webp-lossless"
    description = "WebP lossless, method 6, exact"
    native_suffix = ".webp"
    native = frozenset({"RGB", "RGBA"})
    modes = image_planes.supported_modes(native)
    MAX_SIDE = 16383

    def unavailable_reason(self) -> str | None:
        from PIL import features

        return None if features.check("webp") else "Pillow was built without WebP support"

    def _encode_plane(self, plane: Image.Image) -> bytes:
        _check_side(self, plane, self.MAX_SIDE)
        buf = io.BytesIO()
        plane.save(buf, format="WEBP", lossless=True, quality=100, method=6, exact=True)
        return buf.getvalue()

    def _decode_plane(self, bitstream: bytes, mode: str, header: Any) -> Image.Image:
        im = _open(bitstream, header, "WEBP")
        # libwebp drops an all-opaque alpha channel: RGB here means alpha 255 everywhere
        return im.convert(mode) if im.mode in ("RGB", "RGBA") and mode in ("RGB", "RGBA") else im


class JPEGXLLosslessCodec(_LosslessImageCodec):
    """JPEG XL lossless (libjxl via imagecodecs); ``effort`` 1-9 (default 7), not needed to decode."""

    name = "jpeg-xl-lossless"
    description = "JPEG XL lossless (libjxl)"
    native_suffix = ".jxl"
    native = frozenset({"L", "LA", "RGB", "RGBA", "I;16"})
    modes = image_planes.supported_modes(native)
    DEFAULT_EFFORT = 7
    params = (Param("effort", "int", DEFAULT_EFFORT, 1, 9, "libjxl effort (slower, smaller)"),)
    levels = {n: {"effort": n} for n in range(1, 10)}

    def unavailable_reason(self) -> str | None:
        return _imagecodecs_reason("JPEGXL", "JPEG XL")

    def _options(self, params: dict[str, Any]) -> dict[str, Any]:
        return dict(effort=_int_param(self, params, "effort", self.DEFAULT_EFFORT, 1, 9))

    def _encode_plane(self, plane: Image.Image, effort: int) -> bytes:
        import imagecodecs

        return bytes(imagecodecs.jpegxl_encode(np.asarray(plane), lossless=True, effort=effort, numthreads=1))

    def _decode_plane(self, bitstream: bytes, mode: str, header: Any) -> Image.Image:
        import imagecodecs

        _check_magic(bitstream, JXL_MAGIC, "JPEG XL")
        return _array_to_image(imagecodecs.jpegxl_decode(bitstream, numthreads=1), mode)


class JPEG2000LosslessCodec(_LosslessImageCodec):
    """JPEG 2000 codestream (OpenJPEG via imagecodecs): reversible 5/3 wavelet, RCT on RGB(A)."""

    name = "jpeg2000-lossless"
    description = "JPEG 2000 reversible 5/3 with RCT"
    native_suffix = ".j2k"
    native = frozenset({"L", "LA", "RGB", "RGBA", "I;16"})
    modes = image_planes.supported_modes(native)

    def unavailable_reason(self) -> str | None:
        return _imagecodecs_reason("JPEG2K", "JPEG 2000")

    def _encode_plane(self, plane: Image.Image) -> bytes:
        import imagecodecs

        arr = np.asarray(plane)
        return bytes(imagecodecs.jpeg2k_encode(
            arr, reversible=True, mct=plane.mode in ("RGB", "RGBA"),
            codecformat=imagecodecs.JPEG2K.CODEC.J2K, numthreads=1,
        ))

    def _decode_plane(self, bitstream: bytes, mode: str, header: Any) -> Image.Image:
        import imagecodecs

        _check_magic(bitstream, (J2K_MAGIC,), "JPEG 2000 codestream")
        return _array_to_image(imagecodecs.jpeg2k_decode(bitstream, numthreads=1), mode)


def _imagecodecs_reason(attr: str, label: str) -> str | None:
    try:
        import imagecodecs
    except ImportError:
        return "the imagecodecs package is not installed"
    return None if getattr(imagecodecs, attr).available else f"imagecodecs was built without {label}"


# ---------------------------------------------------------------------------------------------
# lossy


class _LossyImageCodec(Codec):
    """Shared lossy path: L or RGB in, ``quality`` in [QUALITY_MIN, 100], same size and mode out."""

    kind = "lossy-image"
    modes = frozenset({"L", "RGB"})
    QUALITY_MIN = 0
    params = (Param("quality", "int", DEFAULT_QUALITY, 0, 100),)
    MAX_SIDE = 65535

    def encode(self, img: Image.Image, **params: Any) -> Encoded:
        self.check_mode(img)
        quality = _int_param(self, dict(params), "quality", DEFAULT_QUALITY, self.QUALITY_MIN, 100)
        if img.width < 1 or img.height < 1:
            raise UnsupportedInputError(f"cannot code an empty image ({img.width}x{img.height} pixels)")
        _check_side(self, img, self.MAX_SIDE)
        img = image_planes.canonical(img)
        if img.mode in ("LA", "RGBA") and self.SEPARATE_ALPHA:  # alpha exact, beside the colour
            alpha = _png(img.getchannel("A"))
            payload = self._encode(img.convert("L" if img.mode == "LA" else "RGB"), quality) + alpha
            return Encoded(payload, {"quality": quality, "alpha": len(alpha)})
        return Encoded(self._encode(img, quality), {"quality": quality})

    #: header mode -> the mode the bitstream decodes to, where they differ (WebP codes L as RGB)
    CODED_MODES: dict[str, str] = {}
    #: alpha coded losslessly as a PNG after the bitstream (params "alpha": its length), for a
    #: format whose own alpha is lossy
    SEPARATE_ALPHA = False

    def decode(self, payload: bytes, header: Any) -> Image.Image:
        if header.mode not in self.modes:
            raise CorruptFileError(f"a {self.name} frame cannot hold image mode {header.mode!r}")
        alpha_sep = self.SEPARATE_ALPHA and header.mode in ("LA", "RGBA")
        if set(header.params) != ({"quality", "alpha"} if alpha_sep else {"quality"}):
            raise CorruptFileError(f"{self.name} frame params must be quality{' and alpha' if alpha_sep else ''}, "
                                   f"not {sorted(header.params)}")
        q = header.params["quality"]
        if isinstance(q, bool) or not isinstance(q, int) or not self.QUALITY_MIN <= q <= 100:
            raise CorruptFileError(f"{self.name} frame: bad quality {q!r}")
        if alpha_sep:
            n = header.params["alpha"]
            if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= len(payload):
                raise CorruptFileError(f"{self.name} frame: bad alpha length {n!r}")
            colour = self.decode(payload[:-n], dataclasses.replace(
                header, mode="L" if header.mode == "LA" else "RGB", params={"quality": q}))
            alpha = _open(payload[-n:], header, "PNG")
            if alpha.mode != "L":
                raise CorruptFileError(f"{self.name} payload: alpha plane of mode {alpha.mode}")
            return Image.merge(header.mode, (*colour.split(), alpha))
        img = self._decode(payload, header)
        if img.size != (header.width, header.height):
            raise CorruptFileError(f"payload holds a {img.width}x{img.height} image, the header says {header.width}x{header.height}")
        expected = self.CODED_MODES.get(header.mode, header.mode)
        if expected == "RGBA" and img.mode == "RGB" and self.OPAQUE_DROPS_ALPHA:
            img = img.convert("RGBA")  # libwebp drops an all-opaque alpha channel
        if img.mode != expected:  # never a silent conversion into a mode the encoder did not code
            raise CorruptFileError(f"payload holds a {img.mode} image, the header says {header.mode}")
        return img if img.mode == header.mode else img.convert(header.mode)

    OPAQUE_DROPS_ALPHA = False

    def _encode(self, img: Image.Image, quality: int) -> bytes:  # pragma: no cover - interface
        raise NotImplementedError

    PILLOW_FORMAT = ""  # Pillow's name of the bitstream format

    def _decode(self, payload: bytes, header: Any) -> Image.Image:
        return _open(payload, header, self.PILLOW_FORMAT)


class JPEGCodec(_LossyImageCodec):
    """Baseline JPEG (libjpeg-turbo via Pillow): quality 1-100 (default 75), 4:2:0, optimized Huffman."""

    name = "jpeg"
    description = "JPEG (libjpeg-turbo), quality 1-100"
    native_suffix = ".jpg"
    QUALITY_MIN = 1
    params = (Param("quality", "int", DEFAULT_QUALITY, 1, 100),)
    MAX_SIDE = 65500
    PILLOW_FORMAT = "JPEG"

    def _encode(self, img: Image.Image, quality: int) -> bytes:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=quality, subsampling="4:2:0", optimize=True)
        return buf.getvalue()


class WebPCodec(_LossyImageCodec):
    """Lossy WebP (libwebp via Pillow): quality 0-100 (default 75), method 6. L is coded as RGB."""

    name = "webp"
    description = "WebP lossy, quality 0-100"
    native_suffix = ".webp"
    MAX_SIDE = 16383
    PILLOW_FORMAT = "WEBP"
    modes = frozenset({"L", "LA", "RGB", "RGBA"})
    CODED_MODES = {"L": "RGB", "LA": "RGBA"}
    OPAQUE_DROPS_ALPHA = True

    def unavailable_reason(self) -> str | None:
        return WebPLosslessCodec.unavailable_reason(self)

    def _encode(self, img: Image.Image, quality: int) -> bytes:
        buf = io.BytesIO()
        if img.mode == "LA":
            img = img.convert("RGBA")
        img.save(buf, format="WEBP", quality=quality, method=6, **({"alpha_quality": 100} if img.mode == "RGBA" else {}))
        return buf.getvalue()


class AVIFCodec(_LossyImageCodec):
    """AVIF (libavif + aom via Pillow): quality 0-100 (default 75), speed 6, 4:2:0 (4:0:0 for L), 1 thread."""

    name = "avif"
    description = "AVIF (libavif), quality 0-100"
    native_suffix = ".avif"
    PILLOW_FORMAT = "AVIF"
    modes = frozenset({"L", "LA", "RGB", "RGBA"})
    SEPARATE_ALPHA = True  # AVIF's own alpha is lossy here

    def unavailable_reason(self) -> str | None:
        from PIL import features

        return None if features.check("avif") else "Pillow was built without AVIF support"

    def _encode(self, img: Image.Image, quality: int) -> bytes:
        buf = io.BytesIO()
        img.save(buf, format="AVIF", quality=quality, speed=6, max_threads=1)
        return buf.getvalue()


class JPEGXLCodec(_LossyImageCodec):
    """Lossy JPEG XL (libjxl via imagecodecs): quality 0-100 (default 75; 90 is distance 1.0), effort 7."""

    name = "jpeg-xl"
    description = "JPEG XL lossy (libjxl), quality 0-100"
    native_suffix = ".jxl"

    modes = frozenset({"L", "LA", "RGB", "RGBA"})  # libjxl codes alpha losslessly

    def unavailable_reason(self) -> str | None:
        return _imagecodecs_reason("JPEGXL", "JPEG XL")

    def _encode(self, img: Image.Image, quality: int) -> bytes:
        import imagecodecs

        return bytes(imagecodecs.jpegxl_encode(np.asarray(img), level=quality, effort=7, numthreads=1))

    def _decode(self, payload: bytes, header: Any) -> Image.Image:
        import imagecodecs

        _check_magic(payload, JXL_MAGIC, "JPEG XL")
        arr = imagecodecs.jpegxl_decode(payload, numthreads=1)
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        channels = 1 if arr.ndim == 2 else arr.shape[2]
        return _array_to_image(arr, {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}.get(channels, "RGB"))
