"""Range coding of symbols under per-symbol integer frequency tables (the only constriction user).

Every symbol ``symbols[i]`` is coded under its own table ``freqs[i]``: a row of ``K`` positive
integers (every entry >= 1; a fixed total such as 2**16 is recommended, any total below 2**53
works). The tables reach constriction as float64, which holds such integers exactly, through
``Categorical(perfect=False)`` on both sides, so encoder and decoder quantize them identically.
Symbols are coded in groups (one constriction call per group, never a Python call per symbol);
the coder is a queue, so groups are decoded in the order they were encoded, and the decoder
must present the very same table rows for each group. A long run of symbols under one table is
one call too (``encode_iid`` / ``decode_iid``, without an (N, K) array).

Example::

    import numpy as np
    from gencodec.coding import RangeEncoder, RangeDecoder

    freqs = np.array([[1, 2, 65533], [32768, 32767, 1]], dtype=np.int64)   # (N=2, K=3)
    enc = RangeEncoder()
    enc.encode(np.array([2, 0]), freqs)                  # one call per group of symbols
    payload = enc.finish()                               # bytes, 32-bit words little-endian
    dec = RangeDecoder(payload)
    assert dec.decode(freqs).tolist() == [2, 0]
    print(enc.ideal_bits, 8 * len(payload))              # model bits vs actual bits
"""

from __future__ import annotations

import numpy as np
import constriction

from ..errors import CorruptFileError, ExactnessError

__all__ = ["RangeEncoder", "RangeDecoder", "ideal_bits", "check_freqs", "encode", "decode"]

#: Largest table total accepted: the running sums in float64 (and in constriction) stay exact.
MAX_TOTAL = 2**53

_CATEGORICAL = constriction.stream.model.Categorical(perfect=False)


def check_freqs(freqs: np.ndarray) -> np.ndarray:
    """Validate integer tables and return them as C-contiguous float64 of shape (N, K).

    freqs: (N, K) integers (any integer dtype, or float holding integers), every entry >= 1.
    Raises ``ExactnessError`` on a zero, negative, non-integer or too-large entry: such a table
    would make the coder depend on rounding that other machines may not share.
    """
    arr = np.asarray(freqs)
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ExactnessError(f"frequency tables must have shape (N, K), got {arr.shape}")
    if arr.size == 0:
        return np.zeros(arr.shape, dtype=np.float64)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.floor(arr)):
            raise ExactnessError("frequency tables must hold integers")
    elif arr.dtype.kind not in "iu":
        raise ExactnessError(f"frequency tables must be integers, got dtype {arr.dtype}")
    if arr.min() < 1:
        raise ExactnessError("every symbol needs frequency >= 1 (a zero-width bin cannot be coded)")
    if arr.dtype.kind in "iu":
        totals = arr.astype(np.int64).sum(axis=1)  # callers keep totals far below 2**63
    else:
        totals = arr.sum(axis=1)
    if totals.max() >= MAX_TOTAL:
        raise ExactnessError(f"table total {int(totals.max())} is not below 2**53")
    return np.ascontiguousarray(arr, dtype=np.float64)


def _trusted(freqs: np.ndarray) -> np.ndarray:
    """Shape/dtype check only, for tables built by gencodec.exact (float64 integers >= 1)."""
    if not isinstance(freqs, np.ndarray) or freqs.dtype != np.float64 or freqs.ndim != 2:
        raise ExactnessError("unvalidated tables must be a (N, K) float64 numpy array")
    return np.ascontiguousarray(freqs)


def _check_symbols(symbols: np.ndarray, n_rows: int, n_cols: int) -> np.ndarray:
    sym = np.asarray(symbols)
    if sym.ndim != 1 or sym.shape[0] != n_rows:
        raise ValueError(f"symbols must have shape ({n_rows},), got {sym.shape}")
    if sym.dtype.kind not in "iu":
        raise ValueError(f"symbols must be integers, got dtype {sym.dtype}")
    if sym.size and (sym.min() < 0 or sym.max() >= n_cols):
        raise ValueError(f"symbols must lie in [0, {n_cols}), got [{sym.min()}, {sym.max()}]")
    return np.ascontiguousarray(sym, dtype=np.int32)


def ideal_bits(symbols: np.ndarray, freqs: np.ndarray) -> float:
    """The model's code length in bits: ``-sum_i log2(freqs[i, symbols[i]] / freqs[i].sum())``.

    symbols: (N,) integers in [0, K). freqs: (N, K) positive integers.
    """
    table = check_freqs(freqs)
    sym = _check_symbols(symbols, table.shape[0], table.shape[1])
    return _ideal_bits(sym, table) if sym.size else 0.0


def _ideal_bits(sym: np.ndarray, table: np.ndarray, total: int | np.ndarray | None = None) -> float:
    """-sum log2 p for checked symbols (N,) under checked float64 tables (N, K) (rows summing to
    ``total``: one number for all rows, or one per row)."""
    chosen = table[np.arange(sym.size), sym]
    if isinstance(total, np.ndarray):
        return float(np.sum(np.log2(total)) - np.sum(np.log2(chosen)))
    if total is not None:
        return float(sym.size * np.log2(total) - np.sum(np.log2(chosen)))
    return float(np.sum(np.log2(table.sum(axis=1)) - np.log2(chosen)))


class RangeEncoder:
    """Appends groups of symbols to one range-coded stream.

    Attributes: ``ideal_bits`` (float, sum of -log2 p over everything encoded) and
    ``n_symbols`` (int). Call :meth:`encode` once per group, then :meth:`finish` once.
    """

    def __init__(self) -> None:
        self._coder = constriction.stream.queue.RangeEncoder()
        self.ideal_bits = 0.0
        self.n_symbols = 0
        self._finished = False

    def encode(self, symbols: np.ndarray, freqs: np.ndarray, validate: bool = True,
               total: int | np.ndarray | None = None) -> None:
        """Encode ``symbols`` (N,) ints in [0, K), symbol i under table ``freqs[i]`` (N, K).

        validate=False skips the integer/positivity scan (about 0.7 µs per 256-entry row); use it
        only for float64 tables from gencodec.exact's builders, which hold integers >= 1 by
        construction. ``total``: with validate=False, the sum every row is known to have, or an (N,)
        array of each row's sum (spares summing the rows for ``ideal_bits``).
        """
        if self._finished:
            raise RuntimeError("encoder already finished")
        table = check_freqs(freqs) if validate else _trusted(freqs)
        sym = _check_symbols(symbols, table.shape[0], table.shape[1])
        if sym.size == 0:
            return
        self.n_symbols += int(sym.size)
        if table.shape[1] == 1:
            return  # a one-symbol alphabet carries no information: nothing to code
        self.ideal_bits += _ideal_bits(sym, table, None if validate else total)
        self._coder.encode(sym, _CATEGORICAL, table)

    def encode_iid(self, symbols: np.ndarray, freq: np.ndarray) -> None:
        """Encode ``symbols`` (N,) ints in [0, K), every one under the same table ``freq`` (K,)
        (one constriction call, no (N, K) array: for long runs of symbols sharing a table)."""
        if self._finished:
            raise RuntimeError("encoder already finished")
        row = check_freqs(np.asarray(freq)[None])[0]
        sym = _check_symbols(symbols, np.size(symbols) if np.ndim(symbols) == 1 else -1, row.size)
        if sym.size == 0:
            return
        self.n_symbols += int(sym.size)
        if row.size == 1:
            return
        self.ideal_bits += float(sym.size * np.log2(row.sum()) - np.sum(np.log2(row[sym])))
        self._coder.encode(sym, constriction.stream.model.Categorical(row, perfect=False))

    @property
    def n_bits(self) -> int:
        """Bits the stream would take if finished now (a multiple of 32)."""
        return 32 * int(self._coder.num_words())

    def finish(self) -> bytes:
        """Seal the stream and return it: 32-bit words, each little-endian."""
        self._finished = True
        words = self._coder.get_compressed()
        return np.asarray(words, dtype=np.uint32).astype("<u4").tobytes()


class RangeDecoder:
    """Reads groups of symbols back from a stream written by :class:`RangeEncoder`."""

    def __init__(self, payload: bytes) -> None:
        if len(payload) % 4:
            raise CorruptFileError(f"range-coded payload of {len(payload)} bytes is not whole 32-bit words")
        words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
        self._coder = constriction.stream.queue.RangeDecoder(words)

    def decode(self, freqs: np.ndarray, validate: bool = True) -> np.ndarray:
        """Decode one group: ``freqs`` (N, K) tables, exactly those the encoder used -> (N,) int64.

        ``validate`` as in :meth:`RangeEncoder.encode`.
        """
        table = check_freqs(freqs) if validate else _trusted(freqs)
        if table.shape[0] == 0 or table.shape[1] == 1:
            return np.zeros(table.shape[0], dtype=np.int64)  # one-symbol alphabets are not coded
        try:
            out = self._coder.decode(_CATEGORICAL, table)
        except Exception as exc:  # constriction reports damaged streams as generic errors
            raise CorruptFileError(f"range decoder failed: {exc}") from exc
        return np.asarray(out, dtype=np.int64)

    def decode_iid(self, freq: np.ndarray, n: int) -> np.ndarray:
        """Decode ``n`` symbols written by :meth:`RangeEncoder.encode_iid` under ``freq`` (K,) -> (n,) int64."""
        row = check_freqs(np.asarray(freq)[None])[0]
        if n < 0:
            raise ValueError(f"cannot decode {n} symbols")
        if n == 0 or row.size == 1:
            return np.zeros(n, dtype=np.int64)
        try:
            out = self._coder.decode(constriction.stream.model.Categorical(row, perfect=False), int(n))
        except Exception as exc:
            raise CorruptFileError(f"range decoder failed: {exc}") from exc
        return np.asarray(out, dtype=np.int64)

    def maybe_exhausted(self) -> bool:
        """True when no more compressed words remain (a sanity check after the last group)."""
        return bool(self._coder.maybe_exhausted())


def encode(symbols: np.ndarray, freqs: np.ndarray) -> bytes:
    """One-shot: encode all ``symbols`` (N,) under ``freqs`` (N, K); same bytes as the object API."""
    enc = RangeEncoder()
    enc.encode(symbols, freqs)
    return enc.finish()


def decode(payload: bytes, freqs: np.ndarray) -> np.ndarray:
    """One-shot inverse of :func:`encode`: (N,) int64 symbols."""
    return RangeDecoder(payload).decode(freqs)
