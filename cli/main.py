"""The ``gencodec`` command: compress, decompress, info, codecs (+ train and bench when present).

Exit status: 0 on success, 1 on a user-facing error (one line on stderr, ``gencodec: error: ...``),
2 on bad usage. Start-up imports no torch: ``train`` and ``bench`` import it inside the command.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import warnings

import click

import gencodec
from gencodec.errors import GencodecError

from . import io
from .coding import compress, decompress
from .common import Failure, Message, for_each_file
from .report import codec_lines, info_lines

CONTEXT_SETTINGS = dict(help_option_names=["-h", "--help"])


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(gencodec.__version__, "-V", "--version", prog_name="gencodec")
def cli() -> None:
    """gencodec: learned and classical compression with exact decoding.

    \b
      gencodec compress a.png            writes a.png.gcx, keeps a.png
      gencodec decompress a.png.gcx      writes a.png (same pixels and mode)
      gencodec info a.png.gcx            prints the frame's header
      gencodec codecs                    lists every codec
    """


cli.add_command(compress)
cli.add_command(decompress)


@cli.command()
@click.argument("files", nargs=-1, required=True, metavar="FILE.gcx...")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per file (JSON Lines).")
def info(files: tuple[str, ...], as_json: bool) -> None:
    """Print the header and sizes of each .gcx file (every chunk CRC is checked)."""

    def work(source: str) -> Message:
        d = gencodec.info(io.read_input(source))
        if as_json:
            return json.dumps({"file": io.display(source), **d}), False
        return "\n".join(info_lines(io.display(source), d)), False

    click.get_current_context().exit(for_each_file(files, work, quiet=True))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.option("-v", "--verbose", is_flag=True, help="Also show what -1 ... -9 mean for each codec.")
def codecs(as_json: bool, verbose: bool) -> None:
    """List every codec: name, kind, description, whether it can run here (and why not), and its
    parameters (``-p NAME=VALUE``) with their ranges and defaults."""
    try:
        rows = gencodec.list_codecs()
    except GencodecError as e:
        raise Failure(str(e)) from None
    if as_json:
        click.echo(json.dumps(rows, indent=1))
    else:
        click.echo("\n".join(codec_lines(rows, verbose)))


def add_optional(group: click.Group, module_name: str) -> None:
    """Register ``cli/<module_name>.py``'s command of the same name in ``group``, if that module exists.

    A module that exists but fails to import is registered as a stub that explains why, so a
    broken optional command never breaks the rest of the CLI.
    """
    if importlib.util.find_spec(f"{__package__}.{module_name}") is None:
        return
    try:
        module = importlib.import_module(f".{module_name}", __package__)
        command = getattr(module, module_name)
    except (ImportError, AttributeError) as e:
        reason = f"{type(e).__name__}: {e}"

        @click.command(module_name, help=f"(unavailable: {reason})", context_settings=dict(ignore_unknown_options=True))
        @click.argument("args", nargs=-1, type=click.UNPROCESSED)
        def stub(args) -> None:
            raise Failure(f"gencodec {module_name} is unavailable here: {reason}")

        command = stub
    group.add_command(command, module_name)


for _name in ("train", "bench"):
    add_optional(cli, _name)


#: library deprecation notices a command's user can do nothing about (compressai's layers call
#: ``torch.jit.script`` when imported); the library API leaves warnings to its caller
QUIET_WARNINGS = (r"`torch\.jit\.script` is deprecated",)


def main() -> None:
    """Entry point of the ``gencodec`` script and of ``python -m gencodec``."""
    for message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=FutureWarning)
    cli(prog_name="gencodec")


if __name__ == "__main__":  # pragma: no cover
    main()
