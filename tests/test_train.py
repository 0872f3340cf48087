"""Training: image-folder data, seeded crops, the generic loop's resume, the pixelcnn recipe end to
end (export, model card, coding with the trained model) and the ``gencodec train`` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import gencodec

torch = pytest.importorskip("torch")

from gencodec.codecs.pixelcnn import PixelCNNCodec  # noqa: E402
from gencodec.models.pixelcnn import PixelCNNConfig  # noqa: E402
from gencodec.train.data import (  # noqa: E402
    CropSampler, TorchCropSampler, TrainImage, area_downscale, chroma_subsample, chroma_subsample_torch, load_folder,
    save_pixels,
)
from gencodec.train.pixelcnn import PixelCNNRecipe, train_pixelcnn  # noqa: E402

TINY = PixelCNNConfig(hidden=8, trunk_layers=1, head_hidden=4)
RECIPE = PixelCNNRecipe(crop=16, batch=2, val_size=24, val_every=2, downscale=2, val_glob="val/*")


def photo_like(seed: int, size=(64, 48)) -> np.ndarray:
    """Smooth colour ramps plus a little noise: (H, W, 3) uint8."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 2 + y, 100 + y * 2, 200 - x], axis=-1) + rng.integers(-3, 4, (h, w, 3))
    return np.clip(base, 0, 255).astype(np.uint8)


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "photos"
    (root / "train").mkdir(parents=True)
    (root / "val").mkdir()
    for i in range(3):
        Image.fromarray(photo_like(i)).save(root / "train" / f"{i}.png")
    Image.fromarray(photo_like(9)).save(root / "val" / "v.png")
    (root / "notes.txt").write_text("not an image")
    manifest = {"files": [{"file": "photos/train/0.png", "lossless_source": True}]}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
def test_area_downscale_is_the_rounded_box_mean():
    px = np.array([[0, 1, 10, 20], [2, 4, 30, 41], [9, 9, 9, 9]], np.uint8)[..., None]
    out = area_downscale(px, 2)
    assert out.shape == (1, 2, 1)
    assert out[0, :, 0].tolist() == [2, 25]  # (0+1+2+4)/4 = 1.75 -> 2; (10+20+30+41)/4 = 25.25 -> 25


def test_load_folder_splits_and_downscales_by_manifest(folder):
    images = load_folder(folder, downscale=2, val_glob="val/*", min_side=8)
    assert [i.name for i in images.val] == ["val/v.png"]
    by_name = {i.name: i for i in images.train}
    assert sorted(by_name) == ["train/0.png", "train/1.png", "train/2.png"]
    assert by_name["train/0.png"].pixels.shape == (48, 64, 3) and by_name["train/0.png"].downscaled == 1
    assert by_name["train/1.png"].pixels.shape == (24, 32, 3) and by_name["train/1.png"].downscaled == 2
    assert len(by_name["train/1.png"].sha256) == 64


def test_saved_pixels_load_as_the_same_training_pixels(folder, tmp_path):
    images = load_folder(folder, downscale=2, val_glob="val/*", min_side=8)
    desc = save_pixels(images, tmp_path / "pixels")
    again = load_folder(tmp_path / "pixels", downscale=2, val_glob="val/*", min_side=8)
    for a, b in zip(images.train + images.val, again.train + again.val, strict=True):
        assert a.name == b.name and b.downscaled == 1  # marked lossless: not downscaled a second time
        assert np.array_equal(a.pixels, b.pixels)
    assert {i.name for i in images.train if i.downscaled == 2} == {"train/1.png", "train/2.png"}
    assert json.loads((tmp_path / "pixels" / "describe.json").read_text()) == desc == images.describe()


def test_default_split_holds_out_something(folder):
    images = load_folder(folder, downscale=1)
    assert len(images.val) == 1 and len(images.train) == 3


def test_crops_are_a_function_of_seed_and_step(folder):
    images = load_folder(folder, downscale=1, val_glob="val/*")
    a = CropSampler(images.train, crop=16, seed=0)
    b = CropSampler(images.train, crop=16, seed=0)
    assert a.batch(5, 4).shape == (4, 3, 16, 16)
    assert np.array_equal(a.batch(5, 4), b.batch(5, 4))
    assert not np.array_equal(a.batch(5, 4), a.batch(6, 4))
    assert not np.array_equal(a.batch(5, 4), CropSampler(images.train, crop=16, seed=1).batch(5, 4))


def test_chroma_subsample_keeps_grey_and_leaves_2x2_chroma():
    grey = np.repeat(photo_like(1)[..., :1], 3, axis=-1)
    assert np.array_equal(chroma_subsample(grey), grey)  # no chroma: nothing to lose
    rgb = photo_like(2, (33, 21))
    out = chroma_subsample(rgb, "nearest")
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert 0 < np.abs(out.astype(int) - rgb).mean() < 3  # luma kept, only colour detail goes
    # nearest upsampling: the colour difference B - R is (nearly) constant on each 2x2 block
    d = out[..., 2].astype(int) - out[..., 0]
    blocks = d[:20, :32].reshape(10, 2, 16, 2)
    assert (blocks.max(axis=(1, 3)) - blocks.min(axis=(1, 3))).max() <= 3 < np.ptp(d)
    smooth = chroma_subsample(rgb, "triangle")
    assert not np.array_equal(smooth, out)
    with pytest.raises(ValueError, match="upsampling"):
        chroma_subsample(rgb, "cubic")


def test_chroma_augmentation_changes_only_some_crops_and_stays_seeded(folder):
    images = load_folder(folder, downscale=1, val_glob="val/*")
    plain = CropSampler(images.train, crop=16, seed=0).batch(5, 8)
    aug = CropSampler(images.train, crop=16, seed=0, chroma420=0.5).batch(5, 8)
    assert np.array_equal(aug, CropSampler(images.train, crop=16, seed=0, chroma420=0.5).batch(5, 8))
    changed = [not np.array_equal(a, b) for a, b in zip(aug, plain)]
    assert 0 < sum(changed) < 8  # same crops, a random half put through the chroma round trip
    every = CropSampler(images.train, crop=16, seed=0, chroma420=1.0).batch(5, 8)
    assert all(not np.array_equal(a, b) for a, b in zip(every, plain))


@pytest.mark.parametrize("how", ["triangle", "nearest"])
@pytest.mark.parametrize("size", [(33, 21), (8, 8), (1, 1), (2, 5)])
def test_chroma_round_trip_of_a_batch_is_that_of_each_picture(how, size):
    """The GPU sampler puts whole batches through the round trip at once; each picture must come out
    as it does alone (odd sides, 1x1 included)."""
    pics = [photo_like(3 + k, size) for k in range(3)]
    pics[1][::3] = np.random.default_rng(0).integers(0, 256, pics[1][::3].shape)  # sharp colour edges too
    batch = chroma_subsample_torch(torch.from_numpy(np.stack(pics)).double(), how).numpy()
    assert batch.dtype == np.uint8
    for got, pic in zip(batch, pics):
        assert np.array_equal(got, chroma_subsample(pic, how))
    assert not np.array_equal(batch[1], pics[1]) or size == (1, 1)  # the round trip does change a colour picture


def _is_window(crop: np.ndarray, images, n: int) -> bool:
    """crop (3, n, n) is a window of one image, maybe flipped, edge-padded where the image is smaller."""
    t = crop.transpose(1, 2, 0)
    for im in images:
        px = im.pixels
        h, w = px.shape[:2]
        ch, cw = min(n, h), min(n, w)
        for y in range(h - ch + 1):
            for x in range(w - cw + 1):
                tile = px[y : y + ch, x : x + cw]
                for f in (tile, tile[:, ::-1]):
                    if np.array_equal(np.pad(f, ((0, n - ch), (0, n - cw), (0, 0)), mode="edge"), t):
                        return True
    return False


def test_torch_sampler_gives_seeded_windows_of_the_images():
    rng = np.random.default_rng(0)
    images = [TrainImage("a", rng.integers(0, 256, (20, 30, 3), dtype=np.uint8), "", 1),
              TrainImage("b", rng.integers(0, 256, (10, 6, 3), dtype=np.uint8), "", 1)]  # smaller than a crop
    s = TorchCropSampler(images, crop=16, seed=0)
    b = s.batch(3, 40)
    assert b.shape == (40, 3, 16, 16) and b.dtype == torch.uint8
    assert torch.equal(b, TorchCropSampler(images, crop=16, seed=0).batch(3, 40))
    assert not torch.equal(b, s.batch(4, 40))
    assert all(_is_window(c, images, 16) for c in b.numpy())
    assert len({c.tobytes() for c in b.numpy()}) > 30  # not a few crops repeated
    aug = TorchCropSampler(images, crop=16, seed=0, chroma420=1.0).batch(3, 40)
    assert not any(_is_window(c, images, 16) for c in aug.numpy()[:5])  # every crop round-tripped


# ---------------------------------------------------------------------------------------------
# recipe and loop
# ---------------------------------------------------------------------------------------------
FINE_GRIDS = dict(mean_frac_bits=2, act_frac_bits=6, w_frac_bits=9, w_max=1500)


@pytest.mark.parametrize("colour, grids", [(False, {}), (True, {}), (True, dict(mean_frac_bits=1)), (True, FINE_GRIDS)])
def test_recipe_trains_exports_and_the_model_codes(folder, tmp_path, colour, grids):
    out = tmp_path / "m.safetensors"
    config = PixelCNNConfig(hidden=8, trunk_layers=1, head_hidden=4, colour_preds=colour, **grids)
    card = train_pixelcnn(folder, out, steps=4, workdir=tmp_path / "run", config=config, recipe=RECIPE, progress=False)
    assert out.is_file() and out.with_suffix(".json").is_file()
    assert json.loads(out.with_suffix(".json").read_text())["model_id"] == card["model_id"]
    assert card["steps"] == 4 and card["config"]["hidden"] == 8
    assert [d["name"] for d in card["data"]["val"]] == ["val/v.png"]
    v = card["validation"]
    assert 0 < v["bpsp_exact_ideal"] < 16 and abs(v["bpsp_exact_ideal"] - v["bpsp_fake_quant"]) < 0.05
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if e["event"] == "val"] == [2, 4]
    codec = PixelCNNCodec(model=out)
    assert codec.model_id.hex() == card["model_id"]
    img = Image.fromarray(photo_like(3, (20, 14)))
    blob = gencodec.compress(img, codec="pixelcnn", model=out)
    assert gencodec.decompress(blob, model=out).tobytes() == img.tobytes()


def test_resume_continues_to_the_same_weights(folder, tmp_path):
    straight = train_pixelcnn(folder, tmp_path / "a.safetensors", steps=4, workdir=tmp_path / "a", config=TINY,
                              recipe=RECIPE, progress=False)
    train_pixelcnn(folder, tmp_path / "b.safetensors", steps=4, workdir=tmp_path / "b", config=TINY,
                   recipe=RECIPE, progress=False, stop_after=2)
    assert torch.load(tmp_path / "b" / "last.pt", weights_only=True)["step"] == 2
    resumed = train_pixelcnn(folder, tmp_path / "b.safetensors", steps=4, workdir=tmp_path / "b", config=TINY,
                             recipe=RECIPE, progress=False, resume=True)
    assert resumed["steps"] == 4
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["model_id"] == straight["model_id"]


def test_resume_refuses_another_config(folder, tmp_path):
    train_pixelcnn(folder, tmp_path / "a.safetensors", steps=2, workdir=tmp_path / "a", config=TINY,
                   recipe=RECIPE, progress=False)
    with pytest.raises(ValueError, match="another config"):
        train_pixelcnn(folder, tmp_path / "a.safetensors", steps=2, workdir=tmp_path / "a",
                       config=PixelCNNConfig(hidden=12, trunk_layers=1, head_hidden=4), recipe=RECIPE,
                       progress=False, resume=True)


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------
def test_train_command(folder, tmp_path):
    from click.testing import CliRunner

    from gencodec_cli.main import cli

    out = tmp_path / "cli.safetensors"
    res = CliRunner().invoke(cli, ["train", "pixelcnn", "--data", str(folder), "--out", str(out), "--steps", "2",
                                   "--crop", "16", "--batch", "2", "--val-glob", "val/*", "-q", "--chroma420", "0.5",
                                   "--qat-fraction", "1"])
    assert res.exit_code == 0, res.output
    assert out.is_file() and "model " in res.output
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["recipe"]["chroma420"] == 0.5 and "4:2:0" in card["validation"]["crops"]
    assert card["recipe"]["qat_fraction"] == 1.0
    log = [json.loads(line) for line in (tmp_path / "cli.run" / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if e["event"] == "val"] == [2]
    res = CliRunner().invoke(cli, ["train", "pixelcnn", "--data", str(tmp_path / "nope"), "--out", str(out)])
    assert res.exit_code == 2  # click: --data must exist
    res = CliRunner().invoke(cli, ["train", "--help"])
    assert res.exit_code == 0 and "pixelcnn" in res.output  # the models
    res = CliRunner().invoke(cli, ["train", "pixelcnn", "--help"])
    assert res.exit_code == 0 and "--resume" in res.output and "--chroma420" in res.output  # a model's options
    res = CliRunner().invoke(cli, ["train", "nosuchmodel", "--data", str(folder), "--out", str(out)])
    assert res.exit_code == 2 and "nosuchmodel" in res.output


def test_train_keeps_a_run_in_the_work_folder_unless_resumed_or_forced(folder, tmp_path):
    """Running the command again without --resume would start over and write over the run's checkpoint:
    it is refused in one line; -f starts over, and nothing of the old run stays in the log."""
    from click.testing import CliRunner

    from gencodec_cli.main import cli

    out, run = tmp_path / "m.safetensors", tmp_path / "m.run"
    args = ["train", "pixelcnn", "--data", str(folder), "--out", str(out), "--crop", "16", "--batch", "2",
            "--val-glob", "val/*", "-q", "--config", '{"hidden": 8, "trunk_layers": 1, "head_hidden": 4}']
    assert CliRunner().invoke(cli, args + ["--steps", "2"]).exit_code == 0
    out.unlink()
    out.with_suffix(".json").unlink()
    before = (run / "last.pt").read_bytes()
    res = CliRunner().invoke(cli, args + ["--steps", "3"])
    assert res.exit_code == 1 and res.stderr.strip().splitlines() == [
        f"gencodec: error: {run}: holds a run's checkpoint (use --resume to continue it, -f to start over)"]
    assert (run / "last.pt").read_bytes() == before and not out.exists()
    res = CliRunner().invoke(cli, args + ["--steps", "1", "-f"])
    assert res.exit_code == 0, res.stderr
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [(e["event"], e["step"]) for e in log] == [("train", 1), ("val", 1)]  # the new run's log alone


@pytest.mark.parametrize("device, why", [("cuda", "no CUDA device"), ("foo", "not a torch device"), ("cuda:7", "CUDA device")])
def test_train_refuses_a_device_it_cannot_use_in_one_line(folder, tmp_path, device, why):
    from click.testing import CliRunner

    from gencodec_cli.main import cli

    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has the device")
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    out = tmp_path / "m.safetensors"
    res = CliRunner().invoke(cli, ["train", "pixelcnn", "--data", str(folder), "--out", str(out),
                                                   "--steps", "1", "--device", device])
    assert res.exit_code == 2 and why in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    assert not out.exists() and not (tmp_path / "m.run").exists()  # refused before any work


def test_train_keeps_an_existing_out_without_force_and_files_follow_the_umask(folder, tmp_path):
    import os
    import stat

    from click.testing import CliRunner

    from gencodec_cli.main import cli

    out = tmp_path / "m.safetensors"
    out.write_bytes(b"mine")
    args = ["train", "pixelcnn", "--data", str(folder), "--out", str(out), "--steps", "1", "--crop", "16",
            "--batch", "2", "--val-glob", "val/*", "--config", '{"hidden": 8, "trunk_layers": 1, "head_hidden": 4}']
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1 and "already exists (use -f to overwrite)" in res.stderr and out.read_bytes() == b"mine"
    old = os.umask(0o027)
    try:
        res = CliRunner().invoke(cli, args + ["-f"])
    finally:
        os.umask(old)
    assert res.exit_code == 0, res.stderr
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (out, out.with_suffix(".json"))}
    assert modes == {"m.safetensors": 0o640, "m.json": 0o640}
    # not a terminal: plain progress lines, no carriage returns
    assert "\r" not in res.stderr and "step 1/1: validation" in res.stderr


def test_train_command_config_builds_the_model_the_codec_rebuilds(folder, tmp_path):
    from click.testing import CliRunner

    from gencodec_cli.main import cli

    out = tmp_path / "small.safetensors"
    res = CliRunner().invoke(cli, ["train", "pixelcnn", "--data", str(folder), "--out", str(out), "--steps", "2",
                                   "--crop", "16", "--batch", "2", "--val-glob", "val/*", "-q",
                                   "--config", '{"hidden": 8, "trunk_layers": 1, "head_hidden": 4, "rows_up": 3}'])
    assert res.exit_code == 0, res.output
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["config"]["hidden"] == 8 and card["config"]["rows_up"] == 3
    img = Image.fromarray(np.random.default_rng(3).integers(0, 256, (9, 11, 3), dtype=np.uint8))
    blob = gencodec.compress(img, codec="pixelcnn", model=str(out))
    assert gencodec.decompress(blob, model=str(out)).tobytes() == img.tobytes()
    bad = CliRunner().invoke(cli, ["train", "pixelcnn", "--data", str(folder), "--out", str(out),
                                   "--config", '{"hiddn": 8}'])
    assert bad.exit_code == 2 and "hiddn" in bad.output
    # from a model file, --config changes that model's config: only the field named differs
    finer = tmp_path / "finer.safetensors"
    res = CliRunner().invoke(cli, ["train", "pixelcnn", "--data", str(folder), "--out", str(finer), "--steps", "1",
                                   "--crop", "16", "--batch", "2", "--val-glob", "val/*", "-q", "--init-from", str(out),
                                   "--config", '{"mean_frac_bits": 2}'])
    assert res.exit_code == 0, res.output
    grown = json.loads(finer.with_suffix(".json").read_text())["config"]
    assert grown == {**card["config"], "mean_frac_bits": 2}


def test_training_continues_from_an_exported_model_file(folder, tmp_path):
    from gencodec.models.pixelcnn import ExactPixelCNN, PixelCNN

    recipe = PixelCNNRecipe(crop=16, batch=2, val_glob="val/*", val_size=16)
    first = tmp_path / "first.safetensors"
    train_pixelcnn(folder, first, steps=2, config=TINY, recipe=recipe, progress=False)
    exact = ExactPixelCNN.load(first)
    assert PixelCNN.from_exact(exact).export().model_id == exact.model_id  # lossless way back
    second = tmp_path / "second.safetensors"
    card = train_pixelcnn(folder, second, steps=2, config=TINY, recipe=recipe, progress=False, init_from=first)
    assert card["init_from"] == str(first)
    with pytest.raises(ValueError, match="config differs"):
        train_pixelcnn(folder, tmp_path / "x.safetensors", steps=1, config=PixelCNNConfig(), recipe=recipe,
                       progress=False, init_from=first)


def test_a_run_may_switch_on_colour_predictions_and_half_means_without_changing_the_model(tmp_path):
    """start_from grows a model: zero weights on the new colour inputs, mean outputs doubled in half
    levels -- the exported model computes the same scales and the same means up to rounding, now
    to the nearest half level instead of the nearest level."""
    from dataclasses import replace

    from gencodec.models.pixelcnn import ExactPixelCNN, PixelCNN
    from gencodec.train.pixelcnn import start_from

    torch.manual_seed(4)
    path = tmp_path / "plain.safetensors"
    plain = PixelCNN(TINY).export()
    plain.save(path)
    grown_cfg = replace(TINY, colour_preds=True, mean_frac_bits=1)
    grown = start_from(path, grown_cfg).export()
    planes = np.ascontiguousarray(photo_like(7, (20, 12)).transpose(2, 0, 1))
    m0, i0 = plain.tables_parallel(planes)
    m1, i1 = grown.tables_parallel(planes)
    assert np.array_equal(i0, i1) and np.abs(2 * m0.astype(int) - m1).max() <= 1
    assert (2 * m0.astype(int) != m1).any()  # finer rounding does change some means
    assert abs(grown.ideal_bits(planes) / plain.ideal_bits(planes) - 1) < 0.01
    colour_only = start_from(path, replace(TINY, colour_preds=True)).export()
    m2, i2 = colour_only.tables_parallel(planes)
    assert np.array_equal(m2, m0) and np.array_equal(i2, i0)  # zero-weight colour inputs: identical
    phase = start_from(path, replace(TINY, colour_preds=True, phase_inputs=True)).export()
    m3, i3 = phase.tables_parallel(planes)
    assert np.array_equal(m3, m0) and np.array_equal(i3, i0)  # zero-weight phase inputs too
    assert phase.model_id != colour_only.model_id
    with pytest.raises(ValueError, match="rows_up"):  # another context: not a growth of this model
        start_from(path, replace(grown_cfg, rows_up=3))
    grown.save(tmp_path / "grown.safetensors")
    with pytest.raises(ValueError, match="colour_preds"):  # features are only switched on, not off
        start_from(tmp_path / "grown.safetensors", TINY)


def test_shipped_model_converts_back_to_its_training_twin_losslessly():
    from gencodec.codecs.pixelcnn import DEFAULT_MODEL
    from gencodec.models.pixelcnn import ExactPixelCNN, PixelCNN

    exact = ExactPixelCNN.load(DEFAULT_MODEL)
    assert PixelCNN.from_exact(exact).export().model_id == exact.model_id


def test_a_run_may_refine_the_grids_of_the_model_it_starts_from(tmp_path):
    """Finer activations and weights, quarter-level means and twice the scales over the same range: the grown model
    computes the same scales (old index i is now 2 i) and the same means up to the finer rounding;
    coarser grids, or another scale range, are refused."""
    from dataclasses import replace

    from gencodec.models.pixelcnn import PixelCNN
    from gencodec.train.pixelcnn import config_of, start_from

    torch.manual_seed(5)
    base = replace(TINY, mean_frac_bits=1)
    path = tmp_path / "base.safetensors"
    plain = PixelCNN(base).export()
    plain.save(path)
    assert config_of(path) == base
    fine_cfg = replace(base, act_frac_bits=6, w_frac_bits=9, w_max=4 * base.w_max, mean_frac_bits=2,
                       n_scales=2 * base.n_scales - 1)
    fine = start_from(path, fine_cfg).export()
    planes = np.ascontiguousarray(photo_like(8, (20, 12)).transpose(2, 0, 1))
    m0, i0 = plain.tables_parallel(planes)
    m1, i1 = fine.tables_parallel(planes)
    for old, new in ((i0, i1), (m0, m1)):
        assert np.abs(2 * old.astype(int) - new).max() <= 1 and (2 * old.astype(int) == new).mean() > 0.5
    assert abs(fine.ideal_bits(planes) / plain.ideal_bits(planes) - 1) < 0.01
    for coarser in (dict(w_frac_bits=6), dict(act_frac_bits=3), dict(n_scales=base.n_scales + 5), dict(log_scale_max=5.0)):
        with pytest.raises(ValueError, match="refined"):
            start_from(path, replace(base, **coarser))


def test_a_run_may_widen_the_model_it_starts_from(tmp_path):
    """Wider trunk and heads (with colour and phase inputs switched on at the same time): the grown
    model computes exactly the same tables -- new units feed nothing yet -- and narrowing is refused."""
    from dataclasses import replace

    from gencodec.models.pixelcnn import PixelCNN
    from gencodec.train.pixelcnn import start_from

    torch.manual_seed(6)
    base = replace(TINY, trunk_layers=2, mean_frac_bits=1)
    path = tmp_path / "narrow.safetensors"
    narrow_model = PixelCNN(base)
    with torch.no_grad():  # outputs that vary with the inputs (a fresh tiny model's hardly do)
        for head in narrow_model.heads:
            head.out.weight.mul_(16)
    narrow = narrow_model.export()
    narrow.save(path)
    wide_cfg = replace(base, hidden=13, head_hidden=7, colour_preds=True, phase_inputs=True)
    wide_model = start_from(path, wide_cfg)
    assert wide_model.trunk[1].weight[base.hidden :].abs().sum() > 0  # new units can learn ...
    wide = wide_model.export()
    planes = np.ascontiguousarray(photo_like(9, (20, 12)).transpose(2, 0, 1))
    for a, b in zip(narrow.tables_parallel(planes), wide.tables_parallel(planes)):
        assert np.unique(a).size > 5 and np.array_equal(a, b)  # ... but feed nothing yet
    with pytest.raises(ValueError, match="increased"):
        start_from(tmp_path / "narrow.safetensors", replace(base, hidden=6))
