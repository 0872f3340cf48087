"""Classical byte codecs: stored, gzip, bz2, xz, zstd, brotli (references and fallbacks)."""

from __future__ import annotations

import bz2
import gzip
import lzma

from ..codec import Codec, Encoded


class _ByteCodec(Codec):
    kind = "bytes"

    def encode(self, data: bytes, **params) -> Encoded:
        self.check_no_params(params)
        return Encoded(self._compress(bytes(data)))

    def decode(self, payload: bytes, header) -> bytes:
        return self._decompress(payload, header.length)

    def _compress(self, data: bytes) -> bytes:  # pragma: no cover - interface
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

    def _compress(self, data):
        return gzip.compress(data, compresslevel=9, mtime=0)

    def _decompress(self, payload, length):
        return gzip.decompress(payload)


class Bz2Codec(_ByteCodec):
    name = "bz2"
    description = "bzip2, level 9"

    def _compress(self, data):
        return bz2.compress(data, 9)

    def _decompress(self, payload, length):
        return bz2.decompress(payload)


class XzCodec(_ByteCodec):
    name = "xz"
    description = "xz / LZMA2, preset 9 extreme"

    def _compress(self, data):
        return lzma.compress(data, format=lzma.FORMAT_XZ, preset=9 | lzma.PRESET_EXTREME)

    def _decompress(self, payload, length):
        return lzma.decompress(payload, format=lzma.FORMAT_XZ)


class ZstdCodec(_ByteCodec):
    name = "zstd"
    description = "Zstandard, level 19"

    def unavailable_reason(self):
        try:
            import zstandard  # noqa: F401
        except ImportError:
            return "the zstandard package is not installed"
        return None

    def _compress(self, data):
        import zstandard

        return zstandard.ZstdCompressor(level=19, write_content_size=True).compress(data)

    def _decompress(self, payload, length):
        import zstandard

        return zstandard.ZstdDecompressor().decompress(payload, max_output_size=length)


class BrotliCodec(_ByteCodec):
    name = "brotli"
    description = "Brotli, quality 11"

    def unavailable_reason(self):
        try:
            import brotli  # noqa: F401
        except ImportError:
            return "the brotli package is not installed"
        return None

    def _compress(self, data):
        import brotli

        return brotli.compress(data, quality=11)

    def _decompress(self, payload, length):
        import brotli

        return brotli.decompress(payload)
