"""order2: an adaptive order-2 context model over bytes, coded through the neural codec contract.

The complete example of docs/ARCHITECTURE.md (which quotes this file): a model that learns as it
codes -- it has no parallel pass, so the driver encodes by running the decoder's session -- over
segments of the input coded in lockstep, one byte of every segment per group.
"""

from __future__ import annotations

import numpy as np

from gencodec.codecs.neural import NeuralCodec
from gencodec.exact.contract import Schedule
from gencodec.models import modelfile

SEGMENT = 4096  # bytes per segment; segment k holds bytes k * SEGMENT ...
CONTEXTS = 1 << 12  # the two previous bytes of a segment, hashed


class Order2Model:
    """Counts of each byte after each (hashed) pair of previous bytes, shared by all segments and
    updated after every group in segment order: integers only, so both sides agree."""

    arch = "order2"

    def __init__(self, increment: int = 16, limit: int = 1 << 16):
        self.increment, self.limit = increment, limit
        self.model_id = modelfile.model_id(self.config_dict(), self.state())

    def config_dict(self) -> dict:
        return {"increment": self.increment, "limit": self.limit}

    def state(self) -> dict:
        return {}  # no weights: everything is learned from the input

    @classmethod
    def from_state(cls, config: dict, tensors: dict) -> "Order2Model":
        return cls(**config)

    def schedule(self, shape) -> Schedule:
        (n,) = shape
        starts = np.arange(0, n, SEGMENT)
        return Schedule(tuple(starts[starts + t < n] + t for t in range(min(n, SEGMENT))), n)

    def parallel(self, symbols):
        return None  # the tables depend on counts learned while coding

    def session(self, shape) -> "Order2Session":
        return Order2Session(self, shape)

    def freqs(self, tables: np.ndarray):
        return tables, tables.sum(axis=1)


class Order2Session:
    def __init__(self, model: Order2Model, shape):
        self.model, self.n, self.t = model, shape[0], 0
        self.counts = np.zeros((CONTEXTS, 256), np.int64)
        self.prev = np.zeros((-(-self.n // SEGMENT), 2), np.int64)  # each segment's last two bytes

    def next(self) -> np.ndarray:
        k = -(-(self.n - self.t) // SEGMENT)  # segments still going at step t (the last may be shorter)
        self.ctx = (self.prev[:k, 1] * 131 + self.prev[:k, 0]) % CONTEXTS
        return (self.counts[self.ctx] * self.model.increment + 1).astype(np.float64)

    def push(self, symbols: np.ndarray) -> None:
        ctx, k = self.ctx, symbols.size
        np.add.at(self.counts, (ctx, symbols), 1)
        full = ctx[self.counts[ctx].sum(axis=1) > self.model.limit]
        self.counts[full] //= 2  # old statistics fade
        self.prev[:k] = np.stack([symbols, self.prev[:k, 0]], axis=1)
        self.t += 1


class Order2Codec(NeuralCodec):
    name, kind, arch = "order2", "bytes", "order2"
    description = "order-2 adaptive context model (the docs/ARCHITECTURE.md example)"

    def to_symbols(self, data: bytes) -> np.ndarray:
        return np.frombuffer(data, np.uint8)

    def symbol_shape(self, header) -> tuple[int]:
        return (header.length,)

    def from_symbols(self, symbols: np.ndarray, header) -> bytes:
        return symbols.astype(np.uint8).tobytes()
