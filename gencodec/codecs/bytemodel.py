"""``bytemodel``: any file coded bit by bit under a context-mixing model that learns as it codes,
with a pretrained net as one of its inputs (:mod:`gencodec.models.bytemodel`), through the neural
codec contract.

Payload: the range-coded stream of the bits (no params: the header stays small), or the bytes
themselves (``"coding": "stored"``) where the model would not pay: a zlib probe of the first 64 KiB finds
random or already-compressed input cheaply, and a stream no smaller than the input is never
kept. Stored payloads need no model and record no model id.

Inputs longer than BLOCK bytes are coded as independent blocks of BLOCK bytes (the last one
shorter), one after the other, so memory stays bounded (the schedule of one block, about 250 MB)
whatever the input's size: params ``{"block": BLOCK}`` and the payload ``(u32 n | stream of n
bytes)`` per block. Inputs of at most BLOCK bytes are one stream without params, as before blocks
existed. Each block learns its statistics afresh (a few percent larger than one stream would be).
"""

from __future__ import annotations

import dataclasses
import struct
import zlib
from typing import Any

import numpy as np

from ..codec import Encoded
from ..errors import CorruptFileError, LimitError
from .neural import NeuralCodec

BLOCK = 4 << 20  # bytes per independently coded block (bounds the decoder's memory)
MAX_BYTES = 16 << 20  # what earlier versions coded in one stream (their frames still decode)
PROBE = 1 << 16  # bytes zlib looks at to find incompressible input
PROBE_RATIO = 0.97  # a zlib level-1 probe no smaller than this share of its input: stored


class ByteModelCodec(NeuralCodec):
    name = "bytemodel"
    kind = "bytes"
    arch = "bytemodel"
    description = "context mixing over bits (orders 0-6, words, lines, records, a pretrained net), integer-exact"

    def to_symbols(self, data: bytes) -> np.ndarray:
        return np.unpackbits(np.frombuffer(data, np.uint8)).reshape(-1, 8)

    def symbol_shape(self, header: Any) -> tuple[int, int]:
        return (header.length, 8)

    def from_symbols(self, symbols: np.ndarray, header: Any) -> bytes:
        return np.packbits(symbols.astype(np.uint8), axis=1).tobytes()

    def encode(self, data: Any, **params: Any) -> Encoded:
        from .. import progress

        self.check_no_params(params)
        data = bytes(data)
        probe = data[:PROBE]
        if probe and len(zlib.compress(probe, 1)) >= PROBE_RATIO * len(probe):
            return self._stored(data)
        if len(data) <= BLOCK:
            enc = super().encode(data)
            if len(enc.payload) >= len(data):
                return self._stored(data)
            return Encoded(enc.payload, {}, enc.stats)  # no params: model coding (the header stays small)
        parts, ideal = [], 0.0
        n_blocks = -(-len(data) // BLOCK)
        for i in range(n_blocks):
            with progress.part(i, n_blocks):
                enc = super().encode(data[i * BLOCK : (i + 1) * BLOCK])
            parts += [struct.pack("<I", len(enc.payload)), enc.payload]
            ideal += enc.stats["ideal_bits"] + 32
        payload = b"".join(parts)
        if len(payload) >= len(data):
            return self._stored(data)
        return Encoded(payload, {"block": BLOCK}, {"ideal_bits": ideal, "model_ideal_bits": ideal})

    @staticmethod
    def _stored(data: bytes) -> Encoded:
        return Encoded(data, {"coding": "stored"}, {"ideal_bits": 8 * len(data)}, uses_model=False)

    def decode(self, payload: bytes, header: Any) -> bytes:
        from .. import progress

        params = dict(header.params)
        coding = params.pop("coding", "model")
        block = params.pop("block", None)
        if params:
            raise CorruptFileError(f"bytemodel: unknown params {sorted(params)} in the header")
        if coding == "stored":
            if block is not None:
                raise CorruptFileError("bytemodel: a stored frame with blocks")
            return payload
        if coding != "model":
            raise CorruptFileError(f"bytemodel: unknown coding {coding!r} in the header")
        if block is None:  # one stream
            if header.length > MAX_BYTES:
                raise LimitError(f"bytemodel frame of {header.length:,} bytes in one stream exceeds its limit of "
                                 f"{MAX_BYTES >> 20} MiB")
            return super().decode(payload, header)
        if block != BLOCK:
            raise CorruptFileError(f"bytemodel: blocks of {block!r} bytes (this version writes {BLOCK})")
        n_blocks = -(-header.length // BLOCK)
        out, pos = [], 0
        for i in range(n_blocks):
            if pos + 4 > len(payload):
                raise CorruptFileError(f"bytemodel payload truncated in block {i}")
            (n,) = struct.unpack_from("<I", payload, pos)
            stream = payload[pos + 4 : pos + 4 + n]
            if len(stream) != n:
                raise CorruptFileError(f"bytemodel payload truncated in block {i}")
            pos += 4 + n
            length = min(BLOCK, header.length - i * BLOCK)
            with progress.part(i, n_blocks):
                out.append(super().decode(stream, dataclasses.replace(header, length=length, params={})))
        if pos != len(payload):
            raise CorruptFileError(f"bytemodel payload: {len(payload) - pos} bytes after the last block")
        return b"".join(out)
