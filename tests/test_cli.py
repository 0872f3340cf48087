"""The ``gencodec`` command line: round trips, output naming, exit codes and one-line errors.

Most tests run the click group in-process (CliRunner); a few run the installed ``gencodec``
script and ``python -m gencodec`` in a subprocess, as users do.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import gencodec
from gencodec import container
from gencodec.container import Header
from gencodec_cli import io as cli_io
from gencodec_cli import report
from gencodec_cli import main as cli_main
from gencodec_cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
KODAK = ROOT / "corpora" / "kodak"
CANTERBURY = ROOT / "corpora" / "canterbury"
SMALL_TEXTS = ["grammar.lsp", "xargs.1", "fields.c", "sum"]


def run(*args: str, input: bytes | None = None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)


def assert_one_line_error(result, *fragments: str) -> None:
    """Exit status 1, exactly one line on stderr, starting with ``gencodec: error:``, no traceback."""
    assert result.exit_code == 1, (result.exit_code, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gencodec: error: "), lines[0]
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def files_in(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


def pixels(path_or_image) -> tuple[str, tuple[int, int], bytes]:
    img = path_or_image if isinstance(path_or_image, Image.Image) else Image.open(path_or_image)
    return img.mode, img.size, img.tobytes()


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    p = tmp_path / "grammar.lsp"
    shutil.copy(CANTERBURY / "grammar.lsp", p)
    return p


@pytest.fixture
def frame(text_file: Path) -> Path:
    """A valid .gcx frame of grammar.lsp coded with xz, alone in its directory (the original is gone)."""
    assert run("compress", "--codec", "xz", "-q", text_file).exit_code == 0
    text_file.unlink()
    return text_file.with_name("grammar.lsp.gcx")


# ---------------------------------------------------------------------------------------------
# help, version, codecs


@pytest.mark.parametrize("command", [[], ["compress"], ["decompress"], ["info"], ["codecs"]])
def test_help_of_every_subcommand(command):
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: ")


def test_every_registered_subcommand_has_help():
    for name in cli.commands:
        result = run(name, "--help")
        assert result.exit_code == 0, name
        assert "Usage: " in result.stdout


def test_work_bar_draws_a_codecs_progress_and_restarts_for_new_work(capsys, monkeypatch):
    from gencodec_cli.common import WorkBar

    monkeypatch.setattr(WorkBar, "DELAY", 0)
    monkeypatch.setattr(WorkBar, "MININTERVAL", 0)
    bar = WorkBar()
    with gencodec.progress.reporting(bar):
        for done in (0, 500, 1000):
            gencodec.progress.report(done, 1000)
        assert bar._bar.n == 1000
        gencodec.progress.report(3, 10)  # another piece of work: a new bar
        assert (bar._bar.n, bar._bar.total) == (3, 10)
    bar.close()
    err = capsys.readouterr().err
    assert "100%" in err and "30%" in err


def test_version():
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"gencodec, version {gencodec.__version__}"


def test_no_command_is_usage_error():
    assert run("frobnicate").exit_code == 2


def test_codecs_lists_every_registered_codec():
    result = run("codecs")
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.stdout.splitlines()[1:] if not line.startswith(" ")]
    assert names == [c["name"] for c in gencodec.list_codecs()]
    assert "xz" in names and "png" in names
    text = result.stdout
    assert "params: quality 0-100 (default 75)" in text  # webp's default, visible without `info`
    assert "params: level 1-22 (default 19)" in text and "params: preset 0-9 (default 9)" in text
    assert "levels:" not in text
    verbose = run("codecs", "--verbose").stdout
    assert "-1 level=1, -2 level=3" in verbose and "-9 preset=9 extreme=true" in verbose


def test_levels_params_and_usage_errors(tmp_path):
    src = tmp_path / "t.txt"
    src.write_bytes(b"levels map onto each codec's own settings. " * 200)
    for args, codec in ((["-1", "--codec", "zstd"], "zstd"), (["--codec", "xz", "-p", "preset=6"], "xz"),
                        (["--codec", "zstd", "-p", "level=3"], "zstd"), (["-9"], None)):
        r = run("compress", "-f", *args, src)
        assert r.exit_code == 0, r.output
        blob = (tmp_path / "t.txt.gcx").read_bytes()
        assert gencodec.decompress(blob) == src.read_bytes()
        if codec:
            assert gencodec.info(blob)["codec"] == codec
    fast = gencodec.compress(src.read_bytes(), codec="xz", compression_level=1)
    assert len(fast) >= len(gencodec.compress(src.read_bytes(), codec="xz", compression_level=9))
    for args, message in ((["--codec", "png", "-3"], "has no speed/size levels"),
                          (["--codec", "jpeg", "--quality", "200"], "quality must be an integer from 1 to 100"),
                          (["--codec", "zstd", "-p", "level=30"], "level must be an integer from 1 to 22")):
        r = CliRunner().invoke(cli, ["compress", "-f", *args, str(src)])
        assert r.exit_code == 2 and message in r.output, r.output


def test_recursive_test_keep_decompress_flag_and_summary(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for p in ("d/a.txt", "d/sub/b.txt"):
        (tmp_path / p).write_bytes(b"recursion " * 50)
    r = CliRunner().invoke(cli, ["compress", str(tmp_path / "d")])
    assert r.exit_code == 1 and "is a directory (use -r to go into it)" in r.stderr
    r = CliRunner().invoke(cli, ["compress", "-r", "-k", "-v", "--codec", "xz", str(tmp_path / "d"),
                                 str(tmp_path / "missing")])
    assert r.exit_code == 1
    assert "2 of 3 files compressed, 1 failed" in r.stderr and "model id (none)" in r.stdout
    assert (tmp_path / "d/sub/b.txt.gcx").is_file() and (tmp_path / "d/a.txt").is_file()
    r = CliRunner().invoke(cli, ["decompress", "-r", "-t", str(tmp_path / "d")])
    assert r.exit_code == 0 and "d/sub/b.txt.gcx: OK (xz" in r.stdout and "2 of 2 files tested" in r.stderr
    (tmp_path / "d/a.txt").unlink()
    r = CliRunner().invoke(cli, ["compress", "-d", str(tmp_path / "d/a.txt.gcx")])
    assert r.exit_code == 0 and (tmp_path / "d/a.txt").read_bytes() == b"recursion " * 50
    bad = tmp_path / "d/bad.gcx"
    bad.write_bytes(b"not a frame")
    r = CliRunner().invoke(cli, ["compress", "-t", str(bad)])
    assert r.exit_code == 1 and "not a .gcx file" in r.stderr
    assert not (tmp_path / "d/bad").exists()


def test_codecs_json():
    rows = json.loads(run("codecs", "--json").stdout)
    by_name = {r["name"]: r for r in rows}
    assert by_name["stored"]["available"] is True and by_name["stored"]["kind"] == "bytes"
    assert set(by_name["png"]) >= {"name", "kind", "description", "available", "reason"}


# ---------------------------------------------------------------------------------------------
# round trips


def test_kodak_round_trip_with_output_names(tmp_path):
    src = KODAK / "kodim23.png"
    gcx, png = tmp_path / "k23.gcx", tmp_path / "k23.png"
    result = run("compress", src, "-o", gcx)
    assert result.exit_code == 0, result.output
    assert f"-> {gcx}: {src.stat().st_size:,} -> {gcx.stat().st_size:,} bytes" in result.stdout
    assert "bits/subpixel" in result.stdout
    assert gcx.stat().st_size < src.stat().st_size
    assert gencodec.info(gcx.read_bytes())["kind"] == "image"
    result = run("decompress", gcx, "-o", png)
    assert result.exit_code == 0, result.output
    assert pixels(png) == pixels(src)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_canterbury_files_round_trip_next_to_inputs(tmp_path):
    for name in SMALL_TEXTS:
        shutil.copy(CANTERBURY / name, tmp_path / name)
    result = run("compress", *(tmp_path / n for n in SMALL_TEXTS))
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == len(SMALL_TEXTS)
    assert "bits/byte" in result.stdout
    for name in SMALL_TEXTS:  # inputs kept, outputs beside them
        assert (tmp_path / name).read_bytes() == (CANTERBURY / name).read_bytes()
        (tmp_path / name).unlink()
    result = run("decompress", "-q", *(tmp_path / f"{n}.gcx" for n in SMALL_TEXTS))
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and result.stderr == ""
    for name in SMALL_TEXTS:
        assert (tmp_path / name).read_bytes() == (CANTERBURY / name).read_bytes()


@pytest.mark.slow
def test_whole_canterbury_round_trip(tmp_path):
    names = [p.name for p in sorted(CANTERBURY.iterdir()) if p.name != "manifest.json"]
    for name in names:
        shutil.copy(CANTERBURY / name, tmp_path / name)
    assert run("compress", "-q", *(tmp_path / n for n in names)).exit_code == 0
    for name in names:
        (tmp_path / name).unlink()
    assert run("decompress", "-q", *(tmp_path / f"{n}.gcx" for n in names)).exit_code == 0
    for name in names:
        assert (tmp_path / name).read_bytes() == (CANTERBURY / name).read_bytes()


def test_decompress_uses_name_stored_in_header(frame):
    renamed = frame.with_name("renamed.gcx")
    frame.rename(renamed)
    assert run("decompress", renamed).exit_code == 0
    assert (renamed.parent / "grammar.lsp").read_bytes() == (CANTERBURY / "grammar.lsp").read_bytes()


def test_image_restored_as_png_beside_frame(tmp_path):
    rgb = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    Image.fromarray(rgb, "RGB").save(tmp_path / "tiny.ppm")
    assert run("compress", "--codec", "png", tmp_path / "tiny.ppm").exit_code == 0
    (tmp_path / "tiny.ppm").unlink()
    assert run("decompress", tmp_path / "tiny.ppm.gcx").exit_code == 0
    assert files_in(tmp_path) == {"tiny.ppm.gcx", "tiny.png"}
    assert pixels(tmp_path / "tiny.png") == ("RGB", (7, 5), rgb.tobytes())


def test_unsafe_stored_name_is_ignored(tmp_path):
    (tmp_path / "sub").mkdir()
    blob = gencodec.compress(b"payload\n", "stored", name="../escaped.txt")
    (tmp_path / "sub" / "x.gcx").write_bytes(blob)
    assert run("decompress", tmp_path / "sub" / "x.gcx").exit_code == 0
    assert files_in(tmp_path) == {"sub"}
    assert (tmp_path / "sub" / "x").read_bytes() == b"payload\n"


def test_file_name_that_is_not_utf8(tmp_path):
    path = os.fsdecode(os.fsencode(tmp_path) + b"/caf\xff.txt")
    Path(path).write_bytes(b"bytes named oddly\n")
    assert run("compress", "-q", path).exit_code == 0
    assert gencodec.info(Path(path + ".gcx").read_bytes())["name"] == ""
    os.unlink(path)
    assert run("decompress", "-q", path + ".gcx").exit_code == 0
    assert Path(path).read_bytes() == b"bytes named oddly\n"


def test_empty_file_round_trips(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    assert run("compress", tmp_path / "empty").exit_code == 0
    (tmp_path / "empty").unlink()
    assert run("decompress", tmp_path / "empty.gcx").exit_code == 0
    assert (tmp_path / "empty").read_bytes() == b""


def test_stdout_round_trip(text_file):
    result = run("compress", "-c", "--codec", "zstd", text_file)
    assert result.exit_code == 0
    blob = result.stdout_bytes
    assert gencodec.decompress(blob) == text_file.read_bytes()
    assert "codec zstd" in result.stderr  # the report moves to stderr when stdout carries data
    assert files_in(text_file.parent) == {"grammar.lsp"}
    (text_file.parent / "g.gcx").write_bytes(blob)
    result = run("decompress", "-c", text_file.parent / "g.gcx")
    assert result.exit_code == 0
    assert result.stdout_bytes == text_file.read_bytes()


def test_stdin_round_trip():
    data = (CANTERBURY / "xargs.1").read_bytes()
    result = run("compress", "-", input=data)
    assert result.exit_code == 0, result.output
    blob = result.stdout_bytes
    assert gencodec.info(blob)["name"] == ""
    result = run("decompress", "-", input=blob)
    assert result.exit_code == 0
    assert result.stdout_bytes == data


def test_stdin_image_is_coded_as_pixels():
    src = KODAK / "kodim23.png"
    result = run("compress", "-q", "--codec", "png", "-", input=src.read_bytes())
    assert result.exit_code == 0
    header = container.read_header(result.stdout_bytes)
    assert (header.kind, header.width, header.height, header.mode) == ("image", 768, 512, "RGB")
    restored = run("decompress", "-", input=result.stdout_bytes).stdout_bytes
    assert pixels(Image.open(io.BytesIO(restored))) == pixels(src)


def test_stdin_to_named_output(tmp_path):
    result = run("compress", "-q", "-", "-o", tmp_path / "s.gcx", input=b"abc" * 100)
    assert result.exit_code == 0
    assert result.stdout_bytes == b""
    assert gencodec.decompress((tmp_path / "s.gcx").read_bytes()) == b"abc" * 100


def test_compress_json_report(text_file):
    result = run("compress", "--json", "--codec", "bz2", text_file)
    assert result.exit_code == 0
    d = json.loads(result.stdout)
    gcx = text_file.with_name("grammar.lsp.gcx")
    assert d["codec"] == "bz2" and d["kind"] == "bytes" and d["name"] == "grammar.lsp"
    assert d["n_bytes_in"] == text_file.stat().st_size
    assert d["n_bytes_out"] == gcx.stat().st_size
    assert d["bits_per_byte"] == pytest.approx(8 * d["n_bytes_out"] / d["n_bytes_in"])
    assert d["output"] == str(gcx)


def test_info_human_and_json(frame):
    result = run("info", frame)
    assert result.exit_code == 0
    assert "codec:    xz" in result.stdout and "name:     grammar.lsp" in result.stdout
    assert "length:   3,721 bytes" in result.stdout
    d = json.loads(run("info", "--json", frame).stdout)
    assert d["codec"] == "xz" and d["length"] == 3721 and d["n_bytes"] == frame.stat().st_size
    assert d["checksum"] == container.checksum((CANTERBURY / "grammar.lsp").read_bytes()).hex()


def test_lossy_quality_is_passed_through(tmp_path):
    src = KODAK / "kodim23.png"
    for q in (20, 90):
        assert run("compress", "-q", "--codec", "jpeg", "--quality", q, src, "-o", tmp_path / f"q{q}.gcx").exit_code == 0
    assert gencodec.info((tmp_path / "q20.gcx").read_bytes())["params"] == {"quality": 20}
    bpp = 8 * (tmp_path / "q20.gcx").stat().st_size / (768 * 512)  # a lossy codec's rate in its own unit too
    assert f"rate:     {bpp / 3:.3f} bits/subpixel, {bpp:.3f} bits/pixel" in run("info", tmp_path / "q20.gcx").stdout
    assert (tmp_path / "q20.gcx").stat().st_size < (tmp_path / "q90.gcx").stat().st_size
    assert run("decompress", tmp_path / "q90.gcx", "-o", tmp_path / "q90.png").exit_code == 0
    assert Image.open(tmp_path / "q90.png").size == (768, 512)
    for cmd in (["compress", "--codec", "jpeg", "--quality", "high", src], ["bench", "--lossy", "--quality", "jpeg=10,high", src]):
        bad = CliRunner().invoke(cli, [str(c) for c in cmd])
        assert bad.exit_code == 2 and "--quality: 'high' is not a number" in bad.output


def test_lossy_codecs_take_jpeg_and_webp_files_as_their_pixels(tmp_path):
    """A photo is most often a JPEG: a lossy codec codes its decoded pixels (restored as PNG, the
    frame's name with .png); a lossless codec still refuses it (`auto` recompresses JPEG files
    losslessly instead), and a damaged or CMYK JPEG gets one line and no output."""
    with Image.open(KODAK / "kodim23.png") as im:
        photo = im.convert("RGB").crop((200, 100, 360, 220))
    photo.save(tmp_path / "p.jpg", quality=92)
    photo.save(tmp_path / "p.webp", quality=90)
    for name, codec in (("p.jpg", "webp"), ("p.webp", "jpeg")):
        res = run("compress", "--codec", codec, "--quality", 80, tmp_path / name)
        assert res.exit_code == 0, res.output
        assert run("decompress", "-q", tmp_path / f"{name}.gcx", "-o", tmp_path / "out.png").exit_code == 0
        with Image.open(tmp_path / name) as src, Image.open(tmp_path / "out.png") as out:
            assert out.format == "PNG" and out.mode == "RGB" and out.size == src.size == (160, 120)
            err = np.asarray(out, dtype=np.float64) - np.asarray(src.convert("RGB"), dtype=np.float64)
            assert 10 * np.log10(255**2 / np.mean(err**2)) > 30  # the decoded input's pixels, coded lossily
        (tmp_path / "out.png").unlink()
    assert run("decompress", "-q", tmp_path / "p.jpg.gcx").exit_code == 0
    assert (tmp_path / "p.png").is_file()  # restored under the stored name with .png
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turn 90 degrees clockwise to view
    photo.save(tmp_path / "r.jpg", quality=92, exif=exif)
    assert run("compress", "-q", "--codec", "webp", tmp_path / "r.jpg", "-o", tmp_path / "r.gcx").exit_code == 0
    assert gencodec.decompress((tmp_path / "r.gcx").read_bytes()).size == (120, 160)  # upright, as viewers show it
    assert_one_line_error(run("compress", "--codec", "png", "-c", tmp_path / "p.jpg"),
                          "codec 'png' codes images; the input is not a lossless image file")
    Image.new("CMYK", (8, 8), (1, 2, 3, 4)).save(tmp_path / "c.jpg")
    assert_one_line_error(run("compress", "--codec", "webp", tmp_path / "c.jpg"), "image mode 'CMYK' is not supported")
    whole = (tmp_path / "p.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(whole[: len(whole) // 2])  # its header whole, its scan cut
    assert_one_line_error(run("compress", "--codec", "webp", tmp_path / "t.jpg"), "cannot code this image")
    (tmp_path / "n.txt").write_bytes(b"not a picture")
    assert_one_line_error(run("compress", "--codec", "jpeg", tmp_path / "n.txt"),
                          "the input is not an image file (PNG, PPM/PGM, BMP, TIFF, JPEG or WebP")
    assert not any(p.name.startswith(("c.", "t.", "n.")) and p.suffix == ".gcx" for p in tmp_path.iterdir())


def test_report_ideal_size_and_overhead():
    class FakeReport:
        n_bytes_out = 1010
        stats = {"ideal_bits": 8000.0}

        def to_dict(self):
            return dict(codec="x", n_bytes_in=4000, n_bytes_out=1010, bits_per_byte=2.02, seconds=0.5, ideal_bits=8000.0)

    d = report.compress_fields(FakeReport(), "a", "a.gcx")
    assert d["ideal_n_bytes"] == 1000
    assert d["overhead_percent"] == pytest.approx(1.0)
    assert "model ideal 1,000 bytes, overhead +1.00%" in report.compress_line(d)


# ---------------------------------------------------------------------------------------------
# bad input: exit 1, one line, no output


def _reframe(blob: bytes, version: int) -> bytes:
    """``blob`` with another format version and a header CRC that matches it."""
    (body_len,) = struct.unpack_from("<I", blob, 5)
    head = bytearray(blob[: 9 + body_len])
    head[4] = version
    return bytes(head) + struct.pack("<I", zlib.crc32(head)) + blob[9 + body_len + 4 :]


def _bad_frames(good: bytes) -> dict[str, tuple[bytes, str]]:
    header, payload = container.unpack(good)
    header_byte = 12  # inside the codec name
    payload_byte = len(good) - 10  # inside the last chunk
    flipped_header = bytearray(good)
    flipped_header[header_byte] ^= 0x01
    flipped_payload = bytearray(good)
    flipped_payload[payload_byte] ^= 0x40
    unknown = Header(codec="no-such-codec", kind="bytes", checksum=header.checksum, name="x", length=header.length)
    bad_sum = Header(codec="xz", kind="bytes", checksum=b"\0" * 16, name="x", length=header.length)
    return {
        "not-gcx": (b"hello, this is plain text\n", "not a .gcx file (bad magic bytes)"),
        "empty": (b"", "empty input"),
        "truncated": (good[: len(good) // 2], "truncated"),
        "header-flip": (bytes(flipped_header), "header checksum mismatch"),
        "payload-flip": (bytes(flipped_payload), "payload chunk 0 (bytes"),
        "unknown-codec": (container.pack(unknown, payload), "unknown codec 'no-such-codec'"),
        "future-version": (_reframe(good, 2), "unsupported .gcx format version 2"),
        "checksum": (container.pack(bad_sum, payload), "checksum mismatch"),
        "garbage-payload": (container.pack(header, b"\xfd7zXZ garbage"), "corrupt xz payload"),
    }


@pytest.mark.parametrize(
    "case",
    ["not-gcx", "empty", "truncated", "header-flip", "payload-flip", "unknown-codec", "future-version", "checksum", "garbage-payload"],
)
def test_bad_frame_exits_1_with_one_line_and_no_output(frame, case):
    blob, message = _bad_frames(frame.read_bytes())[case]
    bad = frame.with_name("bad.gcx")
    bad.write_bytes(blob)
    frame.unlink()
    result = run("decompress", bad)
    assert_one_line_error(result, "bad.gcx: ", message)
    assert files_in(bad.parent) == {"bad.gcx"}
    assert bad.read_bytes() == blob  # input untouched
    if case not in ("unknown-codec", "checksum", "garbage-payload"):
        assert_one_line_error(run("info", bad), message)


def test_payload_flip_names_the_chunk_and_offsets(frame):
    blob = bytearray(frame.read_bytes())
    blob[-10] ^= 1
    frame.write_bytes(bytes(blob))
    header_end = 9 + struct.unpack_from("<I", blob, 5)[0] + 4
    n = struct.unpack_from("<I", blob, header_end)[0]
    start = header_end + 4
    assert_one_line_error(run("decompress", "-c", frame), f"payload chunk 0 (bytes {start}-{start + n - 1}) fails its CRC")


def test_directory_and_missing_inputs(tmp_path):
    (tmp_path / "d.gcx").mkdir()
    assert_one_line_error(run("decompress", tmp_path / "d.gcx"), "d.gcx: is a directory")
    assert_one_line_error(run("compress", tmp_path / "d.gcx", "-f"), "is a directory")
    assert_one_line_error(run("compress", tmp_path / "nope.txt"), "nope.txt: no such file or directory")
    assert_one_line_error(run("decompress", tmp_path / "nope.gcx"), "nope.gcx: no such file or directory")
    assert files_in(tmp_path) == {"d.gcx"}


def test_missing_input_is_reported_before_existing_output(tmp_path):
    (tmp_path / "gone.txt.gcx").write_bytes(b"old")
    assert_one_line_error(run("compress", tmp_path / "gone.txt"), "gone.txt: no such file or directory")


def test_unreadable_input(text_file, monkeypatch):
    text_file.chmod(0)
    try:
        if os.access(text_file, os.R_OK):  # root reads anything: simulate the refusal instead
            def refuse(path, mode="r", *args, **kwargs):
                raise PermissionError(13, "Permission denied", str(path))

            monkeypatch.setattr(cli_io, "open", refuse, raising=False)
        result = run("compress", text_file)
    finally:
        text_file.chmod(0o644)
    assert_one_line_error(result, "grammar.lsp: permission denied")
    assert files_in(text_file.parent) == {"grammar.lsp"}


def test_existing_output_needs_force(frame):
    target = frame.with_name("grammar.lsp")
    target.write_bytes(b"precious")
    assert_one_line_error(run("decompress", frame), "grammar.lsp: already exists (use -f to overwrite)")
    assert target.read_bytes() == b"precious"
    assert run("decompress", "-f", frame).exit_code == 0
    assert target.read_bytes() == (CANTERBURY / "grammar.lsp").read_bytes()
    before = frame.read_bytes()
    assert_one_line_error(run("compress", target), "grammar.lsp.gcx: already exists")
    assert frame.read_bytes() == before
    assert run("compress", "-f", "-q", target).exit_code == 0
    assert files_in(frame.parent) == {"grammar.lsp", "grammar.lsp.gcx"}


def test_output_into_missing_directory(text_file):
    result = run("compress", text_file, "-o", text_file.parent / "no" / "such" / "out.gcx")
    assert_one_line_error(result, "out.gcx: cannot write (no such file or directory)")


def test_output_may_not_be_the_input(frame):
    assert_one_line_error(run("decompress", "-f", frame, "-o", frame), "would overwrite its own input")


def test_decompress_without_suffix_asks_for_output(frame):
    plain = frame.with_name("frame.bin")
    frame.rename(plain)
    assert_one_line_error(run("decompress", plain), "frame.bin: no .gcx suffix", "-o")
    assert run("decompress", plain, "-o", plain.with_name("out")).exit_code == 0
    assert plain.with_name("out").read_bytes() == (CANTERBURY / "grammar.lsp").read_bytes()


def test_compressing_a_gcx_file_needs_force(frame):
    assert_one_line_error(run("compress", frame), "already has the .gcx suffix")
    assert files_in(frame.parent) == {"grammar.lsp.gcx"}
    assert run("compress", "-f", "-q", frame).exit_code == 0
    assert gencodec.decompress(frame.with_name("grammar.lsp.gcx.gcx").read_bytes()) == frame.read_bytes()


def _huge_frame(width: int, height: int) -> bytes:
    header = Header(codec="png", kind="image", checksum=b"\0" * 16, name="huge.png",
                    width=width, height=height, mode="RGB", bit_depth=8)
    return container.pack(header, b"\0" * 64)


def test_huge_dimensions_refused_before_decoding(tmp_path):
    (tmp_path / "huge.gcx").write_bytes(_huge_frame(100_000, 100_000))
    result = run("decompress", tmp_path / "huge.gcx")
    assert_one_line_error(result, "100000x100000", f"exceeds the limit of {1 << 28:,} pixels", "--max-pixels")
    assert files_in(tmp_path) == {"huge.gcx"}


def test_max_pixels_is_configurable(tmp_path):
    src = KODAK / "kodim23.png"
    gcx = tmp_path / "k.gcx"
    assert run("compress", "-q", "--codec", "png", src, "-o", gcx).exit_code == 0
    result = run("decompress", "--max-pixels", 768 * 512 - 1, gcx)
    assert_one_line_error(result, f"exceeds the limit of {768 * 512 - 1:,} pixels")
    assert files_in(tmp_path) == {"k.gcx"}
    assert run("decompress", "-q", "--max-pixels", 768 * 512, gcx).exit_code == 0
    assert files_in(tmp_path) == {"k.gcx", "kodim23.png"}
    assert run("decompress", "--max-pixels", 0, gcx).exit_code == 2


@pytest.mark.parametrize("mode,value", [("CMYK", (1, 2, 3, 4)), ("F", 1.5), ("I", 70000)])
def test_image_mode_no_codec_supports(tmp_path, mode, value):
    Image.new(mode, (4, 3), value).save(tmp_path / "odd.tif")
    result = run("compress", "--codec", "png", tmp_path / "odd.tif")
    assert_one_line_error(result, f"image mode {mode!r} is not supported")
    assert files_in(tmp_path) == {"odd.tif"}


def test_auto_codes_unsupported_image_as_bytes(tmp_path):
    Image.new("CMYK", (4, 3), (1, 2, 3, 4)).save(tmp_path / "odd.tif")
    assert run("compress", "-q", tmp_path / "odd.tif").exit_code == 0
    assert gencodec.info((tmp_path / "odd.tif.gcx").read_bytes())["kind"] == "bytes"


def test_non_image_to_image_codec(text_file):
    assert_one_line_error(run("compress", "--codec", "png", text_file), "codec 'png' codes images")


def test_one_bad_file_does_not_stop_the_others(tmp_path):
    (tmp_path / "a").write_bytes(b"a" * 50)
    (tmp_path / "c").write_bytes(b"c" * 50)
    result = run("compress", "-q", tmp_path / "a", tmp_path / "b", tmp_path / "c")
    assert_one_line_error(result, "b: no such file")
    assert files_in(tmp_path) == {"a", "a.gcx", "c", "c.gcx"}


def test_unknown_codec_option_and_param_errors(text_file):
    assert_one_line_error(run("compress", "--codec", "nope", text_file), "unknown codec 'nope'")
    assert_one_line_error(run("compress", "--codec", "xz", "-p", "level=3", text_file), "takes preset, extreme, not level")
    assert_one_line_error(run("compress", "--codec", "stored", "-p", "level=3", text_file), "takes no parameters")
    assert_one_line_error(run("compress", "--codec", "xz", "--model", "m.safetensors", text_file), "takes no model option")
    assert files_in(text_file.parent) == {"grammar.lsp"}


def test_frame_coded_with_another_model_is_refused(tmp_path):
    header = Header(codec="stored", kind="bytes", checksum=container.checksum(b"x"), model_id=bytes(range(1, 17)),
                    name="x", length=1)
    (tmp_path / "m.gcx").write_bytes(container.pack(header, b"x"))
    assert_one_line_error(run("decompress", tmp_path / "m.gcx"), f"coded with model {bytes(range(1, 17)).hex()}, "
                          "not with (none)", "--model")
    assert files_in(tmp_path) == {"m.gcx"}
    short = Header(codec="stored", kind="bytes", checksum=container.checksum(b"x"), model_id=b"\x01\x02", name="x", length=1)
    (tmp_path / "m.gcx").write_bytes(container.pack(short, b"x"))
    assert_one_line_error(run("decompress", tmp_path / "m.gcx"), "model id of 2 bytes")


def test_decompress_with_model_for_a_classical_frame(frame):
    assert_one_line_error(run("decompress", "--model", "m.safetensors", frame), "codec 'xz' takes no model option")


@pytest.mark.parametrize(
    "args",
    [
        ["compress", "a", "b", "-c"],  # (several inputs with -o DIR are batch mode)
        ["compress", "a", "-o", "x", "-c"],
        ["compress", "--manifest", "m.json", "a"],
        ["compress", "-", "a"],
        ["decompress", "a.gcx", "b.gcx", "-c"],
        ["compress", "--quality", "50", "a"],
        ["compress", "--codec", "xz", "--quality", "50", "a"],
        ["compress", "--codec", "jpeg", "-p", "novalue", "a"],
        ["compress"],
    ],
)
def test_bad_usage_exits_2(tmp_path, args):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_compressed_data_is_not_written_to_a_terminal(text_file, monkeypatch):
    monkeypatch.setattr(cli_io, "stdout_is_terminal", lambda: True)
    result = run("compress", "-c", text_file)
    assert_one_line_error(result, "refusing to write compressed data to a terminal")
    assert result.stdout_bytes == b""


def test_progress_bar_only_for_several_files_on_a_terminal(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert report.progress_enabled(2, quiet=False)
    assert not report.progress_enabled(1, quiet=False)
    assert not report.progress_enabled(2, quiet=True)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert not report.progress_enabled(2, quiet=False)


def test_optional_command_that_fails_to_import_becomes_a_stub(monkeypatch):
    import click

    def broken_import(name, package=None):
        raise ImportError("No module named 'fancy_dependency'")

    monkeypatch.setattr(cli_main.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(cli_main.importlib, "import_module", broken_import)
    group = click.Group("g")
    cli_main.add_optional(group, "train")
    monkeypatch.undo()
    result = CliRunner().invoke(group, ["train", "--epochs", "3"])
    assert_one_line_error(result, "gencodec train is unavailable here: ImportError: No module named 'fancy_dependency'")


def test_absent_optional_command_is_not_registered():
    import click

    group = click.Group("g")
    cli_main.add_optional(group, "no_such_module_here")
    assert group.commands == {}


# ---------------------------------------------------------------------------------------------
# atomic output


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli_io.os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        cli_io.write_atomic(str(tmp_path / "out"), b"data", force=False)
    assert files_in(tmp_path) == set()


def test_atomic_write_never_clobbers_without_force(tmp_path):
    (tmp_path / "out").write_bytes(b"old")
    with pytest.raises(cli_io.FileError, match="already exists"):
        cli_io.write_atomic(str(tmp_path / "out"), b"new", force=False)
    assert files_in(tmp_path) == {"out"} and (tmp_path / "out").read_bytes() == b"old"
    cli_io.write_atomic(str(tmp_path / "out"), b"new", force=True)
    assert files_in(tmp_path) == {"out"} and (tmp_path / "out").read_bytes() == b"new"


def test_cli_write_failure_is_one_line(text_file, monkeypatch):
    monkeypatch.setattr(cli_io.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(5, "Input/output error")))
    assert_one_line_error(run("compress", text_file), "grammar.lsp.gcx: cannot write (input/output error)")
    assert files_in(text_file.parent) == {"grammar.lsp"}


def test_compressed_output_keeps_input_permissions(text_file):
    text_file.chmod(0o640)
    assert run("compress", "-q", text_file).exit_code == 0
    assert text_file.with_name("grammar.lsp.gcx").stat().st_mode & 0o777 == 0o640


def test_safe_stored_name():
    assert cli_io.safe_stored_name("a.txt") == "a.txt"
    for bad in ["", ".", "..", "../a", "/etc/passwd", "a/b", "a\\b", "c:x\\y", "a\0b"]:
        assert cli_io.safe_stored_name(bad) is None, bad


# ---------------------------------------------------------------------------------------------
# the installed script, in subprocesses


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1")


def test_entry_point_round_trip_and_error(tmp_path):
    exe = shutil.which("gencodec")
    if exe is None:
        pytest.skip("gencodec script not installed (pip install -e .)")
    shutil.copy(CANTERBURY / "xargs.1", tmp_path / "xargs.1")
    done = subprocess.run([exe, "compress", "-q", tmp_path / "xargs.1"], capture_output=True, env=_env())
    assert done.returncode == 0 and done.stdout == b"" and done.stderr == b""
    (tmp_path / "xargs.1").unlink()
    done = subprocess.run([exe, "decompress", tmp_path / "xargs.1.gcx"], capture_output=True, env=_env())
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "xargs.1").read_bytes() == (CANTERBURY / "xargs.1").read_bytes()
    (tmp_path / "junk.gcx").write_bytes(b"junk")
    done = subprocess.run([exe, "decompress", tmp_path / "junk.gcx"], capture_output=True, env=_env())
    assert done.returncode == 1
    assert done.stderr.decode().splitlines() == [f"gencodec: error: {tmp_path / 'junk.gcx'}: not a .gcx file (bad magic bytes)"]
    assert not (tmp_path / "junk").exists()


def test_python_dash_m_and_pipes(tmp_path):
    data = (CANTERBURY / "fields.c").read_bytes()
    comp = subprocess.run([sys.executable, "-m", "gencodec", "compress", "-"], input=data, capture_output=True, env=_env())
    assert comp.returncode == 0, comp.stderr
    decomp = subprocess.run([sys.executable, "-m", "gencodec", "decompress", "-"], input=comp.stdout, capture_output=True, env=_env())
    assert decomp.returncode == 0 and decomp.stdout == data
    done = subprocess.run([sys.executable, "-m", "gencodec", "compress", "--help"], capture_output=True, env=_env())
    assert done.returncode == 0 and done.stdout.startswith(b"Usage: gencodec compress")


_NO_TORCH = """
import sys
from click.testing import CliRunner
from gencodec_cli import main as cli_main
from gencodec_cli.main import cli
runner = CliRunner()
for args in (["--help"], ["compress", "--help"], ["codecs"], ["compress", "--codec", "xz", "-c", sys.argv[1]]):
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, (args, result.output)
    blob = result.stdout_bytes
open(sys.argv[2], "wb").write(blob)
assert runner.invoke(cli, ["info", sys.argv[2]]).exit_code == 0
assert runner.invoke(cli, ["decompress", "-c", sys.argv[2]]).exit_code == 0
heavy = sorted(m for m in ("torch", "compressai", "constriction") if m in sys.modules)
print(",".join(heavy) or "none")
"""


def test_help_info_codecs_and_byte_codecs_do_not_import_torch(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", _NO_TORCH, str(CANTERBURY / "grammar.lsp"), str(tmp_path / "g.gcx")],
        capture_output=True, env=_env(), text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "none"


def test_native_writes_the_payload_as_its_own_format(tmp_path):
    import lzma

    src = tmp_path / "t.txt"
    src.write_bytes(b"native formats for other tools. " * 50)
    assert run("compress", "--codec", "xz", src).exit_code == 0
    r = run("decompress", "--native", tmp_path / "t.txt.gcx")
    assert r.exit_code == 0, r.output
    assert lzma.decompress((tmp_path / "t.txt.xz").read_bytes()) == src.read_bytes()
    img = tmp_path / "p.png"
    Image.fromarray(np.arange(48 * 32 * 3, dtype=np.uint8).reshape(32, 48, 3)).save(img)
    assert run("compress", "--codec", "webp", "--quality", "70", img).exit_code == 0
    assert run("decompress", "--native", tmp_path / "p.png.gcx").exit_code == 0
    with Image.open(tmp_path / "p.png.webp") as w:
        assert w.format == "WEBP" and w.size == (48, 32)
    (tmp_path / "s.gcx").write_bytes(gencodec.compress(b"stored bytes", codec="stored"))
    assert_one_line_error(run("decompress", "--native", tmp_path / "s.gcx"), "has no format of its own")


def test_native_of_a_lossless_frame_is_its_bitstream(tmp_path):
    img = tmp_path / "p.png"
    Image.fromarray(np.arange(24 * 16 * 3, dtype=np.uint8).reshape(16, 24, 3)).save(img)
    assert run("compress", "--codec", "png", img).exit_code == 0
    assert run("decompress", "--native", "-f", tmp_path / "p.png.gcx").exit_code == 0
    with Image.open(tmp_path / "p.png.png") as w:
        assert w.format == "PNG" and np.array_equal(np.asarray(w), np.asarray(Image.open(img)))


def test_auto_says_in_one_line_when_an_input_is_too_large_for_the_neural_byte_codec(tmp_path, monkeypatch):
    import gencodec.api
    from gencodec_cli import coding

    monkeypatch.setattr(gencodec.api, "AUTO_NEURAL_BYTES", {"bytemodel": 2048})
    monkeypatch.setattr(coding, "AUTO_NEURAL_BYTES", {"bytemodel": 2048})
    src = tmp_path / "notes.txt"
    src.write_bytes(b"a line of notes, long enough to pass the limit of this test. " * 80)
    res = CliRunner().invoke(cli, ["compress", str(src)])
    assert res.exit_code == 0, res.output
    assert "bytemodel not tried" in res.stdout and "--codec bytemodel forces it" in res.stdout  # the report line
    assert gencodec.info((tmp_path / "notes.txt.gcx").read_bytes())["codec"] != "bytemodel"
    small = tmp_path / "small.txt"
    small.write_bytes(b"short notes " * 60)
    res = CliRunner().invoke(cli, ["compress", str(small)])
    assert res.exit_code == 0 and "not tried" not in res.output


def test_info_says_whether_the_package_keeps_the_frame_s_model(tmp_path, frame):
    """A frame of the shipped model, of an archived one, and of a model this package does not have:
    `info` says which (from file headers: no model is loaded), so a user knows before decoding
    whether the file needs --model."""
    from dataclasses import replace

    from gencodec.models import zoo

    golden = ROOT / "tests" / "golden" / "hyperprior" / "kodim23-96x64-q3.5.gcx"
    header, payload = container.unpack(golden.read_bytes())
    shipped = zoo.load(zoo.default_weights("hyperprior")).model_id
    frames = {"archived": golden, "shipped": tmp_path / "shipped.gcx", "unknown": tmp_path / "unknown.gcx"}
    frames["shipped"].write_bytes(container.pack(replace(header, model_id=shipped), payload))
    frames["unknown"].write_bytes(container.pack(replace(header, model_id=bytes(16)), payload))
    said = {"archived": "(an earlier shipped model, in the archive)", "shipped": "(the shipped model)",
            "unknown": "(not a model gencodec shipped: decode with --model PATH)"}
    for where, path in frames.items():
        d = json.loads(run("info", "--json", path).stdout)
        assert d["model"] == where
        assert f"model id: {d['model_id']} {said[where]}" in run("info", path).stdout
    assert "model" not in json.loads(run("info", "--json", frame).stdout)  # a frame of a model-free codec


def test_an_older_model_s_file_without_gencodec_archive_says_what_to_install(tmp_path, monkeypatch):
    """Where gencodec-archive is not installed, a file written by a model it keeps is neither decoded
    nor mistaken for a foreign model's: `info` and `decompress` say which package keeps its model
    and how to install it (one line, exit 1, nothing written); installed, the same file decodes."""
    from gencodec.models import zoo

    golden = ROOT / "tests" / "golden" / "hyperprior" / "kodim23-96x64-q3.5.gcx"  # d0f6e6f8, an old model
    model_id = bytes.fromhex(gencodec.info(golden.read_bytes())["model_id"])
    assert model_id in zoo.archive_package_ids("hyperprior") and zoo.archived("hyperprior", model_id) is not None
    monkeypatch.setattr(zoo, "archive_package_dir", lambda: None)  # as a plain `pip install gencodec` has it
    d = json.loads(run("info", "--json", golden).stdout)
    assert d["model"] == "archive-package"
    assert "(an earlier shipped model, kept in gencodec-archive, which is not installed: pip install ./archive in a " \
        "clone of gencodec)" in run("info", golden).stdout
    out = tmp_path / "out.png"
    res = CliRunner().invoke(cli, ["decompress", "-o", str(out), str(golden)])
    assert_one_line_error(res, f"hyperprior model {model_id.hex()}", "gencodec-archive, which is not installed",
                          "pip install ./archive")
    assert not out.exists()
    monkeypatch.undo()
    assert run("decompress", "-o", out, golden).exit_code == 0 and out.is_file()
