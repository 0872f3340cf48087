"""File input and output for the CLI: clear read errors, atomic writes, output names.

Outputs are never written in place: the data goes to a hidden temporary file in the target
directory, is fsync'ed, and is then moved onto the target name in one step. On any failure the
temporary file is removed, so a target either does not exist or holds complete output.
Without ``force`` an existing target is never replaced (a hard link makes the final step
fail instead of clobbering, where the file system allows it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path, PurePosixPath, PureWindowsPath

from gencodec import fileio


SUFFIX = ".gcx"
STDIO = "-"


class FileError(Exception):
    """A user-facing error about one file; the message already names the file."""


# ---------------------------------------------------------------------------------------------
# reading


def _binary(stream):
    """The byte stream under a text stream (``sys.stdin.buffer``); the stream itself if it has none."""
    return getattr(stream, "buffer", stream)


def read_input(path: str) -> bytes:
    """All bytes of ``path`` (``-`` reads stdin). Raises :class:`FileError` with a one-line reason."""
    if path == STDIO:
        return _binary(sys.stdin).read()
    if os.path.isdir(path):
        raise FileError(f"{path}: is a directory (use -r to go into it)")
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise FileError(f"{path}: {reason(e)}") from None


def reason(e: OSError) -> str:
    """The one-line reason of an OSError (``no such file or directory``)."""
    return e.strerror.lower() if e.strerror else str(e)


# ---------------------------------------------------------------------------------------------
# output names


def compressed_name(path: str) -> str:
    """``a.txt`` -> ``a.txt.gcx`` (same directory)."""
    return path + SUFFIX


def strip_suffix(path: str) -> str | None:
    """``dir/a.txt.gcx`` -> ``dir/a.txt``; None when ``path`` has no .gcx suffix (or is only one)."""
    if path.lower().endswith(SUFFIX) and len(os.path.basename(path)) > len(SUFFIX):
        return path[: -len(SUFFIX)]
    return None


def storable_name(name: str) -> str:
    """``name`` if it can go into a header (valid UTF-8), else "".

    A file name that is not valid UTF-8 (possible on POSIX) is not stored; decompressing then
    restores the .gcx file's own name without its suffix, which keeps the original bytes.
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return ""
    return name


def safe_stored_name(name: str) -> str | None:
    """The file name stored in a header, if it is a plain name (no directories, not ``..``).

    A header is untrusted input: a name such as ``../../etc/passwd`` must never steer where
    output lands, so such names are ignored (None) and the caller falls back to the .gcx name.
    """
    if not name or "\0" in name:
        return None
    plain = PurePosixPath(name).name
    if plain != name or PureWindowsPath(name).name != name or plain in (".", ".."):
        return None
    return name


# ---------------------------------------------------------------------------------------------
# writing


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_stdout(data: bytes) -> None:
    out = _binary(sys.stdout)
    out.write(data)
    out.flush()


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def check_writable(target: str, force: bool, source: str | None = None) -> None:
    """Refuse early (before any work) an output that exists without ``force``, or is the input."""
    if source is not None and source != STDIO and os.path.exists(target):
        try:
            if os.path.samefile(source, target):
                raise FileError(f"{target}: output would overwrite its own input")
        except OSError:
            pass
    if os.path.isdir(target):
        raise FileError(f"{target}: is a directory")
    if not force and os.path.lexists(target):
        raise FileError(f"{target}: already exists (use -f to overwrite)")


def write_atomic(target: str, data: bytes, force: bool, mode: int | None = None) -> None:
    """:func:`gencodec.fileio.write_atomic`, with an existing target as a :class:`FileError`."""
    try:
        fileio.write_atomic(target, data, force, mode)
    except FileExistsError:
        raise FileError(f"{target}: already exists (use -f to overwrite)") from None


remove_stale_temporaries = fileio.remove_stale_temporaries
TMP_SUFFIX = fileio.TMP_SUFFIX


def input_mode(path: str) -> int | None:
    """Permission bits of an input file, kept on its compressed output (None for stdin)."""
    if path == STDIO:
        return None
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        return None


def display(path: str | Path) -> str:
    return "<stdin>" if str(path) == STDIO else str(path)
