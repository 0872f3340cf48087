"""The byte model's pretrained net: its exact integers are what training computes, its bit
probabilities are those of its softmax, it is causal and exact inside the byte model, and
``gencodec train bytemodel`` trains, resumes, exports and codes with it."""

from __future__ import annotations

import json

import numpy as np
import pytest

import gencodec
from gencodec.errors import GencodecError

torch = pytest.importorskip("torch")

from gencodec.exact import driver  # noqa: E402
from conftest import TEXT  # noqa: E402
from exact_harness import assert_causal  # noqa: E402
from gencodec.models import zoo  # noqa: E402
from gencodec.models.bytemodel import ByteModelConfig, ExactByteModel  # noqa: E402
from gencodec.models.bytenet import ByteNet, ByteNetConfig, ExactByteNet, exp_table, windows  # noqa: E402
from gencodec.train.bytemodel import ByteModelRecipe, train_bytemodel  # noqa: E402
from gencodec.train.textdata import load_texts  # noqa: E402

TINY = ByteNetConfig(context=6, hidden=16)


def tiny_net(seed: int = 0) -> ExactByteNet:
    torch.manual_seed(seed)
    net = ByteNet(TINY)
    with torch.no_grad():  # larger weights than the init, so the grids and clamps are exercised
        for p in net.parameters():
            p.mul_(3)
    return net.export()


def _bits(data: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(data, np.uint8)).reshape(-1, 8)


def test_windows_hold_the_previous_bytes_newest_first_and_zero_before_the_start():
    data = np.frombuffer(b"abcdefgh", np.uint8)
    w = windows(data, np.array([0, 3, 7]), np.array([0, 2, 0]), 3)
    assert w.tolist() == [[0, 0, 0], [ord("c"), 0, 0], [ord("g"), ord("f"), ord("e")]]


def test_the_exported_integers_compute_what_training_computes():
    torch.manual_seed(1)
    net = ByteNet(TINY)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(3)
    win = torch.randint(0, 256, (2000, TINY.context))
    with torch.no_grad():
        real = net(win)
    exact = net.export()
    assert np.array_equal(exact.logits(win.numpy()), torch.round(real * 16).long().numpy())
    again = ByteNet(TINY)
    again.load_exact(exact)  # and back: an exported net resumes training on the same grids
    assert np.array_equal(again.export().logits(win.numpy()), exact.logits(win.numpy()))


def test_bit_probabilities_are_the_softmax_subtree_ratios():
    exact = tiny_net()
    win = np.random.default_rng(2).integers(0, 256, (50, TINY.context))
    w = exact.weights(win).astype(np.float64)
    cum = exact.cumulative(win)
    byte = np.random.default_rng(3).integers(0, 256, 50)
    for bit in range(8):
        c0 = (byte | 256) >> (8 - bit)
        p = exact.bit_probs(cum, c0, bit)
        lo = (c0 - (1 << bit)) << (8 - bit)
        span = 256 >> bit
        want = np.array([w[i, lo[i] + span // 2 : lo[i] + span].sum() / w[i, lo[i] : lo[i] + span].sum() for i in range(50)])
        assert np.all(np.abs(p / 4096 - want) <= 1 / 4096 + 1e-12) and p.min() >= 1 and p.max() <= 4095


def test_the_softmax_table_is_exp_in_sixteenths_and_never_zero():
    t = exp_table()
    assert t[0] == 65536 and t[16] == round(65536 / np.e) and t.min() == 1 and np.all(np.diff(t) <= 0)


def test_a_model_with_a_net_is_causal_and_decodes_its_own_stream_at_segment_boundaries():
    model = ExactByteModel(ByteModelConfig(table_bits=16, segment_min=64, segments=16), tiny_net())
    for n in (1, 64 * 16 - 1, 64 * 16 + 1, 2500):
        data = (TEXT * 30)[:n]
        bits = _bits(data)
        stream, _ = driver.encode(model, bits)
        assert np.array_equal(driver.decode(model, bits.shape, stream), bits)
    assert_causal(model, _bits((TEXT * 30)[:1500]), 4000)


def test_model_files_with_a_net_round_trip_and_damaged_ones_are_refused(tmp_path):
    model = ExactByteModel(net=tiny_net())
    path = tmp_path / "m.safetensors"
    model.save(path)
    back = zoo.load(path, "bytemodel")
    assert back.model_id == model.model_id and back.net.cfg == TINY
    assert ExactByteModel(net=tiny_net(1)).model_id != model.model_id  # the tensors are part of the id
    with pytest.raises(GencodecError, match="do not fit"):
        ExactByteModel.from_state({**model.config_dict(), "net": {**TINY.to_dict(), "hidden": 17}}, model.state())
    with pytest.raises(GencodecError, match="no net"):
        ExactByteModel(ByteModelConfig(version=1), tiny_net())
    with pytest.raises(GencodecError, match="tensors but no net"):
        ExactByteModel.from_state(ByteModelConfig().__dict__, model.state())


def test_the_shipped_model_has_a_net_and_a_card():
    model = zoo.default_model("bytemodel")
    card = json.loads(zoo.default_weights("bytemodel").with_suffix(".json").read_text())
    assert model.net is not None and card["model_id"] == model.model_id.hex()
    assert card["data"]["train"] and all(len(row["sha256"]) == 64 for row in card["data"]["train"])
    assert zoo.default_weights("bytemodel").stat().st_size <= 10 << 20


def test_text_folders_split_by_file_and_batches_are_seeded(texts):
    f = load_texts(texts, val_glob="val.txt")
    assert f.val.names == ["val.txt"] and sorted(f.train.names) == [f"books/b{i}.txt" for i in range(4)]
    w1, y1 = f.train.batch(5, 64, 8, seed=0)
    w2, y2 = f.train.batch(5, 64, 8, seed=0)
    assert np.array_equal(w1, w2) and np.array_equal(y1, y2) and not np.array_equal(w1, f.train.batch(6, 64, 8, 0)[0])
    first = f.train.pairs(f.train.starts[1:2], 8)[0]  # the first byte of a file sees none of the previous file
    assert not first.any()


@pytest.mark.parametrize("net", ["bytenet", "byte-transformer"])
def test_recipe_trains_resumes_exports_and_the_model_codes(texts, tmp_path, net):
    """For either net (the byte transformer on segments of 64 bytes)."""
    from gencodec.models.byte_transformer import ByteTransformerConfig

    config = TINY if net == "bytenet" else ByteTransformerConfig(hidden=32, head_dim=8, mlp_hidden=48, block_len=8,
                                                                 summary=2, summary_blocks=3)
    recipe = ByteModelRecipe(batch=256, seq_len=64, val_glob="val.txt", val_positions=2000, val_every=10,
                             coded_val_bytes=4000)
    out = tmp_path / "bm.safetensors"
    train_bytemodel(texts, out, steps=20, config=config, recipe=recipe, progress=False, stop_after=10, export=False)
    card = train_bytemodel(texts, out, steps=20, config=config, recipe=recipe, progress=False, resume=True)
    straight = train_bytemodel(texts, tmp_path / "b2.safetensors", steps=20, config=config, recipe=recipe,
                               progress=False)
    assert card["model_id"] == straight["model_id"]  # resuming gives the same weights
    assert card["net"] == config.to_dict() and zoo.load(out, "bytemodel").net.cfg == config
    assert card["validation"]["coded"]["files"][0]["name"] == "val.txt"
    assert abs(card["validation"]["exact_net_bpb"] - card["validation"]["net_bpb"]) < 0.05
    data = TEXT * 10
    blob = gencodec.compress(data, codec="bytemodel", model=out)
    assert gencodec.info(blob)["model_id"] == card["model_id"]
    assert gencodec.decompress(blob, model=out) == data


def test_train_command(texts, tmp_path):
    from click.testing import CliRunner

    from gencodec_cli.main import cli

    out = tmp_path / "cli.safetensors"
    res = CliRunner().invoke(cli, ["train", "bytemodel", "--data", str(texts), "--out", str(out), "--steps", "3",
                                   "--batch", "64", "--val-glob", "val.txt", "-q",
                                   "--config", json.dumps(TINY.to_dict())])
    assert res.exit_code == 0, res.output
    assert out.is_file() and "model " in res.output
    res = CliRunner().invoke(cli, ["train", "bytemodel", "--data", str(texts), "--out", str(tmp_path / "x.safetensors"),
                                   "--config", '{"hidden": 4}'])
    assert res.exit_code == 2 and "--config" in res.output and "Traceback" not in res.output
