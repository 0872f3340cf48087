"""One-shot API: ``compress``, ``decompress``, ``info``.

``compress(data, codec)`` is exactly ``get_codec(codec).encode(...)`` plus the .gcx frame;
``decompress(blob)`` is exactly ``get_codec(header.codec).decode(...)`` plus the checksum check.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import container, imageio, limits
from .container import Header
from .errors import (
    ChecksumError,
    CodecUnavailableError,
    CorruptFileError,
    GencodecError,
    LimitError,
    ModelMismatchError,
    UnsupportedInputError,
)
from .registry import (
    AUTO_BYTES_CANDIDATES,
    AUTO_IMAGE_RANKING,
    AUTO_JPEG,
    AUTO_NEURAL_BYTES,
    AUTO_NEURAL_MIN_BYTES,
    AUTO_NEURAL_MIN_PIXELS,
    get_codec,
    get_entry,
)

#: Images whose header claims more pixels than this are refused before decoding
#: (override per call with ``max_pixels=`` or with the GENCODEC_MAX_PIXELS environment variable).
DEFAULT_MAX_PIXELS = limits.DEFAULT_MAX_PIXELS


def max_pixels_default() -> int:
    return limits.max_pixels()[0]


@dataclass
class CompressReport:
    """The frame written by :func:`compress_report`, and what it cost."""

    blob: bytes
    header: Header
    n_bytes_in: int  # bytes of the original file (or raw pixels for an in-memory image)
    n_subpixels: int | None  # images: width x height x channels
    seconds: float
    stats: dict[str, Any] = field(default_factory=dict)  # e.g. ideal_bits from a model
    payload_bytes: int | None = None  # the codec's payload inside the frame (the rest is header and chunk framing)

    @property
    def n_bytes_out(self) -> int:
        return len(self.blob)

    @property
    def bits_per_byte(self) -> float:
        return 8 * self.n_bytes_out / max(self.n_bytes_in, 1)

    @property
    def bits_per_subpixel(self) -> float | None:
        return 8 * self.n_bytes_out / self.n_subpixels if self.n_subpixels else None

    def to_dict(self) -> dict[str, Any]:
        d = dict(
            codec=self.header.codec,
            kind=self.header.kind,
            name=self.header.name,
            n_bytes_in=self.n_bytes_in,
            n_bytes_out=self.n_bytes_out,
            bits_per_byte=self.bits_per_byte if self.n_bytes_in else None,  # none for the empty input
            seconds=self.seconds,
        )
        if self.n_subpixels:
            d.update(n_subpixels=self.n_subpixels, bits_per_subpixel=self.bits_per_subpixel)
            if self.header.width and self.header.height:
                d["bits_per_pixel"] = 8 * self.n_bytes_out / (self.header.width * self.header.height)
        d.update(self.stats)
        return d


# ---------------------------------------------------------------------------------------------
# input normalisation


def _load(data: Any, as_image: bool | None) -> tuple[Any, bytes | None, str]:
    """-> (image or None, original bytes or None, name)."""
    from_path = isinstance(data, (str, os.PathLike))
    name = ""
    if from_path:
        path = Path(data)
        if path.is_dir():
            raise UnsupportedInputError(f"{path}: is a directory")
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise UnsupportedInputError(f"{path}: no such file") from None
        except PermissionError:
            raise UnsupportedInputError(f"{path}: permission denied") from None
        except OSError as e:
            raise UnsupportedInputError(f"{path}: cannot read ({e.strerror})") from None
        data, name = raw, path.name
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        if as_image is False or (as_image is None and not from_path):
            return None, raw, name
        return imageio.try_open_pixels(raw), raw, name
    return imageio.to_image(data), None, name


def _raw_pixel_bytes(img) -> int:
    return len(img.tobytes())


def compress_report(
    data: Any, codec: str = "auto", *, name: str | None = None, as_image: bool | None = None, **params: Any
) -> CompressReport:
    """Like :func:`compress`, returning the frame with its sizes, timing and model statistics."""
    t0 = time.perf_counter()
    img, raw, found_name = _load(data, as_image)
    name = found_name if name is None else name
    if codec != "auto":
        kind = get_entry(codec).kind
        if kind == "bytes":
            if raw is None:
                raise UnsupportedInputError(f"codec {codec!r} codes bytes; give it bytes or a file, not an image")
            header, enc = _encode_bytes(raw, codec, name, params)
        else:
            if img is None:
                lossy = kind == "lossy-image"  # a lossy codec also takes a JPEG or WebP file's pixels
                formats = imageio.PIXEL_FORMATS | imageio.DECODED_FORMATS if lossy else imageio.PIXEL_FORMATS
                why = ("bytes given" if raw is not None and as_image is None and not name
                       else "not an image file" if lossy else "not a lossless image file")
                img = imageio.try_open_pixels(raw, formats) if raw is not None else None
                mode = imageio.pixel_file_mode(raw, formats) if raw is not None and img is None else None
                if mode is not None:
                    imageio.bit_depth(mode)  # raises, naming the mode
                    raise UnsupportedInputError(f"codec {codec!r} cannot code this image (several frames, or damaged)")
                if img is None:
                    listed = "PNG, PPM/PGM, BMP, TIFF, JPEG or WebP" if lossy else "PNG, PPM/PGM, BMP or TIFF"
                    raise UnsupportedInputError(
                        f"codec {codec!r} codes images; the input is {why} ({listed} in a supported mode)"
                    )
            header, enc = _encode_image(img, codec, name, params)
    elif img is not None:
        header, enc = _auto_image(img, raw, name, params)
    else:
        header, enc = _auto_bytes(raw, name, params)
    blob = container.pack(header, enc.payload)
    n_in = len(raw) if raw is not None else _raw_pixel_bytes(img)
    n_sub = imageio.n_subpixels(img) if header.kind == "image" else None
    return CompressReport(blob, header, n_in, n_sub, time.perf_counter() - t0, dict(enc.stats), len(enc.payload))


def compress(data: Any, codec: str = "auto", *, name: str | None = None, as_image: bool | None = None, **params: Any) -> bytes:
    """Compress ``data`` into a .gcx frame.

    data: ``bytes`` (coded as bytes), a path (``str``/``PathLike``: a PNG, PPM/PGM, BMP or TIFF
    image is coded as pixels, anything else as bytes; a lossy image codec also takes a JPEG or WebP
    file as its decoded pixels), a PIL image, or a uint8 numpy array (H, W[, C]). ``as_image=True``
    makes ``bytes`` input that holds such an image code as pixels.
    codec: a registered name (``gencodec.list_codecs()``) or ``"auto"``. ``params`` go to the
    codec (e.g. ``quality=80`` for lossy codecs, ``level=3`` for zstd, ``model=PATH`` for neural
    ones); ``compression_level=N`` (1 fastest ... 9 smallest) means each codec's own setting for
    that level (``gencodec codecs --verbose``; with ``auto``, for the candidates that have levels).
    """
    return compress_report(data, codec, name=name, as_image=as_image, **params).blob


def _codec(name: str, params: dict[str, Any], auto: bool = False):
    """(codec built with ``params["model"]`` when given, the other params for ``encode``, with
    ``compression_level`` replaced by what that level means for the codec -- for ``auto``'s
    candidates, nothing where a codec has no levels)."""
    model = params.get("model")
    codec = get_codec(name, **({"model": model} if model is not None else {}))
    out = {k: v for k, v in params.items() if k not in ("model", "compression_level")}
    level = params.get("compression_level")
    if level is not None and (codec.levels or not auto):
        out = {**codec.level_params(level), **out}
    return codec, out


def _encode_bytes(raw: bytes, codec_name: str, name: str, params: dict[str, Any], auto: bool = False):
    codec, encode_params = _codec(codec_name, params, auto)
    enc = codec.encode(raw, **encode_params)
    header = Header(
        codec=codec.name, kind="bytes", checksum=container.checksum(raw), params=enc.params,
        model_id=codec.model_id if enc.uses_model else b"", name=name, length=len(raw),
    )
    return header, enc


def _require_available(codec) -> None:
    reason = codec.unavailable_reason()
    if reason is not None:
        raise CodecUnavailableError(f"codec {codec.name!r} is not available here: {reason}")


def _encode_image(img, codec_name: str, name: str, params: dict[str, Any], auto: bool = False):
    codec, encode_params = _codec(codec_name, params, auto)
    imageio.bit_depth(img.mode)  # refuses unknown modes with a message naming the mode
    codec.check_mode(img)
    _require_available(codec)
    lossy = codec.kind == "lossy-image"

    def make_header(enc_params: dict[str, Any], checksum: bytes, uses_model: bool = True) -> Header:
        return Header(
            codec=codec.name, kind="image", checksum=checksum, params=enc_params,
            model_id=codec.model_id if uses_model else b"", name=name,
            width=img.width, height=img.height, mode=img.mode, bit_depth=imageio.bit_depth(img.mode),
        )

    if getattr(codec, "rate_control", False) and "bpp" in encode_params:  # budgets count the whole frame
        encode_params["frame_size"] = lambda p, n: container.frame_size(make_header(p, bytes(16)), n)
    enc = codec.encode(img, **encode_params)
    if lossy:  # the digest covers the header too: an edited mode or size never decodes
        return make_header(enc.params, container.lossy_checksum(make_header(enc.params, b"", enc.uses_model),
                                                                enc.payload), enc.uses_model), enc
    return make_header(enc.params, imageio.pixel_digest(img), enc.uses_model), enc


def _auto_image(img, raw: bytes | None, name: str, params: dict[str, Any]):
    for codec_name in AUTO_IMAGE_RANKING:
        if img.width * img.height < AUTO_NEURAL_MIN_PIXELS.get(codec_name, 0):
            continue
        codec = get_codec(codec_name)
        if codec.available and img.mode in (codec.auto_modes or codec.modes):
            header, enc = _encode_image(img, codec_name, name, params, auto=True)
            break
    else:
        if raw is None:
            raise UnsupportedInputError(f"no lossless image codec here codes image mode {img.mode!r}")
        return _auto_bytes(raw, name, params)
    # never larger than storing the original file as it is (compare whole frames: an image
    # header is a few bytes longer than a bytes header)
    if raw is not None:
        stored = Header(codec="stored", kind="bytes", checksum=container.checksum(raw), name=name, length=len(raw))
        if container.frame_size(header, len(enc.payload)) >= container.frame_size(stored, len(raw)):
            return _auto_bytes(raw, name, params)
    return header, enc


def _auto_bytes(raw: bytes, name: str, params: dict[str, Any]):
    """Every candidate that is available (and, for a neural one, sized for the input); the smallest
    whole frame wins (a neural frame's header also carries a model id), ties to the earlier one."""
    best, best_size = None, None
    neural = [c for c, limit in AUTO_NEURAL_BYTES.items() if AUTO_NEURAL_MIN_BYTES <= len(raw) <= limit]
    jpeg = [AUTO_JPEG] if raw.startswith(b"\xff\xd8\xff") else []
    for codec_name in [*jpeg, *neural, *AUTO_BYTES_CANDIDATES]:
        codec = get_codec(codec_name)
        if not codec.available:
            continue
        try:
            header, enc = _encode_bytes(raw, codec_name, name, params, auto=True)
        except UnsupportedInputError:
            if codec_name in jpeg:  # a JPEG libjxl cannot reconstruct: the others still try
                continue
            raise
        size = container.frame_size(header, len(enc.payload))
        if best is None or size < best_size:
            best, best_size = (header, enc), size
    return best


# ---------------------------------------------------------------------------------------------
# decoding


def decompress(blob: bytes, *, model: str | os.PathLike | None = None, max_pixels: int | None = None,
               max_bytes: int | None = None) -> Any:
    """Restore what :func:`compress` framed: ``bytes``, or a PIL image for image frames.

    The checksum in the frame is verified before anything is returned. ``model`` decodes a frame
    written with a user-trained model; a frame whose model id differs is refused. Frames claiming
    more than ``max_pixels`` pixels or ``max_bytes`` bytes are refused before any allocation
    (defaults: :mod:`gencodec.limits`). Every failure is a :class:`GencodecError` with a one-line message.
    """
    header, payload = container.unpack(bytes(blob))
    return _decode(header, payload, model=model, max_pixels=max_pixels, max_bytes=max_bytes)


_IMAGE_KINDS = ("lossless-image", "lossy-image")


def check_header(header: Header, codec, max_pixels: int | None = None, max_bytes: int | None = None) -> None:
    """Every header field checked against the codec and the limits, before any decoding."""
    if (header.kind == "image") != (codec.kind in _IMAGE_KINDS):
        raise CorruptFileError(f"a {header.kind} frame cannot be coded with {codec.name} (a {codec.kind} codec)")
    if len(header.model_id) not in (0, 16):
        raise CorruptFileError(f"model id of {len(header.model_id)} bytes (ids are 16 bytes)")
    if header.kind == "image":
        if header.mode not in getattr(codec, "frame_modes", codec.modes):
            raise CorruptFileError(f"a {codec.name} frame cannot hold image mode {header.mode!r}")
        if header.bit_depth != imageio.bit_depth(header.mode):
            raise CorruptFileError(f"bit depth {header.bit_depth} does not match image mode {header.mode}")
        if header.width < 1 or header.height < 1:
            raise CorruptFileError(f"image of {header.width}x{header.height} pixels")
        limit, how = limits.max_pixels(max_pixels, getattr(codec, "default_max_pixels", None))
        if header.width * header.height > limit:
            why = getattr(codec, "max_pixels_reason", "")
            raise LimitError(f"image of {header.width}x{header.height} pixels exceeds the limit of {limit:,} pixels"
                             f"{why} ({how})")
    else:
        limit = limits.max_bytes(max_bytes)
        if header.length > limit:
            raise LimitError(f"frame restores {header.length:,} bytes, over the limit of {limit:,} "
                             "(raise it with --max-bytes or GENCODEC_MAX_BYTES)")


def _decode(header: Header, payload: bytes, *, model=None, max_pixels=None, max_bytes=None) -> Any:
    codec = get_codec(header.codec, **({"model": model} if model is not None else {}))
    check_header(header, codec, max_pixels, max_bytes)
    _require_available(codec)
    if codec.model_id != header.model_id and model is None:  # written by an earlier shipped model?
        codec = codec.for_model_id(header.model_id) or codec
    if header.model_id and codec.model_id != header.model_id:  # no model id: decodes without the model
        elsewhere = getattr(codec, "model_elsewhere", None) if model is None else None
        hint = elsewhere(header.model_id) if elsewhere is not None else None
        if hint:  # an earlier shipped model this installation lacks: say where it is kept
            raise ModelMismatchError(f"the file was coded with {header.codec} model {header.model_id.hex()}, {hint}")
        raise ModelMismatchError(
            f"the file was coded with model {header.model_id.hex() or '(none)'}, not with "
            f"{codec.model_id.hex() or '(none)'}" + ("" if model is not None else " (give the model with --model PATH)")
        )
    lossy = codec.kind == "lossy-image"
    if lossy and header.checksum not in (container.lossy_checksum(header, payload), _legacy_lossy(header, payload)):
        raise ChecksumError("checksum mismatch: the coded data or its header is damaged")
    try:
        out = codec.decode(payload, header)
    except GencodecError:
        raise
    except MemoryError:
        raise LimitError(f"out of memory decoding this {header.codec} frame (lower the limits, or free memory)") from None
    except Exception as e:  # a library choking on damaged data
        raise CorruptFileError(f"corrupt {header.codec} payload: {type(e).__name__}: {e}") from e
    if header.kind == "bytes":
        if not isinstance(out, (bytes, bytearray)) or len(out) != header.length or container.checksum(out) != header.checksum:
            raise ChecksumError("checksum mismatch: the restored bytes differ from the original")
    elif out.size != (header.width, header.height) or out.mode != header.mode:
        raise CorruptFileError(f"payload restores a {out.mode} image of {out.width}x{out.height}, the header says "
                               f"{header.mode} {header.width}x{header.height}")
    elif not lossy and imageio.pixel_digest(out) != header.checksum:
        raise ChecksumError("checksum mismatch: the restored pixels differ from the original")
    return out


#: lossy codecs whose frames written before the header-covering digest hold the payload's digest
_LEGACY_LOSSY = frozenset({"jpeg", "webp", "avif", "jpeg-xl"})


def _legacy_lossy(header: Header, payload: bytes) -> bytes | None:
    """The payload digest that lossy frames of earlier versions store; accepted for those codecs
    only (their decoders refuse any mode the payload does not hold)."""
    return container.checksum(payload) if header.codec in _LEGACY_LOSSY else None


def info(blob: bytes) -> dict[str, Any]:
    """The frame's header as a dict, with ``n_bytes`` (whole frame) and ``payload_bytes``; for a frame
    written with a model, ``model``: ``"shipped"``, ``"archived"`` (an earlier shipped model this
    installation keeps), ``"archive-package"`` (an earlier shipped model kept in gencodec-archive, which
    is not installed) or ``"unknown"`` (decoding it needs that model's file). No model is loaded."""
    header, payload = container.unpack(bytes(blob))
    d = header.to_dict()
    d.update(n_bytes=len(blob), payload_bytes=len(payload))
    if header.model_id:  # whether this installation can decode it by itself, and if not, what would
        try:
            where = getattr(get_codec(header.codec), "model_origin", None)
            d["model"] = (where(header.model_id) if where else None) or "unknown"
        except GencodecError:  # an unknown codec, a damaged model file: info still reads the header
            d["model"] = "unknown"
    if header.kind == "image":
        channels = imageio.CHANNELS.get(header.mode)
        if channels:
            d["bits_per_subpixel"] = 8 * len(blob) / max(header.width * header.height * channels, 1)
            d["bits_per_pixel"] = 8 * len(blob) / max(header.width * header.height, 1)  # lossy codecs' unit
    elif header.length:
        d["bits_per_byte"] = 8 * len(blob) / header.length
    return d
