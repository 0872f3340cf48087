"""Large images: the hyperprior's transforms run in overlapping tiles. The exact layers give the
untiled integers bit for bit, the float transforms the untiled result up to float summation order
(the analysis exactly here), a margin short of the receptive field does not, and a tiled image
round-trips. The tiles are made small here so that small images exercise them."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("compressai")

import gencodec  # noqa: E402
from gencodec.models import hyperprior as hp  # noqa: E402
from gencodec.models import zoo  # noqa: E402
from gencodec.models import hyperprior_refine  # noqa: E402
from gencodec.models.tiling import tiled, tiles  # noqa: E402

from test_hyperprior import TINY_CB_PATH, photo, psnr  # noqa: E402


def test_tiles_cover_the_input_once_with_clipped_margins():
    grid = tiles(10, 7, 4, 2)
    cover = np.zeros((10, 7), int)
    for t in grid:
        cover[t.rows, t.cols] += 1
        assert t.grown_rows.start == max(t.rows.start - 2, 0) and t.grown_rows.stop == min(t.rows.stop + 2, 10)
    assert (cover == 1).all() and len(grid) == 3 * 2
    assert len(tiles(4, 4, 4, 2)) == 1  # an input of one tile runs whole


@pytest.mark.parametrize("margin,same", [(2, True), (1, False)])
def test_a_tiled_exact_stack_is_the_whole_stack_iff_its_margin_covers_the_field(margin, same):
    """Two 3x3 layers: the field reaches 2 positions, and float64 sums of integers are exact."""
    gen = torch.Generator().manual_seed(0)
    w1 = torch.randint(-50, 50, (6, 3, 3, 3), generator=gen).double()
    w2 = torch.randint(-50, 50, (4, 6, 3, 3), generator=gen).double()

    def f(x):
        return torch.nn.functional.conv2d(torch.nn.functional.conv2d(x, w1, padding=1), w2, padding=1)

    x = torch.randint(-100, 100, (1, 3, 23, 17), generator=gen).double()
    assert torch.equal(tiled(f, x, 5, margin), f(x)) == same


def test_downsampling_tiles_keep_their_stride():
    conv = torch.nn.Conv2d(3, 2, 5, stride=4, padding=2).double()
    x = torch.rand(1, 3, 64, 40, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(tiled(conv, x, 16, 4, Fraction(1, 4)), conv(x))
    with pytest.raises(ValueError, match="multiples of 4"):
        tiled(conv, x, 16, 2, Fraction(1, 4))


@pytest.fixture
def small_tiles(monkeypatch):
    """Tiles of 2 latents (32 pixels) and the analysis's of 64 pixels: a 90 x 70 photo has several."""
    monkeypatch.setattr(hp, "SYNTH_TILE", 2)
    monkeypatch.setattr(hp, "ANALYSIS_TILE", 64)
    monkeypatch.setattr(hp, "EXACT_TILE", 4)  # h_s's tile: one hyper-latent


def test_tiled_transforms_match_the_whole_image(small_tiles, monkeypatch):
    model = zoo.load(TINY_CB_PATH, "hyperprior")
    rgb = np.asarray(photo(90, 70))
    tiled_an = model.analyse(rgb)
    sym_t, y_t, means_t = tiled_an.at(2.0)
    px_t = tiled_an.pixels(y_t, means_t, 2.0)
    z = np.random.default_rng(0).integers(-2, 3, (model.cfg.N, 3, 2))
    exact_t = model.hyper_state(z)
    ctx_t = model.context_tables(np.ones_like(exact_t[0]), *exact_t[0:1], *exact_t[2:])
    for name in ("SYNTH_TILE", "ANALYSIS_TILE", "EXACT_TILE"):
        monkeypatch.setattr(hp, name, 1 << 20)
    whole = model.analyse(rgb)
    assert torch.equal(tiled_an.y, whole.y)  # the analysis's margin covers its field: nothing moves
    sym, y, means = whole.at(2.0)
    assert np.array_equal(sym_t, sym)
    px = whole.pixels(y, means, 2.0)
    assert np.abs(px.astype(int) - px_t).max() <= 1 and np.mean(px != px_t) < 1e-3  # float order alone
    exact = model.hyper_state(z)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(exact_t, exact))  # bit for bit
    ctx = model.context_tables(np.ones_like(exact[0]), *exact[0:1], *exact[2:])
    assert all(np.array_equal(a, b) for a, b in zip(ctx_t, ctx))


def test_a_tiled_image_round_trips_and_meets_its_target(small_tiles):
    img = photo(90, 70)
    blob = gencodec.compress(img, codec="hyperprior", model=str(TINY_CB_PATH), psnr=26)
    out = gencodec.decompress(blob, model=str(TINY_CB_PATH))
    assert out.size == img.size and psnr(out, img) >= 26


def test_tiled_refinement_follows_the_whole_image_s_gradient(small_tiles, monkeypatch):
    """The tiled distortion (each tile's graph freed in turn) gives the whole image's cost and
    gradient: refining with it lands where refining the whole image does, within float noise."""
    model = zoo.load(TINY_CB_PATH, "hyperprior")
    rgb = np.asarray(photo(90, 70))
    an = model.analyse(rgb)
    an.at(2.0)
    y = (an.y * model.gains(2.0)[0])[0].numpy()
    monkeypatch.setattr(hyperprior_refine, "fast_dtype", lambda: None)  # float32: only summation order differs
    monkeypatch.setitem(hyperprior_refine.SCHEDULES, 1, hyperprior_refine.Schedule(4, 0, 0.01))
    assert len(model.synthesis_tiles(*y.shape[1:])) > 1
    r_t = hyperprior_refine.refine_latents(model, an.x, y, an.tables, 2.0, effort=1)
    monkeypatch.setattr(hp, "SYNTH_TILE", 1 << 20)
    r = hyperprior_refine.refine_latents(model, an.x, y, an.tables, 2.0, effort=1)
    assert np.abs(r - y).max() > 0.01  # it moved...
    assert np.abs(r_t - r).max() < 1e-4  # ...the same way
