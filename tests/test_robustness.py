"""Hostile input: semantic header edits (CRCs recomputed) and damage for every codec's frames,
decompression bombs, limits, faults while writing, concurrency. Every outcome is an exact restore
or a one-line GencodecError; nothing partial is ever left behind. The CI budget is small; the
long profile (scripts/fuzz.py) is what docs/RELIABILITY.md counts."""

from __future__ import annotations

import bz2
import dataclasses
import json
import lzma
import os
import random
import signal
import subprocess
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gencodec
from gencodec import container, limits
from gencodec.container import Header
from gencodec.errors import CorruptFileError, GencodecError, LimitError

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fuzz_frames as ff  # noqa: E402

CLASSICAL = ["stored", "gzip", "bz2", "xz", "zstd", "brotli", "png", "webp-lossless", "jpeg-xl-lossless",
             "jpeg2000-lossless", "jpeg", "webp", "avif", "jpeg-xl", "jpeg-recompress"]
NEURAL = ["bytemodel", "pixelcnn", "sparse-transformer", "hyperprior", "hyperprior-residual"]
EXAMPLES = int(os.environ.get("GENCODEC_FUZZ_EXAMPLES", "25"))  # per codec and test, in CI


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    available = [c for c in CLASSICAL + NEURAL if c.startswith("hyperprior") or gencodec.get_codec(c).available]
    hp = None
    if "hyperprior" in available:
        try:
            import torch

            from gencodec.models.hyperprior import Hyperprior, HyperpriorConfig

            torch.manual_seed(0)
            hp = str(tmp_path_factory.mktemp("fuzz") / "hp.safetensors")
            Hyperprior(HyperpriorConfig(N=8, M=8, lambdas=(0.01, 0.04))).export().save(hp)
        except ImportError:
            available = [c for c in available if not c.startswith("hyperprior")]
    return {s.codec: s for s in ff.make_samples(available, hp)}


def _codec_param(codecs):
    return pytest.mark.parametrize("codec", codecs)


FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@_codec_param(CLASSICAL + NEURAL)
@FUZZ
@given(data=st.data())
def test_semantic_header_edits(samples, codec, data):
    if codec not in samples:
        pytest.skip(f"{codec} not available here")
    s = samples[codec]
    header = container.read_header(s.blob)
    field = data.draw(st.sampled_from(ff.FIELDS), label="field")
    rnd = random.Random(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    value = ff.header_values(field, header, rnd)
    try:
        blob = ff.edit_header(s.blob, field, value)
    except (ValueError, struct_error()):  # a value the frame cannot even hold (e.g. a 300-byte mode)
        return
    ff.outcome(blob, s)


@_codec_param(CLASSICAL + NEURAL)
@FUZZ
@given(data=st.data())
def test_damage_anywhere(samples, codec, data):
    if codec not in samples:
        pytest.skip(f"{codec} not available here")
    s = samples[codec]
    how = data.draw(st.sampled_from(ff.DAMAGE), label="how")
    rnd = random.Random(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    blob = ff.damage(s.blob, how, rnd)
    if blob != s.blob:
        assert ff.outcome(blob, s) in ("refused", "restored")


def struct_error():
    import struct

    return struct.error


# -- the defects of issue 16, one by one --------------------------------------------------------
def test_image_frame_relabelled_as_bytes_codec(samples):
    s = samples["png"]
    for codec in ("stored", "xz", "bytemodel"):
        with pytest.raises(CorruptFileError, match="cannot be coded with"):
            gencodec.decompress(ff.edit_header(s.blob, "codec", codec))
    with pytest.raises(CorruptFileError, match="cannot be coded with"):
        gencodec.decompress(ff.edit_header(samples["xz"].blob, "codec", "png"))


def test_wrong_classical_codec_label_is_refused():
    img = ff.photo(20, 10)
    blob = gencodec.compress(img, codec="jpeg2000-lossless")
    for label in ("png", "webp-lossless", "jpeg-xl-lossless"):
        with pytest.raises(CorruptFileError):
            gencodec.decompress(ff.edit_header(blob, "codec", label))


@pytest.mark.parametrize("codec", ["jpeg", "webp", "avif", "jpeg-xl"])
@pytest.mark.parametrize("mode", ["1", "L", "LA", "RGBA", "P", "I;16"])
def test_lossy_mode_edits_never_decode(codec, mode):
    if not gencodec.get_codec(codec).available:
        pytest.skip(f"{codec} not available")
    blob = gencodec.compress(ff.photo(20, 10), codec=codec, quality=70)
    with pytest.raises(GencodecError):
        gencodec.decompress(ff.edit_header(blob, "mode", mode))
    with pytest.raises(GencodecError):
        gencodec.decompress(ff.edit_header(blob, "bit_depth", 16))
    with pytest.raises(GencodecError):
        gencodec.decompress(ff.edit_header(blob, "params", {"quality": 70, "x": 1}))


def test_legacy_lossy_frames_still_decode_but_refuse_mode_edits():
    img = ff.photo(20, 10)
    blob = gencodec.compress(img, codec="jpeg", quality=70)
    header, payload = container.unpack(blob)
    legacy = container.pack(dataclasses.replace(header, checksum=container.checksum(payload)), payload)
    assert gencodec.decompress(legacy).mode == "RGB"  # as frames before the header-covering digest
    relabelled = dataclasses.replace(header, checksum=container.checksum(payload), mode="L")
    with pytest.raises(CorruptFileError, match="payload holds a RGB image"):
        gencodec.decompress(container.pack(relabelled, payload))


def test_long_model_id_and_bad_limits_are_one_line(monkeypatch, samples):
    with pytest.raises(CorruptFileError, match="model id of 255 bytes"):
        gencodec.decompress(ff.edit_header(samples["pixelcnn"].blob, "model_id", b"\xff" * 255))
    for bad in ("abc", "-1", "0", "1.5"):
        monkeypatch.setenv("GENCODEC_MAX_PIXELS", bad)
        with pytest.raises(LimitError, match="GENCODEC_MAX_PIXELS must be a positive integer"):
            gencodec.decompress(samples["png"].blob)
    monkeypatch.setenv("GENCODEC_MAX_PIXELS", "2K")
    assert limits.max_pixels() == (2048, "raise it with --max-pixels or GENCODEC_MAX_PIXELS")
    monkeypatch.delenv("GENCODEC_MAX_PIXELS")
    monkeypatch.setenv("GENCODEC_MAX_BYTES", "x")
    with pytest.raises(LimitError, match="GENCODEC_MAX_BYTES"):
        gencodec.decompress(samples["xz"].blob)


def test_damaged_model_config_is_one_line(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from gencodec.models import zoo

    path = zoo.default_weights("pixelcnn")
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
    tensors = load_file(str(path))
    for bad_meta in ({k: v for k, v in meta.items() if k != "config"}, {**meta, "config": "{\"hidden\": \"x\"}"},
                     {**meta, "config": "[1, 2"}):
        p = tmp_path / "m.safetensors"
        save_file(tensors, str(p), metadata=bad_meta)
        with pytest.raises(GencodecError) as e:
            zoo.load(p, "pixelcnn")
        assert "\n" not in str(e.value)


def test_neural_pixel_limit_refuses_lying_headers_before_allocating(samples):
    s = samples["pixelcnn"]
    blob = ff.edit_header(ff.edit_header(s.blob, "width", 16384), "height", 16384)
    t = time.perf_counter()
    with pytest.raises(LimitError, match="that pixelcnn decodes by default.*--max-pixels"):
        gencodec.decompress(blob)
    assert time.perf_counter() - t < 5  # refused from the header alone


# -- bombs: bounded memory, run in a child under RLIMIT_AS ------------------------------------
BOMB_CHILD = r"""
import resource, sys, json, time
resource.setrlimit(resource.RLIMIT_AS, (BOUND, BOUND))
import gencodec
from gencodec import container
from gencodec.container import Header
blob = open(sys.argv[1], "rb").read()
header, payload = container.unpack(blob)
import dataclasses
out = {}
for label, length in (("lying", 10), ("true", header.length)):
    frame = container.pack(dataclasses.replace(header, length=length), payload)
    t = time.perf_counter()
    try:
        gencodec.decompress(frame, max_bytes=int(sys.argv[2]))
        out[label] = "restored"
    except gencodec.GencodecError as e:
        out[label] = type(e).__name__ + ": " + str(e)
    out[label + "_s"] = time.perf_counter() - t
print(json.dumps(out))
"""


def _bomb(codec: str, size: int) -> bytes:
    zeros = bytes(size)
    if codec == "gzip":
        import gzip

        payload = gzip.compress(zeros, compresslevel=1, mtime=0)
    elif codec == "xz":
        payload = lzma.compress(zeros, format=lzma.FORMAT_XZ, preset=0)
    elif codec == "bz2":
        payload = bz2.compress(zeros, 1)
    elif codec == "zstd":
        import zstandard

        payload = zstandard.ZstdCompressor(level=1).compress(zeros)
    else:
        import brotli

        payload = brotli.compress(zeros, quality=0)
    return container.pack(Header(codec=codec, kind="bytes", checksum=container.checksum(zeros), length=size), payload)


@pytest.mark.parametrize("codec", ["gzip", "xz", "bz2", "zstd", "brotli"])
def test_byte_bombs_are_bounded(codec, tmp_path):
    """A frame of 512 MiB of zeros, decoded in a child limited to 1.5 GiB of address space: with a
    lying length it is refused as expanding beyond it, at once; with its true length and a 64 MiB
    byte limit it is refused before decoding; nothing runs out of memory."""
    size = (64 if codec == "bz2" else 512) << 20
    frame = tmp_path / "bomb.gcx"
    frame.write_bytes(_bomb(codec, size))
    script = BOMB_CHILD.replace("BOUND", str(3 << 29))
    r = subprocess.run([sys.executable, "-c", script, str(frame), str(64 << 20)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["lying"].startswith("CorruptFileError") and "expands beyond the declared 10 bytes" in out["lying"]
    if size > 64 << 20:
        assert out["true"].startswith("LimitError") and "--max-bytes" in out["true"], out
    else:
        assert out["true"] == "restored", out
    assert out["lying_s"] < 10 and out["true_s"] < 30


# -- faults while writing ---------------------------------------------------------------------
KILL_CHILD = r"""
import os, sys, time
from gencodec import fileio
os.fsync = lambda fd: time.sleep(30)  # slow enough to be killed mid-write
fileio.write_atomic(sys.argv[1], b"x" * int(sys.argv[2]), force=False)
"""


def test_kill_9_mid_write_leaves_nothing_after_the_next_write(tmp_path):
    target = tmp_path / "out.gcx"
    cli_dir = str(Path(__file__).resolve().parents[1])
    p = subprocess.Popen([sys.executable, "-c", KILL_CHILD, str(target), str(4 << 20), cli_dir])
    deadline = time.time() + 60
    while time.time() < deadline and not any(n.endswith(".gcxtmp") for n in os.listdir(tmp_path)):
        time.sleep(0.05)
    assert any(n.endswith(".gcxtmp") for n in os.listdir(tmp_path))
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert not target.exists()  # never a partial output
    from gencodec_cli.io import write_atomic

    write_atomic(str(tmp_path / "other.gcx"), b"y", force=False)
    assert sorted(os.listdir(tmp_path)) == ["other.gcx"]  # the dead writer's temporary is gone


def test_live_writers_temporaries_are_kept(tmp_path):
    from gencodec_cli import io as cli_io

    from gencodec import fileio

    mine = tmp_path / f".a.gcx.{fileio._OWNER}.abc{cli_io.TMP_SUFFIX}"  # this process: alive
    mine.write_bytes(b"x")
    foreign = tmp_path / f".a.gcx.otherhost-1.abc{cli_io.TMP_SUFFIX}"
    foreign.write_bytes(b"x")
    assert cli_io.remove_stale_temporaries(str(tmp_path)) == []
    assert mine.exists() and foreign.exists()


@pytest.mark.parametrize("failure", ["read-only", "missing-dir", "disk-full"])
def test_failed_writes_keep_the_old_file_and_the_input(tmp_path, failure):
    from gencodec_cli.main import cli

    src = tmp_path / "a.txt"
    src.write_bytes(ff.TEXT)
    target = tmp_path / "d" / "a.gcx"
    target.parent.mkdir()
    target.write_bytes(b"old")
    args = ["compress", "--codec", "xz", "-f", "-o", str(target), str(src)]
    if failure == "read-only":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        target.parent.chmod(0o500)
    elif failure == "missing-dir":
        args[-2] = str(tmp_path / "nope" / "a.gcx")
    else:
        if not Path("/dev/full").exists():
            pytest.skip("no /dev/full")
        args = ["compress", "--codec", "xz", "-c", str(src)]
    try:
        if failure == "disk-full":
            with open("/dev/full", "wb") as full:
                r = subprocess.run([sys.executable, "-m", "gencodec", *args], stdout=full, stderr=subprocess.PIPE,
                                   text=True, timeout=120)
            assert r.returncode == 1 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
        else:
            r = CliRunner().invoke(cli, args)
            assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    finally:
        target.parent.chmod(0o700)
    assert target.read_bytes() == b"old" and src.read_bytes() == ff.TEXT
    assert not [n for n in os.listdir(target.parent) if n.endswith(".gcxtmp")]


def test_threads_and_processes_give_identical_bytes(tmp_path):
    img = ff.photo(40, 30)
    serial = [gencodec.compress(img, codec=c) for c in ("png", "jpeg-xl-lossless", "pixelcnn")]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda c: gencodec.compress(img, codec=c), ["png", "jpeg-xl-lossless", "pixelcnn"]))
    assert threaded == serial
    src = tmp_path / "p.png"
    img.save(src)
    procs = [subprocess.Popen([sys.executable, "-m", "gencodec", "compress", "--codec", "pixelcnn", "-c", str(src)],
                              stdout=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    in_process = gencodec.compress_report(src.read_bytes(), "pixelcnn", name="p.png", as_image=True).blob
    assert outs[0] == outs[1] == in_process


def test_zlib_bomb_in_image_payload_is_bounded():
    """A PNG frame whose IDAT expands hugely is refused by the pixel limit or Pillow's bomb check."""
    import struct

    w = h = 30000
    raw = zlib.compress(b"\x00" * (w + 1) * 8, 9)  # rows would be far longer than the data

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")
    header = Header(codec="png", kind="image", checksum=bytes(16), width=w, height=h, mode="L", bit_depth=8)
    with pytest.raises(GencodecError):
        gencodec.decompress(container.pack(header, png), max_pixels=1 << 20)
    with pytest.raises(GencodecError):
        gencodec.decompress(container.pack(header, png))
