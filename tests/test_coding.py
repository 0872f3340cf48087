"""gencodec.coding: range coding under per-symbol integer tables."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gencodec.coding import RangeDecoder, RangeEncoder, check_freqs, decode, encode, ideal_bits
from gencodec.errors import CorruptFileError, ExactnessError


def _random_tables(rng: np.random.Generator, n: int, k: int, total: int = 2**16) -> np.ndarray:
    """(n, k) int64 tables with entries >= 1 summing to ``total`` (random shapes)."""
    raw = rng.random((n, k)) ** 4
    f = 1 + np.floor(raw / raw.sum(1, keepdims=True) * (total - k)).astype(np.int64)
    f[:, 0] += total - f.sum(1)
    return f


def _sample(rng: np.random.Generator, freqs: np.ndarray) -> np.ndarray:
    """One symbol per row drawn from its table."""
    cdf = np.cumsum(freqs, axis=1)
    u = rng.integers(0, cdf[:, -1:], size=(freqs.shape[0], 1))
    return (cdf <= u).sum(axis=1)


def test_round_trip_random_tables_in_groups():
    rng = np.random.default_rng(0)
    groups = []
    enc = RangeEncoder()
    for n, k in [(1, 2), (100, 3), (1000, 256), (7, 17), (500, 1000)]:
        f = _random_tables(rng, n, k)
        s = _sample(rng, f)
        enc.encode(s, f)
        groups.append((s, f))
    payload = enc.finish()
    assert enc.n_symbols == sum(len(s) for s, _ in groups)
    dec = RangeDecoder(payload)
    for s, f in groups:
        np.testing.assert_array_equal(dec.decode(f), s)
    assert dec.maybe_exhausted()


def test_one_shot_equals_object_api():
    rng = np.random.default_rng(1)
    f = _random_tables(rng, 300, 40)
    s = _sample(rng, f)
    enc = RangeEncoder()
    enc.encode(s, f)
    assert encode(s, f) == enc.finish()
    np.testing.assert_array_equal(decode(encode(s, f), f), s)


def test_one_table_runs_equal_per_symbol_rows_and_mix_with_groups():
    """encode_iid codes the same bits as the same table repeated per symbol, between other groups."""
    rng = np.random.default_rng(5)
    row = _random_tables(rng, 1, 300)[0]
    s = _sample(rng, np.broadcast_to(row, (5000, 300)).copy())
    other = _random_tables(rng, 40, 7)
    o = _sample(rng, other)
    a, b = RangeEncoder(), RangeEncoder()
    a.encode(o, other)
    a.encode_iid(s, row)
    a.encode(o, other)
    b.encode(o, other)
    b.encode(s, np.broadcast_to(row, (s.size, 300)).copy())
    b.encode(o, other)
    assert a.ideal_bits == pytest.approx(b.ideal_bits, rel=1e-12)
    payload = a.finish()
    assert payload == b.finish()
    dec = RangeDecoder(payload)
    np.testing.assert_array_equal(dec.decode(other), o)
    np.testing.assert_array_equal(dec.decode_iid(row, s.size), s)
    np.testing.assert_array_equal(dec.decode(other), o)
    assert dec.maybe_exhausted()
    with pytest.raises(ValueError):
        RangeEncoder().encode_iid(np.array([300]), row)  # beyond the table
    with pytest.raises(ExactnessError):
        RangeEncoder().encode_iid(np.array([0]), np.array([0, 5]))  # a zero-width bin


def test_near_certain_symbol_both_outcomes():
    k, total = 256, 2**16
    f = np.ones((2000, k), dtype=np.int64)
    f[:, 5] = total - (k - 1)  # p(5) = 1 - 255/65536
    s = np.full(2000, 5)
    s[[3, 999, 1998]] = [0, 255, 6]  # a few near-impossible symbols
    payload = encode(s, f)
    np.testing.assert_array_equal(decode(payload, f), s)
    # the likely symbols cost almost nothing, the three unlikely ones 16 bits each
    assert 8 * len(payload) < 3 * 16 + 2000 * 0.01 + 64


def test_uniform_over_65536_symbols():
    rng = np.random.default_rng(2)
    f = np.ones((300, 65536), dtype=np.int64)
    s = rng.integers(0, 65536, 300)
    payload = encode(s, f)
    np.testing.assert_array_equal(decode(payload, f), s)
    assert ideal_bits(s, f) == pytest.approx(300 * 16)
    assert 8 * len(payload) <= 300 * 16 + 64


def test_pinned_bytes():
    """The bitstream for a fixed input never changes (constriction version or settings drift)."""
    k = 5
    f = np.array([[1, 2, 3, 4, 65526], [30000, 30000, 5000, 536, 0 + 1]] * 20, dtype=np.int64)
    s = np.array([4, 0, 3, 1] * 10)
    payload = encode(s, f)
    assert payload.hex() == PINNED_HEX
    assert hashlib.sha256(payload).hexdigest() == PINNED_SHA
    np.testing.assert_array_equal(decode(payload, f), s)
    assert f.shape[1] == k


PINNED_HEX = "b6990d0056384da343832c88d9832c92ad295422484db2ea"
PINNED_SHA = "d5cf258274a4cbba746792f100ec58e9a750f129a532a3d5d2a5e84921d86dc1"


def test_overhead_below_0_1_percent_on_a_million_symbols():
    """Realistic tables: discretized logistics over 256 values (random means, scales 0.4 to 25)."""
    import math

    from gencodec.exact import DiscretizedLogistic

    tables = DiscretizedLogistic(64, math.log(0.1), math.log(80.0), mean_frac_bits=2)  # pixelcnn's law
    rng = np.random.default_rng(3)
    n, chunk = 1_000_000, 1000
    mean_q = rng.integers(0, 1021, n)
    scale_idx = rng.integers(15, 55, n)
    enc = RangeEncoder()
    head = []
    for start in range(0, n, chunk):
        f = tables.freqs(mean_q[start : start + chunk], scale_idx[start : start + chunk])
        s = _sample(rng, f.astype(np.int64))
        enc.encode(s, f, validate=False)
        if start < 3 * chunk:
            head.append((s, f))
    payload = enc.finish()
    assert enc.n_symbols == n
    overhead = 8 * len(payload) / enc.ideal_bits - 1
    assert -0.001 < overhead < 0.001
    dec = RangeDecoder(payload)
    for s, f in head:  # decoding the start suffices here; full round trips are tested above
        np.testing.assert_array_equal(dec.decode(f), s)


def test_ideal_bits_matches_definition():
    f = np.array([[1, 3], [2, 2], [1, 7]])
    s = np.array([1, 0, 0])
    expected = -np.log2(3 / 4) - np.log2(2 / 4) - np.log2(1 / 8)
    assert ideal_bits(s, f) == pytest.approx(expected)
    enc = RangeEncoder()
    enc.encode(s, f)
    assert enc.ideal_bits == pytest.approx(expected)
    g = np.array([[1.0, 3.0], [2.0, 2.0], [1.0, 3.0]])  # trusted rows that all sum to 4
    known = RangeEncoder()
    known.encode(s, g, validate=False, total=4)
    summed = RangeEncoder()
    summed.encode(s, g, validate=False)
    assert known.ideal_bits == pytest.approx(summed.ideal_bits) == pytest.approx(-np.log2(3 / 4) - np.log2(2 / 4) - np.log2(1 / 4))
    per_row = RangeEncoder()  # one total per row (tables of different sums)
    per_row.encode(s, f.astype(np.float64), validate=False, total=f.sum(axis=1).astype(np.float64))
    assert per_row.ideal_bits == pytest.approx(expected)
    assert per_row.finish() == enc.finish()


@pytest.mark.parametrize(
    "bad",
    [
        np.array([[0, 5]]),  # zero-width bin
        np.array([[-1, 5]]),
        np.array([[1.5, 2.0]]),  # not an integer
        np.array([[np.inf, 1.0]]),
        np.array([1, 2, 3]),  # not 2-D
        np.array([[2**53, 1]], dtype=np.int64),  # total too large for float64
    ],
)
def test_bad_tables_rejected(bad):
    with pytest.raises(ExactnessError):
        check_freqs(bad)
    with pytest.raises(ExactnessError):
        RangeEncoder().encode(np.zeros(np.atleast_2d(bad).shape[0], dtype=np.int64), bad)


def test_bad_symbols_rejected():
    f = np.ones((2, 4), dtype=np.int64)
    with pytest.raises(ValueError):
        encode(np.array([0, 4]), f)
    with pytest.raises(ValueError):
        encode(np.array([0]), f)
    with pytest.raises(ValueError):
        encode(np.array([0.0, 1.0]), f)


def test_unvalidated_path_demands_float64():
    f = np.ones((2, 4), dtype=np.int64)
    with pytest.raises(ExactnessError):
        RangeEncoder().encode(np.array([0, 1]), f, validate=False)
    enc = RangeEncoder()
    enc.encode(np.array([0, 1]), f.astype(np.float64), validate=False)
    assert enc.finish() == encode(np.array([0, 1]), f)


def test_payload_not_whole_words_is_corrupt():
    with pytest.raises(CorruptFileError):
        RangeDecoder(b"\x00\x01\x02")


def test_encoder_refuses_after_finish():
    enc = RangeEncoder()
    enc.finish()
    with pytest.raises(RuntimeError):
        enc.encode(np.array([0]), np.ones((1, 2)))


@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(1, 40),
    n=st.integers(0, 60),
    seed=st.integers(0, 2**32 - 1),
    skew=st.floats(0.0, 8.0),
)
def test_round_trip_fuzz(k, n, seed, skew):
    rng = np.random.default_rng(seed)
    f = 1 + np.floor(rng.random((n, k)) ** skew * 1000).astype(np.int64)
    s = rng.integers(0, k, n)
    np.testing.assert_array_equal(decode(encode(s, f), f), s)


def test_torch_tensors_accepted_and_n_bits_reported():
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    f = torch.randint(1, 100, (50, 9), generator=g)
    s = torch.randint(0, 9, (50,), generator=g)
    enc = RangeEncoder()
    enc.encode(s, f)
    bits_before_finish = enc.n_bits
    payload = enc.finish()
    assert bits_before_finish == 8 * len(payload)
    np.testing.assert_array_equal(decode(payload, f.numpy()), s.numpy())
