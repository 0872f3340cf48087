"""Classical byte codecs: stored, gzip, bz2, xz, zstd, brotli (references and fallbacks).

Decoding is bounded by the frame's declared length: every decompressor runs incrementally and
stops one byte past that length, so a payload that expands further (a decompression bomb, or a
header whose length lies) costs at most ``length + 1`` bytes of output before it is refused, and
a payload that ends early is refused too. (The API refuses a declared length beyond its byte
limit before any decoding.)
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib

from ..codec import Codec, Encoded, Param
from ..errors import CorruptFileError

PIECE = 1 << 20  # bytes of input fed to a streaming decompressor at a time


def _bounded(name: str, out: bytes, length: int, finished: bool, rest: bytes = b"") -> bytes:
    """The output of a bounded decompression, checked against the declared length."""
    if len(out) > length:
        raise CorruptFileError(f"corrupt {name} payload: it expands beyond the declared {length} bytes")
    if not finished or len(out) < length:
        raise CorruptFileError(f"corrupt {name} payload: the stream ends after {len(out)} of the declared {length} bytes")
    if rest:
        raise CorruptFileError(f"corrupt {name} payload: {len(rest)} bytes after the end of the stream")
    return out


class _ByteCodec(Codec):
    kind = "bytes"

    def encode(self, data: bytes, **params) -> Encoded:
        options = self.take_params(params)  # encoder settings only: decoding needs none, none are stored
        return Encoded(self._compress(bytes(data), **options))

    def decode(self, payload: bytes, header) -> bytes:
        if header.params:
            raise CorruptFileError(f"{self.name} frames carry no params, this one has {sorted(header.params)}")
        return self._decompress(payload, header.length)

    def _compress(self, data: bytes, **options) -> bytes:  # pragma: no cover - interface
        raise NotImplementedError

    def _decompress(self, payload: bytes, length: int) -> bytes:  # pragma: no cover - interface
        raise NotImplementedError


class StoredCodec(_ByteCodec):
    name = "stored"
    description = "no compression"

    def _compress(self, data):
        return data

    def _decompress(self, payload, length):
        return payload


class GzipCodec(_ByteCodec):
    name = "gzip"
    description = "DEFLATE (zlib level 9, gzip framing)"
    native_suffix = ".gz"
    params = (Param("level", "int", 9, 1, 9, "zlib compression level"),)
    levels = {n: {"level": n} for n in range(1, 10)}

    def _compress(self, data, level):
        return gzip.compress(data, compresslevel=level, mtime=0)

    def _decompress(self, payload, length):
        d = zlib.decompressobj(wbits=31)  # one gzip member, as written
        out = d.decompress(payload, length + 1)
        return _bounded(self.name, out, length, d.eof, d.unused_data)


class Bz2Codec(_ByteCodec):
    name = "bz2"
    description = "bzip2, level 9"
    native_suffix = ".bz2"
    params = (Param("level", "int", 9, 1, 9, "block size in 100 kB"),)
    levels = {n: {"level": n} for n in range(1, 10)}

    def _compress(self, data, level):
        return bz2.compress(data, level)

    def _decompress(self, payload, length):
        d = bz2.BZ2Decompressor()
        out = d.decompress(payload, max_length=length + 1)
        return _bounded(self.name, out, length, d.eof, d.unused_data)


class XzCodec(_ByteCodec):
    name = "xz"
    description = "xz / LZMA2, preset 9 extreme"
    native_suffix = ".xz"
    params = (Param("preset", "int", 9, 0, 9, "xz preset"), Param("extreme", "bool", True, help="xz -e"))
    levels = {n: {"preset": n, "extreme": n == 9} for n in range(1, 10)}

    def _compress(self, data, preset, extreme):
        return lzma.compress(data, format=lzma.FORMAT_XZ, preset=preset | (lzma.PRESET_EXTREME if extreme else 0))

    def _decompress(self, payload, length):
        d = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        out = d.decompress(payload, max_length=length + 1)
        return _bounded(self.name, out, length, d.eof, d.unused_data)


class ZstdCodec(_ByteCodec):
    name = "zstd"
    description = "Zstandard, level 19"
    native_suffix = ".zst"
    params = (Param("level", "int", 19, 1, 22, "zstd level (20-22: --ultra)"),)
    levels = {n: {"level": v} for n, v in zip(range(1, 10), (1, 3, 5, 7, 9, 12, 15, 17, 19))}

    def unavailable_reason(self):
        try:
            import zstandard  # noqa: F401
        except ImportError:
            return "the zstandard package is not installed"
        return None

    def _compress(self, data, level):
        import zstandard

        return zstandard.ZstdCompressor(level=level, write_content_size=True).compress(data)

    def _decompress(self, payload, length):
        import zstandard

        # a stream reader never allocates what the frame's content size claims, only what is read
        with zstandard.ZstdDecompressor().stream_reader(payload, read_across_frames=False) as r:
            out = r.read(length + 1)
            done = len(out) <= length and r.read(1) == b""
        return _bounded(self.name, out, length, done)


class BrotliCodec(_ByteCodec):
    name = "brotli"
    description = "Brotli, quality 11"
    native_suffix = ".br"
    params = (Param("quality", "int", 11, 0, 11, "brotli quality"),)
    levels = {n: {"quality": v} for n, v in zip(range(1, 10), (1, 2, 3, 4, 5, 6, 8, 10, 11))}

    def unavailable_reason(self):
        try:
            import brotli  # noqa: F401
        except ImportError:
            return "the brotli package is not installed"
        return None

    def _compress(self, data, quality):
        import brotli

        return brotli.compress(data, quality=quality)

    def _decompress(self, payload, length):
        import brotli

        d = brotli.Decompressor()
        out = bytearray()
        for start in range(0, max(len(payload), 1), PIECE):
            out += d.process(payload[start : start + PIECE], output_buffer_limit=length + 1 - len(out))
            while len(out) <= length and not d.can_accept_more_data() and not d.is_finished():
                out += d.process(b"", output_buffer_limit=length + 1 - len(out))
            if len(out) > length:
                break
        return _bounded(self.name, bytes(out), length, d.is_finished())


class JPEGRecompressCodec(_ByteCodec):
    """A JPEG file recompressed losslessly by JPEG XL's JPEG reconstruction (libjxl via imagecodecs):
    about 15 % smaller, and decoding restores the identical file, byte for byte. Anything that is
    not a JPEG libjxl can reconstruct exactly is refused (``auto`` then picks another codec)."""

    name = "jpeg-recompress"
    description = "JPEG files recompressed by JPEG XL's lossless JPEG reconstruction (the same file restored)"
    native_suffix = ".jxl"
    MAGIC = b"\xff\xd8\xff"

    def unavailable_reason(self):
        try:
            import imagecodecs
        except ImportError:
            return "the imagecodecs package is not installed"
        return None if imagecodecs.JPEGXL.available else "imagecodecs was built without JPEG XL"

    def _compress(self, data):
        import imagecodecs

        from ..errors import UnsupportedInputError

        if not data.startswith(self.MAGIC):
            raise UnsupportedInputError(f"codec {self.name!r} codes JPEG files, and this is not one")
        try:
            out = bytes(imagecodecs.jpegxl_encode_jpeg(data))
            exact = bytes(imagecodecs.jpegxl_decode_jpeg(out)) == data
        except imagecodecs.JpegxlError as e:
            raise UnsupportedInputError(f"codec {self.name!r}: libjxl cannot reconstruct this JPEG ({e})") from None
        if not exact:  # pragma: no cover - libjxl guarantees it; checked anyway, nothing is lost
            raise UnsupportedInputError(f"codec {self.name!r}: libjxl would not restore this JPEG exactly")
        return out

    def _decompress(self, payload, length):
        import imagecodecs

        if not payload.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL ")):
            raise CorruptFileError(f"corrupt {self.name} payload: not a JPEG XL bitstream")
        out = bytes(imagecodecs.jpegxl_decode_jpeg(payload))
        return _bounded(self.name, out, length, True)
