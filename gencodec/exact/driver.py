"""The coding driver: the one loop over a schedule, for every neural codec.

    stream, ideal_bits = encode(model, symbols, hooks=[...])      # tables from one parallel pass
    symbols = decode(model, symbols.shape, stream, hooks=[...])   # group by group, cached state

The encoder takes every table from the model's parallel pass (:meth:`ExactModel.parallel`),
a round of the schedule at a time (in batches of at most CHUNK_ROWS symbols); a model without one (it adapts as it codes) is encoded by
running its decoding session on the known symbols. The decoder walks the groups. Per-input
adaptation runs as :class:`~gencodec.exact.contract.Hook` s, identically on both sides: for each
batch of symbols ``params -> hook.params -> model.freqs -> hook.mix -> code -> hook.coded``, and
``hook.end_round`` between rounds. Slow work reports its progress (:mod:`gencodec.progress`).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Sequence

import numpy as np

from .. import progress
from ..coding import RangeDecoder, RangeEncoder
from ..errors import ExactnessError
from .contract import ExactModel, Hook

__all__ = ["encode", "decode", "tables_in_order"]

PROGRESS_GROUPS = 192  # groups between two progress reports of the decoder
CHUNK_ROWS = 8192  # the encoder codes a round in batches of at most this many symbols (bounded memory)


class _Hooks:
    """The hooks' methods that do something (a hook overrides them), bound once per encode or decode."""

    def __init__(self, hooks: Sequence[Hook]):
        def bound(name):
            return [getattr(h, name) for h in hooks if getattr(type(h), name, None) is not getattr(Hook, name)]

        self.params, self.mix, self.coded, self.end_round = (bound(n) for n in ("params", "mix", "coded", "end_round"))


def _tables(model: ExactModel, params: Any, hooks: _Hooks):
    for f in hooks.params:
        params = f(params)
    freqs, total = model.freqs(params)
    for f in hooks.mix:
        total = f(freqs, params, total)
    return params, freqs, total


def _coding(model: ExactModel):
    return getattr(model, "coding", nullcontext)()


def encode(model: ExactModel, symbols: np.ndarray, hooks: Sequence[Hook] = (), params=None) -> tuple[bytes, float]:
    """Encode ``symbols`` (the shape the model's schedule expects) -> (stream, ideal bits).

    params: the model's parallel pass when the caller already ran it (e.g. to fit a hook to it);
    default ``model.parallel(symbols)``."""
    with _coding(model):
        return _encode(model, symbols, _Hooks(hooks), params)


def _encode(model, symbols, hooks, params):
    symbols = np.asarray(symbols)
    sched = model.schedule(symbols.shape)
    if sched.n_symbols != symbols.size:
        raise ExactnessError("schedule does not match the input size")
    flat = symbols.reshape(-1).astype(np.int64)
    validate = not getattr(model, "trusted_tables", False)
    if params is None:
        params = model.parallel(symbols)
    enc = RangeEncoder()
    session = model.session(symbols.shape) if params is None else None

    def code(idx: np.ndarray, p: Any) -> None:
        p, freqs, total = _tables(model, p, hooks)
        sym = flat[idx]
        enc.encode(sym, freqs, validate=validate, total=total)
        for f in hooks.coded:
            f(sym, freqs, p)

    rounds = sched.round_slices()
    for r, sl in enumerate(rounds):
        if r:
            for f in hooks.end_round:
                f()
        groups = sched.groups[sl]
        if session is None:  # the round from the parallel pass, in a few large batches
            idx = np.concatenate(groups) if len(groups) > 1 else groups[0]
            for start in range(0, idx.size, CHUNK_ROWS):
                chunk = idx[start : start + CHUNK_ROWS]
                code(chunk, params(chunk))
        else:  # a model that adapts as it codes: its decoder's session, fed the true symbols
            for g in groups:
                code(g, session.next())
                session.push(flat[g])
        progress.report(r + 1, len(rounds))
    return enc.finish(), enc.ideal_bits


def decode(model: ExactModel, shape: Sequence[int], stream: bytes, hooks: Sequence[Hook] = ()) -> np.ndarray:
    """Inverse of :func:`encode`: walks the schedule group by group -> int64 symbols of ``shape``."""
    with _coding(model):
        return _decode(model, shape, stream, _Hooks(hooks))


def _decode(model, shape, stream, hooks):
    sched = model.schedule(shape)
    validate = not getattr(model, "trusted_tables", False)
    session = model.session(shape)
    result = getattr(session, "result", None)  # a session that keeps the symbols itself
    out = np.zeros(sched.n_symbols, dtype=np.int64) if result is None else None
    dec = RangeDecoder(stream)
    starts = set(sched.rounds[1:])
    n = len(sched.groups)
    # the loop runs once per group (thousands per image): its callables bound to local names
    next_params, push, freqs_of, decode_group = session.next, session.push, model.freqs, dec.decode
    adjust, mix, coded, end_round = hooks.params, hooks.mix, hooks.coded, hooks.end_round
    for gi, group in enumerate(sched.groups):
        if gi in starts:
            for f in end_round:
                f()
        if gi % PROGRESS_GROUPS == 0:
            progress.report(gi, n)
        p = next_params()
        for f in adjust:
            p = f(p)
        freqs, total = freqs_of(p)
        for f in mix:
            total = f(freqs, p, total)
        if freqs.shape[0] != group.size:
            raise ExactnessError(f"model gave {freqs.shape[0]} tables for a group of {group.size}")
        sym = decode_group(freqs, validate=validate)
        for f in coded:
            f(sym, freqs, p)
        if out is not None:
            out[group] = sym
        push(sym)
    progress.report(n, n)
    return (out if result is None else np.asarray(result(), np.int64)).reshape(tuple(shape))


def tables_in_order(model: ExactModel, symbols: np.ndarray, path: str, hooks: Sequence[Hook] = ()) -> np.ndarray:
    """Every table in coding order, (N, K) float64, from the ``"parallel"`` pass or the decoder's
    ``"session"`` (fed the true symbols group by group), through fresh ``hooks``. For exactness tests:
    the two must be identical."""
    symbols = np.asarray(symbols)
    hooks = _Hooks(hooks)
    sched = model.schedule(symbols.shape)
    flat = symbols.reshape(-1).astype(np.int64)
    parts = []
    if path == "parallel":
        params = model.parallel(symbols)
        if params is None:
            raise ValueError(f"{type(model).__name__} has no parallel pass")
        for r, sl in enumerate(sched.round_slices()):
            if r:
                for f in hooks.end_round:
                    f()
            idx = np.concatenate(sched.groups[sl])
            p, freqs, _ = _tables(model, params(idx), hooks)
            for f in hooks.coded:
                f(flat[idx], freqs, p)
            parts.append(np.array(freqs, dtype=np.float64))
    elif path == "session":
        session = model.session(symbols.shape)
        starts = set(sched.rounds[1:])
        for gi, group in enumerate(sched.groups):
            if gi in starts:
                for f in hooks.end_round:
                    f()
            p, freqs, _ = _tables(model, session.next(), hooks)
            for f in hooks.coded:
                f(flat[group], freqs, p)
            parts.append(np.array(freqs, dtype=np.float64))
            session.push(flat[group])
    else:
        raise ValueError(f"path must be 'parallel' or 'session', got {path!r}")
    if not parts:
        return np.zeros((0, 0))
    width = max(p.shape[1] for p in parts)  # a model may give each group its own table width
    return np.concatenate([np.pad(p, ((0, 0), (0, width - p.shape[1]))) for p in parts])
