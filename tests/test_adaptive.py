"""The online adaptive stage (gencodec.models.adaptive): exact integer costs, encoder replay ==
decoder order, independence of the batch split, and a real saving where the model is biased."""

from __future__ import annotations

import numpy as np
import pytest

from gencodec.models.adaptive import AdaptiveConfig, OnlineAdapter, code_length_table, wavefront_pixels

torch = pytest.importorskip("torch")

from gencodec.models.pixelcnn import DiscretizedLogistic, PixelCNNConfig  # noqa: E402

CFG = PixelCNNConfig()
DIST = DiscretizedLogistic(CFG)
STEP = CFG.reach_right + 1


def biased_planes(h: int, w: int, n_coded: int, seed: int = 0):
    """Symbols, model mean and scale index (n_coded, H, W): the 'model' is off by +2 on channel 0,
    and channels 1.. repeat channel 0's error (what a cross-channel context can learn)."""
    rng = np.random.default_rng(seed)
    mean = rng.integers(20, 236, (n_coded, h, w))
    idx = rng.integers(20, 40, (n_coded, h, w))
    noise = np.round(rng.logistic(0.0, 3.0, (h, w))).astype(np.int64)
    err0 = noise + 2
    sym = np.empty_like(mean)
    for c in range(n_coded):
        e = err0 if c == 0 else err0 + np.round(rng.logistic(0.0, 1.0, (h, w))).astype(np.int64)
        sym[c] = np.clip(mean[c] + e, 0, 255)
    return sym, mean, idx


def bits(sym, mean, idx) -> float:
    f = DIST.rows[(idx.astype(np.int64) * 256 + mean).ravel(), sym.ravel()]
    return float(np.sum(16 - np.log2(f)))


def decoder_order(sym, mean, idx, cfg=AdaptiveConfig(), split=False, seed=0):
    """What the wavefront decoder sees: correct -> (decode) -> update per wavefront and channel.
    split=True: each wavefront's pixels go through correct in two calls and update in two other
    (shuffled) calls."""
    n_coded, h, w = sym.shape
    ad = OnlineAdapter(DIST.cdf, n_coded, h, w, cfg)
    out_m, out_i = np.zeros_like(mean), np.zeros_like(idx)
    rng = np.random.default_rng(seed)
    for t in range(STEP * (h - 1) + w):
        ys, xs = wavefront_pixels(t, h, w, STEP)
        if ys.size == 0:
            continue
        parts = [np.arange(ys.size)]
        if split and ys.size > 1:
            cut = int(rng.integers(1, ys.size))
            perm = rng.permutation(ys.size)
            parts = [perm[:cut], perm[cut:]]
        for c in range(n_coded):
            for p in parts:
                pos = ad.positions(ys[p], xs[p])
                m, i = ad.correct(c, pos, mean[c, ys[p], xs[p]], idx[c, ys[p], xs[p]])
                assert m.dtype == np.int64 and i.dtype == np.int64
                out_m[c, ys[p], xs[p]], out_i[c, ys[p], xs[p]] = m, i
            for p in parts[::-1]:
                ad.update(c, ad.positions(ys[p], xs[p]), sym[c, ys[p], xs[p]])
    return out_m, out_i


def test_code_length_table_is_exact_floor_of_log2():
    cost = code_length_table(DIST.cdf)
    freq = DIST.cdf[:, 1:] - DIST.cdf[:, :-1] + 1
    assert cost.shape == (CFG.n_scales, 511) and cost.dtype == np.int64
    est = 256 * np.log2(freq.astype(np.float64))
    safe = np.abs(est - np.round(est)) > 1e-6  # away from integer boundaries the float agrees
    assert np.array_equal(cost[safe], (16 * 256 - np.floor(est))[safe].astype(np.int64))
    for f in (1, 2, 3, 255, 256, 257, 65535, 65536):  # exact values at and next to powers of two
        c = int(code_length_table(np.array([[0, f - 1]]))[0, 0])
        assert 2 ** (16 * 256 - c) <= f**256 < 2 ** (16 * 256 - c + 1)


@pytest.mark.parametrize("n_coded,h,w", [(3, 13, 21), (1, 9, 7), (3, 1, 17), (3, 19, 1), (3, 2, 2)])
def test_replay_equals_decoder_order_and_any_split(n_coded, h, w):
    sym, mean, idx = biased_planes(h, w, n_coded, seed=h * 31 + w)
    cfg = AdaptiveConfig(halve_at=8)  # small, so halving happens often
    ref = OnlineAdapter(DIST.cdf, n_coded, h, w, cfg).replay(sym, mean, idx, STEP)
    for split in (False, True):
        got = decoder_order(sym, mean, idx, cfg, split=split, seed=n_coded)
        assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1])
    again = OnlineAdapter(DIST.cdf, n_coded, h, w, cfg).replay(sym, mean, idx, STEP)
    assert np.array_equal(again[0], ref[0]) and np.array_equal(again[1], ref[1])
    assert ref[0].min() >= 0 and ref[0].max() <= 255 and ref[1].min() >= 0 and ref[1].max() < CFG.n_scales


def test_replay_on_uint8_and_int16_inputs_like_the_codec():
    sym, mean, idx = biased_planes(11, 15, 3, seed=5)
    a = OnlineAdapter(DIST.cdf, 3, 11, 15).replay(sym, mean, idx, STEP)
    b = OnlineAdapter(DIST.cdf, 3, 11, 15).replay(sym.astype(np.uint8), mean.astype(np.int16), idx.astype(np.int16), STEP)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_first_pixels_are_unchanged_and_empty_image():
    sym, mean, idx = biased_planes(6, 6, 3)
    m, i = OnlineAdapter(DIST.cdf, 3, 6, 6).replay(sym, mean, idx, STEP)
    assert np.array_equal(m[:, 0, 0], mean[:, 0, 0]) and np.array_equal(i[:, 0, 0], idx[:, 0, 0])
    z = np.zeros((3, 0, 5), np.int64)
    m, i = OnlineAdapter(DIST.cdf, 3, 0, 5).replay(z, z, z, STEP)
    assert m.shape == (3, 0, 5) and i.shape == (3, 0, 5)


def test_adaptation_saves_bits_on_a_biased_model():
    sym, mean, idx = biased_planes(48, 64, 3, seed=1)
    m, i = OnlineAdapter(DIST.cdf, 3, 48, 64).replay(sym, mean, idx, STEP)
    before, after = bits(sym, mean, idx), bits(sym, m, i)
    assert after < 0.9 * before, (before, after)
    # the cross-channel context: channels 1, 2 gain more than channel 0 (their error repeats channel 0's)
    gain = [bits(sym[c], mean[c], idx[c]) - bits(sym[c], m[c], i[c]) for c in range(3)]
    assert gain[1] > gain[0] and gain[2] > gain[0]


def test_adaptation_costs_little_on_a_calibrated_model():
    rng = np.random.default_rng(3)
    h, w = 40, 40
    idx = np.full((3, h, w), 32)  # scale index 32 of the table: s = exp(log 0.1 + 32 * step)
    step = (CFG.log_scale_max - CFG.log_scale_min) / (CFG.n_scales - 1)
    s = np.exp(CFG.log_scale_min + 32 * step)
    mean = rng.integers(40, 216, (3, h, w))
    sym = np.clip(mean + np.round(rng.logistic(0.0, s, (3, h, w))).astype(np.int64), 0, 255)
    m, i = OnlineAdapter(DIST.cdf, 3, h, w).replay(sym, mean, idx, STEP)
    assert bits(sym, m, i) < 1.03 * bits(sym, mean, idx)
