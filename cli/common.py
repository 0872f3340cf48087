"""What every subcommand shares: the one-line error format and the per-file loop."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterable
from typing import Any

import click

import gencodec
from gencodec.errors import GencodecError

from .io import FileError, display, reason
from .report import progress_enabled


#: A line of output and whether it goes to stderr.
Message = tuple[str, bool]


class Failure(click.ClickException):
    """A user-facing error that ends the command: one line on stderr, exit status 1."""

    exit_code = 1

    def show(self, file=None) -> None:  # noqa: D102 - click API
        click.echo(f"gencodec: error: {self.message}", err=True)


class UsageFailure(Failure):
    """Bad usage found after parsing (an option's value that cannot work here): one line, exit status 2."""

    exit_code = 2


def number(text: str, hint: str = "--quality") -> int | float:
    """A click option value that is an int if it reads as one, else a float."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise click.BadParameter(f"{text!r} is not a number", param_hint=hint) from None


def key_value(text: str, hint: str = "-p/--param") -> tuple[str, Any]:
    """``KEY=VALUE`` -> (key, VALUE parsed as JSON if it can be, else the text)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{text!r} is not KEY=VALUE", param_hint=hint)
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def error_line(source: str, exc: BaseException) -> str:
    """The one line that describes why ``source`` failed (without the ``gencodec: error:`` prefix)."""
    if isinstance(exc, FileError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.filename or display(source)}: {reason(exc)}"
    return f"{display(source)}: {exc}"


def for_each_file(sources: Iterable[str], work: Callable[[str], Message | None], quiet: bool,
                  summary: str | None = None) -> int:
    """Run ``work`` on every source, print what it returns, report each failure as one line.
    With several sources and a ``summary`` verb, end with ``N of M files VERB, K failed`` on stderr
    (unless ``quiet``).

    ``work`` returns ``(text, to_stderr)`` to print, or None. Failures do not stop the loop.

    Returns the exit status: 0 when every file succeeded, 1 otherwise. On a terminal, unless
    ``quiet``, a progress bar (tqdm, on stderr) counts several files; for one file, a :class:`WorkBar`
    shows the codec's own progress if the work takes more than a second.
    """
    sources = list(sources)
    bar = None
    if progress_enabled(len(sources), quiet):
        from tqdm import tqdm

        bar = tqdm(total=len(sources), unit="file", leave=False, dynamic_ncols=True)
    within = WorkBar() if len(sources) == 1 and not quiet and sys.stderr.isatty() else None
    status, failed = 0, 0
    for source in sources:
        if bar is not None:
            bar.set_postfix_str(display(source))
        try:
            with gencodec.progress.reporting(within) if within else contextlib.nullcontext():
                message = work(source)
        except (GencodecError, FileError, OSError) as exc:
            status, failed = 1, failed + 1
            message = (f"gencodec: error: {error_line(source, exc)}", True)
        finally:
            if within is not None:
                within.close()  # cleared before anything is printed
        if message is not None:
            if bar is not None:
                with bar.external_write_mode():
                    click.echo(message[0], err=message[1])
            else:
                click.echo(message[0], err=message[1])
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if summary and len(sources) > 1 and not quiet:
        click.echo(f"{len(sources) - failed} of {len(sources)} files {summary}" + (f", {failed} failed" if failed else ""),
                   err=True)
    return status


class WorkBar:
    """A tqdm bar (stderr, gone when done) fed by a codec's own progress (:mod:`gencodec.progress`),
    shown only once the work has taken ``DELAY`` seconds: a slow neural codec on one big file."""

    DELAY = 1.0
    MININTERVAL = 0.2  # seconds between redraws

    def __init__(self) -> None:
        self._bar = None

    def __call__(self, done: int, total: int) -> None:
        if self._bar is None or self._bar.total != total:
            from tqdm import tqdm

            self.close()
            self._bar = tqdm(total=total, leave=False, dynamic_ncols=True, delay=self.DELAY, mininterval=self.MININTERVAL,
                             bar_format="{l_bar}{bar}| {elapsed}<{remaining}")
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def dask_client(scheduler: str):
    """A ``distributed.Client`` connected to ``scheduler``; one-line Failures when dask is missing
    or the scheduler cannot be reached."""
    try:
        from distributed import Client
    except ImportError:
        raise Failure("a Dask cluster needs dask.distributed: pip install 'gencodec[cluster]'") from None
    try:
        return Client(scheduler, timeout="10s")
    except (OSError, TimeoutError, ValueError) as e:
        raise Failure(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
