"""bytemodel: round trips at the edges and on real files, stored fallback that never grows a file,
segment boundaries, causality, exactness across processes, a pinned golden file, damaged payloads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import gencodec
from gencodec import container
from gencodec.errors import GencodecError

torch = pytest.importorskip("torch")

from gencodec.exact import driver  # noqa: E402
from exact_harness import assert_causal, frames_in_children  # noqa: E402
from gencodec.models import zoo  # noqa: E402
from gencodec.models.bytemodel import ByteModelConfig, ExactByteModel  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CANTERBURY = ROOT / "corpora" / "canterbury"
GOLDEN = Path(__file__).resolve().parent / "golden" / "bytemodel" / "grammar.lsp-v2.gcx"
GOLDEN_V1 = Path(__file__).resolve().parent / "golden" / "bytemodel" / "grammar.lsp.gcx"
SMALL = ExactByteModel(ByteModelConfig(table_bits=16, segment_min=64, segments=16))  # a small, fast configuration


def _bits(data: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(data, np.uint8)).reshape(-1, 8)


@pytest.mark.parametrize("n", [0, 1, 2, 255, 256, 257, 1000])
def test_round_trips_at_the_edges(n):
    data = (b"the quick brown fox jumps over the lazy dog; " * 30)[:n]
    blob = gencodec.compress(data, codec="bytemodel")
    assert gencodec.decompress(blob) == data


def test_random_bytes_are_stored_and_never_grow_beyond_the_frame():
    data = np.random.default_rng(1).integers(0, 256, 20000, np.uint8).tobytes()
    blob = gencodec.compress(data, codec="bytemodel")
    head = gencodec.info(blob)
    assert head["params"] == {"coding": "stored"} and not head["model_id"]  # no model needed to restore it
    assert len(blob) <= len(gencodec.compress(data, codec="stored")) + 32 and gencodec.decompress(blob) == data


@pytest.mark.parametrize("name", ["grammar.lsp", "xargs.1", "fields.c", "cp.html"])
def test_real_files_round_trip_and_beat_xz(name):
    data = (CANTERBURY / name).read_bytes()
    rep = gencodec.compress_report(data, codec="bytemodel")
    assert gencodec.decompress(rep.blob) == data
    assert rep.n_bytes_out < len(gencodec.compress(data, codec="xz"))
    assert 8 * rep.payload_bytes <= 1.005 * rep.stats["ideal_bits"] + 64  # the stream is its ideal code length


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.name for p in CANTERBURY.iterdir() if p.suffix != ".json"))
def test_every_canterbury_file_round_trips(name):
    data = (CANTERBURY / name).read_bytes()
    assert gencodec.decompress(gencodec.compress(data, codec="bytemodel")) == data


@pytest.mark.parametrize("n", [64 * 16 - 1, 64 * 16, 64 * 16 + 1, 64 * 17 + 63, 64])
def test_segment_boundaries(n):
    """Inputs one byte around whole segments (the last segment shorter, or one byte long)."""
    data = bytes((i * 37 + i // 7) % 251 for i in range(n))
    bits = _bits(data)
    SMALL.schedule(bits.shape).check()
    stream, _ = driver.encode(SMALL, bits)
    assert np.array_equal(driver.decode(SMALL, bits.shape, stream), bits)


def test_no_table_depends_on_a_later_bit():
    data = (CANTERBURY / "grammar.lsp").read_bytes()[:1500]
    assert_causal(SMALL, _bits(data), 5000)


CHILD = r"""
import sys, gencodec
data = open(sys.argv[1], "rb").read()
blob = gencodec.compress(data, codec="bytemodel")
open(sys.argv[2], "wb").write(blob)
assert gencodec.decompress(open(sys.argv[3], "rb").read() if len(sys.argv) > 3 else blob) == data
"""


def test_the_same_bytes_under_other_kernels_and_threads(tmp_path):
    """Baseline torch kernels, one thread, SSE3 BLAS vs AVX2 kernels and two threads: the same frame,
    and each process decodes the other's."""
    src = CANTERBURY / "fields.c"
    first, second = frames_in_children(CHILD, src, tmp_path)
    assert first == second


def test_golden_file():
    """Pinned bits of the shipped model (written by tests/golden/bytemodel_pin.py)."""
    blob = GOLDEN.read_bytes()
    data = (CANTERBURY / "grammar.lsp").read_bytes()
    assert gencodec.info(blob)["model_id"] == zoo.default_model("bytemodel").model_id.hex()
    assert gencodec.decompress(blob) == data
    assert gencodec.compress(data, codec="bytemodel", name="grammar.lsp") == blob


def test_version_1_frames_keep_decoding_through_the_archive():
    """A frame of version 1 (the mixer alone, shipped before the net) decodes with the archived
    model it names, and that model still writes the very same bits."""
    blob = GOLDEN_V1.read_bytes()
    data = (CANTERBURY / "grammar.lsp").read_bytes()
    model_id = bytes.fromhex(gencodec.info(blob)["model_id"])
    assert model_id != zoo.default_model("bytemodel").model_id
    assert gencodec.decompress(blob) == data
    archived = zoo.archived("bytemodel", model_id)
    assert zoo.load(archived).cfg.version == 1
    assert gencodec.compress(data, codec="bytemodel", name="grammar.lsp", model=archived) == blob


def test_a_damaged_payload_is_refused_in_one_line_and_writes_nothing(tmp_path):
    from click.testing import CliRunner

    from gencodec_cli.main import cli

    header, payload = container.unpack(GOLDEN.read_bytes())
    damaged = bytearray(payload)
    damaged[len(damaged) // 3] ^= 0x10
    with pytest.raises(GencodecError):
        gencodec.decompress(container.pack(header, bytes(damaged)))
    bad = tmp_path / "bad.gcx"
    bad.write_bytes(container.pack(header, bytes(damaged)))
    res = CliRunner().invoke(cli, ["decompress", str(bad), "-o", str(tmp_path / "out.lsp")])
    assert res.exit_code == 1 and len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    assert not (tmp_path / "out.lsp").exists()


def test_a_frame_of_another_model_version_is_refused():
    with pytest.raises(GencodecError, match="version 0"):
        zoo.model_class("bytemodel").from_state({"version": 0}, {})


def test_long_inputs_are_coded_in_independent_blocks(monkeypatch):
    """Beyond BLOCK bytes the input is cut into blocks, each its own stream (bounded memory)."""
    import dataclasses

    from gencodec import container
    from gencodec.codecs import bytemodel as codec_module

    monkeypatch.setattr(codec_module, "BLOCK", 3000)
    data = (b"blocks keep the decoder's memory bounded, whatever the input. " * 120)[:7000]
    blob = gencodec.compress(data, codec="bytemodel")
    header, payload = container.unpack(blob)
    assert header.params == {"block": 3000} and header.model_id
    assert gencodec.decompress(blob) == data
    assert len(payload) < len(data) // 2
    with pytest.raises(gencodec.CorruptFileError, match="truncated in block|after the last block"):
        gencodec.decompress(container.pack(header, payload[:-3]))
    with pytest.raises(gencodec.CorruptFileError, match="blocks of 999"):
        gencodec.decompress(container.pack(dataclasses.replace(header, params={"block": 999}), payload))
    short = gencodec.compress(data[:3000], codec="bytemodel")
    assert container.read_header(short).params == {}  # one block: one stream, no params, as before


def _record_data(n: int) -> bytes:
    """Fixed-width binary records (a counter, a constant, a slow ramp) after a few text lines."""
    rng = np.random.default_rng(4)
    head = b"id,name,value\n1,alpha,3.5\n2,beta,4.25\n3,gamma,5.125\n"
    recs = b"".join(bytes([i & 0xFF, 0x42, (i >> 3) & 0xFF, int(rng.integers(0, 4))]) + b"\0\0\x10\x20" for i in range(n))
    return head + recs


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("n", [1, 700, 64 * 16 + 1, 5000])
def test_the_compiled_loop_computes_what_the_numpy_reference_computes(version, n):
    """Every table of every group, for both versions, with and without a net, on text lines and
    binary records, including short last segments."""
    from gencodec.models.bytemix_fast import FastMixSession
    from gencodec.models.bytemodel import MixSession
    from gencodec.models.bytenet import ByteNet, ByteNetConfig

    torch.manual_seed(0)
    net = ByteNet(ByteNetConfig(context=5, hidden=16)).export() if version == 2 else None
    model = ExactByteModel(ByteModelConfig(version=version, table_bits=16, segment_min=64, segments=16), net)
    data = (_record_data(400) + (CANTERBURY / "grammar.lsp").read_bytes())[:n]
    bits = _bits(data)
    assert isinstance(model.session(bits.shape), FastMixSession)  # the model codes with the compiled loop
    fast = driver.tables_in_order(model, bits, "session")
    model.session = lambda shape: MixSession(model, shape[0])
    assert np.array_equal(driver.tables_in_order(model, bits, "session"), fast)
