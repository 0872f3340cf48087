"""Corpus runner: every codec on every file, every round trip verified, sizes, times and memory.

``run_bench(paths, ...)`` returns one JSON-ready document (see :mod:`gencodec.bench.report` for
the layout). Each measurement goes through the one-shot API exactly as ``gencodec compress``
does (``compress_report(path, codec, **params)``), so a row's ``n_bytes_out`` is the size of the
.gcx file that command writes; decoding is ``gencodec.decompress(frame)``.

Costs (``cost`` in rows and totals; the only numbers that differ between runs):
* wall time (``time.perf_counter``) and CPU time of the whole process, all threads
  (``time.process_time``) of the encode call (reading and parsing the input file included) and of
  the decode call (checksum verification included). Each process first warms every codec up on a
  tiny input, so one-time imports and model loading are not charged to the first file.
* peak resident memory (MiB) during encode and during decode: Linux's ``VmHWM`` after resetting
  it through ``/proc/self/clear_refs`` right before each call, so it covers native allocations
  (libjxl, torch) as well as Python's; ``rss_before_mib`` is the RSS before the call (Python,
  imports, loaded models) and ``rss_growth_mib`` the peak minus that. Where the reset is not
  possible the method falls back to ``ru_maxrss`` (the process's lifetime peak) and says so.

Processes: with ``workers >= 1`` (the default, 1) every codec runs in its own fresh pool of
``workers`` "spawn" processes, files in parallel, so one codec's imports and memory (torch, a
model) never weigh on another's figures; a lossy run's processes also hold torch for MS-SSIM,
loaded before the first measurement. ``workers=0`` runs everything in the calling process.
Every number except ``cost`` is the same whatever the number of workers (rows are ordered by
file, then codec, then quality).
"""

from __future__ import annotations

import hashlib
import os
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Iterable, Sequence

from .. import imageio
from ..errors import CodecUnavailableError, UnknownCodecError, UnsupportedInputError
from ..registry import entries, get_codec, get_entry
from . import metrics

#: Quality levels swept by default, per lossy codec (chosen to span about 26-40 dB PSNR on
#: Kodak). A codec class may instead define ``bench_qualities`` (a sequence of quality values).
DEFAULT_QUALITIES: dict[str, tuple[Any, ...]] = {
    "jpeg": (8, 15, 25, 40, 55, 70, 82, 90, 95),
    "webp": (0, 5, 15, 30, 50, 70, 82, 90, 95),
    "avif": (10, 20, 30, 40, 50, 60, 70, 80, 88),
    "jpeg-xl": (10, 20, 30, 45, 60, 72, 82, 90, 94),
}
#: Files a folder never expands to: corpus manifests and hidden files.
SKIPPED_NAMES = {"manifest.json"}
#: The anchor of BD-rate figures when it is among the measured codecs.
BD_ANCHOR = "jpeg"


# ---------------------------------------------------------------------------------------------
# inputs


def expand_paths(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files named and the files in folders named (sorted, not recursive; no hidden files,
    ``manifest.json`` or .gcx frames). Raises UnsupportedInputError for a path that does not exist."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(
                f for f in sorted(p.iterdir())
                if f.is_file() and not f.name.startswith(".") and f.name not in SKIPPED_NAMES
                and f.suffix.lower() != ".gcx"
            )
        elif p.is_file():
            out.append(p)
        else:
            raise UnsupportedInputError(f"{p}: no such file or folder")
    if not out:
        raise UnsupportedInputError("no files to benchmark")
    return out


def describe_file(path: Path) -> dict[str, Any]:
    """Name, size, sha256 and, for lossless image files coded as pixels, geometry and mode."""
    raw = path.read_bytes()
    d: dict[str, Any] = dict(file=path.as_posix(), n_bytes=len(raw), sha256=hashlib.sha256(raw).hexdigest())
    img = imageio.try_open_pixels(raw)
    if img is None:
        d["kind"] = "bytes"
    else:
        d.update(kind="image", width=img.width, height=img.height, mode=img.mode, channels=len(img.getbands()))
    return d


# ---------------------------------------------------------------------------------------------
# codec selection


def _codec_available(name: str) -> str | None:
    try:
        return get_codec(name).unavailable_reason()
    except ImportError as e:
        return f"cannot import: {e}"


def default_codecs(files: Sequence[dict[str, Any]], lossy: bool) -> list[str]:
    """Every available registered codec of the kind the files call for: lossy image codecs with
    ``lossy``; else lossless image codecs if any file is an image, byte codecs if any is not."""
    kinds = {"lossy-image"} if lossy else set()
    if not lossy:
        if any(f["kind"] == "image" for f in files):
            kinds.add("lossless-image")
        if any(f["kind"] == "bytes" for f in files):
            kinds.add("bytes")
    return [e.name for e in entries() if e.kind in kinds and _codec_available(e.name) is None]


def quality_levels(codec: str, qualities: dict[str, Sequence[Any]] | None) -> list[Any]:
    """The quality values swept for a lossy codec: ``qualities[codec]``, else ``qualities["*"]``,
    else the codec class's ``bench_qualities``, else :data:`DEFAULT_QUALITIES`."""
    q = qualities or {}
    if codec in q:
        return list(q[codec])
    if "*" in q:
        return list(q["*"])
    own = getattr(get_codec(codec), "bench_qualities", None)
    if own:
        return list(own)
    if codec in DEFAULT_QUALITIES:
        return list(DEFAULT_QUALITIES[codec])
    raise UnsupportedInputError(f"no default quality levels for codec {codec!r}: give --quality {codec}=Q1,Q2,...")


def plan_jobs(codecs: Sequence[str], lossy: bool, qualities: dict[str, Sequence[Any]] | None,
              params: dict[str, Sequence[dict[str, Any]]] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """(codec, params) pairs in report order. ``params``: extra parameter sets, each one more job
    beside the codec's defaults (e.g. ``{"jpeg-xl-lossless": [{"effort": 9}]}``); for a lossy codec,
    one more sweep of its qualities with those parameters (e.g. ``{"hyperprior": [{"effort": 1}]}``:
    its own RD curve, named ``hyperprior (effort=1)``)."""
    params = params or {}
    unused = set(params) - set(codecs)
    if unused:
        raise UnsupportedInputError(f"parameters given for codec(s) not in this run: {', '.join(sorted(unused))}")
    jobs: list[tuple[str, dict[str, Any]]] = []
    for c in codecs:
        kind = get_entry(c).kind
        if lossy and kind == "lossy-image":
            levels = quality_levels(c, qualities)
            jobs.extend((c, {"quality": q}) for q in levels)
            for p in params.get(c, ()):
                if "quality" in p:
                    raise UnsupportedInputError(f"codec {c!r}: its qualities come from --quality, not --param")
                if p:
                    jobs.extend((c, {"quality": q, **p}) for q in levels)
        elif kind == "lossy-image":
            raise UnsupportedInputError(f"codec {c!r} is lossy: add --lossy")
        else:
            jobs.append((c, {}))
            jobs.extend((c, dict(p)) for p in params.get(c, ()) if p)
    return jobs


# ---------------------------------------------------------------------------------------------
# memory


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _malloc_trim() -> None:
    """glibc's malloc_trim(0): without it, memory freed by an earlier call stays resident and the
    next call's growth reads as zero. A no-op where glibc is absent."""
    global _LIBC
    if _LIBC is None:
        try:
            import ctypes

            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim  # noqa: B018 - AttributeError if this libc has none
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


_LIBC = None


class PeakRSS:
    """Peak resident set size of this process over an interval, in MiB."""

    def __init__(self) -> None:
        self.resettable = self._reset()
        self.method = (
            "VmHWM after malloc_trim(0) and a reset via /proc/self/clear_refs (per call, native allocations included)"
            if self.resettable else "ru_maxrss (lifetime peak of the process; upper bound)"
        )

    @staticmethod
    def _reset() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            return _status_kib("VmHWM") is not None
        except OSError:
            return False

    def start(self) -> float:
        """Hand freed heap pages back to the OS, reset the peak; return the current RSS in MiB."""
        _malloc_trim()
        if self.resettable:
            self._reset()
        rss = _status_kib("VmRSS")
        return (rss if rss is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024

    def peak(self) -> float:
        if self.resettable:
            return _status_kib("VmHWM") / 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------------------------
# measurement


def _tiny(kind: str) -> Any:
    """A tiny input every codec of this kind takes."""
    if kind == "bytes":
        return b"gencodec warm-up " * 8
    from PIL import Image

    return Image.new("RGB", (16, 16), (90, 120, 150))


def _warm_up(codec: str, params: dict[str, Any], kind: str) -> None:
    """Encode and decode a tiny input once so that imports and model loading are not timed."""
    from ..api import compress, decompress

    try:
        decompress(compress(_tiny(kind), codec, **params))
    except Exception:  # noqa: BLE001 - a warm-up failure shows up again, and is reported, on the real file
        pass


def check_params(codec: str, params: dict[str, Any]) -> None:
    """Refuse, before any file runs, a parameter set the codec rejects (rather than skipping every file)."""
    from ..api import compress

    try:
        compress(_tiny(get_entry(codec).kind), codec, **params)
    except UnsupportedInputError as e:
        raise UnsupportedInputError(f"{codec} with {params}: {e}") from None


def _load_original(path: Path):
    raw = path.read_bytes()
    return imageio.try_open_pixels(raw), raw


def measure(path: Path, finfo: dict[str, Any], codec: str, params: dict[str, Any], probe: PeakRSS,
            want_ms_ssim: bool = True, original: Any = None) -> dict[str, Any]:
    """One codec on one file: sizes, verified round trip, distortion (lossy), costs."""
    from ..api import compress_report, decompress

    kind = get_entry(codec).kind
    row: dict[str, Any] = dict(file=finfo["file"], codec=codec, kind=kind)
    if "quality" in params:
        row["quality"] = params["quality"]
    row["params"] = dict(params)
    if kind != "bytes" and finfo["kind"] != "image":
        row.update(status="skipped", reason="not a lossless image file (PNG, PPM/PGM, BMP, TIFF)")
        return row
    try:
        rss0 = probe.start()
        w0, c0 = time.perf_counter(), time.process_time()
        rep = compress_report(path, codec, **params)
        enc_wall, enc_cpu = time.perf_counter() - w0, time.process_time() - c0
        enc_peak = probe.peak()
    except (UnsupportedInputError, CodecUnavailableError) as e:
        row.update(status="skipped", reason=str(e))
        return row
    except Exception as e:  # noqa: BLE001 - reported in the row; the run goes on
        row.update(status="failed", reason=f"encode: {type(e).__name__}: {e}")
        return row
    try:
        rss1 = probe.start()
        w0, c0 = time.perf_counter(), time.process_time()
        out = decompress(rep.blob)
        dec_wall, dec_cpu = time.perf_counter() - w0, time.process_time() - c0
        dec_peak = probe.peak()
    except Exception as e:  # noqa: BLE001
        row.update(status="failed", reason=f"decode: {type(e).__name__}: {e}")
        return row

    n_out, n_payload = len(rep.blob), rep.payload_bytes
    row.update(
        status="ok",
        n_bytes_in=finfo["n_bytes"],
        n_bytes_out=n_out,
        payload_bytes=n_payload,
        header_bytes=n_out - n_payload,
        bits_per_byte=metrics.bits_per_byte(n_out, finfo["n_bytes"]),
    )
    if finfo["kind"] == "image" and kind != "bytes":
        w, h, ch = finfo["width"], finfo["height"], finfo["channels"]
        row.update(
            n_subpixels=w * h * ch, n_pixels=w * h,
            bits_per_subpixel=metrics.bits_per_subpixel(n_out, w, h, ch),
            bits_per_pixel=metrics.bits_per_pixel(n_out, w, h),
        )
    ideal = rep.stats.get("ideal_bits")
    if ideal:
        row.update(
            ideal_bits=float(ideal),
            coding_overhead_pct=metrics.overhead_pct(8 * n_payload, ideal),
            frame_overhead_pct=metrics.overhead_pct(8 * n_out, ideal),
        )
    extra = {k: v for k, v in rep.stats.items() if k != "ideal_bits" and isinstance(v, (int, float, str, bool))}
    if extra:
        row["codec_stats"] = extra

    # verification, independent of the frame's own checksum
    if kind == "bytes":
        raw = original[1] if original is not None else path.read_bytes()
        ok = out == raw
        row["verified"] = "identical bytes" if ok else "MISMATCH"
    else:
        img = original[0] if original is not None else _load_original(path)[0]
        if kind == "lossless-image":
            ok = out.mode == img.mode and out.size == img.size and imageio.pixel_digest(out) == imageio.pixel_digest(img)
            row["verified"] = "identical pixels" if ok else "MISMATCH"
        else:
            a, b = metrics.comparable_pair(img, out)
            row["psnr"] = metrics.psnr(a, b)
            row["ms_ssim"] = metrics.ms_ssim(a, b) if want_ms_ssim else None
            ok = True
            row["verified"] = "decoded; PSNR measured"
    if not ok:
        row["status"] = "failed"
        row["reason"] = "round trip does not restore the original"
    row["cost"] = dict(
        encode_wall_s=enc_wall, encode_cpu_s=enc_cpu, decode_wall_s=dec_wall, decode_cpu_s=dec_cpu,
        encode_peak_rss_mib=enc_peak, decode_peak_rss_mib=dec_peak,
        peak_rss_mib=max(enc_peak, dec_peak), rss_before_mib=min(rss0, rss1),
        rss_growth_mib=max(enc_peak - rss0, dec_peak - rss1),
    )
    return row


def run_file(path_str: str, finfo: dict[str, Any], jobs: Sequence[tuple[str, dict[str, Any]]],
             want_ms_ssim: bool = True, progress=None) -> list[dict[str, Any]]:
    """Every (codec, params) job on one file, warm-ups first (per process, once per codec)."""
    path = Path(path_str)
    probe = _probe()
    original = _load_original(path)
    if want_ms_ssim and any(get_entry(c).kind == "lossy-image" for c, _ in jobs):
        import pytorch_msssim  # noqa: F401 - loaded before the first measurement, so every file has the same baseline
    rows = []
    for codec, params in jobs:
        key = (codec, tuple(sorted(params.items())))
        if key not in _WARM:
            _warm_up(codec, params, get_entry(codec).kind)
            _WARM.add(key)
        rows.append(measure(path, finfo, codec, params, probe, want_ms_ssim, original))
        if progress is not None:
            progress(1)
    return rows


_WARM: set = set()
_PROBE: list[PeakRSS] = []


def _probe() -> PeakRSS:
    if not _PROBE:
        _PROBE.append(PeakRSS())
    return _PROBE[0]


def _worker_init(threads: int | None) -> None:
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(threads)


# ---------------------------------------------------------------------------------------------
# the run


def run_bench(
    paths: Iterable[str | os.PathLike],
    codecs: Sequence[str] | None = None,
    *,
    lossy: bool = False,
    qualities: dict[str, Sequence[Any]] | None = None,
    params: dict[str, Sequence[dict[str, Any]]] | None = None,
    workers: int = 1,
    threads: int | None = None,
    references: Sequence[dict[str, Any]] = (),
    ms_ssim: bool = True,
    progress: bool | None = None,
    client: Any = None,
) -> dict[str, Any]:
    """Benchmark ``codecs`` (default: every available codec of the relevant kind) on the files.

    qualities: lossy quality levels, per codec name or ``"*"`` for all (default: the codec's own
    sweep). params: extra parameter sets of lossless codecs, one job each (:func:`plan_jobs`). workers: parallel processes over files, in a fresh pool per codec (0: run in this
    process). threads: OMP/MKL threads per worker process (default: cores // workers when
    workers > 1, else the process's own setting). references:
    published RD curves (see :func:`gencodec.bench.report.load_reference`). progress: a tqdm bar
    on stderr (None: only when stderr is a terminal). client: a ``distributed.Client``: every
    (codec, file) runs as a task on that cluster (the files on storage its workers see; timings
    then come from the workers' machines, recorded as such in ``settings``).

    Returns the result document: ``environment``, ``settings``, ``definitions``, ``rows``,
    ``totals`` and, for lossy runs, ``rd`` and ``rd_summary``.
    """
    from tqdm import tqdm

    from . import report

    started = report.utc_now()
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    files = [describe_file(p) for p in expand_paths(paths)]
    if codecs:
        for c in codecs:
            get_entry(c)  # UnknownCodecError with the list of names
    codec_list = list(codecs) if codecs else default_codecs(files, lossy)
    left_out: dict[str, str] = {}
    if lossy and not codecs:  # a default lossy codec without a known sweep is left out, not fatal
        for c in list(codec_list):
            try:
                quality_levels(c, qualities)
            except UnsupportedInputError as e:
                left_out[c] = str(e)
                codec_list.remove(c)
    if not codec_list:
        raise UnknownCodecError("no available codec of the kind these files call for")
    params = dict(params or {})
    for c in params:
        get_entry(c)  # a misspelt name fails here, not as "not in this run"
    if not codecs:  # a default codec left out here takes its extra jobs with it
        for c in set(params) - set(codec_list):
            left_out.setdefault(c, "not among the codecs available for these files")
            del params[c]
    jobs = plan_jobs(codec_list, lossy, qualities, params)
    for c, p in params.items():
        for one in p:
            check_params(c, one)
    if workers > 1 and threads is None:
        threads = max(1, (os.cpu_count() or 1) // workers)
    settings = dict(
        paths=[str(p) for p in paths],
        codecs=codec_list, lossy=lossy,
        jobs=[dict(codec=c, params=p) for c, p in jobs],
        left_out=left_out,
        workers=workers, threads_per_worker=threads, ms_ssim=ms_ssim,
        cluster=getattr(getattr(client, "scheduler", None), "address", None) if client is not None else None,
        references=[r.get("name") for r in references],
        files=files,
    )
    if workers <= 0 and threads:
        _worker_init(threads)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)
    n_total = len(files) * len(jobs)
    bar = tqdm(total=n_total, desc="bench", unit="run", file=sys.stderr, disable=None if progress is None else not progress)
    results: dict[tuple[int, str], list[dict[str, Any]]] = {}
    if client is not None:  # a Dask cluster: every (codec, file) a task that reads its own file
        executor = client.get_executor(pure=False)
        for c in codec_list:
            cjobs = [(name, p) for name, p in jobs if name == c]
            bar.set_postfix_str(c)
            futs = {executor.submit(run_file, f["file"], f, cjobs, ms_ssim): i for i, f in enumerate(files)}
            for fut in as_completed(futs):
                results[(futs[fut], c)] = fut.result()
                bar.update(len(cjobs))
    elif workers <= 0:  # in this process: no isolation between codecs (tests, debugging)
        for i, f in enumerate(files):
            bar.set_postfix_str(Path(f["file"]).name)
            rows_i = run_file(f["file"], f, jobs, ms_ssim, progress=bar.update)
            for c in codec_list:
                results[(i, c)] = [r for r in rows_i if r["codec"] == c]
    else:
        import multiprocessing as mp

        # One fresh pool per codec, so that a codec's memory and imports (torch, say) never
        # weigh on another codec's measurements; within it, files run in parallel.
        for c in codec_list:
            cjobs = [(name, p) for name, p in jobs if name == c]
            bar.set_postfix_str(c)
            with ProcessPoolExecutor(max_workers=min(workers, len(files)), mp_context=mp.get_context("spawn"),
                                     initializer=_worker_init, initargs=(threads,)) as pool:
                futs = {pool.submit(run_file, f["file"], f, cjobs, ms_ssim): i for i, f in enumerate(files)}
                for fut in as_completed(futs):
                    results[(futs[fut], c)] = fut.result()
                    bar.update(len(cjobs))
    bar.close()
    rows = [r for i in range(len(files)) for c in codec_list for r in results[(i, c)]]
    doc = dict(
        gencodec_bench=1,
        environment=report.environment(codec_list, memory_method=PeakRSS().method, started=started),
        settings=settings,
        definitions=report.DEFINITIONS,
        rows=rows,
    )
    doc["totals"] = report.totals(rows, jobs)
    if lossy:
        doc["rd"] = report.rd_curves(doc["totals"])
        doc["rd_summary"] = report.rd_summary(doc["rd"], references)
    return doc
