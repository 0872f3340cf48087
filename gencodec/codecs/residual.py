"""A residual layer for a lossy image codec: what its decoder restores, refined toward the image.

The base codec restores ``restored``; the layer codes ``q = round((image - restored) / step)`` per
subpixel and the decoder adds ``step * q`` (clipped to 0..255). Step 1 restores the encoder's image
exactly, larger steps trade error for bits, so a codec whose transforms cap its PSNR reaches any
PSNR. Every subpixel is coded under the table of its context -- its channel and an activity class
(``classes``, (H, W) ints) that the caller computes from data both sides share exactly (hyperprior:
the scale indices of the latents above the pixel). The tables are the image's own histograms
(semi-static: the encoder counts, then codes), normalised to ``2**TABLE_BITS`` and sent in the
layer, so each context's symbols are one range-coder call, in raster order.

Layer bytes::

    u32 n | zlib(tables) (n bytes) | range-coded symbols
    tables: for each context that has subpixels (channel-major within a class, classes ascending):
            zigzag varint lo | varint width | width varints (the frequencies, each >= 1)

The decoder derives each context's subpixel count from ``classes``, so the layer stores none.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from ..errors import CorruptFileError

__all__ = ["Layer", "encode", "decode", "decode_symbols", "apply", "quantize", "max_level", "TABLE_BITS"]

TABLE_BITS = 16


def max_level(step: int) -> int:
    """The largest |q| a step can need: residuals lie in [-255, 255]."""
    return -(-255 // step)


def _check_step(step: int) -> int:
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or not 1 <= int(step) <= 255:
        raise ValueError(f"residual step must be an integer from 1 to 255, not {step!r}")
    return int(step)


def quantize(image: np.ndarray, restored: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
    """-> (q (H, W[, C]) int64, the reconstruction uint8): ``q = round((image - restored) / step)``."""
    step = _check_step(step)
    r = image.astype(np.int64) - restored.astype(np.int64)
    q = np.floor_divide(2 * r + step, 2 * step)  # round half up, in integers
    return q, apply(restored, q, step)


def _contexts(classes: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Each subpixel's context, flat (H * W * C,) in raster order: class * channels + channel."""
    c = 1 if len(shape) == 2 else shape[2]
    if classes.shape != shape[:2]:
        raise ValueError(f"classes of shape {classes.shape} for an image of {shape[:2]}")
    ctx = classes.astype(np.int64)[..., None] * c + np.arange(c)
    return ctx.reshape(-1)


def _order(ctx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (subpixel indices grouped by context, raster order within; the contexts present; their counts)."""
    perm = np.argsort(ctx, kind="stable")
    present, counts = np.unique(ctx, return_counts=True)
    return perm, present, counts


def _varints(values) -> bytearray:
    out = bytearray()
    for u in values:
        while True:
            byte, u = u & 0x7F, u >> 7
            out.append(byte | (0x80 if u else 0))
            if not u:
                break
    return out


def _table(q: np.ndarray) -> tuple[int, np.ndarray]:
    """A context's symbols -> (lo, frequencies (width,) int64, each >= 1, summing to 2**TABLE_BITS)."""
    lo = int(q.min())
    counts = np.bincount(q - lo).astype(np.int64)
    total = 1 << TABLE_BITS
    if counts.size > total // 2:
        raise ValueError("a residual context spans more symbols than its table can hold")
    f = 1 + (counts * (total - counts.size)) // int(counts.sum())
    f[int(np.argmax(counts))] += total - int(f.sum())
    return lo, f


@dataclass(frozen=True)
class Layer:
    step: int
    data: bytes  # the layer's bytes
    ideal_bits: float  # the symbols' code length under the tables (the tables' bytes not included)
    stream_bytes: int  # of which the range-coded symbols
    symbols: np.ndarray  # q, int64, the image's shape
    reconstruction: np.ndarray  # what the decoder restores (uint8, the image's shape)


def encode(image: np.ndarray, restored: np.ndarray, step: int, classes: np.ndarray) -> Layer:
    """image, restored: (H, W) or (H, W, C) uint8; classes: (H, W) ints >= 0 (shared with the decoder)."""
    if image.shape != restored.shape:
        raise ValueError(f"image {image.shape} and restored {restored.shape} differ in shape")
    from ..coding import RangeEncoder  # here: constriction loads with the first layer, not with the codec list

    step = _check_step(step)
    q, rec = quantize(image, restored, step)
    ctx = _contexts(classes, image.shape)
    perm, present, counts = _order(ctx)
    flat = q.reshape(-1)[perm]
    enc, tables = RangeEncoder(), bytearray()
    at = 0
    for n in counts.tolist():
        part = flat[at : at + n]
        at += n
        lo, f = _table(part)
        tables += _varints([(lo << 1) ^ (lo >> 63), f.size, *f.tolist()])
        enc.encode_iid(part - lo, f)
    packed = zlib.compress(bytes(tables), 9)
    stream = enc.finish()
    data = len(packed).to_bytes(4, "little") + packed + stream
    return Layer(step, data, enc.ideal_bits, len(stream), q, rec)


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def varint(self) -> int:
        u, shift = 0, 0
        while True:
            if self.pos >= len(self.data):
                raise CorruptFileError("residual layer: truncated tables")
            byte = self.data[self.pos]
            self.pos += 1
            u |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return u
            if shift > 35:
                raise CorruptFileError("residual layer: a table entry out of range")


def decode_symbols(data: bytes, step: int, classes: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The layer's bytes -> its symbols q (``shape``: the image's, (H, W) or (H, W, C)), int64.
    Needs only ``classes``, not the base decoder's pixels. CorruptFileError for damaged or
    inconsistent bytes."""
    from ..coding import RangeDecoder

    step = _check_step(step)
    ctx = _contexts(classes, shape)
    perm, present, counts = _order(ctx)
    if len(data) < 4:
        raise CorruptFileError("residual layer truncated")
    n = int.from_bytes(data[:4], "little")
    if 4 + n > len(data):
        raise CorruptFileError("residual layer: bad table section")
    lim = max_level(step)
    cap = present.size * (6 + 3 * (2 * lim + 1))  # lo and width: 2 bytes each, a frequency at most 3
    try:
        z = zlib.decompressobj()
        raw = z.decompress(data[4 : 4 + n], cap + 1)
        if len(raw) > cap or not z.eof or z.unused_data:
            raise CorruptFileError("residual layer: bad table section")
    except zlib.error:
        raise CorruptFileError("residual layer: damaged tables") from None
    r, dec = _Reader(raw), RangeDecoder(data[4 + n :])
    flat = np.empty(ctx.size, np.int64)
    at = 0
    for count in counts.tolist():
        u = r.varint()
        lo = (u >> 1) ^ -(u & 1)
        width = r.varint()
        if lo < -lim or width < 1 or lo + width - 1 > lim:
            raise CorruptFileError("residual layer: a table out of range")
        f = np.array([r.varint() for _ in range(width)], np.int64)
        if np.any(f < 1) or int(f.sum()) != 1 << TABLE_BITS:
            raise CorruptFileError("residual layer: a table is not a distribution")
        flat[at : at + count] = dec.decode_iid(f, count) + lo
        at += count
    if r.pos != len(raw):
        raise CorruptFileError("residual layer: trailing table bytes")
    q = np.empty_like(flat)
    q[perm] = flat
    return q.reshape(shape)


def apply(restored: np.ndarray, q: np.ndarray, step: int) -> np.ndarray:
    """The base decoder's pixels plus the layer's symbols -> the reconstruction (uint8)."""
    return np.clip(restored.astype(np.int64) + _check_step(step) * q, 0, 255).astype(np.uint8)


def decode(data: bytes, restored: np.ndarray, step: int, classes: np.ndarray) -> np.ndarray:
    """One-shot: the layer's bytes and the base decoder's pixels (as at :func:`encode`) -> the
    reconstruction (uint8)."""
    return apply(restored, decode_symbols(data, step, classes, restored.shape), step)
