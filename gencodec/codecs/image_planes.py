"""Reversible mapping of Pillow image modes onto the pixel layouts a classical format stores.

A format stores some modes natively (its ``native`` set, e.g. WebP: RGB and RGBA). Other modes
are mapped onto a native one, and the mapping is recorded so decoding can undo it exactly:

    P     -> L  (the index plane; palette and transparency go in front of the bitstream)
    "1"   -> L  (values 0 and 255), where "1" is not native
    L     -> RGB  (R = G = B), where L is not native but RGB is
    LA    -> RGBA (R = G = B = L), where LA is not native but RGBA is

``Plane.params`` holds what decoding needs (``plane``: the mode the bitstream holds, and for P
images ``palette_mode``, ``palette_n_bytes``, ``transparency`` or ``transparency_n_bytes``);
``Plane.side`` holds the palette and transparency bytes the payload carries before the bitstream.
An image with a native mode maps to itself with empty params and no side bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from ..errors import CorruptFileError, UnsupportedInputError

#: Palette modes a P image may have (what ``Image.putpalette(rawmode=...)`` restores exactly).
PALETTE_MODES = ("RGB", "RGBA")


@dataclass(frozen=True)
class Plane:
    """An image in a mode the format stores, and how to get the original back."""

    image: Image.Image  # what the format codes; its mode is in the format's native set
    params: dict[str, Any] = field(default_factory=dict)  # stored in the frame header
    side: bytes = b""  # palette (+ transparency) bytes, stored before the bitstream


def supported_modes(native: frozenset[str]) -> frozenset[str]:
    """Every mode a format with ``native`` modes can code through the mappings above."""
    modes = set(native)
    if "RGB" in native:
        modes.add("L")
    if "RGBA" in native:
        modes.add("LA")
    if "L" in modes:
        modes.update({"1", "P"})
    return frozenset(modes)


def canonical(img: Image.Image) -> Image.Image:
    """A fresh copy holding only pixels (and for P: palette and transparency), no metadata.

    Encoders given the canonical copy write no ICC profile, EXIF, text or gamma chunks, so the
    bitstream depends on the pixels alone.
    """
    out = Image.frombytes(img.mode, img.size, img.tobytes())
    if img.mode == "P":
        pmode = img.palette.mode if img.palette is not None else "RGB"
        if pmode not in PALETTE_MODES:
            raise UnsupportedInputError(f"palette mode {pmode!r} is not supported (only RGB or RGBA palettes)")
        out.putpalette(img.getpalette(rawmode=pmode) or b"", rawmode=pmode)
        if "transparency" in img.info:
            out.info["transparency"] = img.info["transparency"]
    return out


def to_plane(img: Image.Image, native: frozenset[str]) -> Plane:
    """Map ``img`` onto a mode in ``native``; raises UnsupportedInputError when none fits."""
    if img.mode not in supported_modes(native):
        raise UnsupportedInputError(
            f"image mode {img.mode!r} cannot be coded here (supported: {', '.join(sorted(supported_modes(native)))})"
        )
    if img.width < 1 or img.height < 1:
        raise UnsupportedInputError(f"cannot code an empty image ({img.width}x{img.height} pixels)")
    plane = canonical(img)
    params: dict[str, Any] = {}
    side = b""
    if plane.mode == "P":
        pmode = plane.palette.mode
        palette = bytes(plane.getpalette(rawmode=pmode) or b"")
        params.update(palette_mode=pmode, palette_n_bytes=len(palette))
        side = palette
        transparency = plane.info.get("transparency")
        if isinstance(transparency, int):
            params["transparency"] = transparency
        elif isinstance(transparency, (bytes, bytearray)):
            params["transparency_n_bytes"] = len(transparency)
            side += bytes(transparency)
        elif transparency is not None:
            raise UnsupportedInputError(f"P image transparency of type {type(transparency).__name__} is not supported")
        plane = Image.frombytes("L", plane.size, plane.tobytes())
    elif plane.mode == "1" and "1" not in native:
        plane = plane.convert("L")
    if plane.mode == "L" and "L" not in native:
        plane = Image.merge("RGB", (plane, plane, plane))
    elif plane.mode == "LA" and "LA" not in native:
        grey, alpha = plane.split()
        plane = Image.merge("RGBA", (grey, grey, grey, alpha))
    if plane.mode != img.mode:
        params["plane"] = plane.mode
    return Plane(plane, params, side)


def side_n_bytes(params: dict[str, Any]) -> int:
    """How many payload bytes precede the bitstream (palette and transparency of a P image)."""
    n = params.get("palette_n_bytes", 0) + params.get("transparency_n_bytes", 0)
    if not isinstance(n, int) or n < 0:
        raise CorruptFileError("corrupt header: bad palette size")
    return n


#: every key :func:`to_plane` may write into a frame's params
PARAM_KEYS = frozenset({"plane", "palette_mode", "palette_n_bytes", "transparency", "transparency_n_bytes"})


def split_payload(payload: bytes, params: dict[str, Any]) -> tuple[bytes, bytes]:
    """(side bytes, bitstream) of a payload written as ``plane.side + bitstream``; params that
    :func:`to_plane` does not write are refused."""
    unknown = set(params) - PARAM_KEYS
    if unknown:
        raise CorruptFileError(f"unknown params {sorted(unknown)} in the header")
    n = side_n_bytes(params)
    if n > len(payload):
        raise CorruptFileError(f"truncated payload: {len(payload)} bytes, the palette alone needs {n}")
    return payload[:n], payload[n:]


def plane_mode(mode: str, params: dict[str, Any]) -> str:
    """The mode the bitstream holds for an image of ``mode`` coded with ``params``."""
    return params.get("plane", mode)


def from_plane(plane: Image.Image, mode: str, params: dict[str, Any], side: bytes) -> Image.Image:
    """Undo :func:`to_plane`: the decoded ``plane`` back to an image of ``mode``."""
    expected = plane_mode(mode, params)
    if plane.mode != expected:
        raise CorruptFileError(f"decoded a {plane.mode} image where the header says {expected}")
    img = plane
    if img.mode == "RGB" and mode in ("L", "1", "P"):
        img = img.getchannel("R")
    elif img.mode == "RGBA" and mode == "LA":
        img = Image.merge("LA", (img.getchannel("R"), img.getchannel("A")))
    if mode == "1" and img.mode == "L":
        img = img.convert("1", dither=Image.Dither.NONE)
    elif mode == "P":
        n_palette = params.get("palette_n_bytes", 0)
        pmode = params.get("palette_mode")
        if pmode not in PALETTE_MODES:
            raise CorruptFileError(f"corrupt header: palette mode {pmode!r}")
        indices = img.tobytes()
        img = Image.frombytes("P", plane.size, indices)
        img.putpalette(side[:n_palette], rawmode=pmode)
        if "transparency" in params:
            img.info["transparency"] = params["transparency"]
        elif "transparency_n_bytes" in params:
            img.info["transparency"] = side[n_palette:]
    if img.mode != mode:
        raise CorruptFileError(f"cannot restore image mode {mode!r} from a {plane.mode} bitstream")
    return img
