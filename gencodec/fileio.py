"""Writing files so that nothing is lost: all at once or not at all, never over an existing file
unless asked, with the temporaries of killed writers cleaned up.

    write_atomic("out.gcx", blob, force=False)   # FileExistsError if out.gcx exists

The data goes to a temporary file in the target's folder (named ``.NAME.HOST-PID.RANDOM.gcxtmp``),
is flushed and fsynced, then linked (no -f: never replacing a file that appeared meanwhile) or
renamed (``force``) into place, and the folder is fsynced. A later write to the same folder
removes the temporaries of this host's processes that no longer run.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import tempfile

__all__ = ["write_atomic", "remove_stale_temporaries", "TMP_SUFFIX"]


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


#: temporaries are named ``.NAME.HOST-PID.RANDOM.gcxtmp``: a later write to the same folder removes
#: those of this host whose process is gone (killed mid-write), never another live writer's
TMP_SUFFIX = ".gcxtmp"
_OWNER = f"{socket.gethostname().replace('.', '_')}-{os.getpid()}"
_TMP_RE = re.compile(r"^\..+\.(?P<host>[^.]+)-(?P<pid>\d+)\.[^.]+" + re.escape(TMP_SUFFIX) + "$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, not ours to signal
        return True
    return True


def remove_stale_temporaries(directory: str) -> list[str]:
    """Remove our temporaries in ``directory`` left by processes of this host that no longer run;
    returns their names. Errors (a folder we cannot list) are ignored: cleaning is best effort."""
    host = socket.gethostname().replace(".", "_")
    removed = []
    try:
        names = [n for n in os.listdir(directory) if n.endswith(TMP_SUFFIX)]
    except OSError:
        return removed
    for name in names:
        m = _TMP_RE.match(name)
        if m is None or m["host"] != host or _alive(int(m["pid"])):
            continue
        try:
            os.unlink(os.path.join(directory, name))
            removed.append(name)
        except OSError:
            pass
    return removed


def write_atomic(target: str, data: bytes, force: bool, mode: int | None = None) -> None:
    """Write ``data`` to ``target`` all at once or not at all.

    mode: permission bits of the new file (default 0o666 minus the umask).
    Raises ``FileExistsError`` if ``target`` exists and ``force`` is False; OSError for other
    failures of the output side (the temporary file is removed first).
    """
    directory = os.path.dirname(os.path.abspath(target))
    remove_stale_temporaries(directory)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(target)}.{_OWNER}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), _default_mode() if mode is None else mode)
            os.fsync(f.fileno())
        if force:
            os.replace(tmp, target)
        else:
            _link_no_clobber(tmp, target)
        _fsync_dir(directory)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _link_no_clobber(tmp: str, target: str) -> None:
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, "already exists", target) from None
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
            raise
        # no hard links here (FAT, some network mounts): check, then rename
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "already exists", target) from None
        os.replace(tmp, target)
        return
    os.unlink(tmp)


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


