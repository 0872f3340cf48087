"""The fixed-pattern Sparse Transformer over bytes (gencodec.models.byte_transformer) as the byte
model's net: its lockstep decoder computes what its parallel pass computes, the pattern is causal and
reaches exactly where it says, the exported integers are what training computes (up to the softmax
table), and a byte model with it codes, round trips, matches its numpy reference and gives the same
bits in processes with other kernels and thread counts; the recipe trains, exports and codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import gencodec
from gencodec.errors import ExactnessError, GencodecError

torch = pytest.importorskip("torch")

from gencodec.exact import driver  # noqa: E402
from conftest import TEXT  # noqa: E402
from exact_harness import assert_causal, frames_in_children  # noqa: E402
from gencodec.models import zoo  # noqa: E402
from gencodec.models.byte_transformer import (  # noqa: E402
    ByteTransformer, ByteTransformerConfig, ExactByteTransformer, windows)
from gencodec.models.bytemodel import ByteModelConfig, ExactByteModel  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = ByteTransformerConfig(hidden=32, blocks=2, head_dim=8, mlp_hidden=48, block_len=8, summary=2, summary_blocks=3)


def random_net(cfg: ByteTransformerConfig = TINY, seed: int = 0) -> ByteTransformer:
    """Random weights larger than the init, so that the grids, clamps and the attention are exercised."""
    torch.manual_seed(seed)
    net = ByteTransformer(cfg)
    with torch.no_grad():
        for _, layer in net.layers():
            layer.weight.normal_(0, 0.3)
            layer.bias.normal_(0, 0.2)
    return net


def tiny_net(cfg: ByteTransformerConfig = TINY, seed: int = 0) -> ExactByteTransformer:
    return random_net(cfg, seed).export()


def _bits(data: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(data, np.uint8)).reshape(-1, 8)


def test_windows_follow_the_fixed_pattern():
    cfg = ByteTransformerConfig(block_len=4, summary=1, summary_blocks=2)
    src_a, in_a, src_b, in_b = windows(cfg, np.array([0, 5, 13]))
    assert [s[i].tolist() for s, i in zip(src_a, in_a)] == [[0], [5, 4], [13, 12]]
    # the summary head: the token, then the last position of each of the two blocks before its own
    assert [s[i].tolist() for s, i in zip(src_b, in_b)] == [[0], [5, 3], [13, 11, 7]]


def test_lockstep_decoding_computes_what_the_parallel_pass_computes():
    net = tiny_net()
    data = np.frombuffer(TEXT * 3, np.uint8)
    segs = [data[:150], data[150:300], data[300:337]]  # the last one ends early, as a byte model's last segment
    step = net.stepper(len(segs))
    got = [[] for _ in segs]
    for t in range(150):
        live = [s for s in segs if len(s) > t]
        tokens = np.array([256 if t == 0 else s[t - 1] for s in live])
        for i, row in enumerate(step.logits(tokens)):
            got[i].append(row)
    for seg, rows in zip(segs, got):
        assert np.array_equal(np.array(rows), net.logits_parallel(seg))


def test_the_pattern_is_causal_and_reaches_what_it_says():
    """One block: the logits of byte t change with the bytes whose tokens its two heads see (its own
    block and the summaries of the blocks before), with no other byte, and never with a later one."""
    cfg = ByteTransformerConfig(hidden=32, blocks=1, head_dim=8, mlp_hidden=48, block_len=8, summary=2,
                                summary_blocks=3)
    net = tiny_net(cfg, seed=3)
    data = np.frombuffer((TEXT * 2)[:64], np.uint8).copy()
    base = net.logits_parallel(data)
    t = 45  # block 5, position 5; tokens 40..45 and the summaries 38, 39, 30, 31, 22, 23
    local, summaries = {40, 41, 42, 43, 44, 45}, {38, 39, 30, 31, 22, 23}
    moved = set()
    for pos in range(63):
        other = data.copy()
        other[pos] ^= 0x55  # byte pos is token pos + 1's value
        changed = net.logits_parallel(other)
        assert np.array_equal(changed[: pos + 1], base[: pos + 1])  # nothing depends on a later byte
        if not np.array_equal(changed[t], base[t]):
            moved.add(pos + 1)
    assert moved <= local | summaries  # nothing outside the two windows reaches it
    assert moved & local and moved & {30, 31, 22, 23}  # both heads do, the summary head beyond the last block


def test_the_exported_integers_compute_what_training_computes():
    """Up to the softmax table (training's exp, the exact path's table of round(2**12 exp(-d/8))):
    the same logits nearly everywhere (where an attention output rounds the other way, a power-of-two
    norm after it may take the other power: then a position differs by more)."""
    net = random_net()
    data = np.frombuffer(TEXT * 2, np.uint8)
    tokens = torch.from_numpy(np.concatenate([[256], data[:-1]]).astype(np.int64))[None]
    trained = net(tokens)[0].detach().numpy() * 16
    exact = net.export().logits_parallel(data)
    assert np.mean(trained != exact) < 0.05 and np.mean(np.abs(trained - exact)) < 0.5
    back = ByteTransformer(TINY)
    back.load_exact(net.export())
    assert np.array_equal(back.export().logits_parallel(data), exact)  # the integers read back unchanged


def test_configs_out_of_the_exact_bounds_are_refused():
    with pytest.raises(ValueError, match="windows"):
        ByteTransformerConfig(block_len=33)
    with pytest.raises(ValueError, match="windows"):
        ByteTransformerConfig(summary=2, summary_blocks=16)  # 1 + 32 positions
    with pytest.raises(ValueError, match="power of two"):
        ByteTransformerConfig(head_dim=24)
    with pytest.raises(ValueError, match="rings"):
        ByteTransformerConfig(blocks=9, head_dim=32)  # a decoder's key/value rings beyond the bound
    with pytest.raises(ExactnessError, match="integers"):
        ExactByteTransformer(TINY, {k: v.float() for k, v in tiny_net().tensors.items()})


def test_a_byte_model_with_it_round_trips_at_segment_boundaries_and_is_causal():
    model = ExactByteModel(ByteModelConfig(table_bits=16, segment_min=64, segments=16), tiny_net())
    for n in (1, 64 * 16 - 1, 64 * 16 + 1, 2500):
        bits = _bits((TEXT * 30)[:n])
        stream, _ = driver.encode(model, bits)
        assert np.array_equal(driver.decode(model, bits.shape, stream), bits)
    assert_causal(model, _bits((TEXT * 30)[:1500]), 4000)


@pytest.mark.parametrize("n", [700, 64 * 16 + 1])
def test_the_compiled_loop_computes_what_the_numpy_reference_computes(n):
    from gencodec.models.bytemix_fast import FastMixSession
    from gencodec.models.bytemodel import MixSession

    model = ExactByteModel(ByteModelConfig(table_bits=16, segment_min=64, segments=16), tiny_net())
    bits = _bits((TEXT * 20)[:n])
    assert isinstance(model.session(bits.shape), FastMixSession)
    fast = driver.tables_in_order(model, bits, "session")
    model.session = lambda shape: MixSession(model, shape[0])
    assert np.array_equal(driver.tables_in_order(model, bits, "session"), fast)


def test_model_files_with_it_round_trip_and_damaged_ones_are_refused(tmp_path):
    model = ExactByteModel(net=tiny_net())
    path = tmp_path / "m.safetensors"
    model.save(path)
    back = zoo.load(path, "bytemodel")
    assert back.model_id == model.model_id and back.net.cfg == TINY
    assert ExactByteModel(net=tiny_net(seed=1)).model_id != model.model_id
    for change in ({"hidden": 40}, {"block_len": 16}, {"block_len": 40}, {"blocks": 3}):  # tensors or bounds
        with pytest.raises(GencodecError, match="not fit"):
            ExactByteModel.from_state({**model.config_dict(), "net": {**TINY.to_dict(), **change}}, model.state())
    data = TEXT * 8
    blob = gencodec.compress(data, codec="bytemodel", model=path)
    assert gencodec.decompress(blob, model=path) == data
    with pytest.raises(GencodecError):  # a frame of this model, decoded with the shipped one
        gencodec.decompress(blob)


CHILD = """
import sys, numpy as np, torch
import gencodec
from gencodec.models.byte_transformer import ByteTransformer, ByteTransformerConfig
from gencodec.models.bytemodel import ExactByteModel
cfg = ByteTransformerConfig(hidden=32, blocks=2, head_dim=8, mlp_hidden=48, block_len=8, summary=2, summary_blocks=3)
torch.manual_seed(0)
net = ByteTransformer(cfg)
with torch.no_grad():
    for _, layer in net.layers():
        layer.weight.normal_(0, 0.3)
        layer.bias.normal_(0, 0.2)
ExactByteModel(net=net.export()).save(sys.argv[2] + ".model.safetensors")
data = open(sys.argv[1], "rb").read()
blob = gencodec.compress(data, codec="bytemodel", model=sys.argv[2] + ".model.safetensors")
open(sys.argv[2], "wb").write(blob)
other = open(sys.argv[3], "rb").read() if len(sys.argv) > 3 else blob
assert gencodec.decompress(other, model=sys.argv[2] + ".model.safetensors") == data
"""


def test_the_same_bytes_under_other_kernels_and_threads(tmp_path):
    src = ROOT / "corpora" / "canterbury" / "grammar.lsp"
    first, second = frames_in_children(CHILD, src, tmp_path)
    assert first == second


def test_training_segments_start_anywhere_and_stop_at_their_file(texts):
    """(The recipe itself, for both nets: tests/test_bytenet.py.)"""
    from gencodec.train.textdata import load_texts

    f = load_texts(texts, val_glob="val.txt")
    tokens, nxt, mask = f.train.sequences(np.array([0, int(f.train.starts[1]) - 10]), 64)
    assert tokens[0, 0] == 256 and np.array_equal(tokens[:, 1:], nxt[:, :-1])
    assert mask[0].all() and mask[1].sum() == 10  # a segment never learns across the end of its file
    a, b = f.train.sequence_batch(3, 4, 64, seed=0), f.train.sequence_batch(3, 4, 64, seed=0)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))  # seeded: a resumed run sees the same data


def test_train_command_takes_the_arch(texts, tmp_path):
    from click.testing import CliRunner

    from gencodec_cli.main import cli

    out = tmp_path / "cli.safetensors"
    res = CliRunner().invoke(cli, ["train", "bytemodel", "--data", str(texts), "--out", str(out), "--steps", "2",
                                   "--batch", "128", "--seq-len", "64", "--val-glob", "val.txt", "-q",
                                   "--config", json.dumps(TINY.to_dict())])
    assert res.exit_code == 0, res.output
    assert zoo.load(out, "bytemodel").net.cfg == TINY
    res = CliRunner().invoke(cli, ["train", "bytemodel", "--data", str(texts), "--out", str(tmp_path / "x.safetensors"),
                                   "--config", '{"arch": "byte-transformer", "block_len": 64}'])
    assert res.exit_code == 2 and "--config" in res.output and "Traceback" not in res.output
