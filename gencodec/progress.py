"""Progress of long codec work, for whoever wants to show it (the CLI draws a tqdm bar from it).

    def show(done, total):
        print(f"{100 * done / total:.0f} %")

    with gencodec.progress.reporting(show):
        gencodec.compress("photo.png", codec="pixelcnn")

Codecs whose work takes seconds (pixelcnn: the parallel pass and the coding rounds when encoding,
the wavefronts when decoding) call :func:`report` every so often; ``done`` never decreases and
reaches ``total`` at the end. Without :func:`reporting` a report costs one context-variable lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

Callback = Callable[[int, int], None]

_callback: ContextVar[Callback | None] = ContextVar("gencodec_progress", default=None)


@contextmanager
def reporting(callback: Callback) -> Iterator[None]:
    """Send the progress of codec work done inside the block to ``callback(done, total)``."""
    token = _callback.set(callback)
    try:
        yield
    finally:
        _callback.reset(token)


PART_UNITS = 1000  # the resolution of each part's share, whatever units its own work counts in


@contextmanager
def part(index: int, parts: int) -> Iterator[None]:
    """Inside the block, a sub-task's (done, total) counts as part ``index`` (from 0) of ``parts``
    equal parts of the progress being reported (e.g. the first of an encoder's two passes): the
    caller's callback sees ``parts * PART_UNITS`` as the total of every part."""
    outer = _callback.get()
    if outer is None:
        yield
        return

    def callback(done: int, total: int) -> None:
        if total:
            outer(index * PART_UNITS + done * PART_UNITS // total, parts * PART_UNITS)

    with reporting(callback):
        yield


def report(done: int, total: int) -> None:
    """Called by codecs: ``done`` of ``total`` units of the current piece of work."""
    callback = _callback.get()
    if callback is not None:
        callback(done, total)
