"""Frame fuzzing shared by tests/test_robustness.py (a bounded budget in CI) and
scripts/fuzz.py (the long profile whose counts docs/RELIABILITY.md reports).

A *sample* is a genuine frame of one codec with what it restores. A *mutation* is either damage
(bit flips, truncation, insertion, deletion anywhere in the frame) or a *semantic header edit*
with the header CRC recomputed (codec, kind, mode, size, bit depth, length, params, model id).
:func:`outcome` decodes a mutated frame and classifies it: ``"restored"`` (exactly what the
sample restores), ``"refused"`` (a GencodecError with a one-line message) -- anything else (a
foreign exception, a multi-line message, a silently different result) raises AssertionError.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from PIL import Image

import gencodec
from gencodec import container
from gencodec.errors import GencodecError

MODES = ["1", "L", "LA", "RGB", "RGBA", "P", "I;16", "CMYK", "", "RGBX" * 70]
NAMES = ["stored", "gzip", "bz2", "xz", "zstd", "brotli", "png", "webp-lossless", "jpeg-xl-lossless",
         "jpeg2000-lossless", "jpeg", "webp", "avif", "jpeg-xl", "pixelcnn", "sparse-transformer", "bytemodel", "hyperprior",
         "jpeg-recompress",
         "nope"]
FIELDS = ["codec", "kind", "mode", "width", "height", "bit_depth", "length", "params", "model_id", "name",
          "checksum"]
DAMAGE = ["flip", "truncate", "insert", "delete"]


@dataclass
class Sample:
    codec: str
    blob: bytes
    original: Any  # bytes, or a PIL image (for lossy codecs: what the genuine frame decodes to)
    decode_kw: dict[str, Any]


def photo(w: int, h: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = 120 + 70 * np.sin(x / 7.0)[..., None] + 40 * np.cos(y / 5.0)[..., None] + np.array([0, 25, -25])
    img = Image.fromarray(np.clip(base + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8))
    if mode in ("L", "LA"):
        img = img.convert("L")
    if mode in ("LA", "RGBA"):
        img = Image.merge(mode, (*img.split(), Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8))))
    return img


def jpeg_file() -> bytes:
    import io

    buf = io.BytesIO()
    photo(40, 30).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


TEXT = (b"The quick brown fox jumps over the lazy dog; " * 40) + bytes(range(256))


#: samples that are another codec's frames with parameters: name -> (codec, its encode parameters)
VARIANTS = {"hyperprior-residual": ("hyperprior", dict(quality=2, step=5))}


def make_samples(codecs: list[str], hyperprior_model: str | None = None) -> list[Sample]:
    """One genuine frame per codec or variant (small inputs: a fuzz case decodes in milliseconds)."""
    out = []
    for label in codecs:
        name, extra = VARIANTS.get(label, (label, {}))
        kind = gencodec.get_codec(name).kind
        kw: dict[str, Any] = {}
        if name == "hyperprior":
            kw = dict(model=hyperprior_model)
        if kind == "bytes":
            data = jpeg_file() if name == "jpeg-recompress" else TEXT
            blob = gencodec.compress(data, codec=name)
            out.append(Sample(name, blob, data, {}))
            continue
        mode = "RGBA" if name in ("png", "pixelcnn", "sparse-transformer", "hyperprior") else "RGB"
        img = photo(24, 17, mode)
        params = dict(quality=60) if kind == "lossy-image" and name != "hyperprior" else dict(extra)
        blob = gencodec.compress(img, codec=name, **params, **kw)
        restored = gencodec.decompress(blob, **kw)
        out.append(Sample(label, blob, restored if kind == "lossy-image" else img, kw))
    return out


def edit_header(blob: bytes, field: str, value: Any) -> bytes:
    """The frame with one header field replaced and its CRCs recomputed."""
    header, payload = container.unpack(blob)
    return container.pack(dataclasses.replace(header, **{field: value}), payload)


def header_values(field: str, header: container.Header, rnd: random.Random) -> Any:
    """A hostile value for ``field``."""
    if field == "codec":
        return rnd.choice(NAMES)
    if field == "kind":
        return "bytes" if header.kind == "image" else "image"
    if field == "mode":
        return rnd.choice(MODES)
    if field in ("width", "height"):
        v = getattr(header, field) or 1
        return rnd.choice([0, 1, v - 1, v + 1, 2 * v, v * 64, 1 << 14, (1 << 32) - 1])
    if field == "bit_depth":
        return rnd.choice([0, 1, 16, 255])
    if field == "length":
        v = header.length if header.length is not None else 1
        return rnd.choice([0, 1, v - 1, v + 1, 10 * v, 1 << 40, (1 << 64) - 1])
    if field == "params":
        p = dict(header.params)
        choice = rnd.randrange(5)
        if choice == 0 and p:
            p.pop(rnd.choice(sorted(p)))
        elif choice == 1:
            p["unknown"] = rnd.choice([1, "x", None, [1], {"a": 1}])
        elif p:
            k = rnd.choice(sorted(p))
            p[k] = rnd.choice([None, -1, 0, 1, 3.5, 1 << 40, "x", "model", "png", "stored", [], {}, True])
        else:
            p = rnd.choice([{"coding": "stored"}, {"quality": 50}, {"plane": "P"}, {"coding": "png"}])
        return p
    if field == "model_id":
        return rnd.choice([b"", bytes(16), bytes(rnd.randrange(256) for _ in range(16)), b"\x01\x02", b"\xff" * 255])
    if field == "name":
        return rnd.choice(["", "../../etc/passwd", "/abs", "a" * 300, "x.png"])
    if field == "checksum":
        return bytes(rnd.randrange(256) for _ in range(16))
    raise ValueError(field)


def damage(blob: bytes, how: str, rnd: random.Random) -> bytes:
    b = bytearray(blob)
    if how == "flip":
        for _ in range(rnd.randint(1, 4)):
            i = rnd.randrange(len(b))
            b[i] ^= 1 << rnd.randrange(8)
    elif how == "truncate":
        del b[rnd.randrange(len(b)) :]
    elif how == "insert":
        i = rnd.randrange(len(b) + 1)
        b[i:i] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 16)))
    elif how == "delete":
        i = rnd.randrange(len(b))
        del b[i : i + rnd.randint(1, 16)]
    return bytes(b)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, (bytes, bytearray)) or isinstance(b, (bytes, bytearray)):
        return isinstance(a, (bytes, bytearray)) and isinstance(b, (bytes, bytearray)) and bytes(a) == bytes(b)
    return a.mode == b.mode and a.size == b.size and np.array_equal(np.asarray(a), np.asarray(b))


def outcome(blob: bytes, sample: Sample, decode: Callable[..., Any] = gencodec.decompress) -> str:
    """"restored" or "refused"; AssertionError for anything else."""
    try:
        out = decode(blob, **sample.decode_kw)
    except GencodecError as e:
        msg = str(e)
        assert msg and "\n" not in msg, f"{sample.codec}: multi-line or empty error: {msg!r}"
        return "refused"
    except Exception as e:  # noqa: BLE001 - the point: nothing else may escape
        raise AssertionError(f"{sample.codec}: {type(e).__name__} escaped: {e}") from e
    assert same(out, sample.original), f"{sample.codec}: a mutated frame decoded to something else (silent corruption)"
    return "restored"
