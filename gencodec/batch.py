"""Many files at once: a tree of inputs -> a tree of outputs, in worker processes or on a Dask
cluster, byte for byte what a serial run writes, resumable, with a manifest of what was done.

    jobs = plan(["photos/"], "out/", "compress")                  # photos/a/b.png -> out/a/b.png.gcx
    rows = run(jobs, "compress", workers=4)                       # or client=distributed.Client(...)
    write_manifest(rows, "out/manifest.json")                     # or .csv

Every job reads its input and writes its output itself (atomically, :mod:`gencodec.fileio`), so
only paths and small result rows travel between processes or across a cluster (shared storage
is assumed for a cluster). An output that already exists and verifies is skipped (``skipped``):
a compressed frame whose CRCs hold and whose checksum is that of the input (lossless codecs;
lossy frames are decoded), a restored file whose content the frame's checksum matches. An
existing output that does not verify is refused unless ``force``. A job that fails leaves no
output and its row says why; the others still run. A worker killed mid-job leaves no partial
output (the writer's temporary file is removed by a later write to that folder) and a Dask
cluster retries its task on another worker.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from . import api, container, fileio, imageio
from .errors import GencodecError
from .registry import get_entry

__all__ = ["Job", "plan", "run_job", "run", "write_manifest", "MODES"]

MODES = ("compress", "decompress", "test")
SUFFIX = ".gcx"


@dataclass(frozen=True)
class Job:
    source: str
    target: str | None  # None: test (nothing is written)


def plan(sources: Iterable[str | os.PathLike], out_dir: str | os.PathLike | None, mode: str) -> list[Job]:
    """Jobs for files and folders (folders recursively, hidden entries skipped; compress takes every
    file but .gcx frames, decompress and test the .gcx frames). Outputs mirror each folder's tree
    under ``out_dir`` (default: beside the input); decompressed files lose the .gcx suffix (images
    are restored as PNG: a name without .png gets it, as ``gencodec decompress`` does)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    jobs = []
    for src in map(Path, sources):
        if src.is_dir():
            files = sorted(p for p in src.rglob("*") if p.is_file() and not any(
                part.startswith(".") for part in p.relative_to(src).parts))
            base = src
        else:
            files, base = [src], src.parent
        for f in files:
            frame = f.name.lower().endswith(SUFFIX)
            if frame == (mode == "compress") and src.is_dir():
                continue
            rel = f.relative_to(base)
            root = Path(out_dir) if out_dir is not None else base
            if mode == "compress":
                target = str(root / (str(rel) + SUFFIX))
            elif mode == "decompress":
                target = str(root / str(rel)[: -len(SUFFIX)]) if frame else str(root / (str(rel) + ".out"))
            else:
                target = None
            jobs.append(Job(str(f), target))
    return jobs


def _row(job: Job, status: str, t0: float, **extra: Any) -> dict[str, Any]:
    return dict(source=job.source, target=job.target, status=status, seconds=round(time.perf_counter() - t0, 4),
                **extra)


def _frame_matches(blob: bytes, raw: bytes) -> bool:
    """A frame (CRCs verified) that restores exactly ``raw``: by the checksum where it covers the
    input (bytes, lossless pixels); a lossy or unreadable frame does not match."""
    try:
        header, payload = container.unpack(blob)
    except GencodecError:
        return False
    if header.kind == "bytes":
        return header.length == len(raw) and header.checksum == container.checksum(raw)
    img = imageio.try_open_pixels(raw)
    if img is not None and get_entry(header.codec).kind == "lossless-image":
        return header.checksum == imageio.pixel_digest(img)
    return False  # a lossy frame cannot be matched to its input: code it again


def run_job(job: Job, mode: str, codec: str = "auto", params: dict[str, Any] | None = None,
            force: bool = False, decode_kw: dict[str, Any] | None = None) -> dict[str, Any]:
    """One job; never raises for a file's own failure: the row's status is ``done``, ``skipped``,
    ``ok`` (test) or ``failed`` (with ``error``: one line)."""
    t0 = time.perf_counter()
    params, decode_kw = dict(params or {}), dict(decode_kw or {})
    try:
        raw = Path(job.source).read_bytes()
        if mode == "test":
            api.decompress(raw, **decode_kw)
            return _row(job, "ok", t0, n_bytes_in=len(raw))
        target = Path(job.target)
        if mode == "compress":
            if target.exists() and not force:
                if _frame_matches(target.read_bytes(), raw):
                    return _row(job, "skipped", t0, n_bytes_in=len(raw), n_bytes_out=target.stat().st_size)
                raise FileExistsError(f"{target}: exists and is not this input's frame (use force to overwrite)")
            name = os.path.basename(job.source)
            report = api.compress_report(raw, codec, name=name, as_image=True, **params)
            data, extra = report.blob, dict(codec=report.header.codec)
        else:
            restored = api.decompress(raw, **decode_kw)
            data = restored if isinstance(restored, bytes) else imageio.png_bytes(restored)
            if target.suffix.lower() != ".png" and not isinstance(restored, bytes):
                target = target.with_name(imageio.restored_name(target.name))
            if target.exists() and not force:
                if target.read_bytes() == data:
                    return _row(Job(job.source, str(target)), "skipped", t0, n_bytes_in=len(raw), n_bytes_out=len(data))
                raise FileExistsError(f"{target}: exists with other content (use force to overwrite)")
            extra = dict(codec=container.read_header(raw).codec)
        target.parent.mkdir(parents=True, exist_ok=True)
        fileio.write_atomic(str(target), data, force=force)
        return _row(Job(job.source, str(target)), "done", t0, n_bytes_in=len(raw), n_bytes_out=len(data), **extra)
    except (GencodecError, OSError) as e:
        return _row(job, "failed", t0, error=str(e).splitlines()[0] if str(e) else type(e).__name__)


def run(jobs: list[Job], mode: str, codec: str = "auto", params: dict[str, Any] | None = None,
        force: bool = False, decode_kw: dict[str, Any] | None = None, workers: int = 1, client: Any = None,
        on_row: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Every job, serially, in ``workers`` processes, or on a ``distributed.Client``; rows in job order.
    ``on_row(row)`` is called as each job finishes (e.g. to advance a progress bar)."""
    args = (mode, codec, params or {}, force, decode_kw or {})
    rows: list[dict[str, Any] | None] = [None] * len(jobs)
    if client is not None:
        from distributed import as_completed

        futures = client.map(run_job, jobs, *[[a] * len(jobs) for a in args], pure=False, retries=2)
        index = {f.key: i for i, f in enumerate(futures)}
        for f in as_completed(futures):
            rows[index[f.key]] = f.result()
            if on_row:
                on_row(rows[index[f.key]])
    elif workers > 1 and len(jobs) > 1:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(workers) as pool:
            futures = {pool.submit(run_job, j, *args): i for i, j in enumerate(jobs)}
            for f in as_completed(futures):
                rows[futures[f]] = f.result()
                if on_row:
                    on_row(rows[futures[f]])
    else:
        for i, j in enumerate(jobs):
            rows[i] = run_job(j, *args)
            if on_row:
                on_row(rows[i])
    for folder in sorted({os.path.dirname(os.path.abspath(j.target)) for j in jobs if j.target}):
        fileio.remove_stale_temporaries(folder)  # a worker killed mid-write left one behind
    return [r for r in rows if r is not None]


def write_manifest(rows: list[dict[str, Any]], path: str | os.PathLike) -> None:
    """The rows as JSON (a list) or, for a .csv path, CSV; written atomically."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        keys = ["source", "target", "status", "codec", "n_bytes_in", "n_bytes_out", "seconds", "error"]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
        text = buf.getvalue()
    else:
        text = json.dumps(rows, indent=1) + "\n"
    fileio.write_atomic(str(path), text.encode(), force=True)

