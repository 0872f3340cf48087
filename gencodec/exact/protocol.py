"""The contract between an exact model and the coder: schedules, a parallel path, an incremental path.

A *schedule* splits the N symbols of an input (flat indices into ``symbols.reshape(-1)``) into
groups coded in order; every symbol of group t may depend only on symbols of groups < t. A model
gives integer frequency tables two ways:

- ``parallel(symbols)``: all symbols known (encoder); returns a :data:`TableFn` mapping flat
  indices to tables, computed in one pass (or a few large batches).
- ``incremental(shape)``: a :class:`Session` for the decoder: ``next_freqs()`` returns the
  tables of the current group, ``push(symbols)`` feeds back that group's decoded symbols.

Both paths must give bit-identical tables: tests compare their sha256 (see
:func:`tables_in_order`). :func:`encode_with_model` / :func:`decode_with_model` drive the coder.

Example::

    payload, ideal_bits = encode_with_model(model, pixels)          # pixels: int array, model.shape rules
    pixels_again = decode_with_model(model, pixels.shape, payload)
    assert np.array_equal(tables_in_order(model, pixels, "parallel"),
                          tables_in_order(model, pixels, "incremental"))

A complete small example model lives in ``tests/exact_harness.py`` (``TinyCausalModel``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np

from ..coding import RangeDecoder, RangeEncoder
from ..errors import CorruptFileError, ExactnessError

__all__ = [
    "Schedule",
    "TableFn",
    "Session",
    "TableModel",
    "wavefront_schedule",
    "encode_with_model",
    "decode_with_model",
    "tables_in_order",
]

#: flat indices (n,) int64 -> tables (n, K) float64 holding integers >= 1
TableFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Schedule:
    """Coding order. groups[t]: int64 flat indices coded at step t; together they cover every
    index 0..n_symbols-1 exactly once."""

    groups: tuple[np.ndarray, ...]
    n_symbols: int

    def __post_init__(self) -> None:
        seen = np.zeros(self.n_symbols, dtype=np.int64)
        for g in self.groups:
            if g.ndim != 1 or (g.size and (g.min() < 0 or g.max() >= self.n_symbols)):
                raise ValueError("schedule group out of range")
            np.add.at(seen, g, 1)
        if not np.all(seen == 1):
            raise ValueError("a schedule must cover every symbol exactly once")

    @property
    def order(self) -> np.ndarray:
        """All flat indices in coding order, (n_symbols,) int64."""
        if not self.groups:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate(self.groups)


class Session(Protocol):
    """The decoder's view of a model: alternate ``next_freqs`` and ``push`` once per group."""

    def next_freqs(self) -> np.ndarray:
        """Tables (n_t, K) float64 integers for group t, in the order of ``schedule.groups[t]``."""

    def push(self, symbols: np.ndarray) -> None:
        """The (n_t,) symbols of group t, just decoded (or known, when checking)."""


class TableModel(Protocol):
    """What an exact model offers the coder."""

    def schedule(self, shape: Sequence[int]) -> Schedule:
        """Groups for an input of this shape (the model decides, e.g. :func:`wavefront_schedule`)."""

    def parallel(self, symbols: np.ndarray) -> TableFn:
        """All symbols known: a function from flat indices to their tables."""

    def incremental(self, shape: Sequence[int]) -> Session:
        """A decoding session for an input of this shape."""


def wavefront_schedule(height: int, width: int, channels: int = 1, reach_right: int = 0) -> Schedule:
    """Wavefronts for a (H, W, C) raster, flattened as ``(row * W + col) * C + ch``.

    Pixel (row, col) may depend on pixels in earlier rows up to ``reach_right`` columns to its
    right and on pixels to its left in its own row; then all pixels with the same
    ``t = (reach_right + 1) * row + col`` are independent. Channels are coded one group each, in
    order, so channel c may depend on channels < c of the same pixel: (r+1)(H-1)+W steps × C groups.
    """
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    t = ((reach_right + 1) * rows + cols).reshape(-1)
    pixel = np.arange(height * width)
    order = np.argsort(t, kind="stable")
    bounds = np.flatnonzero(np.diff(t[order])) + 1
    groups = []
    for chunk in np.split(pixel[order], bounds):
        for c in range(channels):
            groups.append(chunk * channels + c)
    return Schedule(tuple(g.astype(np.int64) for g in groups), height * width * channels)


def encode_with_model(model: TableModel, symbols: np.ndarray, chunk_rows: int = 1024,
                      validate: bool = True) -> tuple[bytes, float]:
    """Encode ``symbols`` (any shape, ints) with the model's parallel path.

    Returns (payload, ideal_bits). Consecutive groups share coder calls of up to ``chunk_rows``
    symbols (the coder is a queue, so only the order matters; ~1000 rows of 256 entries keep the
    tables in cache, measured fastest). ``validate=False``: see ``RangeEncoder.encode``.
    """
    symbols = np.asarray(symbols)
    sched = model.schedule(symbols.shape)
    if sched.n_symbols != symbols.size:
        raise ExactnessError("schedule does not match the input size")
    tables = model.parallel(symbols)
    flat = symbols.reshape(-1)
    order = sched.order
    enc = RangeEncoder()
    for start in range(0, order.size, chunk_rows):
        idx = order[start : start + chunk_rows]
        enc.encode(flat[idx], tables(idx), validate=validate)
    return enc.finish(), enc.ideal_bits


def decode_with_model(model: TableModel, shape: Sequence[int], payload: bytes, validate: bool = True) -> np.ndarray:
    """Inverse of :func:`encode_with_model`: walks the schedule group by group. Returns int64 ``shape``."""
    sched = model.schedule(shape)
    out = np.zeros(sched.n_symbols, dtype=np.int64)
    session = model.incremental(shape)
    dec = RangeDecoder(payload)
    for group in sched.groups:
        freqs = session.next_freqs()
        if freqs.shape[0] != group.size:
            raise ExactnessError(f"model gave {freqs.shape[0]} tables for a group of {group.size}")
        values = dec.decode(freqs, validate=validate)
        out[group] = values
        session.push(values)
    if not dec.maybe_exhausted():
        raise CorruptFileError("payload has data left after the last symbol")
    return out.reshape(tuple(shape))


def tables_in_order(model: TableModel, symbols: np.ndarray, path: str) -> np.ndarray:
    """Every table in coding order, (N, K) float64, from the ``"parallel"`` or ``"incremental"``
    path (the latter fed the true symbols group by group). For exactness tests."""
    symbols = np.asarray(symbols)
    sched = model.schedule(symbols.shape)
    flat = symbols.reshape(-1)
    if path == "parallel":
        return np.asarray(model.parallel(symbols)(sched.order), dtype=np.float64)
    if path != "incremental":
        raise ValueError(f"path must be 'parallel' or 'incremental', got {path!r}")
    session = model.incremental(symbols.shape)
    parts = []
    for group in sched.groups:
        parts.append(np.asarray(session.next_freqs(), dtype=np.float64))
        session.push(flat[group])
    return np.concatenate(parts) if parts else np.zeros((0, 0))
