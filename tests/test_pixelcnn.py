"""The pixelcnn codec: round trips, model identity, causality, parallel == wavefront tables,
a pinned golden file, and byte-identical files across CPU instruction sets and thread counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import gencodec
from gencodec.api import compress_report
from gencodec.errors import ModelMismatchError

torch = pytest.importorskip("torch")

from gencodec.codecs.pixelcnn import DEFAULT_MODEL, PixelCNNCodec, to_planes  # noqa: E402
from gencodec.exact import driver, wavefront_groups  # noqa: E402
from gencodec.models import pixelcnn_headfit as headfit  # noqa: E402
from gencodec.models import zoo  # noqa: E402
from gencodec.models.pixelcnn_adapt import MAX_BIAS, choose_remap, unpack_remap  # noqa: E402
from gencodec.models.pixelcnn import (  # noqa: E402
    ExactPixelCNN, PixelCNN, PixelCNNConfig, causal_pad, colour_bases, head_extra)

GOLDEN = Path(__file__).resolve().parent / "golden" / "pixelcnn" / "rgb-9x7.gcx"  # pinned to the shipped model
TINY = PixelCNNConfig(hidden=8, trunk_layers=1, head_hidden=4)


def golden_image() -> Image.Image:
    """A 9x7 RGB image from integer arithmetic only (no RNG), for the pinned golden file."""
    y, x = np.mgrid[0:7, 0:9]
    arr = np.stack([(x * 29 + y * 7) % 256, (x * 3 + y * 41 + 50) % 256, (x * y * 13) % 256], axis=-1)
    return Image.fromarray(arr.astype(np.uint8), "RGB")


@pytest.fixture(scope="module")
def codec() -> PixelCNNCodec:
    return PixelCNNCodec()


@pytest.fixture(scope="module", params=["shipped", "colour", "half", "phase", "fine"])
def any_codec(request) -> PixelCNNCodec:
    """The shipped codec, one whose heads also see the inter-channel (colour) predictions, one
    with half-level means, one whose trunk also sees the position mod 2, and one on finer grids."""
    if request.param == "shipped":
        return PixelCNNCodec()
    return request.getfixturevalue(f"{request.param}_codec")


def _saved(tmp_path_factory, name: str, model: PixelCNN) -> Path:
    path = tmp_path_factory.mktemp("models") / f"{name}.safetensors"
    model.export().save(path)
    return path


@pytest.fixture(scope="module")
def half_codec(tmp_path_factory) -> PixelCNNCodec:
    torch.manual_seed(3)
    model = PixelCNN(PixelCNNConfig(hidden=8, trunk_layers=1, head_hidden=6, colour_preds=True, mean_frac_bits=1))
    return PixelCNNCodec(model=_saved(tmp_path_factory, "half", model))


@pytest.fixture(scope="module")
def phase_codec(tmp_path_factory) -> PixelCNNCodec:
    torch.manual_seed(4)
    model = PixelCNN(PixelCNNConfig(hidden=8, trunk_layers=1, head_hidden=6, colour_preds=True, mean_frac_bits=1,
                                    phase_inputs=True))
    with torch.no_grad():  # make the phase inputs matter: large weights on them
        model.trunk[0].weight[:, -2:] = torch.linspace(-3, 3, 8)[:, None]
    return PixelCNNCodec(model=_saved(tmp_path_factory, "phase", model))


@pytest.fixture(scope="module")
def fine_codec(tmp_path_factory) -> PixelCNNCodec:
    """Quarter-level means, activations on 1/64, weights on 1/512, twice the scales (residual inputs
    weighted heavily, so their rescaling onto the activation grid matters)."""
    torch.manual_seed(5)
    model = PixelCNN(PixelCNNConfig(hidden=8, trunk_layers=1, head_hidden=6, colour_preds=True, mean_frac_bits=2,
                                    act_frac_bits=6, w_frac_bits=9, w_max=1500, n_scales=127, phase_inputs=True))
    with torch.no_grad():
        for c, head in enumerate(model.heads):
            if c:
                head.fc.weight[:, 8:] = 1.5
    return PixelCNNCodec(model=_saved(tmp_path_factory, "fine", model))


@pytest.fixture(scope="module")
def colour_codec(tmp_path_factory) -> PixelCNNCodec:
    torch.manual_seed(2)
    model = PixelCNN(PixelCNNConfig(hidden=8, trunk_layers=1, head_hidden=6, colour_preds=True))
    with torch.no_grad():  # make the colour inputs matter: large weights on them
        for c, head in enumerate(model.heads):
            if c:
                head.fc.weight[:, 8:] = 1.5
    return PixelCNNCodec(model=_saved(tmp_path_factory, "colour", model))


@pytest.fixture(scope="module")
def other_model(tmp_path_factory) -> Path:
    """A second, differently initialised tiny model saved to disk (a 'user-trained' model)."""
    torch.manual_seed(1)
    return _saved(tmp_path_factory, "tiny", PixelCNN(TINY))


def round_trip(img: Image.Image, **kw) -> tuple[bytes, Image.Image]:
    blob = gencodec.compress(img, codec="pixelcnn", **kw)
    return blob, gencodec.decompress(blob, **kw)


def same_image(a: Image.Image, b: Image.Image) -> bool:
    return a.mode == b.mode and a.size == b.size and a.tobytes() == b.tobytes() and a.getpalette() == b.getpalette()


# ---------------------------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
def test_every_model_kind_round_trips_a_real_crop_with_the_remap(any_codec, kodak_crop, mode):
    img = kodak_crop().crop((0, 0, 40, 24)).convert(mode)
    blob, out = round_trip(img, model=any_codec.model_path)
    assert same_image(out, img)
    planes = np.asarray(img.convert("RGB")).transpose(2, 0, 1).copy()
    mean, idx = any_codec.model.tables_parallel(planes)
    remap, bias, gain = choose_remap(any_codec.model.dist, planes, mean, idx)
    assert gain >= 0 and np.abs(bias).max() <= 3 * any_codec.model.cfg.mean_steps


def test_shipped_model_is_present_and_small():
    assert DEFAULT_MODEL.is_file()
    assert DEFAULT_MODEL.stat().st_size <= 10 * 2**20
    card = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())
    assert card["model_id"] == PixelCNNCodec().model_id.hex()


def test_kodak_crop_round_trip_and_size_matches_ideal(kodak_crop):
    img = kodak_crop("kodim23", (300, 200, 348, 240))  # 48 x 40
    rep = compress_report(img, codec="pixelcnn")
    out = gencodec.decompress(rep.blob)
    assert same_image(out, img)
    ideal = rep.stats["ideal_bits"]
    payload_bits = 8 * (len(rep.blob) - (len(rep.blob) - len(gencodec.container.unpack(rep.blob)[1])))
    # the range coder adds at most two 32-bit words to the model's code length (plus the 4-byte length)
    assert ideal <= payload_bits <= ideal + 2 * 32 + 32 + 8
    assert rep.stats["model_ideal_bpsp"] < 6.0  # a trained model: far below 8 bits on a photo


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
@pytest.mark.parametrize("kind", ["constant", "noise", "gradient"])
def test_synthetic_round_trip_every_mode(synthetic, mode, kind):
    img = synthetic(mode, kind, (17, 5))
    _, out = round_trip(img)
    assert same_image(out, img)


@pytest.mark.parametrize("size", [(1, 1), (1, 9), (9, 1), (2, 2), (4, 1), (31, 23)])
@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
def test_odd_sizes_round_trip(synthetic, size, mode):
    img = synthetic(mode, "noise", size, seed=size[0] * 7 + size[1])
    _, out = round_trip(img)
    assert same_image(out, img)


def test_per_image_scale_remap_pays_on_a_constant_image(codec):
    img = Image.new("RGB", (96, 80), (120, 130, 140))
    rep = compress_report(img, codec="pixelcnn")
    assert same_image(gencodec.decompress(rep.blob), img)
    planes = to_planes(img)[0]
    _, fixed_bits, none, no_fit = codec.encode_planes(planes, 3, adapt=False)
    assert none == no_fit == b""
    assert rep.stats["model_ideal_bits"] < 0.5 * fixed_bits  # the remap adapts the scales to the image
    assert rep.stats["model_ideal_bpsp"] < 1.0


PNG_INSIDE = sorted(GOLDEN.parent.glob("*-9x4-png-inside.gcx"))  # modes 1, P, I;16, as earlier versions wrote them


def test_modes_without_a_model_path_are_refused_and_auto_passes_them_on(synthetic):
    """pixelcnn codes L, LA, RGB and RGBA; `auto` hands other modes to the next codec of its ranking,
    and an explicit --codec pixelcnn is refused naming the modes it codes."""
    from gencodec.errors import UnsupportedInputError

    for mode in ("P", "I;16", "1"):
        img = synthetic(mode, "gradient", (9, 4))
        with pytest.raises(UnsupportedInputError, match=r"cannot code image mode .* \(it codes L, LA, RGB, RGBA\)"):
            gencodec.compress(img, codec="pixelcnn")
        blob = gencodec.compress(img)
        assert gencodec.info(blob)["codec"] != "pixelcnn" and same_image(gencodec.decompress(blob), img)


@pytest.mark.parametrize("path", PNG_INSIDE, ids=[p.name for p in PNG_INSIDE])
def test_png_inside_frames_of_earlier_versions_still_decode(path, synthetic, other_model):
    mode = {"p": "P", "i16": "I;16", "bilevel": "1"}[path.name.split("-")[0]]
    head = gencodec.info(path.read_bytes())
    assert head["params"]["coding"] == "png" and not head["model_id"]  # PNG inside: no model recorded
    img = synthetic(mode, "gradient", (9, 4))
    assert same_image(gencodec.decompress(path.read_bytes()), img)
    assert same_image(gencodec.decompress(path.read_bytes(), model=other_model), img)  # so any model decodes it


def test_a_model_coded_frame_needs_its_model_id(synthetic):
    import dataclasses

    from gencodec import container
    from gencodec.errors import CorruptFileError

    header, payload = container.unpack(gencodec.compress(synthetic("RGB", "gradient", (9, 4)), codec="pixelcnn"))
    forged = container.pack(dataclasses.replace(header, model_id=b""), payload)
    with pytest.raises(CorruptFileError, match="without a model id"):
        gencodec.decompress(forged)
    blob = gencodec.compress(synthetic("RGBA", "gradient", (9, 4)), codec="pixelcnn")
    assert gencodec.info(blob)["params"] == {"coding": "model", "hist": 1, "alpha": "png"}


# ---------------------------------------------------------------------------------------------
# model identity
# ---------------------------------------------------------------------------------------------
def test_model_id_mismatch_is_refused_naming_both(kodak_crop, other_model, codec):
    img = kodak_crop("kodim23", (0, 0, 12, 10))
    blob = gencodec.compress(img, codec="pixelcnn")
    other_id = PixelCNNCodec(model=other_model).model_id.hex()
    assert other_id != codec.model_id.hex()
    with pytest.raises(ModelMismatchError) as e:
        gencodec.decompress(blob, model=other_model)
    assert codec.model_id.hex() in str(e.value) and other_id in str(e.value)


def test_user_model_codes_and_is_recorded(kodak_crop, other_model, codec):
    img = kodak_crop("kodim23", (0, 0, 12, 10))
    blob, out = round_trip(img, model=other_model)
    assert same_image(out, img)
    assert gencodec.info(blob)["model_id"] == PixelCNNCodec(model=other_model).model_id.hex()
    with pytest.raises(ModelMismatchError):
        gencodec.decompress(blob)  # the shipped model is not the one that wrote it


def test_saved_model_reloads_with_same_id(tmp_path):
    torch.manual_seed(3)
    exact = PixelCNN(TINY).export()
    exact.save(tmp_path / "m.safetensors")
    again = ExactPixelCNN.load(tmp_path / "m.safetensors")
    assert again.model_id == exact.model_id
    assert again.cfg == TINY


# ---------------------------------------------------------------------------------------------
# schedule: causality, parallel == wavefront
# ---------------------------------------------------------------------------------------------
def decode_rank(h: int, w: int, n_coded: int, step: int) -> np.ndarray:
    """(n_coded, H, W) position of every subpixel in the decoding order."""
    order, counts = wavefront_groups(h, w, step)
    t = np.repeat(np.arange(counts.size), counts)
    keys = (t[None, :] * n_coded + np.arange(n_coded)[:, None]).ravel()
    sub = np.argsort(keys, kind="stable")
    chan = np.repeat(np.arange(n_coded), order.size)[sub]
    flat = np.tile(order, n_coded)[sub]
    rank = np.empty((n_coded, h * w), np.int64)
    rank[chan, flat] = np.arange(sub.size)
    return rank.reshape(n_coded, h, w)


def test_changing_a_later_subpixel_never_changes_an_earlier_table(any_codec):
    codec = any_codec
    rng = np.random.default_rng(5)
    h, w = 13, 11
    planes = rng.integers(0, 256, (3, h, w), dtype=np.uint8)
    mean0, idx0 = codec.model.tables_parallel(planes)
    rank = decode_rank(h, w, 3, codec.model.cfg.reach_right + 1)
    for _ in range(40):
        c, y, x = int(rng.integers(3)), int(rng.integers(h)), int(rng.integers(w))
        changed = planes.copy()
        changed[c, y, x] = 255 - changed[c, y, x]
        mean1, idx1 = codec.model.tables_parallel(changed)
        earlier = rank <= rank[c, y, x]  # the changed subpixel's own table may not depend on it either
        assert np.array_equal(mean0[earlier], mean1[earlier]) and np.array_equal(idx0[earlier], idx1[earlier])


def test_context_does_depend_on_the_neighbourhood(any_codec):
    codec = any_codec
    """Control for the causality test: a change is seen by the next pixel's table."""
    rng = np.random.default_rng(6)
    planes = rng.integers(0, 256, (3, 9, 9), dtype=np.uint8)
    mean0, _ = codec.model.tables_parallel(planes)
    changed = planes.copy()
    changed[:, 4, 4] = 255 - changed[:, 4, 4]
    mean1, _ = codec.model.tables_parallel(changed)
    assert not np.array_equal(mean0[:, 4, 5], mean1[:, 4, 5]) or not np.array_equal(mean0[:, 5, 4], mean1[:, 5, 4])


@pytest.mark.parametrize("shape", [(3, 23, 17), (1, 6, 19), (3, 1, 8), (3, 10, 1)])
def test_parallel_tables_equal_wavefront_tables(any_codec, shape):
    codec = any_codec
    n_coded, h, w = shape
    rng = np.random.default_rng(h * w)
    planes = rng.integers(0, 256, (3, h, w), dtype=np.uint8)
    if n_coded == 1:
        planes[1:] = planes[0]
    model = codec.model
    mean, idx = model.tables_parallel(planes, n_coded)
    mean_rows, idx_rows = model.tables_parallel(planes, n_coded, rows_per_chunk=1)  # another batch split
    assert np.array_equal(mean_rows, mean) and np.array_equal(idx_rows, idx)
    stream, _, remap, fit = codec.encode_planes(planes, n_coded, adapt=False)
    assert remap == fit == b""
    assert np.array_equal(codec.decode_planes(stream, h, w, n_coded), planes)
    symbols = planes[:n_coded]  # the contract: the parallel pass and the decoder's session give the same tables
    par = driver.tables_in_order(model, symbols, "parallel")
    assert par.shape == (symbols.size, 256)
    assert np.array_equal(par, driver.tables_in_order(model, symbols, "session"))
    model.schedule(symbols.shape).check()


def test_adaptation_hooks_give_the_same_tables_on_both_paths(codec, kodak_crop):
    """The remap and histogram hooks change the tables, identically in the encoder's rounds and the
    decoder's groups."""
    from gencodec.models.pixelcnn_adapt import HistHook, RemapHook

    planes = to_planes(kodak_crop().crop((0, 0, 40, 24)))[0]
    m = codec.model
    mean, idx = m.tables_parallel(planes, 3)
    remap, bias, _ = choose_remap(m.dist, planes, mean, idx)

    def hooks():
        return [RemapHook(remap, bias, m.cfg.mean_steps), HistHook(m.cfg, 3, totals=False)]

    par = driver.tables_in_order(m, planes, "parallel", hooks())
    assert np.array_equal(par, driver.tables_in_order(m, planes, "session", hooks()))
    assert not np.array_equal(par, driver.tables_in_order(m, planes, "parallel"))


def test_online_histograms_pay_on_a_chroma_subsampled_photo(codec, kodak_crop):
    """The spiky colour residuals of a 4:2:0 photo are what the online histograms are for."""
    from gencodec.train.data import chroma_subsample

    rgb = chroma_subsample(np.asarray(kodak_crop("kodim23", (200, 150, 328, 246))), "nearest")  # 128 x 96
    planes = np.ascontiguousarray(rgb.transpose(2, 0, 1))
    stream, with_hist, remap, fit = codec.encode_planes(planes, 3, hist=True)
    _, without, _, _ = codec.encode_planes(planes, 3, hist=False)
    assert with_hist < 0.995 * without
    noise = np.random.default_rng(0).integers(0, 256, (3, 64, 64), dtype=np.uint8)  # nothing to learn:
    assert codec.encode_planes(noise, 3, hist=True)[1] <= 1.002 * codec.encode_planes(noise, 3, hist=False)[1]
    unpacked = unpack_remap(remap, 3, codec.model.cfg.n_scales, MAX_BIAS * codec.model.cfg.mean_steps) if remap else None
    model = headfit.fitted_model(codec.model, headfit.unpack_fit(fit, codec.model, 3)) if fit else None
    assert np.array_equal(codec.decode_planes(stream, 96, 128, 3, remap=unpacked, hist=True, model=model), planes)


def test_integer_log_table_is_pinned():
    """The histograms' weight choice counts bits with this table; a changed entry would change files."""
    import hashlib

    from gencodec.exact.intlog import log_table as _log_table

    lut = _log_table()
    assert lut[0] == 1 and lut[-1] == 1024 and np.all(np.diff(lut) >= 0)
    assert hashlib.sha256(lut.astype("<i8").tobytes()).hexdigest()[:16] == "6baae5e9b5377ec2"


def test_unknown_adaptation_is_refused(kodak_crop):
    import dataclasses

    from gencodec import container
    from gencodec.errors import CorruptFileError

    header, payload = container.unpack(gencodec.compress(kodak_crop().crop((0, 0, 12, 8)), codec="pixelcnn"))
    forged = container.pack(dataclasses.replace(header, params={**header.params, "hist": 2}), payload)
    with pytest.raises(CorruptFileError, match="hist=2"):
        gencodec.decompress(forged)
    forged = container.pack(dataclasses.replace(header, params={**header.params, "fit": 3}), payload)
    with pytest.raises(CorruptFileError, match="fit=3"):
        gencodec.decompress(forged)
    forged = container.pack(dataclasses.replace(header, params={**header.params, "fit": 1}), payload)
    with pytest.raises(CorruptFileError, match="truncated"):  # the params promise per-image heads it lacks
        gencodec.decompress(forged)


def test_refitted_heads_pay_on_a_photo_and_decode(codec, kodak_crop):
    """The encoder refits each head's output layer and hidden biases to the image (headfit); the
    file stores the changed integers and decodes to the same pixels; without the fit the same image
    costs more."""
    img = kodak_crop("kodim05", (200, 150, 456, 342))  # 256 x 192
    rep = compress_report(img, codec="pixelcnn")
    assert gencodec.info(rep.blob)["params"]["fit"] == headfit.FIT_VERSION
    assert same_image(gencodec.decompress(rep.blob), img)
    planes = to_planes(img)[0]
    stream, bits, remap, fit = codec.encode_planes(planes, 3)
    _, bits_without, _, no_fit = codec.encode_planes(planes, 3, fit=False)
    assert fit and no_fit == b""
    assert 8 * len(fit) < bits_without - bits  # it paid for its own storage
    outs = headfit.unpack_fit(fit, codec.model, 3)
    hh = codec.model.cfg.head_hidden
    assert outs and all(w.shape == (2, hh) and b.shape == (2,) and d.shape == (hh,) for w, b, d in outs.values())
    assert any(d.any() for _, _, d in outs.values())  # hidden units shifted too
    unpacked = unpack_remap(remap, 3, codec.model.cfg.n_scales, MAX_BIAS * codec.model.cfg.mean_steps) if remap else None
    model = headfit.fitted_model(codec.model, outs)
    assert np.array_equal(codec.decode_planes(stream, 192, 256, 3, remap=unpacked, hist=True, model=model), planes)
    assert model.model_id == codec.model.model_id  # the file names the base model; the fit travels in it


FIT_GOLDEN = GOLDEN.parent / "kodim05-fit.gcx"  # kodim05 (200, 150, 456, 342), written by the shipped model
FIT1_GOLDEN = GOLDEN.parent / "kodim05-fit1.gcx"  # the same, as "fit": 1 wrote it (output layers only)


def _payload_parts(payload: bytes):
    import struct

    (n,) = struct.unpack_from("<I", payload)
    stream, rest = payload[4 : 4 + n], payload[4 + n :]
    (n,) = struct.unpack_from("<H", rest)
    remap, rest = rest[2 : 2 + n], rest[2 + n :]
    (n,) = struct.unpack_from("<H", rest)
    return stream, remap, rest[2 : 2 + n]


def test_golden_file_with_refitted_heads(codec, kodak_crop):
    """Pins the fit: the file decodes to the crop, and today's encoder writes the same range-coded
    stream, remap and head integers (compared unpacked: another zlib build may deflate the
    same bytes differently)."""
    from gencodec import container

    blob = FIT_GOLDEN.read_bytes()
    img = kodak_crop("kodim05", (200, 150, 456, 342))
    assert same_image(gencodec.decompress(blob), img)
    old = FIT1_GOLDEN.read_bytes()  # files of the first version (output layers only) still decode
    assert gencodec.info(old)["params"]["fit"] == 1 and same_image(gencodec.decompress(old), img)
    header, payload = container.unpack(blob)
    assert header.params["fit"] == headfit.FIT_VERSION
    if header.model_id != codec.model_id:
        pytest.skip("pinned by an earlier shipped model (it still decodes: above)")
    new_header, new_payload = container.unpack(gencodec.compress(img, codec="pixelcnn"))
    assert new_header.params == header.params
    (s0, r0, f0), (s1, r1, f1) = _payload_parts(payload), _payload_parts(new_payload)
    assert s0 == s1
    cfg = codec.model.cfg
    assert bool(r0) == bool(r1)
    if r0:
        for a, b in zip(unpack_remap(r0, 3, cfg.n_scales, MAX_BIAS * cfg.mean_steps),
                        unpack_remap(r1, 3, cfg.n_scales, MAX_BIAS * cfg.mean_steps)):
            assert np.array_equal(a, b)
    fit0, fit1 = headfit.unpack_fit(f0, codec.model, 3), headfit.unpack_fit(f1, codec.model, 3)
    assert fit0.keys() == fit1.keys() and all(np.array_equal(u, v) for c in fit0 for u, v in zip(fit0[c], fit1[c]))


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_refitted_heads_in_every_modelled_mode(codec, mode):
    """A flat 96 x 80 image is far from the training photos: its heads get refitted (only the one
    coded channel's for L and LA), and the file decodes to the same pixels and mode."""
    from gencodec import container

    img = Image.new(mode, (96, 80), (77, 120, 200, 255)[: len(mode)] if len(mode) > 1 else 77)
    blob = gencodec.compress(img, codec="pixelcnn")
    header, payload = container.unpack(blob)
    assert header.params["fit"] == headfit.FIT_VERSION
    out = gencodec.decompress(blob)
    assert out.mode == mode and out.tobytes() == img.tobytes()
    n_coded = 1 if mode in ("L", "LA") else 3
    fits = headfit.unpack_fit(_payload_parts(payload)[2], codec.model, n_coded)
    assert fits and set(fits) <= set(range(n_coded))


def test_parallel_pass_with_known_rows_gives_the_same_tables(codec, kodak_crop):
    """The encoder reuses the fit sample's activations in its parallel pass: the same tables."""
    planes = to_planes(kodak_crop())[0]
    m = codec.model
    rows = [1, 2, 9, 40, 95]
    mean, idx = m.tables_parallel_multi(planes, [m], 3, known=(rows, m.head_samples(planes, rows)))
    mean0, idx0 = m.tables_parallel(planes)
    assert np.array_equal(mean[0], mean0) and np.array_equal(idx[0], idx0)


def test_coding_runs_torch_single_threaded_and_restores_its_threads(codec, kodak_crop, monkeypatch):
    """torch only rounds and clamps on the coding path; a torch thread team woken between numpy's
    multithreaded matrix products fights them for the cores (a decode took 4-5x longer on two
    threads), so encoder and decoder run torch single-threaded and restore the caller's setting."""
    import gencodec.models.pixelcnn as pc

    seen = []
    real = pc.round_clip

    def spy(y, fmt):
        seen.append(torch.get_num_threads())
        return real(y, fmt)

    monkeypatch.setattr(pc, "round_clip", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        img = kodak_crop().crop((0, 0, 64, 48))
        assert same_image(gencodec.decompress(gencodec.compress(img, codec="pixelcnn")), img)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert seen and set(seen) == {1}


def test_solve_spd_matches_lapack_and_keeps_its_inputs():
    """The fit's linear solve (elementwise operations only, for the same bits everywhere) solves."""
    rng = np.random.default_rng(3)
    m = rng.integers(-50, 50, (57, 57)).astype(np.float64)
    a = m @ m.T + 57 * np.eye(57)
    b = rng.integers(-1000, 1000, 57).astype(np.float64)
    a0, b0 = a.copy(), b.copy()
    x = headfit.solve_spd(a, b)
    assert np.allclose(x, np.linalg.solve(a, b), rtol=1e-9, atol=1e-12)
    assert np.array_equal(a, a0) and np.array_equal(b, b0)


@pytest.mark.parametrize("damage", ["zlib", "mask", "length", "range", "shift"])
def test_damaged_per_image_heads_are_refused(codec, damage):
    import struct
    import zlib

    from gencodec.errors import CorruptFileError

    hh = codec.model.cfg.head_hidden
    deltas = np.zeros((1, 3 * hh + 2), "<i4")
    blob = {"zlib": b"not zlib",
            "mask": zlib.compress(struct.pack("<B", 0b1000) + deltas.tobytes()),
            "length": zlib.compress(struct.pack("<B", 0b1) + deltas.tobytes()[:-4]),
            "range": zlib.compress(struct.pack("<B", 0b1) + np.full((1, 3 * hh + 2), 1 << 20, "<i4").tobytes()),
            "shift": zlib.compress(struct.pack("<B", 0b1) + np.r_[np.zeros(2 * hh + 2), np.full(hh, 1 << 12)]
                                   .astype("<i4").tobytes())}[damage]
    with pytest.raises(CorruptFileError, match="per-image heads"):
        headfit.unpack_fit(blob, codec.model, 3)
    good = zlib.compress(struct.pack("<B", 0b1) + deltas.tobytes())
    assert headfit.fitted_model(codec.model, headfit.unpack_fit(good, codec.model, 3)).model_id == codec.model.model_id


def test_causal_pad_rule():
    cfg = PixelCNNConfig()
    img = np.arange(12, dtype=np.int32).reshape(3, 4) + 1
    top, left, right = cfg.pad
    p = causal_pad(img, cfg)
    assert (p[:top] == 128).all()
    assert (p[top, :left] == 128).all()  # nothing decoded before the first pixel
    assert (p[top + 1, :left] == img[0, 0]).all() and (p[top + 2, :left] == img[1, 0]).all()
    assert (p[top:, left + 4 :] == img[:, 3:4]).all()


def test_decoder_steps_are_wavefronts():
    order, counts = wavefront_groups(512, 768, 3)
    assert counts.size == 3 * 511 + 768  # (r+1)(H-1) + W steps, not H*W
    assert counts.max() == 256


# ---------------------------------------------------------------------------------------------
# pinned bytes and exactness across machines
# ---------------------------------------------------------------------------------------------
def test_colour_predictions_feed_the_heads(colour_codec):
    """With colour_preds, channel 1's table depends on the colour-difference MED of its neighbours."""
    any_codec = colour_codec
    cfg = any_codec.model.cfg
    planes = np.full((3, 6, 6), 100, np.uint8)
    planes[1] = 140  # G - R = 40 everywhere
    planes[0, 3, 3] = 160  # this pixel's R jumps: the colour prediction for G follows (200)
    bases = colour_bases(np.stack([np.full(len(cfg.offsets), v) for v in (100, 140, 100)])[None], np.array([[100, 140, 100]]), cfg)
    assert bases.tolist() == [[0, 0, 0]]  # MED(G - R) + P_R - P_G = 40 + 100 - 140
    resid = np.array([[60, 0, 0]])
    assert head_extra(1, resid, bases, cfg).tolist() == [[60, 60]]  # r_R, and x_R + MED(G-R) - P_G = 60
    mean, _ = any_codec.model.tables_parallel(planes)
    planes2 = planes.copy()
    planes2[0, 3, 3] = 100
    mean2, _ = any_codec.model.tables_parallel(planes2)
    assert mean[1, 3, 3] != mean2[1, 3, 3]


def test_phase_inputs_feed_the_trunk(phase_codec):
    """With phase_inputs, the same neighbourhood gives other tables at another position mod 2."""
    flat = np.full((3, 6, 8), 100, np.uint8)
    mean, idx = phase_codec.model.tables_parallel(flat)
    inner = mean[:, 3:5, 3:7]  # away from the edges the context is identical everywhere
    tables = {(y % 2, x % 2): (tuple(mean[:, y, x]), tuple(idx[:, y, x])) for y in range(3, 5) for x in range(3, 7)}
    assert len(set(tables.values())) >= 3  # the position mod 2 changes the tables ...
    assert np.array_equal(inner[:, :, :2], inner[:, :, 2:])  # ... and nothing else does here


def _all_rows(dist):
    s, md = np.meshgrid(np.arange(dist.n_scales), np.arange(dist.n_means), indexing="ij")
    return dist.freqs(md.ravel(), s.ravel()).reshape(dist.n_scales, dist.n_means, 256)


@pytest.mark.parametrize("coarse", [0, 1])
def test_finer_means_extend_the_coarser_tables(coarse):
    """With one more mean_frac_bit the tables of even md are exactly the coarser tables, the odd ones
    lie between, and every table is valid (entries >= 1, sum 2**16); ``prob_freq`` reads the same
    entries one symbol at a time."""

    whole = PixelCNNConfig(mean_frac_bits=coarse).distribution()
    half = PixelCNNConfig(mean_frac_bits=coarse + 1).distribution()
    d = 2 << coarse
    assert half.cdf.shape == (64, 512 * d - d + 1) and half.n_means == 255 * d + 1
    assert np.array_equal(half.cdf[:, ::2], whole.cdf)  # the coarser grid's points
    rows_w, rows_h = _all_rows(whole), _all_rows(half)
    assert np.array_equal(rows_h[:, ::2], rows_w)
    assert (rows_h.sum(-1) == 2**16).all() and rows_h.min() >= 1
    s, md, x = np.random.default_rng(coarse).integers([0, 0, 0], [64, half.n_means, 256], size=(500, 3)).T
    x[:3] = [0, 255, 128]  # both tails
    assert np.array_equal(half.prob_freq(x, md, s), rows_h[s, md, x])
    # mean 100.5 at a small scale: symbols 100 and 101 equally likely, and the most likely pair
    row = half.freqs(np.array([201 * d // 2]), np.array([10]))[0]
    assert row[100] == row[101] and row[100] > row[99] and row[101] > row[102]
    # training's closed form agrees with the table
    p = torch.exp2(half.log2_prob(torch.tensor([100.0, 101.0, 104.0]), torch.tensor(100.5), torch.tensor(10.0)))
    assert np.allclose(p.numpy() * 2**16, row[[100, 101, 104]], rtol=2e-3, atol=1)


@pytest.mark.parametrize("damage", ["decreasing", "too_high"])
def test_a_cdf_that_could_give_an_invalid_table_is_refused(damage):
    from gencodec.errors import ExactnessError

    cdf = PixelCNNConfig().distribution().cdf.copy()
    if damage == "decreasing":
        cdf[5, 300] = cdf[5, 299] - 1
    else:
        cdf[5, -1] = 2**16 - 255  # would leave symbol 255 no count
    with pytest.raises(ExactnessError, match="monotone"):
        PixelCNNConfig().distribution(cdf).freqs([0], [0])


def test_golden_file():
    blob = GOLDEN.read_bytes()
    assert same_image(gencodec.decompress(blob), golden_image())
    assert gencodec.compress(golden_image(), codec="pixelcnn") == blob


def test_progress_reaches_the_total_and_never_goes_back():
    img = golden_image().resize((40, 24))

    def reports(work):
        seen = []
        with gencodec.progress.reporting(lambda done, total: seen.append((done, total))):
            out = work()
        return out, seen

    blob, enc = reports(lambda: gencodec.compress(img, codec="pixelcnn"))
    restored, dec = reports(lambda: gencodec.decompress(blob))
    assert same_image(restored, img)
    for seen in (enc, dec):
        (total,) = {t for _, t in seen}  # one total per piece of work
        done = [d for d, _ in seen]
        assert len(done) >= 3 and done == sorted(done) and done[0] < done[-1] == total, seen


def test_decoding_finds_an_archived_shipped_model_by_id(kodak_crop, other_model, tmp_path, monkeypatch):
    import shutil

    img = kodak_crop().crop((0, 0, 20, 12))
    blob = gencodec.compress(img, codec="pixelcnn", model=other_model)
    model_id = gencodec.info(blob)["model_id"]
    monkeypatch.setattr(zoo, "ARCHIVE", tmp_path)
    with pytest.raises(ModelMismatchError, match=model_id):  # not shipped: refused, naming both ids
        gencodec.decompress(blob)
    shutil.copy(other_model, tmp_path / f"pixelcnn-{model_id}.safetensors")
    assert same_image(gencodec.decompress(blob), img)


EARLIER = sorted(GOLDEN.parent.glob("rgb-9x7-*.gcx"))  # the same image, written by earlier shipped models


def test_earlier_golden_files_are_kept():
    assert EARLIER, "a golden file per shipped model is kept in tests/golden/pixelcnn/"


@pytest.mark.parametrize("path", EARLIER, ids=[p.name for p in EARLIER])
def test_files_written_by_earlier_shipped_models_still_decode(path, codec):
    """Every model gencodec shipped is kept (the one before the shipped model in
    gencodec/weights/archive/, older ones in gencodec-archive), so old files decode."""
    blob = path.read_bytes()
    model_id = bytes.fromhex(gencodec.info(blob)["model_id"])
    assert path.stem.endswith(model_id.hex()[:8])
    if model_id != codec.model_id:
        folder = zoo.archive_package_dir() if model_id in zoo.archive_package_ids("pixelcnn") else zoo.ARCHIVE
        assert zoo.archived("pixelcnn", model_id) == folder / f"pixelcnn-{model_id.hex()}.safetensors.xz"
        with pytest.raises(ModelMismatchError, match=model_id.hex()):  # an explicit --model is never swapped
            gencodec.decompress(blob, model=DEFAULT_MODEL)
    assert same_image(gencodec.decompress(blob), golden_image())


CHILD = r"""
import hashlib, sys, numpy as np, torch
torch.set_num_threads(int(sys.argv[1]))
from PIL import Image
import gencodec
img = Image.open(sys.argv[2]).crop((200, 150, 456, 342))
blob = gencodec.compress(img, codec="pixelcnn")
assert gencodec.info(blob)["params"].get("fit"), "the crop should get refitted heads"
open(sys.argv[3], "wb").write(blob)
other = open(sys.argv[4], "rb").read() if len(sys.argv) > 4 else blob
assert gencodec.decompress(other).tobytes() == img.tobytes()
rng = np.random.default_rng(0)  # the control: a float32 product of non-integers, in numpy's BLAS
a, b = rng.standard_normal((170, 224)).astype(np.float32), rng.standard_normal((224, 224)).astype(np.float32)
print(hashlib.sha256((a @ b).tobytes()).hexdigest())
"""


def _child(tmp_path: Path, env: dict[str, str], threads: int, kodak: Path, out: str, other: str | None = None):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), **env)
    args = [sys.executable, "-c", CHILD, str(threads), str(kodak), str(tmp_path / out)]
    if other:
        args.append(str(tmp_path / other))
    res = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return (tmp_path / out).read_bytes(), res.stdout.split()[-1]


def test_same_bytes_under_other_kernels_and_threads(tmp_path, kodak_dir):
    """One process with AVX2 torch kernels and numpy's BLAS on its AVX2 kernels, two threads; one with
    baseline torch kernels and numpy's BLAS on SSE3 kernels (OPENBLAS_CORETYPE=Prescott), one thread:
    the same file, and each decodes the other's, while a float product shows the BLAS kernels differ."""
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if " avx2" not in flags:
        pytest.skip("this CPU has no AVX2")
    kodak = kodak_dir / "kodim05.png"
    a, control_a = _child(tmp_path, dict(ATEN_CPU_CAPABILITY="avx2", OPENBLAS_CORETYPE="Haswell"), 2, kodak, "a.gcx")
    b, control_b = _child(tmp_path, dict(ATEN_CPU_CAPABILITY="default", OPENBLAS_CORETYPE="Prescott"), 1, kodak,
                          "b.gcx", other="a.gcx")  # encodes, and decodes a's file
    assert a == b
    if control_a == control_b:  # e.g. a numpy built on another BLAS, which ignores OPENBLAS_CORETYPE
        pytest.skip("the same file, but numpy's BLAS ran the same kernels in both processes")


def test_model_whose_sums_could_leave_float32_exactness_is_refused():
    from gencodec.errors import ExactnessError

    torch.manual_seed(4)
    exact = PixelCNN(TINY).export()
    first = exact.trunk[0]
    first.weight.fill_(2000.0)  # 42 inputs x 255 x 2000 > 2**24: sums could round in float32
    with pytest.raises(ExactnessError):
        ExactPixelCNN(exact.cfg, exact.trunk, exact.heads, exact.dist.cdf)


@pytest.mark.parametrize("name", ["half_codec", "fine_codec"])
def test_exact_model_codes_what_its_fake_quantized_twin_computes(name, request, kodak_crop):
    """The training twin's bits (closed-form logistic on the fake-quantized outputs) and the exact
    model's ideal bits (integer tables) agree up to table rounding, on every grid."""
    exact = request.getfixturevalue(name).model
    planes = np.ascontiguousarray(np.asarray(kodak_crop(box=(0, 0, 32, 24))).transpose(2, 0, 1))
    with torch.no_grad():
        twin = PixelCNN.from_exact(exact)(torch.from_numpy(planes).float()[None], quantized=True)[0].numpy()
    mean, idx = exact.tables_parallel(planes)
    bits = 16 - np.log2(exact.dist.prob_freq(planes, mean, idx))  # (3, H, W)
    assert np.abs(twin.transpose(2, 0, 1) - bits).max() < 0.05  # subpixel by subpixel


def test_row_windows_reads_and_updates_strided_windows():
    from gencodec.exact.fastpath import row_windows

    a = np.arange(20.0)
    v = row_windows(a, 3, step=2)
    assert v.shape == (16, 3) and v[5].tolist() == [5.0, 7.0, 9.0] and not v.flags.writeable
    w = row_windows(a, 4, writeable=True)
    w[np.array([0, 10])] += 100.0  # non-overlapping windows: each updated once
    assert a[:4].tolist() == [100.0, 101.0, 102.0, 103.0] and a[10:14].tolist() == [110.0, 111.0, 112.0, 113.0]
    with pytest.raises(ValueError, match="contiguous"):
        row_windows(np.zeros((4, 4))[:, ::2], 2)


def _pins():
    import importlib.util

    spec = importlib.util.spec_from_file_location("pixelcnn_pins", GOLDEN.parent.parent / "pixelcnn_pins.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PINS = sorted((GOLDEN.parent / "pins").glob("*.gcx"))


@pytest.mark.parametrize("path", PINS, ids=[p.stem for p in PINS])
def test_pinned_frames_decode_and_todays_encoder_writes_the_same_payload(path, codec):
    """Frames written before the neural codec contract (tests/golden/pixelcnn_pins.py): they decode,
    and today's encoder writes the same header and the same range-coded stream; the zlib-packed
    sections are compared unpacked (another zlib build may deflate the same bytes differently)."""
    from gencodec import container

    img = _pins().inputs()[path.stem]
    blob = path.read_bytes()
    assert same_image(gencodec.decompress(blob), img)
    header, payload = container.unpack(blob)
    if header.model_id != codec.model_id:
        pytest.skip("pinned by an earlier shipped model (it still decodes: above)")
    new_header, new_payload = container.unpack(gencodec.compress(img, codec="pixelcnn", name=header.name))
    assert new_header == header
    if new_payload == payload:
        return
    (s0, r0, _), (s1, r1, _) = _payload_parts(payload), _payload_parts(new_payload)
    assert s0 == s1
    n_coded = 1 if img.mode in ("L", "LA") else 3
    cfg = codec.model.cfg
    assert bool(r0) == bool(r1)
    if r0:
        for a, b in zip(unpack_remap(r0, n_coded, cfg.n_scales, MAX_BIAS * cfg.mean_steps),
                        unpack_remap(r1, n_coded, cfg.n_scales, MAX_BIAS * cfg.mean_steps)):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("forced", [0, 1])
def test_the_decoders_blas_thread_choice_keeps_every_bit_and_restores_the_library(kodak_crop, forced, monkeypatch):
    """The decoder runs numpy's BLAS on its default threads or on one, whichever it timed faster; the
    file decodes the same either way, and the library's own setting is back afterwards."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from gencodec.exact.fastpath import BlasThreads
    import gencodec.models.pixelcnn as pc

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    before = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    tuner = BlasThreads()
    if tuner._controller():
        tuner.choice = forced
    monkeypatch.setattr(pc, "DECODER_THREADS", tuner)
    img = kodak_crop().crop((0, 0, 64, 48))
    assert same_image(gencodec.decompress(gencodec.compress(img, codec="pixelcnn")), img)
    assert [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"] == before


def test_the_decoder_probes_both_thread_counts_and_keeps_one(monkeypatch):
    pytest.importorskip("threadpoolctl")
    from gencodec.exact.fastpath import BlasThreads

    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    tuner = BlasThreads()
    if not tuner._controller():
        pytest.skip("BLAS runs one thread here: nothing to choose")
    with tuner.scope():
        for _ in range(tuner.WARM + 2 * tuner.BLOCK * tuner.ROUNDS + 1):
            tuner.step(tuner.MIN_WORK)
    assert tuner.choice in (0, 1) and tuner._amounts[0] == tuner._amounts[1] == tuner.MIN_WORK * tuner.BLOCK * tuner.ROUNDS
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert not BlasThreads()._controller()  # a thread count the user set is theirs


def test_model_files_carry_arch_config_and_format_and_first_format_files_still_load(tmp_path, codec):
    """One model-file format (gencodec.models.modelfile): arch, config, format and model id in the
    metadata. Files of the first format (gencodec-pixelcnn-1, no arch) load as pixelcnn with the same id;
    a file of another arch, or with tensors that do not match its id, is refused."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from gencodec.errors import GencodecError
    from gencodec.models import modelfile

    path = tmp_path / "m.safetensors"
    codec.model.save(path)
    with safe_open(str(path), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    assert meta["format"] == modelfile.FORMAT and meta["arch"] == "pixelcnn" and meta["model_id"] == codec.model_id.hex()
    assert json.loads(meta["config"])["hidden"] == codec.model.cfg.hidden
    legacy = tmp_path / "legacy.safetensors"
    save_file(tensors, str(legacy), metadata={"format": "gencodec-pixelcnn-1", "config": meta["config"],
                                              "model_id": meta["model_id"]})
    assert zoo.load(legacy).model_id == codec.model_id
    other = tmp_path / "other.safetensors"
    save_file(tensors, str(other), metadata={**meta, "arch": "bytemodel"})
    with pytest.raises(GencodecError, match="a bytemodel model file, not pixelcnn"):
        ExactPixelCNN.load(other)
    damaged = dict(tensors)
    damaged["trunk.0.bias"] = damaged["trunk.0.bias"] + 1
    save_file(damaged, str(other), metadata=meta)
    with pytest.raises(GencodecError, match="does not match its tensors"):
        zoo.load(other)


def test_saving_a_model_twice_gives_the_same_bytes_with_its_metadata_in_sorted_order(tmp_path, codec):
    """safetensors writes its metadata map in a random order each time (its issue #584); the model
    file's header is put in one order, so a shipped or archived file can be rebuilt byte for byte."""
    import struct

    from gencodec.models import modelfile

    card = {"b": 1, "a": "x \u00d7 y"}  # a card with a non-ASCII character, as cards have
    saved = []
    for i in range(6):
        path = tmp_path / f"m{i}.safetensors"
        codec.model.save(path, card=card)
        saved.append(path.read_bytes())
    assert len(set(saved)) == 1
    n = struct.unpack("<Q", saved[0][:8])[0]
    header = json.loads(saved[0][8:8 + n])
    assert list(header["__metadata__"]) == sorted(header["__metadata__"]) and (8 + n) % 8 == 0
    assert modelfile.read(tmp_path / "m0.safetensors")[3]["card"] == json.dumps(card, sort_keys=True)
    codec.model.save(tmp_path / "a.safetensors.xz", card=card)
    codec.model.save(tmp_path / "b.safetensors.xz", card=card)
    assert (tmp_path / "a.safetensors.xz").read_bytes() == (tmp_path / "b.safetensors.xz").read_bytes()
    assert zoo.load(tmp_path / "a.safetensors.xz").model_id == codec.model_id


def test_an_xz_model_file_loads_under_the_same_id_and_a_damaged_or_oversized_one_is_refused(tmp_path, codec, monkeypatch):
    """The archive's form: the same safetensors bytes xz-compressed. It loads under the same id (its
    header alone too); a truncated, foreign or oversized (decompression bomb) one is refused in one line."""
    import lzma

    from gencodec.errors import GencodecError
    from gencodec.models import modelfile

    plain, packed = tmp_path / "m.safetensors", tmp_path / "m.safetensors.xz"
    codec.model.save(plain)
    codec.model.save(packed)
    (_, _, a, meta_a), (_, _, b, meta_b) = modelfile.read(plain), modelfile.read(packed)
    assert meta_a == meta_b and a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert packed.stat().st_size < 0.5 * plain.stat().st_size
    assert zoo.load(packed, "pixelcnn").model_id == codec.model_id
    assert modelfile.read_config(packed) == modelfile.read_config(plain)
    bad = tmp_path / "bad.safetensors.xz"
    for content in (packed.read_bytes()[:-40], lzma.compress(plain.read_bytes()[:-40]), plain.read_bytes(),
                    lzma.compress(b"\x10\x00\x00\x00\x00\x00\x00\x00{}"),
                    lzma.compress(modelfile.MAX_XZ_BYTES.to_bytes(8, "little") + b"{}")):  # a header claiming it all
        bad.write_bytes(content)
        with pytest.raises(GencodecError, match="not a gencodec model file") as e:
            zoo.load(bad)
        assert "\n" not in str(e.value)
    monkeypatch.setattr(modelfile, "MAX_XZ_BYTES", plain.stat().st_size - 1)
    with pytest.raises(GencodecError, match="MiB unpacked"):
        zoo.load(packed)


def test_the_pins_are_in_the_checkout():
    assert sorted(p.stem for p in PINS) == sorted(_pins().inputs()), "tests/golden/pixelcnn/pins/ must hold a frame per pinned input"
    assert len(PNG_INSIDE) == 3


def test_a_model_file_without_its_id_is_refused_and_a_frames_long_model_id_finds_no_archive(tmp_path, codec):
    """The integrity check cannot be switched off by dropping the model_id key; a frame's model id
    that is not 16 bytes never becomes an archive path (a 255-byte id made the file name too long)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from gencodec.errors import GencodecError

    path = tmp_path / "m.safetensors"
    codec.model.save(path)
    with safe_open(str(path), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    del meta["model_id"]
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(GencodecError, match="does not match its tensors"):
        zoo.load(path)
    assert zoo.archived("pixelcnn", b"\x01" * 255) is None and codec.for_model_id(b"\x01" * 255) is None
