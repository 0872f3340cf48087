"""gencodec.exact: exact layers, their training twins, tables, the load check and the model protocol,
plus the cross-process exactness harness (instruction sets, threads, MKL, batch splits, dtypes)."""

from __future__ import annotations

import hashlib
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

from gencodec.errors import CorruptFileError, ExactnessError
from gencodec.exact import (
    ExactConv2d,
    causal_reach,
    ExactLinear,
    ExpTable,
    IntCategorical,
    LogisticTables,
    QFormat,
    QuantConv2d,
    QuantLinear,
    QuantLUT,
    QuantMatMul,
    QuantSoftmax,
    Schedule,
    causal_mask,
    decode_with_model,
    encode_with_model,
    exact_mode,
    export_model,
    fake_quant,
    logits_to_freqs,
    make_table,
    prepare_exact,
    requantize,
    required_dtype,
    shift_down,
    shift_right,
    tables_in_order,
    wavefront_schedule,
)
from gencodec.exact.detmath import det_floor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from exact_harness import EXACT_VARIATIONS, TinyCausalModel, all_hashes, float_outputs, harness_image, sha  # noqa: E402

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
# layers and their training twins
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


@pytest.mark.parametrize(
    "make",
    [
        lambda: QuantConv2d(3, 8, 3, PIX, HID, w_frac_bits=9),
        lambda: QuantConv2d.down_shifted(3, 8, (2, 3), PIX, HID, w_frac_bits=9),
        lambda: QuantConv2d.down_right_shifted(3, 8, (2, 2), PIX, HID, w_frac_bits=9),
        lambda: QuantConv2d.masked(3, 9, 5, PIX, HID, "A", n_groups=3, w_frac_bits=9),
        lambda: QuantConv2d.masked(6, 6, 1, HID, SIGNED, "B", n_groups=3, w_frac_bits=6),
    ],
)
def test_quant_conv_export_matches_forward_and_forward_at(make):
    torch.manual_seed(1)
    layer = make()
    _randomize(layer, 1)
    fmt = layer.in_fmt
    x_int = torch.randint(fmt.lo, fmt.hi + 1, (2, layer.weight.shape[1], 9, 11)).float()
    y_real = layer(x_int * fmt.scale)
    exact = layer.export()
    with exact_mode():
        y_int = exact(x_int)
        rows, cols = torch.tensor([0, 8, 4, 3, 0]), torch.tensor([0, 10, 5, 0, 7])
        y_at = exact.forward_at(x_int, rows, cols)
    assert torch.equal(y_real * 2.0**layer.out_fmt.frac_bits, y_int)
    assert torch.equal(y_int[:, :, rows, cols], y_at)
    assert y_int.std() > 0  # the layer is not trivially constant
    with pytest.raises(ValueError):  # negative indices must not wrap around
        exact.forward_at(x_int, torch.tensor([-1]), torch.tensor([0]))
    with pytest.raises(ValueError):
        exact.forward_at(x_int, torch.tensor([0]), torch.tensor([y_int.shape[3]]))


def _future_independent(fn, x: torch.Tensor, row: int, col: int, ch: int | None = None) -> bool:
    """True if changing pixel (row, col) (channel ch or all) leaves fn's outputs at raster positions
    before it unchanged, and the output at (row, col) too when ch is None."""
    y0 = fn(x)
    x2 = x.clone()
    if ch is None:
        x2[:, :, row, col] += 7
    else:
        x2[:, ch, row, col] += 7
    y1 = fn(x2)
    w = x.shape[3]
    before = torch.arange(x.shape[2] * w) < row * w + col
    return torch.equal(y0.flatten(2)[:, :, before], y1.flatten(2)[:, :, before])


def test_shifted_convolutions_are_causal():
    torch.manual_seed(2)
    v = QuantConv2d.down_shifted(1, 4, (2, 3), PIX, HID, w_frac_bits=9).export()
    h = QuantConv2d.down_right_shifted(1, 4, (1, 2), PIX, HID, w_frac_bits=9).export()
    x = torch.randint(0, 50, (1, 1, 6, 7)).float()
    with exact_mode():
        stack = lambda t: shift_down(v(t)) + shift_right(h(t))  # noqa: E731
        for r, c in [(0, 0), (2, 3), (5, 6), (3, 0)]:
            y0, x2 = stack(x), x.clone()
            x2[0, 0, r, c] += 9
            y1 = stack(x2)
            changed = (y0 != y1).any(1)[0]  # (H, W) positions whose output changed
            rr, cc = torch.nonzero(changed, as_tuple=True)
            assert all((rr > r) | ((rr == r) & (cc > c))), (r, c)  # only later raster positions


def test_masked_convolution_channel_causality():
    mask = causal_mask(6, 3, 3, "A", n_groups=3)
    # output group g (channels 2g, 2g+1) sees input channels < g at the centre only
    assert mask[:, :, 1, 1].tolist() == [[0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 0]]
    assert causal_mask(3, 3, 3, "B", 3)[:, :, 1, 1].tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    assert mask[:, :, 2, :].sum() == 0 and mask[:, :, 1, 2].sum() == 0
    with pytest.raises(ValueError):
        causal_mask(3, 3, 3, "C")


def test_export_model_converts_nested_layers():
    net = torch.nn.Sequential(QuantLinear(4, 8, PIX, HID), torch.nn.Sequential(QuantLinear(8, 3, HID, SIGNED)))
    exact = export_model(net)
    assert isinstance(exact[0], ExactLinear) and isinstance(exact[1][0], ExactLinear)
    assert isinstance(net[0], QuantLinear)  # the trained model is left alone
    x = torch.randint(0, 256, (6, 4)).float()
    with exact_mode():
        assert torch.equal(exact(x), net(x) * 8)


# ---------------------------------------------------------------------------------------------
# load-time check
# ---------------------------------------------------------------------------------------------
def _linear(max_w: int, fan_in: int, in_fmt: QFormat = PIX) -> ExactLinear:
    w = torch.full((2, fan_in), float(max_w))
    return ExactLinear(w, torch.zeros(2), 8, in_fmt, HID)


def test_prepare_exact_picks_the_cheapest_safe_dtype():
    small = torch.nn.Sequential(_linear(127, 500))  # 500 * 127 * 255 < 2**24
    assert required_dtype(small) == torch.float32
    assert prepare_exact(small)[0].weight.dtype == torch.float32
    wide = torch.nn.Sequential(_linear(127, 600))  # 600 * 127 * 255 > 2**24
    assert required_dtype(wide) == torch.float64
    assert prepare_exact(wide)[0].weight.dtype == torch.float64
    with pytest.raises(ExactnessError):
        prepare_exact(wide, torch.float32)


def test_prepare_exact_refuses_float_and_unexported_models():
    with pytest.raises(ExactnessError):
        prepare_exact(torch.nn.Sequential(QuantLinear(4, 4, PIX, HID)))
    with pytest.raises(ExactnessError):
        prepare_exact(torch.nn.Sequential(torch.nn.Linear(4, 4)))
    huge = ExactLinear(torch.full((1, 4), 2.0**50), torch.zeros(1), 0, PIX, HID)
    with pytest.raises(ExactnessError):
        prepare_exact(torch.nn.Sequential(huge))
    with pytest.raises(ExactnessError):
        prepare_exact(torch.nn.Sequential(_linear(1, 2)), torch.float16)


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


def test_exact_matmul_and_bound():
    a_fmt, b_fmt = QFormat(4, -127, 127), QFormat(4, -127, 127)
    q = QuantMatMul(a_fmt, b_fmt, QFormat(4, -2**15, 2**15), inner_dim=16)
    a, b = torch.randn(3, 5, 16), torch.randn(3, 16, 5)
    e = q.export()
    assert e.max_abs_accumulator() == 16 * 127 * 127
    with exact_mode():
        out = e(torch.round(fake_quant(a, a_fmt) * 16), torch.round(fake_quant(b, b_fmt) * 16))
    assert torch.equal(out, q(a, b) * 16)
    with pytest.raises(ValueError):
        e(torch.zeros(1, 2, 17), torch.zeros(1, 17, 2))


# ---------------------------------------------------------------------------------------------
# tables: deterministic construction, logits, logistic
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


def test_tables_are_pinned():
    """The tables every model builds at load: identical on every machine, forever."""
    digest = hashlib.sha256()
    digest.update(ExpTable(4, 16).table.tobytes())
    digest.update(LogisticTables().cdf.tobytes())
    digest.update(make_table("tanh", QFormat(4, -127, 127), QFormat(6, -64, 64)).tobytes())
    digest.update(make_table("sigmoid", QFormat(3, -255, 255), QFormat(8, 0, 256)).tobytes())
    assert digest.hexdigest() == PINNED_TABLES_SHA


PINNED_TABLES_SHA = "facd07aebf11eaa15ab73358a280989a89bba8fbb4002283c4479a9b559d29cd"


@pytest.mark.parametrize("k,total_bits", [(2, 16), (256, 16), (65536, 20)])
def test_logits_to_freqs_total_and_floor(k, total_bits):
    g = torch.Generator().manual_seed(k)
    logits = torch.randint(-400, 100, (5, k), generator=g)
    logits[0] = 0  # uniform row
    logits[1, 0] = 10_000  # one near-certain symbol
    f = logits_to_freqs(logits, ExpTable(), total_bits)
    assert f.dtype == torch.int64 and f.min() >= 1
    assert (f.sum(-1) == 2**total_bits).all()
    assert f[0].max() - f[0].min() <= 1
    assert f[1, 0] == 2**total_bits - (k - 1)


def test_int_categorical_close_to_softmax():
    cat = IntCategorical(ExpTable(4, 16), total_bits=16)
    logits = torch.randn(50, 256) * 2
    f = cat.freqs(torch.round(logits * 16)).double()
    p = torch.softmax(torch.round(logits * 16) / 16, -1).double()
    kl_bits = (p * (p.log2() - (f / 2**16).log2())).sum(-1)
    assert kl_bits.max() < 0.002
    x = torch.randint(0, 256, (50,))
    assert torch.allclose(cat.log_prob(logits, x), torch.log_softmax(logits, -1)[torch.arange(50), x])


def test_logistic_tables_rows_and_agreement_with_training_loss():
    t = LogisticTables()
    mean_q = np.array([0, 1, 401, 513, 1020, 1021, -5, 4000])
    scale_idx = np.array([0, 5, 20, 40, 63, 10, -3, 99])
    f = t.freqs(mean_q, scale_idx)
    assert f.dtype == np.float64 and f.shape == (8, 256)
    assert f.min() >= 1 and (f.sum(1) == 2**20).all() and np.all(f == np.floor(f))
    np.testing.assert_array_equal(f[6], t.freqs([0], [0])[0])  # clamped parameters
    np.testing.assert_array_equal(f[7], t.freqs([1020], [63])[0])
    x = torch.arange(256, dtype=torch.float64)
    for mq, si in zip(mean_q[:6], scale_idx[:6]):
        lp = t.log_prob(x, torch.full((256,), mq / 4.0, dtype=torch.float64), torch.full((256,), float(si), dtype=torch.float64))
        p = lp.exp().numpy()
        assert abs(p.sum() - 1) < 1e-9
        q = t.freqs([mq], [si])[0] / 2**20
        kl_bits = float(np.sum(p * (np.log2(np.maximum(p, 1e-300)) - np.log2(q))))
        assert kl_bits < 0.002, (mq, si, kl_bits)


def test_logistic_mixture_freqs():
    t = LogisticTables(total_bits=16)
    means = np.array([[100, 800, 400]])
    scales = np.array([[10, 20, 5]])
    w = logits_to_freqs(torch.tensor([[0, 16, -16]]), ExpTable(), 8).numpy()
    f = t.mixture_freqs(means, scales, w)
    assert f.sum() == 2**24 and f.min() >= 1
    expected = sum(w[0, k] * t.freqs(means[:, k], scales[:, k])[0] for k in range(3))
    np.testing.assert_array_equal(f[0], expected)
    x = torch.arange(256, dtype=torch.float64)
    lp = t.mixture_log_prob(x, torch.tensor(means / 4.0).expand(256, 3), torch.tensor(scales, dtype=torch.float64).expand(256, 3),
                            torch.tensor([[0.0, 1.0, -1.0]], dtype=torch.float64).expand(256, 3))
    assert abs(lp.exp().sum().item() - 1) < 1e-9
    with pytest.raises(ExactnessError):
        t.mixture_freqs(means, scales, -w)


def test_logistic_log_prob_gradients_flow():
    t = LogisticTables()
    mean = torch.tensor([100.3, 5.0], requires_grad=True)
    sidx = torch.tensor([20.4, 3.0], requires_grad=True)
    t.log_prob(torch.tensor([103.0, 5.0]), mean, sidx).sum().backward()
    assert mean.grad.abs().sum() > 0 and sidx.grad.abs().sum() > 0


@pytest.mark.parametrize("fn", ["sigmoid", "tanh", "exp", "silu"])
def test_lut_twin_matches_exact_and_trains(fn):
    fi, fo = QFormat(4, -127, 127), QFormat(8, -2**15, 2**15)
    q = QuantLUT(fn, fi, fo)
    x = torch.linspace(-9, 9, 101, requires_grad=True)
    y = q(x)
    y.sum().backward()
    with exact_mode():
        y_int = q.export()(torch.round(torch.clamp(x.detach() * 16, -127, 127)))
    assert torch.equal(y_int, y.detach() * 256)
    assert x.grad.abs().sum() > 0
    ref = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "exp": torch.exp, "silu": torch.nn.functional.silu}[fn]
    xq = torch.round(torch.clamp(x.detach() * 16, -127, 127)) / 16
    expect = torch.clamp(torch.round(ref(xq.double()) * 256), fo.lo, fo.hi)
    assert (y_int.double() - expect).abs().max() <= 1  # round-half-up vs half-even at most


def test_softmax_twin_matches_exact():
    qs = QuantSoftmax(in_frac_bits=4, out_bits=12)
    s = torch.randn(4, 7, requires_grad=True)
    out = qs(s * 3)
    out.sum().backward()
    with exact_mode():
        exact = qs.export()(torch.round(fake_quant(s.detach() * 3, qs.in_fmt) * 16))
    assert torch.equal(exact / 4096, out.detach())
    assert (exact.sum(-1) <= 4096).all() and (exact.sum(-1) > 4096 - 7).all()


# ---------------------------------------------------------------------------------------------
# protocol
# ---------------------------------------------------------------------------------------------
def test_schedule_must_cover_every_symbol_once():
    Schedule((np.array([0, 2]), np.array([1])), 3)
    with pytest.raises(ValueError):
        Schedule((np.array([0, 2]), np.array([2])), 3)
    with pytest.raises(ValueError):
        Schedule((np.array([0, 3]),), 3)


def test_wavefront_respects_causal_reach():
    h, w, c, r = 5, 7, 2, 2
    sched = wavefront_schedule(h, w, c, reach_right=r)
    step = np.empty(h * w * c, dtype=np.int64)
    for t, g in enumerate(sched.groups):
        step[g] = t
    step = step.reshape(h, w, c)
    assert len(sched.groups) == ((r + 1) * (h - 1) + w) * c
    for y in range(h):
        for x in range(w):
            for ch in range(c):
                deps = [(y, xx, cc) for xx in range(x) for cc in range(c)]
                deps += [(yy, xx, cc) for yy in range(y) for xx in range(max(0, x - 2), min(w, x + r + 1)) for cc in range(c)]
                deps += [(y, x, cc) for cc in range(ch)]
                assert all(step[d] < step[y, x, ch] for d in deps)


def test_parallel_and_incremental_tables_identical_and_round_trip():
    img = harness_image(12, 10, seed=3)
    model = TinyCausalModel()
    par = tables_in_order(model, img, "parallel")
    inc = tables_in_order(model, img, "incremental")
    assert par.shape == (img.size, 256)
    np.testing.assert_array_equal(par, inc)
    assert np.unique(par.argmax(1)).size > 5  # the model gives varied tables
    payload, ideal = encode_with_model(model, img)
    assert abs(8 * len(payload) - ideal) < 0.01 * ideal + 64
    np.testing.assert_array_equal(decode_with_model(model, img.shape, payload), img)
    with pytest.raises(CorruptFileError):
        decode_with_model(model, img.shape, payload + b"\x00" * 16)


def test_causal_reach_of_stacks():
    def conv(k, mask_type, padding=None, weight=None):
        w = torch.ones(3, 3, k, k) * causal_mask(3, 3, k, mask_type, 3) if weight is None else weight
        return ExactConv2d(w, torch.zeros(3), 0, padding or (k // 2,) * 4, PIX, PIX)

    assert causal_reach([conv(3, "A")]) == 1
    assert causal_reach([conv(5, "A"), conv(1, "B")]) == 2
    assert causal_reach([conv(3, "A"), conv(3, "B"), conv(3, "B")]) == 1
    w = torch.zeros(3, 3, 5, 5)
    w[:, :, 0, 4] = 1  # two rows up, two columns right: same wavefront at r = 0 (2 - 2 = 0), so r = 1
    assert causal_reach([conv(5, "A", weight=w)]) == 1
    w[:, :, 0, 4] = 0
    w[:, :, 0, 3] = 1  # two rows up, one column right: fine at r = 0
    assert causal_reach([conv(5, "A", weight=w)]) == 0
    w[:, :, 1, 4] = 1  # one row up, two columns right: needs r = 2
    assert causal_reach([conv(5, "A", weight=w)]) == 2
    future = torch.zeros(3, 3, 3, 3)
    future[:, :, 2, 0] = 1  # reads the next row
    with pytest.raises(ValueError):
        causal_reach([conv(3, "A", weight=future)])
    with pytest.raises(ValueError):  # output smaller than input
        causal_reach([conv(3, "A", padding=(0, 0, 1, 1))])


def test_stack_cache_detects_a_schedule_that_ignores_its_reach():
    """The parallel/incremental comparison can fail: decoding on raster wavefronts (reach 0) reads
    cached outputs of the row above that are not final yet, and the tables differ."""
    img = harness_image(12, 10, seed=3)
    model = TinyCausalModel()
    assert model.stack.reach_right == 1
    model.stack.reach_right = 0
    assert not np.array_equal(tables_in_order(model, img, "parallel"), tables_in_order(model, img, "incremental"))


def test_harness_in_process_variations_all_identical():
    """Batch splits 1/7/64/whole image, torch threads 1/2, float32/float64, parallel/incremental."""
    hashes = all_hashes(harness_image(12, 10, seed=4))
    exact = {k: v for k, v in hashes.items() if k.startswith("exact/")}
    assert len(exact) == len(EXACT_VARIATIONS) and len(set(exact.values())) == 1, exact
    floats = {k: v for k, v in hashes.items() if k.startswith("float/")}
    assert len(set(floats.values())) > 1, "the harness failed to see a float network's batch dependence"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_tables_match_cpu(dtype):
    """The network on a GPU (IEEE float32 forced by exact_mode, TF32 off) gives the CPU's tables."""
    img = harness_image(12, 10, seed=6)
    cpu = tables_in_order(TinyCausalModel(dtype), img, "parallel")
    for batch in (None, 7):
        gpu = tables_in_order(TinyCausalModel(dtype, batch, device="cuda"), img, "parallel")
        np.testing.assert_array_equal(gpu, cpu)
    gpu_inc = tables_in_order(TinyCausalModel(dtype, device="cuda"), img, "incremental")
    np.testing.assert_array_equal(gpu_inc, cpu)


def test_float_network_depends_on_batch_split():
    """Negative control: the same comparison on a plain float network detects a difference."""
    assert sha(float_outputs(1)) != sha(float_outputs(64))


# ---------------------------------------------------------------------------------------------
# cross-process: instruction sets, OpenMP threads, MKL reproducibility mode
# ---------------------------------------------------------------------------------------------
def _cpu_has(flag: str) -> bool:
    try:
        return flag in Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


def _child_env(**settings: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS", "MKL_CBWR")}
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
    return sha(tables_in_order(TinyCausalModel(), harness_image(10, 8, 5), "parallel"))


def test_harness_children_with_baseline_and_avx2_kernels_match_this_process():
    """Subprocesses with ATEN_CPU_CAPABILITY=default (one OpenMP thread, MKL_CBWR=COMPATIBLE) and
    =avx2 (two threads; skipped where the CPU lacks AVX2) compute the very tables this process
    computes with its native kernels, under all their in-process variations; the float control's
    outputs differ between the instruction sets."""
    settings = [dict(ATEN_CPU_CAPABILITY="default", OMP_NUM_THREADS="1", MKL_CBWR="COMPATIBLE")]
    if _cpu_has("avx2"):
        settings.append(dict(ATEN_CPU_CAPABILITY="avx2", OMP_NUM_THREADS="2", MKL_CBWR=None))
    results = _run_children(settings)
    here = _here_hash()
    for s, child in results:
        exact = {k: v for k, v in child.items() if k.startswith("exact/")}
        assert len(exact) == len(EXACT_VARIATIONS) and set(exact.values()) == {here}, (s, exact)
    if _cpu_has("avx2"):  # baseline vs AVX2 kernels: a float network notices
        floats = {str(s["ATEN_CPU_CAPABILITY"]): r["float/b64/t1"] for s, r in results}
        assert floats["default"] != floats["avx2"], "float outputs did not depend on the instruction set"


@pytest.mark.slow
@pytest.mark.skipif(not _cpu_has("avx2"), reason="CPU lacks AVX2")
def test_harness_across_instruction_sets_threads_and_mkl():
    """The full matrix: baseline / AVX2 / native (AVX-512 where present) kernels, 1 and 2 OpenMP
    threads, MKL_CBWR set and unset: one set of tables; the float control sees the ISA."""
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


@settings(max_examples=30, deadline=None)
@given(
    n_values=st.integers(1, 300),
    n_scales=st.integers(1, 8),
    mean_frac_bits=st.integers(0, 3),
    total_bits=st.integers(12, 22),
    seed=st.integers(0, 2**31 - 1),
)
def test_logistic_tables_invariants_for_any_config(n_values, n_scales, mean_frac_bits, total_bits, seed):
    if 2**total_bits < 4 * (2 * n_values - 1):
        with pytest.raises(ExactnessError):
            LogisticTables(n_values, n_scales, mean_frac_bits=mean_frac_bits, total_bits=total_bits)
        return
    t = LogisticTables(n_values, n_scales, scale_min=0.05, scale_max=100.0, mean_frac_bits=mean_frac_bits,
                       total_bits=total_bits)
    rng = np.random.default_rng(seed)
    f = t.freqs(rng.integers(-10, n_values * 2**mean_frac_bits + 10, 200), rng.integers(-2, n_scales + 2, 200))
    assert f.shape == (200, n_values) and f.min() >= 1 and (f.sum(1) == 2**total_bits).all()
    assert np.all(np.diff(t.cdf, axis=-1) >= 1)  # every cell of every bank CDF has mass


def test_det_round_exact_fallback_keeps_50_digits():
    """The fallback must not round through the default Decimal context (28 digits): the exact
    value 2.4999...9 (32 nines) rounds half-up to 2, although at 28 digits it would become 3."""
    from decimal import localcontext

    from gencodec.exact.detmath import det_round

    value = Decimal("2." + "4" + "9" * 31)
    with localcontext() as ctx:
        ctx.prec = 28
        assert det_round(np.array([2.5]), lambda idx: [value for _ in idx]).tolist() == [2]
