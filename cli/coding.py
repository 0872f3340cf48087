"""``gencodec compress`` and ``gencodec decompress``: gzip/zstd habits over the one-shot API."""

from __future__ import annotations

import json
import os
import time

import click

import gencodec
from gencodec import container, imageio
from gencodec.errors import GencodecError
from gencodec.registry import AUTO_NEURAL_BYTES, DEFAULT_LEARNED_LOSSY, get_entry

from . import io
from .common import Failure, Message, UsageFailure, dask_client, for_each_file, key_value, number
from .io import FileError, display
from .report import compress_fields, compress_line, decompress_line, progress_enabled


def _batch_mode(files, output, to_stdout, recursive, workers, manifest, cluster, test=False) -> bool:
    """Batch mode: -o names a folder for several inputs (or for -r, or an existing folder); also
    --workers > 1, --manifest or --cluster with several inputs or -r."""
    several = recursive or len(files) > 1
    if output is not None and not to_stdout and (several or os.path.isdir(output)):
        return True
    if (workers > 1 or manifest or cluster) and several and not to_stdout:
        return True
    if manifest or cluster:
        raise click.UsageError("--manifest and --cluster are for batch mode (several inputs, -r, or -o DIR)")
    return False


def _run_batch(mode, files, out_dir, workers, manifest, scheduler, codec, codec_params, force, quiet, as_json,
               decode_kw) -> None:
    """Batch mode: plan, run (processes or a Dask cluster), one line per failure, a summary, a manifest."""
    from gencodec import batch

    if io.STDIO in files:
        raise click.UsageError("'-' (stdin) cannot be part of a batch")
    for f in files:
        if not os.path.exists(f):
            raise Failure(f"{f}: no such file or directory")
    jobs = batch.plan(files, out_dir if mode != "test" else None, mode)
    if not jobs:
        raise Failure("no files to work on")
    client = dask_client(scheduler) if scheduler else None
    bar = None
    if not quiet and progress_enabled(len(jobs), quiet):
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), unit="file", leave=False, dynamic_ncols=True)
    try:
        rows = batch.run(jobs, mode, codec, codec_params, force, decode_kw, workers=workers, client=client,
                         on_row=(lambda r: bar.update(1)) if bar else None)
    finally:
        if bar is not None:
            bar.close()
        if client is not None:
            client.close()
    failed = [r for r in rows if r["status"] == "failed"]
    for r in rows:
        if as_json:
            click.echo(json.dumps(r))
        elif r["status"] == "failed":
            click.echo(f"gencodec: error: {r['error'] if r['error'].startswith(r['source']) else r['source'] + ': ' + r['error']}",
                       err=True)
    if manifest:
        batch.write_manifest(rows, manifest)
    if not quiet and not as_json:
        counts = {s: sum(r["status"] == s for r in rows) for s in ("done", "ok", "skipped")}
        verb = {"compress": "compressed", "decompress": "restored", "test": "tested"}[mode]
        done = counts["done"] + counts["ok"]
        click.echo(f"{done} of {len(rows)} files {verb}" + (f", {counts['skipped']} skipped (up to date)" if counts["skipped"] else "")
                   + (f", {len(failed)} failed" if failed else ""), err=True)
    click.get_current_context().exit(1 if failed else 0)


def _expand(files: tuple[str, ...], recursive: bool, compressing: bool) -> tuple[str, ...]:
    """With -r, folders become their files (sorted; hidden files and our temporaries skipped):
    for compress every file but .gcx frames, for decompress the .gcx frames. Without -r a folder
    stays as given (and fails on its own, naming -r; the other files are still done)."""
    if not recursive:
        return files
    out: list[str] = []
    for f in files:
        if f == io.STDIO or not os.path.isdir(f):
            out.append(f)
            continue
        for root, dirs, names in os.walk(f):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for n in sorted(names):
                if n.startswith("."):
                    continue
                if n.lower().endswith(io.SUFFIX) != (not compressing):
                    continue
                out.append(os.path.join(root, n))
    if not out:
        raise click.UsageError("no files to work on" + (" (no .gcx files found)" if not compressing else ""))
    return tuple(out)


def _check_sources(files: tuple[str, ...], output: str | None, to_stdout: bool) -> None:
    if output is not None and to_stdout:
        raise click.UsageError("-o/--output and -c/--stdout exclude each other")
    if len(files) > 1 and (output is not None or to_stdout):
        raise click.UsageError("-o/--output and -c/--stdout take a single input file")
    if io.STDIO in files and len(files) > 1:
        raise click.UsageError("'-' (stdin) must be the only input")


_common_options = [
    click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
                 help="Batch mode (-o DIR): files in this many processes; the outputs are those of a serial run."),
    click.option("--manifest", metavar="FILE", help="Batch mode: write what was done per file (JSON, or CSV for .csv)."),
    click.option("--scheduler", metavar="ADDRESS", envvar="DASK_SCHEDULER_ADDRESS",
                 help="Batch mode on a Dask cluster (tcp://HOST:PORT; default $DASK_SCHEDULER_ADDRESS when given "
                 "with --cluster). Paths must be on storage every worker sees."),
    click.option("--cluster", is_flag=True, help="Batch mode: run on the Dask cluster at --scheduler."),
    click.option("-r", "--recursive", is_flag=True, help="Go into folders: every file in them (compress: all but .gcx; "
                 "decompress: the .gcx files)."),
    click.option("-k", "--keep", is_flag=True, help="Keep the input (always done; accepted for gzip habits)."),
    click.option("-v", "--verbose", is_flag=True, help="Say more about each file (params, model id)."),
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


def _level_options(f):
    """``-1`` (fastest) ... ``-9`` (smallest): each codec's own levels (``gencodec codecs --verbose``)."""
    for n in range(9, 0, -1):
        f = click.option(f"-{n}", "level", flag_value=n, default=None, hidden=n not in (1, 9),
                         help="-1 fastest ... -9 smallest: each codec's own levels (see `gencodec codecs --verbose`)."
                         if n == 1 else "Same scale; -2 ... -8 between.")(f)
    return f


def _check_usage(codec: str, codec_params: dict, level: int | None, model: str | None) -> None:
    """Values a codec cannot take are usage errors (exit 2), found before any file is read (with
    --model, the model's own ranges are checked when it codes)."""
    if codec == "auto":
        return
    try:
        instance = gencodec.get_codec(codec)
    except GencodecError as e:
        raise Failure(str(e)) from None
    if level is not None and not instance.levels:
        raise UsageFailure(f"-{level}: codec {codec!r} has no speed/size levels")
    declared = {p.name: p for p in instance.params}
    for key, value in codec_params.items():
        if key in declared and model is None:
            try:
                declared[key].check(codec, value)
            except GencodecError as e:
                raise UsageFailure(str(e)) from None


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
@click.option("-d", "--decompress", "to_decompress", is_flag=True, help="Decompress instead (as `gencodec decompress`).")
@click.option("-t", "--test", is_flag=True, help="With -d, or alone: verify .gcx files restore; write nothing.")
@_level_options
def compress(files, workers, manifest, scheduler, cluster, recursive, keep, verbose, output, to_stdout, force, quiet,
             as_json, codec, model, quality, lossy, psnr, bpp, params, level, to_decompress, test):
    """Compress each FILE into FILE.gcx (keeping FILE); '-' reads stdin and writes stdout.

    PNG, PPM/PGM, BMP and TIFF images are coded as pixels (restored as PNG with identical
    pixels and mode); every other file is coded as bytes and restored byte for byte.
    A file that already ends in .gcx is refused unless -f is given.
    """
    if to_decompress or test:
        return click.get_current_context().invoke(
            decompress, files=files, workers=workers, manifest=manifest, scheduler=scheduler, cluster=cluster,
            recursive=recursive, keep=keep, verbose=verbose, output=output, to_stdout=to_stdout, force=force,
            quiet=quiet, as_json=as_json, model=model, test=test)
    batch = _batch_mode(files, output, to_stdout, recursive, workers, manifest, cluster)
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
    _check_usage(codec, codec_params, level, model)
    if level is not None:
        codec_params["compression_level"] = level
    if batch:
        return _run_batch("compress", files, output, workers, manifest, scheduler if cluster else None, codec,
                          codec_params, force, quiet, as_json, {})
    files = _expand(files, recursive, compressing=True)
    _check_sources(files, output, to_stdout)
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
        line = compress_line(fields)
        skipped = [c for c, limit in AUTO_NEURAL_BYTES.items() if len(raw) > limit]
        if codec == "auto" and report.header.kind == "bytes" and skipped:
            line += (f"\n  {', '.join(skipped)} not tried: an input this large goes to the classical codecs"
                     f" (above {AUTO_NEURAL_BYTES[skipped[0]] >> 10} KiB; --codec {skipped[0]} forces it)")
        if verbose:
            h = report.header
            line += f"\n  params {json.dumps(h.params, sort_keys=True)}, model id {h.model_id.hex() or '(none)'}"
        return line, data_to_stdout

    click.get_current_context().exit(for_each_file(files, work, quiet, summary=None if as_json else "compressed"))


# ---------------------------------------------------------------------------------------------
# decompress


@click.command()
@click.argument("files", nargs=-1, required=True, metavar="FILE.gcx...")
@_with_common
@click.option("--model", metavar="PATH", help="Model file the frame was coded with (user-trained neural codecs).")
@click.option("--max-pixels", type=click.IntRange(min=1), metavar="N", help="Refuse images with more pixels than N (default 2^28, 2^24 for pixelcnn, or $GENCODEC_MAX_PIXELS).")
@click.option("--max-bytes", type=click.IntRange(min=1), metavar="N", help="Refuse byte frames that restore more than N bytes (default 2^30, or $GENCODEC_MAX_BYTES).")
@click.option("-t", "--test", is_flag=True, help="Verify that each file restores (checksum included); write nothing.")
@click.option("--native", is_flag=True, help="Write a classical codec's payload as its own file (.webp, .jxl, .avif, "
              ".jpg, .j2k, .png, .xz, .zst, .br, .gz, .bz2), for other tools; verified first.")
def decompress(files, workers, manifest, scheduler, cluster, recursive, keep, verbose, output, to_stdout, force, quiet,
               as_json, model, max_pixels=None, max_bytes=None, test=False, native=False):
    """Restore each FILE.gcx beside it, under the name stored in its header.

    A lossless image is restored as PNG (same pixels and mode); bytes are restored byte for
    byte. The checksum in the frame is verified before anything is written. '-' reads stdin and
    writes stdout.
    """
    _check_sources(files, output, to_stdout)

    decode_kw = {k: v for k, v in dict(model=model, max_pixels=max_pixels, max_bytes=max_bytes).items() if v is not None}
    if (test and (recursive or len(files) > 1) and (workers > 1 or cluster)) or _batch_mode(
            files, output, to_stdout, recursive, workers, manifest, cluster, test):
        if native:
            raise click.UsageError("--native works file by file, not in batch mode")
        return _run_batch("test" if test else "decompress", files, output, workers, manifest,
                          scheduler if cluster else None, "auto", {}, force, quiet, as_json, decode_kw)
    files = _expand(files, recursive, compressing=False)
    if test and (output is not None or to_stdout):
        raise click.UsageError("-t/--test writes nothing: it excludes -o and -c")

    def work(source: str) -> Message | None:
        if test:
            return _test(source)
        data_to_stdout = to_stdout or (source == io.STDIO and output is None)
        if not data_to_stdout and output is None and io.strip_suffix(source) is None:
            raise FileError(f"{source}: no {io.SUFFIX} suffix, so no output name (use -o PATH or -c)")
        blob = io.read_input(source)
        header = container.read_header(blob)
        suffix = None
        if native:
            codec = gencodec.get_codec(header.codec)
            suffix = codec.native_suffix
            if suffix is None:
                raise FileError(f"{source}: codec {header.codec} has no format of its own outside .gcx files")
        if data_to_stdout:
            target = "<stdout>"
        else:
            target = output if output is not None else _restored_path(source, header, suffix)
            io.check_writable(target, force, source)
        t0 = time.perf_counter()
        restored = gencodec.decompress(blob, model=model, max_pixels=max_pixels, max_bytes=max_bytes)
        if native:  # verified above by decoding it; now the payload itself
            data = codec.native_payload(container.unpack(blob)[1], header)
        else:
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

    def _test(source: str) -> Message | None:
        blob = io.read_input(source)
        t0 = time.perf_counter()
        header = container.read_header(blob)
        gencodec.decompress(blob, model=model, max_pixels=max_pixels, max_bytes=max_bytes)
        fields = dict(input=display(source), codec=header.codec, kind=header.kind, n_bytes_in=len(blob), ok=True,
                      seconds=time.perf_counter() - t0)
        if as_json:
            return json.dumps(fields), False
        if quiet:
            return None
        return f"{display(source)}: OK ({header.codec}, {len(blob):,} bytes, {fields['seconds']:.2f} s)", False

    verb = "tested" if test else "restored"
    click.get_current_context().exit(for_each_file(files, work, quiet, summary=None if as_json else verb))


def _restored_path(source: str, header: container.Header, native_suffix: str | None = None) -> str:
    """Where ``decompress`` writes by default: the header's file name in the .gcx file's directory.

    Images get a .png suffix; with ``--native``, the payload's own suffix is added. A missing or
    unsafe stored name falls back to the .gcx name without its suffix.
    """
    stem = io.strip_suffix(source)
    name = io.safe_stored_name(header.name) or os.path.basename(stem)
    if native_suffix is not None:
        return os.path.join(os.path.dirname(source), name + native_suffix)
    if header.kind == "image":
        name = imageio.restored_name(name)
    return os.path.join(os.path.dirname(source), name)


def _write(target: str, data: bytes, force: bool, mode: int | None) -> None:
    try:
        io.write_atomic(target, data, force, mode)
    except OSError as e:
        raise FileError(f"{target}: cannot write ({io.reason(e)})") from None
