"""Exact core: quantization primitives, the exact layer and its twin, deterministic tables, the
contract's schedules and logistic tables, and cross-process exactness of the tables pixelcnn gives
through the contract (instruction sets, thread counts, BLAS kernels, batch splits)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gencodec.errors import ExactnessError
from gencodec.exact import (
    DiscretizedLogistic,
    ExactLinear,
    QFormat,
    QuantLinear,
    Schedule,
    check_accumulators,
    exact_mode,
    fake_quant,
    requantize,
    wavefront_groups,
)
from gencodec.exact.detmath import det_floor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from exact_harness import EXACT_VARIATIONS, all_hashes, exact_tables, float_outputs, harness_image, sha  # noqa: E402

PIX = QFormat(0, 0, 255)
HID = QFormat(4, 0, 127)
SIGNED = QFormat(3, -127, 127)


# ---------------------------------------------------------------------------------------------
# quantization primitives
# ---------------------------------------------------------------------------------------------
def test_requantize_rounds_half_to_even_and_clamps():
    acc = torch.tensor([12.0, 20.0, 28.0, -12.0, 1e6, -1e6, 7.0])
    out = requantize(acc, 3, -100, 100)  # /8: 1.5, 2.5, 3.5, -1.5, big, -big, 0.875
    assert out.tolist() == [2.0, 2.0, 4.0, -2.0, 100.0, -100.0, 1.0]
    assert requantize(torch.tensor([3.0]), -2, -100, 100).tolist() == [12.0]


def test_fake_quant_grid_range_and_gradient():
    fmt = QFormat(2, -8, 8)
    x = torch.tensor([0.1, 0.13, -5.0, 5.0, 1.376], requires_grad=True)
    y = fake_quant(x, fmt)
    assert y.tolist() == [0.0, 0.25, -2.0, 2.0, 1.5]
    y.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 0.0, 0.0, 1.0]  # straight through inside, clamp outside


def test_qformat_rejects_empty_range():
    with pytest.raises(ValueError):
        QFormat(0, 5, 4)


def test_exact_mode_sets_ieee_precision_and_restores():
    from gencodec.exact.quant import _precision_knobs

    knobs = _precision_knobs()
    if not knobs:  # torch < 2.9: legacy switches
        with exact_mode():
            assert torch.get_float32_matmul_precision() == "highest"
        return
    conv = torch.backends.cudnn.conv
    before = conv.fp32_precision
    conv.fp32_precision = "tf32"
    try:
        with exact_mode():
            assert all(k.fp32_precision == "ieee" for k in knobs)
            assert not torch.is_grad_enabled()
        assert conv.fp32_precision == "tf32"
    finally:
        conv.fp32_precision = before


# ---------------------------------------------------------------------------------------------
# the exact layer and its training twin
# ---------------------------------------------------------------------------------------------
def _randomize(module: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)


def test_quant_linear_export_matches_forward():
    torch.manual_seed(0)
    layer = QuantLinear(12, 9, HID, SIGNED, w_frac_bits=6)
    _randomize(layer)
    x_int = torch.randint(0, 128, (5, 12)).float()
    y_real = layer(x_int / 16)
    exact = layer.export()
    with exact_mode():
        y_int = exact(x_int)
    assert torch.equal(y_real * 8, y_int)
    assert y_int.std() > 0


def _linear(max_w: int, fan_in: int, in_fmt: QFormat = PIX) -> ExactLinear:
    w = torch.full((2, fan_in), float(max_w))
    return ExactLinear(w, torch.zeros(2), 8, in_fmt, HID)


def test_accumulator_bounds_are_checked():
    check_accumulators([_linear(127, 500)], "small")  # 500 * 127 * 255 < 2**24
    with pytest.raises(ExactnessError, match="big accumulator bound 19507500 is not below 2\\*\\*24"):
        check_accumulators([_linear(127, 500), _linear(300, 255)], "big")


def test_exact_layer_refuses_inputs_outside_its_format():
    layer = _linear(1, 3)
    with pytest.raises(ExactnessError):
        layer(torch.tensor([[0.0, 256.0, 1.0]]))
    with pytest.raises(ExactnessError):
        layer(torch.tensor([[-1.0, 2.0, 1.0]]))
    with pytest.raises(ExactnessError):  # normalized pixels would make the sums inexact
        layer(torch.tensor([[0.5, 2.0, 1.0]]))
    with pytest.raises(ExactnessError):
        layer(torch.tensor([[float("nan"), 2.0, 1.0]]))
    assert layer(torch.tensor([[0.0, 255.0, 1.0]])).shape == (1, 2)


@settings(max_examples=25, deadline=None)
@given(
    in_frac=st.integers(0, 6),
    w_frac=st.integers(3, 10),
    out_frac=st.integers(0, 6),
    relu=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_quant_linear_twin_equals_exact_for_any_formats(in_frac, w_frac, out_frac, relu, seed):
    in_fmt = QFormat(in_frac, -127, 127)
    out_fmt = QFormat(out_frac, 0 if relu else -127, 127)
    layer = QuantLinear(16, 5, in_fmt, out_fmt, w_frac_bits=w_frac)
    _randomize(layer, seed)
    g = torch.Generator().manual_seed(seed)
    x_int = torch.randint(-127, 128, (7, 16), generator=g).float()
    exact = layer.export()
    with exact_mode():
        assert torch.equal(layer(x_int * in_fmt.scale) * 2.0**out_frac, exact(x_int))


# ---------------------------------------------------------------------------------------------
# deterministic tables
# ---------------------------------------------------------------------------------------------
def test_det_floor_uses_exact_values_near_boundaries():
    est = np.array([2.9999999999, 3.0000000001, 0.5, 7.25])
    exact = {0: Decimal(3), 1: Decimal("2.99999999999999")}
    calls = []

    def fn(idx):
        calls.extend(idx)
        return [exact[i] for i in idx]

    assert det_floor(est, fn).tolist() == [3, 2, 0, 7]
    assert calls == [0, 1]  # only the two entries next to a boundary were recomputed


def test_det_round_exact_fallback_keeps_50_digits():
    """The fallback must not round through the default Decimal context (28 digits): the exact
    value 2.4999...9 (32 nines) rounds half-up to 2, although at 28 digits it would become 3."""
    from decimal import localcontext

    from gencodec.exact.detmath import det_round

    value = Decimal("2." + "4" + "9" * 31)
    with localcontext() as ctx:
        ctx.prec = 28
        assert det_round(np.array([2.5]), lambda idx: [value for _ in idx]).tolist() == [2]


@settings(max_examples=20, deadline=None)
@given(n_scales=st.integers(2, 16), mean_frac_bits=st.integers(0, 2), seed=st.integers(0, 2**31 - 1))
def test_logistic_tables_are_valid_for_any_config(n_scales, mean_frac_bits, seed):
    """Every table: 256 entries >= 1 summing to 2**16; ``prob_freq`` reads the same entries."""
    dist = DiscretizedLogistic(n_scales, float(np.log(0.2)), float(np.log(60.0)), mean_frac_bits)
    rng = np.random.default_rng(seed)
    md = rng.integers(0, dist.n_means, 300)
    s = rng.integers(0, n_scales, 300)
    f = dist.freqs(md, s)
    assert f.shape == (300, 256) and f.min() >= 1 and (f.sum(1) == 2**16).all()
    x = rng.integers(0, 256, 300)
    assert np.array_equal(dist.prob_freq(x, md, s), f[np.arange(300), x])


# ---------------------------------------------------------------------------------------------
# schedules
# ---------------------------------------------------------------------------------------------
def test_schedule_must_cover_every_symbol_once():
    Schedule((np.array([0, 2]), np.array([1])), 3).check()
    with pytest.raises(ValueError, match="exactly once"):
        Schedule((np.array([0, 1]), np.array([1])), 3).check()
    with pytest.raises(ValueError, match="exactly once"):
        Schedule((np.array([0]),), 2).check()
    with pytest.raises(ValueError, match="rounds"):
        Schedule((np.array([0]), np.array([1])), 2, rounds=(1,)).check()


@pytest.mark.parametrize("h, w, step", [(4, 5, 1), (5, 4, 3), (1, 7, 3), (7, 1, 3), (6, 2, 3)])
def test_wavefronts_respect_the_causal_reach(h, w, step):
    """On wavefronts t = step y + x every pixel comes after its left neighbour and after the row above
    up to step - 1 columns to its right; pixels of one wavefront are independent."""
    order, counts = wavefront_groups(h, w, step)
    assert sorted(order.tolist()) == list(range(h * w)) and counts.sum() == h * w
    t_of = np.repeat(np.arange(counts.size), counts)
    t = np.empty(h * w, np.int64)
    t[order] = t_of
    t = t.reshape(h, w)
    assert np.array_equal(t, step * np.arange(h)[:, None] + np.arange(w))
    for y in range(h):
        for x in range(w):
            if x:
                assert t[y, x - 1] < t[y, x]
            for dx in range(-2, step):
                if y and 0 <= x + dx < w:
                    assert t[y - 1, x + dx] < t[y, x]


# ---------------------------------------------------------------------------------------------
# in process and across processes: the tables of pixelcnn through the contract
# ---------------------------------------------------------------------------------------------
def test_harness_in_process_variations_all_identical():
    """Stripes of 1/3/8 rows, torch threads 1/2, the parallel pass and the decoder's session."""
    hashes = all_hashes(harness_image(12, 10, seed=4))
    exact = {k: v for k, v in hashes.items() if k.startswith("exact/")}
    assert len(exact) == len(EXACT_VARIATIONS) and len(set(exact.values())) == 1, exact
    floats = {k: v for k, v in hashes.items() if k.startswith("float/")}
    assert len(set(floats.values())) > 1, "the harness failed to see a float network's batch dependence"


def test_float_network_depends_on_batch_split():
    """Negative control: the same comparison on a plain float network detects a difference."""
    assert sha(float_outputs(1)) != sha(float_outputs(64))


def _cpu_has(flag: str) -> bool:
    try:
        return flag in Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


def _child_env(**settings: str | None) -> dict[str, str]:
    names = ("ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS", "MKL_CBWR", "OPENBLAS_CORETYPE")
    env = {k: v for k, v in os.environ.items() if k not in names}
    env.update({k: v for k, v in settings.items() if v is not None})
    return env


def _run_children(settings: list[dict]) -> list[tuple[dict, dict[str, str]]]:
    """Run _exact_child.py once per environment (concurrently); its JSON hashes per setting."""
    script = Path(__file__).resolve().parent / "_exact_child.py"
    procs = [
        subprocess.Popen([sys.executable, str(script), *CHILD_IMAGE_ARGS], env=_child_env(**s),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for s in settings
    ]
    results = []
    for p, s in zip(procs, settings):
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        results.append((s, json.loads(out.strip().splitlines()[-1])))
    return results


CHILD_IMAGE_ARGS = ("10", "8", "5")  # height, width, seed of harness_image


def _here_hash() -> str:
    return sha(exact_tables(harness_image(10, 8, 5)))


def test_harness_children_with_baseline_and_avx2_kernels_match_this_process():
    """Subprocesses with ATEN_CPU_CAPABILITY=default (one OpenMP thread, MKL_CBWR=COMPATIBLE, the
    Prescott BLAS kernels) and =avx2 (two threads, Haswell kernels; skipped where the CPU lacks AVX2)
    compute the very tables this process computes, under all their in-process variations; the float
    control's outputs differ between the instruction sets."""
    settings = [dict(ATEN_CPU_CAPABILITY="default", OMP_NUM_THREADS="1", MKL_CBWR="COMPATIBLE",
                     OPENBLAS_CORETYPE="Prescott")]
    if _cpu_has("avx2"):
        settings.append(dict(ATEN_CPU_CAPABILITY="avx2", OMP_NUM_THREADS="2", MKL_CBWR=None, OPENBLAS_CORETYPE="Haswell"))
    results = _run_children(settings)
    here = _here_hash()
    for s, child in results:
        exact = {k: v for k, v in child.items() if k.startswith("exact/")}
        assert len(exact) == len(EXACT_VARIATIONS) and set(exact.values()) == {here}, (s, exact)


@pytest.mark.slow
@pytest.mark.skipif(not _cpu_has("avx2"), reason="CPU lacks AVX2")
def test_harness_across_instruction_sets_threads_and_mkl():
    """The full matrix: baseline / AVX2 / native kernels, 1 and 2 OpenMP threads, MKL_CBWR set and
    unset: one set of tables; the float control sees the ISA."""
    settings = [
        dict(ATEN_CPU_CAPABILITY="default", OMP_NUM_THREADS="2", MKL_CBWR=None),
        dict(ATEN_CPU_CAPABILITY="avx2", OMP_NUM_THREADS="1", MKL_CBWR="COMPATIBLE"),
        dict(ATEN_CPU_CAPABILITY=None, OMP_NUM_THREADS="1", MKL_CBWR="COMPATIBLE"),
        dict(ATEN_CPU_CAPABILITY=None, OMP_NUM_THREADS="2", MKL_CBWR=None),
    ]
    results = _run_children(settings)
    exact = {f"{s}:{k}": v for s, r in results for k, v in r.items() if k.startswith("exact/")}
    assert len(set(exact.values())) == 1 and set(exact.values()) == {_here_hash()}, exact
    by_cap = {str(s["ATEN_CPU_CAPABILITY"]): r["float/b64/t1"] for s, r in results}
    assert by_cap["default"] != by_cap["avx2"], "float outputs did not depend on the instruction set"


@settings(max_examples=20, deadline=None)
@given(in_frac=st.integers(0, 5), w_frac=st.integers(3, 9), out_frac=st.integers(0, 5), seed=st.integers(0, 2**31 - 1))
def test_the_numpy_path_computes_what_the_exact_layer_computes(in_frac, w_frac, out_frac, seed):
    """gencodec.exact.fastpath (pre-scaled float32 products, rounded by torch): the coding path of
    every exact model gives ExactLinear's integers exactly."""
    from gencodec.exact.fastpath import dense, prescaled, serial_torch

    in_fmt, out_fmt = QFormat(in_frac, -127, 127), QFormat(out_frac, 0, 255)
    layer = QuantLinear(40, 9, in_fmt, out_fmt, w_frac_bits=w_frac)
    _randomize(layer, seed)
    exact = layer.export()
    x = torch.randint(-127, 128, (33, 40), generator=torch.Generator().manual_seed(seed)).float()
    with exact_mode(), serial_torch():
        assert np.array_equal(dense(x.numpy(), prescaled(exact)), exact(x).numpy())
