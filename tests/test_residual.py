"""gencodec.codecs.residual: the residual layer over a lossy decoder's pixels."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gencodec.codecs import residual
from gencodec.errors import CorruptFileError


def _pair(rng, shape, noise=9.0):
    image = rng.integers(0, 256, shape).astype(np.uint8)
    restored = np.clip(image + rng.normal(0, noise, shape).round(), 0, 255).astype(np.uint8)
    return image, restored


@pytest.mark.parametrize("shape", [(37, 50, 3), (20, 31), (1, 1, 3)])
@pytest.mark.parametrize("step", [1, 2, 3, 8, 31, 255])
def test_round_trip_within_half_a_step(shape, step):
    rng = np.random.default_rng(step)
    image, restored = _pair(rng, shape)
    classes = rng.integers(0, 5, shape[:2])
    layer = residual.encode(image, restored, step, classes)
    out = residual.decode(layer.data, restored, step, classes)
    assert np.array_equal(out, layer.reconstruction) and out.dtype == np.uint8 and out.shape == shape
    assert np.abs(out.astype(int) - image.astype(int)).max() <= step // 2
    if step == 1:
        assert np.array_equal(out, image)
    assert residual.encode(image, restored, step, classes).data == layer.data  # deterministic


def test_fewer_bits_for_coarser_steps_and_classes_that_separate_activity():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (64, 64, 3)).astype(np.uint8)
    noise = np.where(np.arange(64)[:, None, None] < 32, 2.0, 20.0)  # a quiet half and a busy half
    restored = np.clip(image + rng.normal(0, 1, image.shape) * noise, 0, 255).astype(np.uint8)
    sizes = [len(residual.encode(image, restored, s, np.zeros((64, 64), int)).data) for s in (1, 3, 9, 27)]
    assert sizes == sorted(sizes, reverse=True)
    split = (np.arange(64)[:, None] >= 32).astype(int) * np.ones((1, 64), int)
    one, two = (residual.encode(image, restored, 3, c) for c in (np.zeros((64, 64), int), split))
    assert two.ideal_bits < 0.97 * one.ideal_bits


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.sampled_from([1, 3]), st.integers(1, 255), st.integers(0, 2**31))
def test_round_trip_fuzz(h, w, c, step, seed):
    rng = np.random.default_rng(seed)
    shape = (h, w) if c == 1 else (h, w, c)
    image, restored = _pair(rng, shape, noise=float(rng.integers(0, 200)))
    classes = rng.integers(0, 3, (h, w))
    layer = residual.encode(image, restored, step, classes)
    np.testing.assert_array_equal(residual.decode(layer.data, restored, step, classes), layer.reconstruction)


def test_damaged_layers_are_refused():
    rng = np.random.default_rng(1)
    image, restored = _pair(rng, (30, 30, 3))
    classes = np.zeros((30, 30), int)
    data = residual.encode(image, restored, 5, classes).data
    n = int.from_bytes(data[:4], "little")
    bomb = zlib.compress(b"\x01" * 10_000_000)  # a table section that inflates far beyond any table
    for bad in (data[:3], (n + 10**6).to_bytes(4, "little") + data[4:], data[:4] + bytes([data[4] ^ 0x55]) + data[5:],
                len(bomb).to_bytes(4, "little") + bomb + data[4 + n :]):
        with pytest.raises(CorruptFileError):
            residual.decode(bad, restored, 5, classes)
    tables = bytearray(zlib.decompress(data[4 : 4 + n]))
    for edit in ((0, 0x7E), (1, 0x7F)):  # lo and width beyond what step 5 can need
        t = bytearray(tables)
        t[edit[0]] = edit[1]
        z = zlib.compress(bytes(t))
        with pytest.raises(CorruptFileError):
            residual.decode(len(z).to_bytes(4, "little") + z + data[4 + n :], restored, 5, classes)
    with pytest.raises(ValueError, match="from 1 to 255"):
        residual.encode(image, restored, 0, classes)
