"""``bytemodel``: any file coded bit by bit under a context-mixing model that learns as it codes
(:mod:`gencodec.models.bytemodel`), through the neural codec contract.

Payload: the range-coded stream of the bits (no params: the header stays small), or the bytes
themselves (``"coding": "stored"``) where the model would not pay: a zlib probe of the first 64 KiB finds
random or already-compressed input cheaply, and a stream no smaller than the input is never
kept. Stored payloads need no model and record no model id. Inputs above MAX_BYTES are refused
(the schedule is held in memory; streaming in chunks is still to come).
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from ..codec import Encoded
from ..errors import CorruptFileError, LimitError
from .neural import NeuralCodec

MAX_BYTES = 16 << 20  # larger inputs are refused (use a classical codec); the schedule lives in memory
PROBE = 1 << 16  # bytes zlib looks at to find incompressible input
PROBE_RATIO = 0.97  # a zlib level-1 probe no smaller than this share of its input: stored


class ByteModelCodec(NeuralCodec):
    name = "bytemodel"
    kind = "bytes"
    arch = "bytemodel"
    description = "context mixing over bits (orders 0-6 and words), learned while coding, integer-exact"

    def to_symbols(self, data: bytes) -> np.ndarray:
        return np.unpackbits(np.frombuffer(data, np.uint8)).reshape(-1, 8)

    def symbol_shape(self, header: Any) -> tuple[int, int]:
        return (header.length, 8)

    def from_symbols(self, symbols: np.ndarray, header: Any) -> bytes:
        return np.packbits(symbols.astype(np.uint8), axis=1).tobytes()

    def encode(self, data: Any, **params: Any) -> Encoded:
        self.check_no_params(params)
        data = bytes(data)
        if len(data) > MAX_BYTES:
            raise LimitError(f"bytemodel codes at most {MAX_BYTES >> 20} MiB in one frame ({len(data):,} bytes given); "
                             "use a classical codec (xz, zstd, brotli) for larger files")
        probe = data[:PROBE]
        if probe and len(zlib.compress(probe, 1)) >= PROBE_RATIO * len(probe):
            return self._stored(data)
        enc = super().encode(data)
        if len(enc.payload) >= len(data):
            return self._stored(data)
        return Encoded(enc.payload, {}, enc.stats)  # no params: model coding (the header stays small)

    @staticmethod
    def _stored(data: bytes) -> Encoded:
        return Encoded(data, {"coding": "stored"}, {"ideal_bits": 8 * len(data)}, uses_model=False)

    def decode(self, payload: bytes, header: Any) -> bytes:
        coding = header.params.get("coding", "model")
        if set(header.params) - {"coding"}:
            raise CorruptFileError(f"bytemodel: unknown params {sorted(set(header.params) - {'coding'})} in the header")
        if coding == "stored":
            return payload
        if coding != "model":
            raise CorruptFileError(f"bytemodel: unknown coding {coding!r} in the header")
        if header.length > MAX_BYTES:
            raise LimitError(f"bytemodel frame of {header.length:,} bytes exceeds its limit of {MAX_BYTES >> 20} MiB")
        return super().decode(payload, header)
