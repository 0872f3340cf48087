"""Image input and output: which files are coded as pixels, their canonical form and digest.

Lossless image formats (PNG, PPM/PGM, BMP, TIFF) holding one frame in a supported mode are coded
as pixels and restored as PNG with identical pixels and mode; everything else is coded as bytes.
A lossy codec also takes a JPEG or WebP file as its decoded pixels, turned upright by its EXIF
orientation (restored as PNG, like any lossy frame). Metadata (EXIF, ICC profiles, text chunks)
is not kept: an image is its pixels.
"""

from __future__ import annotations

import io
from pathlib import Path

from .container import checksum
from .errors import UnsupportedInputError

#: Pillow formats coded as pixels.
PIXEL_FORMATS = {"PNG", "PPM", "BMP", "TIFF"}
#: Pillow formats a lossy codec also takes, as their decoded pixels (restored as PNG).
DECODED_FORMATS = {"JPEG", "WEBP"}
#: Pillow modes a frame can describe, with their bits per sample.
BIT_DEPTHS = {"1": 1, "L": 8, "LA": 8, "RGB": 8, "RGBA": 8, "P": 8, "I;16": 16}
#: The same modes with their channels (a palette index counts as one, as in :func:`n_subpixels`).
CHANNELS = {"1": 1, "L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "P": 1, "I;16": 1}


def bit_depth(mode: str) -> int:
    if mode not in BIT_DEPTHS:
        raise UnsupportedInputError(
            f"image mode {mode!r} is not supported (supported: {', '.join(BIT_DEPTHS)})"
        )
    return BIT_DEPTHS[mode]


def n_subpixels(img) -> int:
    """Samples in the image: width x height x channels (a palette index counts as one)."""
    return img.width * img.height * len(img.getbands())


def palette_bytes(img) -> tuple[str, bytes]:
    """(palette mode, raw palette) of a P image; ("", b"") otherwise."""
    if img.mode != "P":
        return "", b""
    pmode = img.palette.mode
    return pmode, bytes(img.getpalette(rawmode=pmode) or b"")


def pixel_digest(img) -> bytes:
    """Checksum of an image's canonical form: mode, size, palette, transparency, pixels."""
    pmode, pal = palette_bytes(img)
    transparency = img.info.get("transparency") if img.mode == "P" else None
    if isinstance(transparency, bytes):
        transparency = transparency.hex()
    head = f"{img.mode} {img.width}x{img.height} {pmode} {transparency}\n".encode()
    return checksum(head + pal + img.tobytes())


def try_open_pixels(data: bytes, formats: set[str] = PIXEL_FORMATS):
    """Open ``data`` as a single-frame image in one of ``formats`` and a supported mode, or return None.

    A JPEG or WebP file is turned upright by its EXIF orientation (as viewers show it): its pixels
    are restored as a PNG, which keeps no metadata."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
        if img.format not in formats or getattr(img, "n_frames", 1) != 1:
            return None
        if img.mode not in BIT_DEPTHS:
            return None
        img.load()
        return ImageOps.exif_transpose(img) if img.format in DECODED_FORMATS else img
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


def pixel_file_mode(data: bytes, formats: set[str] = PIXEL_FORMATS) -> str | None:
    """The Pillow mode of ``data`` when it is an image file in one of ``formats`` (any mode), else None.

    Lets an error name the mode of an image that :func:`try_open_pixels` refused (CMYK, F, I).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    return img.mode if img.format in formats else None


def to_image(obj):
    """A PIL image from a PIL image or a uint8/uint16 numpy array (H, W), (H, W, 1..4)."""
    from PIL import Image

    if isinstance(obj, Image.Image):
        obj.load()
        return obj
    import numpy as np

    arr = np.asarray(obj)
    if arr.dtype == np.uint16 and arr.ndim == 2:
        return Image.fromarray(arr, mode=None)
    if arr.dtype != np.uint8:
        raise UnsupportedInputError(f"numpy arrays must be uint8 (or 2-D uint16), not {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        return Image.fromarray(arr, "L")
    if arr.ndim == 3 and arr.shape[2] in (2, 3, 4):
        return Image.fromarray(np_contig(arr), {2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[2]])
    raise UnsupportedInputError(f"cannot code an array of shape {arr.shape} as an image")


def np_contig(arr):
    import numpy as np

    return np.ascontiguousarray(arr)


def save_png(img, path_or_file) -> None:
    """Write ``img`` as PNG keeping pixels and mode (palette and transparency too)."""
    kw = {}
    if img.mode == "P" and "transparency" in img.info:
        kw["transparency"] = img.info["transparency"]
    img.save(path_or_file, format="PNG", compress_level=6, **kw)


def png_bytes(img) -> bytes:
    buf = io.BytesIO()
    save_png(img, buf)
    return buf.getvalue()


def restored_name(name: str) -> str:
    """The file name an image is restored under: its stem with a .png suffix."""
    p = Path(name)
    return p.name if p.suffix.lower() == ".png" else p.with_suffix(".png").name
