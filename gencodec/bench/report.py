"""Benchmark results: totals, rate-distortion summaries, the environment record, and the JSON,
CSV and Markdown renderings of a result document made by :func:`gencodec.bench.runner.run_bench`.

Document layout (JSON)::

    gencodec_bench: 1
    environment:  date, machine, CPU, cores, thread settings, library versions, model ids
    settings:     paths, codecs, jobs (codec + params), workers, threads, files (size, sha256, shape)
    definitions:  what each column means
    rows:         one per file x codec x quality: sizes, rates, ideal bits, PSNR/MS-SSIM, status,
                  cost (timings and memory: the only numbers that differ between runs)
    totals:       one per codec x quality, over the rows with status "ok"
    rd, rd_summary (lossy): curves, bpp needed per PSNR target, BD-rates
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

from . import metrics

DEFINITIONS = {
    "n_bytes_out": "size of the whole .gcx frame gencodec compress writes (header included)",
    "payload_bytes": "the codec's payload inside the frame; header_bytes = n_bytes_out - payload_bytes",
    "bits_per_byte": "8 * n_bytes_out / original file bytes",
    "bits_per_subpixel": "8 * n_bytes_out / (width * height * channels)",
    "bits_per_pixel": "8 * n_bytes_out / (width * height)",
    "ideal_bits": "the model's code length -sum log2 p(symbol) (codecs with a model)",
    "coding_overhead_pct": "100 * (8 * payload_bytes - ideal_bits) / ideal_bits",
    "frame_overhead_pct": "100 * (8 * n_bytes_out - ideal_bits) / ideal_bits",
    "psnr": "10 log10(255^2 / MSE) over all 8-bit samples (RGB) of the decoded file; totals: mean over files",
    "ms_ssim": "pytorch-msssim ms_ssim, data range 255, float64; totals: mean over files",
    "encode_wall_s / decode_wall_s": "time.perf_counter around gencodec compress_report(path) / decompress(frame)",
    "encode_cpu_s / decode_cpu_s": "time.process_time (all threads of the process) around the same calls",
    "peak_rss_mib": "peak resident memory of the process during the call (see environment.memory_method)",
    "rss_growth_mib": "peak during the call minus resident memory before it (totals: max over files)",
    "totals": "sums of bytes and times over the files a codec coded; rates are total bits / total units",
    "rd bpp / psnr": "mean over files of bits per pixel and of PSNR (CompressAI convention)",
    "bd_rate_pct": "Bjontegaard delta rate vs the anchor (cubic fit of log-rate over PSNR); negative = fewer bits",
    "bpp_at_psnr": "bits per pixel needed for a PSNR, interpolating log(bpp) linearly between measured points",
}

COST_KEYS = ("encode_wall_s", "encode_cpu_s", "decode_wall_s", "decode_cpu_s")


# ---------------------------------------------------------------------------------------------
# environment


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--", str(here.parent)],
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def environment(codecs: Sequence[str] = (), memory_method: str = "", started: str | None = None) -> dict[str, Any]:
    """Date, machine, CPU, cores, thread settings, library versions, model ids of ``codecs``.

    ``date`` is when the record is made (the end of a run); ``started``, if given, when it began."""
    import gencodec
    from gencodec.registry import get_codec

    versions = {"python": platform.python_version()}
    for dist in ("torch", "numpy", "pillow", "imagecodecs", "compressai", "constriction", "pytorch-msssim",
                 "zstandard", "brotli", "matplotlib", "safetensors"):
        versions[dist] = _version(dist)
    try:
        import imagecodecs

        for lib in ("jpegxl", "webp", "avif", "jpeg8", "jpeg2k", "zlib"):
            fn = getattr(imagecodecs, f"{lib}_version", None)
            if fn is not None:
                try:
                    name, _, ver = fn().partition(" ")  # e.g. "libjxl 0.11.1"
                    versions[name] = ver or name
                except Exception:  # noqa: BLE001 - a missing native library
                    pass
    except ImportError:
        pass
    threads: dict[str, Any] = {v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    if "torch" in sys.modules:
        threads["torch_num_threads"] = sys.modules["torch"].get_num_threads()
    models = {}
    for c in codecs:
        try:
            mid = get_codec(c).model_id
        except Exception:  # noqa: BLE001
            mid = b""
        if mid:
            models[c] = mid.hex()
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    return dict(
        date=utc_now(),
        started=started,
        machine=dict(platform=platform.platform(), machine=platform.machine(), cpu=_cpu_model(),
                     cores=os.cpu_count(), cores_usable=affinity),
        threads=threads,
        versions=versions,
        gencodec=dict(version=gencodec.__version__, git=_git_commit()),
        models=models,
        memory_method=memory_method,
        command=" ".join(sys.argv),
    )


# ---------------------------------------------------------------------------------------------
# totals and RD


def _extra_params(t: dict[str, Any]) -> dict[str, Any]:
    """A row's or total's parameters besides a lossy quality (which reports show on their own)."""
    return {k: v for k, v in t.get("params", {}).items() if k != "quality"}


def job_label(t: dict[str, Any]) -> str:
    """How a report names the job of a row or total: its codec, with any parameters besides a
    lossy quality (e.g. ``jpeg-xl-lossless (effort=9)``)."""
    extra = _extra_params(t)
    return f"{t['codec']} ({', '.join(f'{k}={v}' for k, v in extra.items())})" if extra else t["codec"]


def totals(rows: Sequence[dict[str, Any]], jobs: Sequence[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One total per (codec, params) job, in job order, over the rows with status "ok"."""
    out = []
    for codec, params in jobs:
        sel = [r for r in rows if r["codec"] == codec and r["params"] == params]
        ok = [r for r in sel if r["status"] == "ok"]
        t: dict[str, Any] = dict(codec=codec, kind=sel[0]["kind"] if sel else None)
        if "quality" in params:
            t["quality"] = params["quality"]
        t["params"] = dict(params)
        t.update(
            n_files=len(ok),
            n_skipped=sum(r["status"] == "skipped" for r in sel),
            n_failed=sum(r["status"] == "failed" for r in sel),
        )
        if not ok:
            out.append(t)
            continue
        n_in = sum(r["n_bytes_in"] for r in ok)
        n_out = sum(r["n_bytes_out"] for r in ok)
        payload = sum(r["payload_bytes"] for r in ok)
        t.update(n_bytes_in=n_in, n_bytes_out=n_out, payload_bytes=payload, header_bytes=n_out - payload,
                 bits_per_byte=metrics.bits_per_byte(n_out, n_in),
                 mean_bits_per_byte=sum(r["bits_per_byte"] for r in ok) / len(ok))
        if all("n_subpixels" in r for r in ok):
            n_sub = sum(r["n_subpixels"] for r in ok)
            n_pix = sum(r["n_pixels"] for r in ok)
            t.update(n_subpixels=n_sub, n_pixels=n_pix, bits_per_subpixel=8 * n_out / n_sub,
                     bits_per_pixel=8 * n_out / n_pix,
                     mean_bits_per_pixel=sum(r["bits_per_pixel"] for r in ok) / len(ok))
        if all("ideal_bits" in r for r in ok):
            ideal = sum(r["ideal_bits"] for r in ok)
            t.update(ideal_bits=ideal, coding_overhead_pct=metrics.overhead_pct(8 * payload, ideal),
                     frame_overhead_pct=metrics.overhead_pct(8 * n_out, ideal))
            if "n_subpixels" in t:
                t["ideal_bits_per_subpixel"] = ideal / t["n_subpixels"]
        if all("psnr" in r for r in ok):
            t["mean_psnr"] = sum(r["psnr"] for r in ok) / len(ok)
            ms = [r.get("ms_ssim") for r in ok]
            t["mean_ms_ssim"] = sum(ms) / len(ms) if all(m is not None for m in ms) else None
        cost = {k: sum(r["cost"][k] for r in ok) for k in COST_KEYS}
        units = t.get("n_subpixels", n_in)  # raw 8-bit samples for images, bytes otherwise
        cost.update(
            encode_mb_per_s=units / 1e6 / cost["encode_wall_s"] if cost["encode_wall_s"] > 0 else None,
            decode_mb_per_s=units / 1e6 / cost["decode_wall_s"] if cost["decode_wall_s"] > 0 else None,
            peak_rss_mib=max(r["cost"]["peak_rss_mib"] for r in ok),
            max_rss_growth_mib=max(r["cost"]["rss_growth_mib"] for r in ok),
        )
        t["cost"] = cost
        out.append(t)
    return out


def rd_curves(tots: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """curve name (the codec, with any parameters besides quality: :func:`job_label`) ->
    [{quality, bpp, psnr, ms_ssim}] sorted by bpp (mean over files)."""
    curves: dict[str, list[dict[str, Any]]] = {}
    for t in tots:
        if "mean_psnr" not in t or t.get("n_files", 0) == 0:
            continue
        curves.setdefault(job_label(t), []).append(
            dict(quality=t.get("quality"), bpp=t["mean_bits_per_pixel"], psnr=t["mean_psnr"], ms_ssim=t.get("mean_ms_ssim"))
        )
    for pts in curves.values():
        pts.sort(key=lambda p: p["bpp"])
    return curves


def load_reference(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Reference RD curves from JSON: one curve ``{"name", "bpp": [...], "psnr": [...]}`` or
    ``{"name", "points": [{"bpp", "psnr"}, ...]}``, or ``{"curves": [curve, ...]}``, or a list.
    CompressAI's result files (``{"name", "results": {"bpp": [...], "psnr-rgb": [...]}}``) work too."""
    from ..errors import UnsupportedInputError

    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise UnsupportedInputError(f"{p}: not a readable JSON reference curve ({e})") from None
    items = doc if isinstance(doc, list) else doc.get("curves", [doc])
    curves = []
    for i, c in enumerate(items):
        src = c.get("results", c)
        if "points" in c:
            bpp = [float(q["bpp"]) for q in c["points"]]
            psnr = [float(q["psnr"]) for q in c["points"]]
        else:
            bpp = [float(v) for v in src.get("bpp", [])]
            psnr = [float(v) for v in src.get("psnr", src.get("psnr-rgb", []))]
        if len(bpp) < 2 or len(bpp) != len(psnr):
            raise UnsupportedInputError(f"{p}: curve {i} needs matching bpp and psnr lists of 2 or more points")
        name = c.get("name") or (p.stem if len(items) == 1 else f"{p.stem}[{i}]")
        curve = dict(name=str(name), bpp=bpp, psnr=psnr, source=c.get("source", str(p)))
        ms = src.get("ms_ssim", src.get("ms-ssim")) if "points" not in c else None
        if ms is not None and len(ms) == len(bpp):
            curve["ms_ssim"] = [float(v) for v in ms]
        curves.append(curve)
    return curves


def rd_summary(curves: dict[str, list[dict[str, Any]]], references: Sequence[dict[str, Any]] = (),
               anchor: str = "jpeg") -> dict[str, Any]:
    """bpp needed for each PSNR target, BD-rate of every curve against ``anchor`` and against
    every reference curve (cubic Bjøntegaard; None where the PSNR ranges do not overlap)."""
    def finite(pts):  # a lossless-equivalent point (PSNR inf) has no place on a log-rate/PSNR fit
        pts = [p for p in pts if math.isfinite(p["psnr"]) and p["bpp"] > 0]
        return [p["bpp"] for p in pts], [p["psnr"] for p in pts]

    all_curves = {c: finite(pts) for c, pts in curves.items()}
    refs = {r["name"]: (list(r["bpp"]), list(r["psnr"])) for r in references}
    out: dict[str, Any] = dict(psnr_targets=list(metrics.PSNR_TARGETS), bpp_at_psnr={}, bd_rate_pct={})
    for name, (b, p) in {**all_curves, **refs}.items():
        out["bpp_at_psnr"][name] = {f"{t:g}": metrics.rate_at_psnr(b, p, t) for t in metrics.PSNR_TARGETS}
    out["bd_method"] = "cubic (VCEG-M33): ln(bpp) as a cubic polynomial of PSNR, integrated over the common PSNR range"
    anchors = ([anchor] if anchor in all_curves else []) + list(refs)
    for a in anchors:
        ab, ap = all_curves.get(a) or refs[a]
        others = {**all_curves, **refs} if a in all_curves else all_curves
        out["bd_rate_pct"][a] = {
            c: (metrics.bd_rate(ab, ap, b, p) if len(b) >= 2 else None)
            for c, (b, p) in others.items() if c != a
        }
    out["references"] = [dict(name=r["name"], source=r.get("source"), bpp=r["bpp"], psnr=r["psnr"],
                              **({"ms_ssim": r["ms_ssim"]} if r.get("ms_ssim") else {})) for r in references]
    return out


# ---------------------------------------------------------------------------------------------
# renderings


def _finite(x):
    """JSON has no inf/nan: PSNR of an identical image becomes the string "inf"."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


def to_json(doc: dict[str, Any]) -> str:
    return json.dumps(_finite(doc), indent=1, sort_keys=False) + "\n"


CSV_FIELDS = [
    "file", "codec", "quality", "params", "status", "n_bytes_in", "n_bytes_out", "payload_bytes", "header_bytes",
    "bits_per_byte", "bits_per_subpixel", "bits_per_pixel", "ideal_bits", "coding_overhead_pct",
    "psnr", "ms_ssim", "verified", *COST_KEYS, "peak_rss_mib", "rss_growth_mib", "reason",
]


def to_csv(doc: dict[str, Any]) -> str:
    """One line per row (file x codec x quality), then one per total (file = "TOTAL")."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()

    def params(t):
        return json.dumps(extra) if (extra := _extra_params(t)) else ""

    for r in doc["rows"]:
        w.writerow({**r, **r.get("cost", {}), "params": params(r)})
    for t in doc["totals"]:
        w.writerow({**t, **t.get("cost", {}), "params": params(t), "file": "TOTAL", "status": f"{t['n_files']} files",
                    "psnr": t.get("mean_psnr"), "ms_ssim": t.get("mean_ms_ssim")})
    return buf.getvalue()


def fmt_number(x, nd=3, unit=""):
    if x is None:
        return "n/a"
    if isinstance(x, str):
        return x
    if isinstance(x, float) and not math.isfinite(x):
        return "∞"
    return f"{x:.{nd}f}{unit}"


def _size(n):
    return f"{n:,}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def markdown_lossless(doc: dict[str, Any]) -> str:
    """Totals per codec, then bits per subpixel (images) / per byte (bytes) per file and codec."""
    tots = [t for t in doc["totals"] if t.get("n_files")]
    images = all("bits_per_subpixel" in t for t in tots) and tots
    rate_key, rate_name = ("bits_per_subpixel", "bits/subpixel") if images else ("bits_per_byte", "bits/byte")
    with_ideal = any("ideal_bits" in t for t in tots)
    head = ["codec", "files", "original bytes", "compressed bytes", rate_name]
    head += ["bits/pixel"] if images else ["mean bits/byte of files"]
    head += ["ideal", "overhead"] if with_ideal else []
    head += ["encode s (all files)", "decode s (all files)", "enc MB/s", "dec MB/s", "enc CPU s", "dec CPU s",
             "peak MiB", "growth MiB"]
    body = []
    for t in sorted(tots, key=lambda t: t[rate_key]):
        c = t["cost"]
        line = [f"`{job_label(t)}`", str(t["n_files"]), _size(t["n_bytes_in"]), _size(t["n_bytes_out"]), fmt_number(t[rate_key])]
        line += [fmt_number(t["bits_per_pixel"])] if images else [fmt_number(t["mean_bits_per_byte"])]
        if with_ideal:
            ideal = t.get("ideal_bits_per_subpixel") if images else (t["ideal_bits"] / t["n_bytes_in"] if "ideal_bits" in t else None)
            line += [fmt_number(ideal), fmt_number(t.get("frame_overhead_pct"), 2, " %")]
        line += [fmt_number(c["encode_wall_s"], 3), fmt_number(c["decode_wall_s"], 3), fmt_number(c["encode_mb_per_s"], 2),
                 fmt_number(c["decode_mb_per_s"], 2), fmt_number(c["encode_cpu_s"], 3), fmt_number(c["decode_cpu_s"], 3), fmt_number(c["peak_rss_mib"], 0),
                 fmt_number(c["max_rss_growth_mib"], 1)]
        body.append(line)
    parts = [markdown_table(head, body)]
    bad = [t for t in doc["totals"] if t.get("n_skipped") or t.get("n_failed")]
    if bad:
        parts.append("\n".join(f"- `{job_label(t)}`: {t['n_skipped']} file(s) skipped, {t['n_failed']} failed" for t in bad))
    codecs = [job_label(t) for t in sorted(tots, key=lambda t: t[rate_key])]
    files = list(dict.fromkeys(r["file"] for r in doc["rows"]))
    per = {(r["file"], job_label(r)): r for r in doc["rows"]}
    body = []
    for f in files:
        line = [Path(f).name]
        for c in codecs:
            r = per.get((f, c))
            line.append(fmt_number(r.get(rate_key)) if r and r["status"] == "ok" else ("—" if not r else r["status"]))
        body.append(line)
    body.append(["**total**"] + [f"**{fmt_number(t[rate_key])}**" for t in sorted(tots, key=lambda t: t[rate_key])])
    parts.append(f"{rate_name} per file:\n\n" + markdown_table(["file"] + [f"`{c}`" for c in codecs], body))
    return "\n\n".join(parts) + "\n"


def markdown_lossy(doc: dict[str, Any]) -> str:
    """RD points per codec, bpp needed per PSNR target, BD-rates."""
    s = doc["rd_summary"]
    parts = []
    head = ["codec", "quality", "bpp", "PSNR dB", "MS-SSIM", "MS-SSIM dB", "encode s/image", "decode s/image", "growth MiB"]
    body = []
    for t in doc["totals"]:
        if not t.get("n_files"):
            continue
        body.append([f"`{job_label(t)}`", str(t.get("quality")), fmt_number(t["mean_bits_per_pixel"], 4), fmt_number(t["mean_psnr"], 2),
                     fmt_number(t.get("mean_ms_ssim"), 5), fmt_number(metrics.ms_ssim_db(t.get("mean_ms_ssim")), 2),
                     fmt_number(t["cost"]["encode_wall_s"] / t["n_files"], 3), fmt_number(t["cost"]["decode_wall_s"] / t["n_files"], 3),
                     fmt_number(t["cost"]["max_rss_growth_mib"], 1)])
    parts.append("Rate–distortion points (means over files):\n\n" + markdown_table(head, body))
    targets = [f"{t:g}" for t in s["psnr_targets"]]
    body = [[f"`{c}`"] + [fmt_number(v.get(t), 3) for t in targets] for c, v in s["bpp_at_psnr"].items()]
    parts.append("Bits per pixel needed for a PSNR (log-rate interpolation; n/a outside the measured range):\n\n"
                 + markdown_table(["codec"] + [f"{t} dB" for t in targets], body))
    for a, vals in s["bd_rate_pct"].items():
        body = [[f"`{c}`", fmt_number(v, 1, " %")] for c, v in sorted(vals.items(), key=lambda kv: (kv[1] is None, kv[1] or 0))]
        parts.append(f"BD-rate against `{a}` (negative: fewer bits for the same PSNR):\n\n" + markdown_table(["codec", "BD-rate"], body))
    return "\n\n".join(parts) + "\n"


def markdown_environment(doc: dict[str, Any]) -> str:
    e, st = doc["environment"], doc["settings"]
    v = {k: x for k, x in e["versions"].items() if x}
    lines = [
        f"- date: {e.get('started') or e['date']} to {e['date']}; gencodec {e['gencodec']['version']} ({e['gencodec'].get('git') or 'no git'})",
        f"- machine: {e['machine']['cpu']}, {e['machine']['cores']} cores ({e['machine']['cores_usable']} usable), {e['machine']['platform']}",
        f"- threads: {', '.join(f'{k}={x}' for k, x in e['threads'].items() if x is not None) or 'defaults'}; "
        f"workers {st['workers']}, threads per worker {st['threads_per_worker'] or 'default'}",
        "- versions: " + ", ".join(f"{k} {x}" for k, x in v.items()),
        f"- memory: {e['memory_method']}",
    ]
    if e.get("models"):
        lines.append("- models: " + ", ".join(f"`{c}` {m[:16]}" for c, m in e["models"].items()))
    return "\n".join(lines) + "\n"


def to_markdown(doc: dict[str, Any], title: str | None = None) -> str:
    st = doc["settings"]
    parts = [f"## {title}\n" if title else ""]
    parts.append(f"{len(st['files'])} files from {', '.join(st['paths'])}; codecs: "
                 + ", ".join(f"`{c}`" for c in st["codecs"]) + ". Sizes are whole .gcx frames (header included).\n")
    parts.append(markdown_lossy(doc) if st["lossy"] else markdown_lossless(doc))
    parts.append(markdown_environment(doc))
    return "\n".join(p for p in parts if p)
