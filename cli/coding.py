"""``gencodec compress`` and ``gencodec decompress``: gzip/zstd habits over the one-shot API."""

from __future__ import annotations

import json
import os
import time

import click

import gencodec
from gencodec import container, imageio
from gencodec.errors import GencodecError
from gencodec.registry import DEFAULT_LEARNED_LOSSY, get_entry

from . import io
from .common import Failure, Message, for_each_file, key_value, number
from .io import FileError, display
from .report import compress_fields, compress_line, decompress_line


def _check_sources(files: tuple[str, ...], output: str | None, to_stdout: bool) -> None:
    if output is not None and to_stdout:
        raise click.UsageError("-o/--output and -c/--stdout exclude each other")
    if len(files) > 1 and (output is not None or to_stdout):
        raise click.UsageError("-o/--output and -c/--stdout take a single input file")
    if io.STDIO in files and len(files) > 1:
        raise click.UsageError("'-' (stdin) must be the only input")


_common_options = [
    click.option("-o", "--output", metavar="PATH", help="Write here instead of the default name (one input only)."),
    click.option("-c", "--stdout", "to_stdout", is_flag=True, help="Write to stdout; keep the input."),
    click.option("-f", "--force", is_flag=True, help="Overwrite existing outputs."),
    click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors; no progress bar."),
    click.option("--json", "as_json", is_flag=True, help="Print one JSON object per file (JSON Lines)."),
]


def _with_common(f):
    for option in reversed(_common_options):
        f = option(f)
    return f


# ---------------------------------------------------------------------------------------------
# compress


@click.command()
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@_with_common
@click.option("--codec", default="auto", show_default=True, metavar="NAME", help="Codec name (see `gencodec codecs`).")
@click.option("--model", metavar="PATH", help="Model file for a neural codec (needs --codec).")
@click.option("--quality", type=number, metavar="Q", help="Quality for a lossy image codec.")
@click.option("--lossy", is_flag=True, help="Code images with the learned lossy codec (hyperprior) unless --codec names another.")
@click.option("--psnr", type=click.FloatRange(min=0, min_open=True), metavar="DB",
              help="Rate control: the smallest file with at least this PSNR (hyperprior).")
@click.option("--bpp", type=click.FloatRange(min=0, min_open=True), metavar="B",
              help="Rate control: the best PSNR within this many bits per pixel, frame included (hyperprior).")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="Extra codec parameter (repeatable; VALUE parsed as JSON if it can be).")
def compress(files, output, to_stdout, force, quiet, as_json, codec, model, quality, lossy, psnr, bpp, params):
    """Compress each FILE into FILE.gcx (keeping FILE); '-' reads stdin and writes stdout.

    PNG, PPM/PGM, BMP and TIFF images are coded as pixels (restored as PNG with identical
    pixels and mode); every other file is coded as bytes and restored byte for byte.
    A file that already ends in .gcx is refused unless -f is given.
    """
    _check_sources(files, output, to_stdout)
    codec_params = dict(key_value(p) for p in params)
    targets = [n for n, v in (("--quality", quality), ("--psnr", psnr), ("--bpp", bpp)) if v is not None]
    if len(targets) > 1:
        raise click.UsageError(f"{' and '.join(targets)} exclude each other")
    for key, value in (("quality", quality), ("psnr", psnr), ("bpp", bpp)):
        if value is not None:
            codec_params[key] = value
    if lossy or ((psnr is not None or bpp is not None) and codec == "auto"):
        if codec == "auto":
            codec = DEFAULT_LEARNED_LOSSY
    if codec == "auto" and (codec_params or model):
        raise click.UsageError("--model, --quality and -p need an explicit --codec NAME")
    try:
        kind = get_entry(codec).kind if codec != "auto" else None
    except GencodecError as e:
        raise Failure(str(e)) from None
    if "quality" in codec_params and kind != "lossy-image":
        raise click.UsageError(f"--quality applies to lossy image codecs, and {codec!r} is {kind}")
    if lossy and kind != "lossy-image":
        raise click.UsageError(f"--lossy picks a lossy image codec, and {codec!r} is {kind}")
    if model is not None:
        codec_params["model"] = model

    def work(source: str) -> Message | None:
        data_to_stdout = to_stdout or (source == io.STDIO and output is None)
        if data_to_stdout:
            target = "<stdout>"
            if io.stdout_is_terminal() and not force:
                raise FileError("refusing to write compressed data to a terminal (use -o, redirect, or -f)")
        elif output is None and source.lower().endswith(io.SUFFIX) and not force:
            raise FileError(f"{source}: already has the {io.SUFFIX} suffix (use -f to compress it again)")
        else:
            target = output if output is not None else io.compressed_name(source)
        # input problems are reported first; stdin is read only once the output is known to be writable
        raw = None if source == io.STDIO else io.read_input(source)
        if not data_to_stdout:
            io.check_writable(target, force, source)
        if raw is None:
            raw = io.read_input(source)
        name = "" if source == io.STDIO else io.storable_name(os.path.basename(source))
        report = gencodec.compress_report(raw, codec, name=name, as_image=True, **codec_params)
        if data_to_stdout:
            io.write_stdout(report.blob)
        else:
            _write(target, report.blob, force, io.input_mode(source))
        fields = compress_fields(report, display(source), target)
        if as_json:
            return json.dumps(fields), data_to_stdout
        if quiet:
            return None
        return compress_line(fields), data_to_stdout

    click.get_current_context().exit(for_each_file(files, work, quiet))


# ---------------------------------------------------------------------------------------------
# decompress


@click.command()
@click.argument("files", nargs=-1, required=True, metavar="FILE.gcx...")
@_with_common
@click.option("--model", metavar="PATH", help="Model file the frame was coded with (user-trained neural codecs).")
@click.option("--max-pixels", type=click.IntRange(min=1), metavar="N", help="Refuse images with more pixels than N (default 2^28, 2^24 for pixelcnn, or $GENCODEC_MAX_PIXELS).")
@click.option("--max-bytes", type=click.IntRange(min=1), metavar="N", help="Refuse byte frames that restore more than N bytes (default 2^30, or $GENCODEC_MAX_BYTES).")
def decompress(files, output, to_stdout, force, quiet, as_json, model, max_pixels, max_bytes):
    """Restore each FILE.gcx beside it, under the name stored in its header.

    A lossless image is restored as PNG (same pixels and mode); bytes are restored byte for
    byte. The checksum in the frame is verified before anything is written. '-' reads stdin and
    writes stdout.
    """
    _check_sources(files, output, to_stdout)

    def work(source: str) -> Message | None:
        data_to_stdout = to_stdout or (source == io.STDIO and output is None)
        if not data_to_stdout and output is None and io.strip_suffix(source) is None:
            raise FileError(f"{source}: no {io.SUFFIX} suffix, so no output name (use -o PATH or -c)")
        blob = io.read_input(source)
        header = container.read_header(blob)
        if data_to_stdout:
            target = "<stdout>"
        else:
            target = output if output is not None else _restored_path(source, header)
            io.check_writable(target, force, source)
        t0 = time.perf_counter()
        restored = gencodec.decompress(blob, model=model, max_pixels=max_pixels, max_bytes=max_bytes)
        data = restored if isinstance(restored, bytes) else imageio.png_bytes(restored)
        seconds = time.perf_counter() - t0
        if data_to_stdout:
            io.write_stdout(data)
        else:
            _write(target, data, force, None)
        fields = dict(
            input=display(source), output=target, codec=header.codec, kind=header.kind,
            n_bytes_in=len(blob), n_bytes_out=len(data), seconds=seconds,
        )
        if as_json:
            return json.dumps(fields), data_to_stdout
        if quiet:
            return None
        return decompress_line(fields), data_to_stdout

    click.get_current_context().exit(for_each_file(files, work, quiet))


def _restored_path(source: str, header: container.Header) -> str:
    """Where ``decompress`` writes by default: the header's file name in the .gcx file's directory.

    Images get a .png suffix. A missing or unsafe stored name falls back to the .gcx name
    without its suffix.
    """
    stem = io.strip_suffix(source)
    name = io.safe_stored_name(header.name) or os.path.basename(stem)
    if header.kind == "image":
        name = imageio.restored_name(name)
    return os.path.join(os.path.dirname(source), name)


def _write(target: str, data: bytes, force: bool, mode: int | None) -> None:
    try:
        io.write_atomic(target, data, force, mode)
    except OSError as e:
        raise FileError(f"{target}: cannot write ({io.reason(e)})") from None
