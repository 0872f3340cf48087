"""``effort=1``/``2``: the encoder refines one image's latents toward a lower rate-distortion cost;
the decoder and the frame are unchanged, rate control keeps its targets, the same input gives the
same file, benchmarks sweep it as a curve."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("compressai")

import gencodec  # noqa: E402
from gencodec import api, container  # noqa: E402
from gencodec.bench.runner import plan_jobs  # noqa: E402
from gencodec.errors import UnsupportedInputError  # noqa: E402
from gencodec.models import zoo  # noqa: E402
from gencodec.models.hyperprior_refine import ladder_lambda, soft_round  # noqa: E402

from test_hyperprior import TINY_CB_PATH, photo, psnr  # noqa: E402

KODIM23 = Path(__file__).resolve().parent.parent / "corpora" / "kodak" / "kodim23.png"
SHIPPED = zoo.default_weights("hyperprior")


def test_ladder_lambda_interpolates_like_the_gains():
    lams = (0.001, 0.004, 0.016)
    assert [ladder_lambda(lams, q) for q in (1, 2, 3)] == pytest.approx(list(lams))
    assert ladder_lambda(lams, 1.5) == pytest.approx(0.002)  # geometric
    assert ladder_lambda(lams, 4.0) == pytest.approx(0.064)  # extrapolated from the end pair
    assert ladder_lambda(lams, 0.0) == pytest.approx(0.00025)


def test_soft_rounding_stays_between_floor_and_ceiling_and_anneals_to_rounding():
    gen = torch.Generator().manual_seed(1)
    r = torch.linspace(-3.2, 3.2, 1001)
    warm = soft_round(r, 0.5, gen)
    assert bool(((warm >= torch.floor(r)) & (warm <= torch.floor(r) + 1)).all())
    assert float((warm - r).abs().max()) > 0.3  # at 0.5 it is really random
    cold = soft_round(r, 0.01, gen)
    clear = (r - torch.floor(r) - 0.5).abs() > 0.05  # a latent at a half stays a coin toss
    assert float((cold - torch.round(r))[clear].abs().max()) < 0.02  # ... elsewhere at 0.01 it is rounding
    r.requires_grad_(True)
    soft_round(r, 0.2, gen).sum().backward()
    assert bool((r.grad != 0).any())  # differentiable (unlike rounding)


def test_bfloat16_only_where_the_cpu_has_it():
    """Under ATEN_CPU_CAPABILITY=default (no AVX-512 kernels) the refinement stays float32."""
    import os
    import subprocess
    import sys

    code = "from gencodec.models.hyperprior_refine import fast_dtype; print(fast_dtype())"
    env = dict(os.environ, ATEN_CPU_CAPABILITY="default")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None"


def _cost(blob: bytes, img: Image.Image, quality: float) -> float:
    """The cost the model trades: lambda * MSE (0..255) + bits per pixel, of the real file."""
    out = np.asarray(gencodec.decompress(blob), dtype=np.float64)
    mse = np.mean((out - np.asarray(img, dtype=np.float64)) ** 2)
    lam = ladder_lambda(tuple(zoo.config_of(SHIPPED)["lambdas"]), quality)
    return lam * mse + 8 * len(blob) / (img.width * img.height)


@pytest.mark.skipif(SHIPPED is None or not SHIPPED.is_file() or not KODIM23.is_file(), reason="no shipped model")
def test_effort_1_lowers_the_real_cost_and_decodes_with_the_plain_decoder():
    with Image.open(KODIM23) as im:
        img = im.convert("RGB").crop((256, 128, 448, 256))  # 192x128
    plain = api.compress_report(img, "hyperprior", quality=6)
    refined = api.compress_report(img, "hyperprior", quality=6, effort=1)
    assert refined.stats["refined"] == 1 and plain.stats["refined"] == 0
    assert refined.blob != plain.blob
    head = container.read_header(refined.blob)
    assert set(head.params) == {"quality", "latents"}  # an ordinary frame: nothing says how it was made
    assert _cost(refined.blob, img, 6) < 0.97 * _cost(plain.blob, img, 6)  # by about 5 % (30f917a4)
    out = gencodec.decompress(refined.blob)
    assert psnr(out, img) == pytest.approx(refined.stats["psnr"], abs=0.05)  # what the encoder measured
    assert api.compress_report(img, "hyperprior", quality=6, effort=1).blob == refined.blob  # seeded noise


@pytest.mark.skipif(SHIPPED is None or not SHIPPED.is_file() or not KODIM23.is_file(), reason="no shipped model")
def test_effort_under_rate_control_finds_a_smaller_file_or_a_sharper_one():
    """Refinement moves a quality's PSNR too, so rate control searches refined qualities for the target."""
    with Image.open(KODIM23) as im:
        img = im.convert("RGB").crop((256, 128, 640, 384))  # 384x256: a few kB, so 1 % is many bytes
    n = img.width * img.height
    plain = api.compress_report(img, "hyperprior", psnr=34.0)
    fine = api.compress_report(img, "hyperprior", psnr=34.0, effort=1)
    assert fine.stats["refined"] == 1 and fine.stats["psnr"] >= 34.0
    assert psnr(gencodec.decompress(fine.blob), img) >= 34.0
    assert len(fine.blob) < 0.98 * len(plain.blob)  # about 8 % smaller (8d1f2c44)
    plain = api.compress_report(img, "hyperprior", bpp=0.5)
    fine = api.compress_report(img, "hyperprior", bpp=0.5, effort=1)
    assert fine.stats["refined"] == 1 and 8 * len(fine.blob) / n <= 0.5
    assert fine.stats["psnr"] > plain.stats["psnr"] + 0.15  # about 0.5 dB (8d1f2c44)


def test_effort_keeps_rate_control_targets():
    path = str(TINY_CB_PATH)
    img = photo(128, 96, seed=4)
    n = img.width * img.height
    lo, hi = (psnr(gencodec.decompress(gencodec.compress(img, codec="hyperprior", model=path, quality=q), model=path),
                   img) for q in (1, 3))
    target = (lo + hi) / 2
    plain = gencodec.compress(img, codec="hyperprior", model=path, psnr=target)
    fine = gencodec.compress(img, codec="hyperprior", model=path, psnr=target, effort=1)
    assert psnr(gencodec.decompress(fine, model=path), img) >= target and len(fine) <= len(plain)
    budget = 8 * len(plain) / n
    plain_b = gencodec.compress(img, codec="hyperprior", model=path, bpp=budget)
    fine_b = gencodec.compress(img, codec="hyperprior", model=path, bpp=budget, effort=1)
    assert 8 * len(fine_b) / n <= budget
    assert psnr(gencodec.decompress(fine_b, model=path), img) >= psnr(gencodec.decompress(plain_b, model=path), img)


def test_bench_sweeps_a_lossy_codec_s_parameters_as_their_own_curve():
    jobs = plan_jobs(["hyperprior"], True, {"hyperprior": [1, 2]}, {"hyperprior": [{"effort": 1}]})
    assert jobs == [("hyperprior", {"quality": 1}), ("hyperprior", {"quality": 2}),
                    ("hyperprior", {"quality": 1, "effort": 1}), ("hyperprior", {"quality": 2, "effort": 1})]
    from gencodec.bench.report import job_label, rd_curves

    tots = [dict(codec=c, params=p, quality=p["quality"], n_files=1, mean_bits_per_pixel=0.1 * p["quality"],
                 mean_psnr=30.0 + p["quality"] + p.get("effort", 0)) for c, p in jobs]
    curves = rd_curves(tots)
    assert set(curves) == {"hyperprior", "hyperprior (effort=1)"}
    assert [pt["psnr"] for pt in curves["hyperprior (effort=1)"]] == [32.0, 33.0]
    assert job_label(tots[2]) == "hyperprior (effort=1)"
    with pytest.raises(UnsupportedInputError, match="qualities come from --quality"):
        plan_jobs(["hyperprior"], True, None, {"hyperprior": [{"quality": 3}]})
