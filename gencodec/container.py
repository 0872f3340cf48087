"""The .gcx frame: magic, version, a small header, CRC-checked payload chunks.

Pure Python (struct + zlib + hashlib): importing it costs nothing, so ``gencodec info``
never loads torch. Byte-by-byte layout: docs/FORMAT.md. All integers are little-endian.

    frame   = magic "\\x89GCX" | version u8 | header_len u32 | header | header_crc u32
              | chunk* | end u32 (= 0)
    chunk   = n_bytes u32 (> 0) | n_bytes of payload | crc32 u32 (of those bytes)
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import CorruptFileError, UnsupportedVersionError

MAGIC = b"\x89GCX"
FORMAT_VERSION = 1
CHUNK_SIZE = 1 << 20  # payload bytes per chunk when writing
DIGEST_SIZE = 16  # blake2b-128 checksum of the restored data

KIND_CODES = {"bytes": 0, "image": 1}
KIND_NAMES = {v: k for k, v in KIND_CODES.items()}


def checksum(data: bytes) -> bytes:
    """The digest stored in every frame: blake2b with a 16-byte output."""
    return hashlib.blake2b(data, digest_size=DIGEST_SIZE).digest()


def lossy_checksum(header: "Header", payload: bytes) -> bytes:
    """The digest a lossy frame stores: of the payload and of every header field that changes what
    is restored (codec, params, model id, kind, size, mode, bit depth), so that no edited header
    decodes. (Frames written before this digest existed hold :func:`checksum` of the payload.)"""
    fields = dict(codec=header.codec, params=header.params, model_id=header.model_id.hex(), kind=header.kind,
                  width=header.width, height=header.height, mode=header.mode, bit_depth=header.bit_depth)
    described = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    return checksum(struct.pack("<I", len(described)) + described + payload)


@dataclass(frozen=True)
class Header:
    """What a frame says about its payload and about the data it restores.

    ``kind`` is ``"bytes"`` (``length`` set) or ``"image"`` (``width``, ``height``, ``mode``,
    ``bit_depth`` set). ``checksum`` is :func:`checksum` of the restored bytes, or of the
    canonical pixel form of the restored image (:func:`gencodec.imageio.pixel_digest`).
    """

    codec: str
    kind: Literal["bytes", "image"]
    checksum: bytes
    params: dict[str, Any] = field(default_factory=dict)
    model_id: bytes = b""
    name: str = ""
    length: int | None = None  # bytes kind: number of restored bytes
    width: int | None = None  # image kind
    height: int | None = None
    mode: str | None = None  # Pillow mode: L, LA, RGB, RGBA, P, I;16
    bit_depth: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "codec": self.codec,
            "kind": self.kind,
            "params": dict(self.params),
            "model_id": self.model_id.hex(),
            "name": self.name,
            "checksum": self.checksum.hex(),
        }
        if self.kind == "bytes":
            d["length"] = self.length
        else:
            d.update(width=self.width, height=self.height, mode=self.mode, bit_depth=self.bit_depth)
        return d


# ---------------------------------------------------------------------------------------------
# writing


def _short(b: bytes, what: str) -> bytes:
    if len(b) > 0xFF:
        raise ValueError(f"{what} is longer than 255 bytes")
    return struct.pack("<B", len(b)) + b


def _medium(b: bytes, what: str) -> bytes:
    if len(b) > 0xFFFF:
        raise ValueError(f"{what} is longer than 65535 bytes")
    return struct.pack("<H", len(b)) + b


def encode_header(h: Header) -> bytes:
    """The header body (without magic, version, length or CRC)."""
    params = json.dumps(h.params, sort_keys=True, separators=(",", ":")).encode() if h.params else b""
    out = [
        _short(h.codec.encode("ascii"), "codec name"),
        _medium(params, "codec parameters"),
        _short(h.model_id, "model id"),
        struct.pack("<B", KIND_CODES[h.kind]),
        _medium(h.name.encode("utf-8"), "file name"),
    ]
    if h.kind == "bytes":
        out.append(struct.pack("<Q", h.length))
    else:
        out.append(struct.pack("<II", h.width, h.height))
        out.append(_short(h.mode.encode("ascii"), "mode"))
        out.append(struct.pack("<B", h.bit_depth))
    out.append(_short(h.checksum, "checksum"))
    return b"".join(out)


def pack(header: Header, payload: bytes, chunk_size: int = CHUNK_SIZE) -> bytes:
    """Wrap ``payload`` in a frame described by ``header``."""
    body = encode_header(header)
    head = MAGIC + struct.pack("<BI", FORMAT_VERSION, len(body)) + body
    parts = [head, struct.pack("<I", zlib.crc32(head))]
    for start in range(0, len(payload), chunk_size):
        chunk = payload[start : start + chunk_size]
        parts += [struct.pack("<I", len(chunk)), chunk, struct.pack("<I", zlib.crc32(chunk))]
    parts.append(struct.pack("<I", 0))
    return b"".join(parts)


def frame_size(header: Header, payload_len: int, chunk_size: int = CHUNK_SIZE) -> int:
    """``len(pack(header, payload))`` for a payload of ``payload_len`` bytes, without building the frame."""
    n_chunks = -(-payload_len // chunk_size)
    return len(MAGIC) + struct.calcsize("<BI") + len(encode_header(header)) + 4 + 8 * n_chunks + payload_len + 4


# ---------------------------------------------------------------------------------------------
# reading


class _Reader:
    def __init__(self, buf: bytes, what: str):
        self.buf, self.pos, self.what = buf, 0, what

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise CorruptFileError(f"truncated {self.what} (needs {self.pos + n} bytes, has {len(self.buf)})")
        b = self.buf[self.pos : self.pos + n]
        self.pos += n
        return b

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))


def _decode_header(body: bytes) -> Header:
    r = _Reader(body, "header")
    try:
        codec = r.take(r.unpack("<B")[0]).decode("ascii")
        params_raw = r.take(r.unpack("<H")[0])
        params = json.loads(params_raw) if params_raw else {}
        model_id = r.take(r.unpack("<B")[0])
        kind = KIND_NAMES.get(r.unpack("<B")[0])
        name = r.take(r.unpack("<H")[0]).decode("utf-8")
        if kind == "bytes":
            (length,) = r.unpack("<Q")
            extra: dict[str, Any] = dict(length=length)
        elif kind == "image":
            width, height = r.unpack("<II")
            mode = r.take(r.unpack("<B")[0]).decode("ascii")
            (bit_depth,) = r.unpack("<B")
            extra = dict(width=width, height=height, mode=mode, bit_depth=bit_depth)
        else:
            raise CorruptFileError("not a valid .gcx file: unknown data kind in header")
        digest = r.take(r.unpack("<B")[0])
    except (UnicodeDecodeError, ValueError, RecursionError) as e:  # json errors are ValueErrors; deep nesting recurses
        raise CorruptFileError(f"not a valid .gcx file: unreadable header ({e.__class__.__name__})") from None
    if r.pos != len(body) or not isinstance(params, dict):
        raise CorruptFileError("not a valid .gcx file: malformed header")
    return Header(codec=codec, kind=kind, checksum=digest, params=params, model_id=model_id, name=name, **extra)


def _read_head(blob: bytes) -> tuple[Header, int]:
    if not blob:
        raise CorruptFileError("empty input: not a .gcx file")
    if not blob.startswith(MAGIC[: len(blob)]) or len(blob) < len(MAGIC):
        if blob.startswith(MAGIC[: len(blob)]):
            raise CorruptFileError("truncated .gcx file")
        raise CorruptFileError("not a .gcx file (bad magic bytes)")
    r = _Reader(blob, ".gcx file")
    r.take(len(MAGIC))
    version, body_len = r.unpack("<BI")
    if version != FORMAT_VERSION:
        raise UnsupportedVersionError(
            f"unsupported .gcx format version {version} (this gencodec reads version {FORMAT_VERSION})"
        )
    body = r.take(body_len)
    (crc,) = r.unpack("<I")
    if crc != zlib.crc32(blob[: r.pos - 4]):
        raise CorruptFileError("corrupt .gcx file: header checksum mismatch")
    return _decode_header(body), r.pos


def read_header(blob: bytes) -> Header:
    """Parse and verify only the header (cheap; used by ``info``)."""
    return _read_head(blob)[0]


def unpack(blob: bytes) -> tuple[Header, bytes]:
    """Verify a whole frame and return its header and payload.

    Raises :class:`CorruptFileError` naming the damaged chunk and its byte offset.
    """
    header, pos = _read_head(blob)
    r = _Reader(blob, ".gcx file")
    r.pos = pos
    chunks = []
    index = 0
    while True:
        (n,) = r.unpack("<I")
        if n == 0:
            break
        start = r.pos
        chunk = r.take(n)
        (crc,) = r.unpack("<I")
        if crc != zlib.crc32(chunk):
            raise CorruptFileError(f"corrupt .gcx file: payload chunk {index} (bytes {start}-{start + n - 1}) fails its CRC")
        chunks.append(chunk)
        index += 1
    if r.pos != len(blob):
        raise CorruptFileError(f"corrupt .gcx file: {len(blob) - r.pos} unexpected bytes after the end of the frame")
    return header, b"".join(chunks)


def payload_size(blob: bytes) -> int:
    """Number of payload bytes in a verified frame."""
    return len(unpack(blob)[1])
