"""``gencodec bench``: every codec on every file, verified round trips, reports and plots.

Only parses and formats: the work is :func:`gencodec.bench.runner.run_bench`. torch and
matplotlib are imported inside the command, so ``gencodec --help`` stays fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from gencodec.errors import GencodecError

from . import io
from .common import Failure, dask_client, key_value, number


def parse_qualities(values: tuple[str, ...]) -> dict[str, list]:
    """``("10,50,90", "jpeg=20,40")`` -> ``{"*": [10, 50, 90], "jpeg": [20, 40]}``."""
    out: dict[str, list] = {}
    for v in values:
        codec, sep, levels = v.rpartition("=")
        key = codec if sep else "*"
        out.setdefault(key, []).extend(number(q) for q in levels.split(",") if q.strip())
    return out


def parse_params(values: tuple[str, ...]) -> dict[str, list[dict]]:
    """``("jpeg-xl-lossless:effort=9",)`` -> ``{"jpeg-xl-lossless": [{"effort": 9}]}``: one extra job
    per option (VALUE parsed as JSON if it can be, as in ``compress -p``)."""
    out: dict[str, list[dict]] = {}
    for v in values:
        codec, sep, kv = v.partition(":")
        if not sep or not codec:
            raise click.BadParameter(f"{v!r} is not CODEC:KEY=VALUE", param_hint="--param")
        out.setdefault(codec, []).append(dict([key_value(kv, "--param")]))
    return out


def _write(path: str, text: str) -> None:
    """Print to stdout ('-') or replace ``path`` atomically; an OSError becomes a one-line error."""
    if path == "-":
        click.echo(text, nl=False)
        return
    try:
        io.write_atomic(path, text.encode(), force=True)
    except OSError as e:
        raise Failure(f"{path}: cannot write ({io.reason(e)})") from None


def _refuse_overwriting_inputs(outputs: list[str | None], inputs: list[Path]) -> None:
    for out in outputs:
        if out and out != "-" and os.path.exists(out) and any(os.path.samefile(out, f) for f in inputs):
            raise Failure(f"{out}: output would overwrite an input file")


@click.command("bench")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--codec", "codecs", multiple=True, metavar="NAME",
              help="Codec to run (repeatable or comma-separated); default: every available codec of the kind the files call for.")
@click.option("--lossy", is_flag=True, help="Benchmark lossy image codecs over a quality sweep (rate-distortion).")
@click.option("--quality", "qualities", multiple=True, metavar="[CODEC=]Q,Q,...",
              help="Quality levels to sweep (all lossy codecs, or one with CODEC=); default: each codec's own sweep.")
@click.option("--param", "params", multiple=True, metavar="CODEC:KEY=VALUE",
              help="Also run CODEC with this parameter (repeatable: one more job each; a lossy codec: one more "
                   "sweep of its qualities, its own curve), e.g. jpeg-xl-lossless:effort=9, hyperprior:effort=1.")
@click.option("--json", "json_path", metavar="FILE", help="Write the full result document as JSON ('-' for stdout).")
@click.option("--csv", "csv_path", metavar="FILE", help="Write one CSV line per file x codec x quality, then the totals.")
@click.option("--markdown", "md_path", metavar="FILE", help="Write the tables as Markdown.")
@click.option("--plot", "plot_path", metavar="FILE.png", help="Draw RD curves (lossy) or size/speed bars (lossless) as PNG.")
@click.option("--reference", "references", multiple=True, metavar="FILE.json",
              help="Published RD curve(s) to plot and to compute BD-rates against (JSON of bpp/psnr pairs).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(0),
              help="Files in parallel processes (a fresh pool per codec); 0 runs in this process.")
@click.option("--threads", type=click.IntRange(1), help="OMP/MKL threads per worker (default: cores / workers).")
@click.option("--no-ms-ssim", is_flag=True, help="Skip MS-SSIM (lossy), which needs torch.")
@click.option("--title", default=None, help="Heading of the Markdown report.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary on stdout.")
@click.option("--scheduler", metavar="ADDRESS", help="Run on the Dask cluster there (tcp://HOST:PORT); the files must "
              "be on storage its workers see.")
def bench(paths, codecs, lossy, qualities, params, json_path, csv_path, md_path, plot_path, references, workers, threads,
          no_ms_ssim, title, quiet, scheduler):
    """Benchmark codecs on files and folders (a folder expands to its files).

    Every round trip is verified (lossless: identical pixels or bytes; lossy: PSNR and MS-SSIM
    of the decoded file). Sizes are whole .gcx frames, exactly what `gencodec compress` writes.
    Prints the totals table (Markdown) unless -q; exits 1 if any round trip failed.
    """
    from gencodec.bench import report, runner

    if qualities and not lossy:
        raise click.UsageError("--quality needs --lossy")
    codec_list = [c.strip() for spec in codecs for c in spec.split(",") if c.strip()]
    try:
        _refuse_overwriting_inputs([json_path, csv_path, md_path, plot_path], runner.expand_paths(paths))
        refs = [c for r in references for c in report.load_reference(r)]
        client = dask_client(scheduler) if scheduler else None
        try:
            doc = runner.run_bench(
                paths, codec_list or None, lossy=lossy, qualities=parse_qualities(qualities), params=parse_params(params),
                workers=workers, threads=threads, references=refs, ms_ssim=not no_ms_ssim,
                progress=False if quiet else None, client=client,
            )
        finally:
            if client is not None:
                client.close()
    except GencodecError as e:
        raise Failure(str(e)) from None
    if json_path:
        _write(json_path, report.to_json(doc))
    if csv_path:
        _write(csv_path, report.to_csv(doc))
    md = report.to_markdown(doc, title)
    if md_path:
        _write(md_path, md)
    if plot_path:
        from gencodec.bench import plot

        try:
            plot.save(doc, plot_path)
        except OSError as e:
            raise Failure(f"{plot_path}: cannot write ({io.reason(e)})") from None
    if not quiet and json_path != "-":
        click.echo(md)
    failed = [r for r in doc["rows"] if r["status"] == "failed"]
    for r in failed:
        click.echo(f"gencodec: error: {r['file']}: {r['codec']}: {r['reason']}", err=True)
    skipped = [r for r in doc["rows"] if r["status"] == "skipped"]
    if skipped and not quiet:
        click.echo(f"gencodec: note: {len(skipped)} run(s) skipped (see the JSON rows' reason)", err=True)
    if failed:
        sys.exit(1)
