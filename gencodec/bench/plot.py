"""Benchmark plots with matplotlib's Agg canvas (no display, no pyplot global state).

``plot(doc)`` returns a :class:`matplotlib.figure.Figure`: rate-distortion curves for a lossy run
(PSNR against bits per pixel, one curve per codec, reference curves dashed; MS-SSIM in dB beside
it when measured), or for a lossless run a bar chart of bits per subpixel (images) or per byte
with the encode and decode speed of each codec beside it. ``save(doc, path)`` writes a PNG.
"""

from __future__ import annotations

import os
from typing import Any

from . import metrics, report


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plot_rd(doc: dict[str, Any]):
    """PSNR (dB) against bpp: one line per codec and per reference curve."""
    curves = doc["rd"]
    refs = doc.get("rd_summary", {}).get("references", [])
    has_ms = any(p.get("ms_ssim") is not None for pts in curves.values() for p in pts)
    fig = _figure(12 if has_ms else 7, 5)
    ax = fig.add_subplot(1, 2 if has_ms else 1, 1)
    for codec, pts in curves.items():
        ax.plot([p["bpp"] for p in pts], [p["psnr"] for p in pts], marker="o", ms=3.5, label=codec)
    for r in refs:
        pairs = sorted(zip(r["bpp"], r["psnr"]))
        ax.plot([b for b, _ in pairs], [p for _, p in pairs], ls="--", marker="x", ms=4, label=f"{r['name']} (reference)")
    ax.set_xlabel("bits per pixel (mean over images)")
    ax.set_ylabel("PSNR RGB (dB, mean over images)")
    ax.set_title("Rate–distortion: PSNR")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    if has_ms:
        ax2 = fig.add_subplot(1, 2, 2)
        for codec, pts in curves.items():
            pts = [p for p in pts if p.get("ms_ssim") is not None]
            ax2.plot([p["bpp"] for p in pts], [metrics.ms_ssim_db(p["ms_ssim"]) for p in pts], marker="o", ms=3.5, label=codec)
        for r in refs:
            if r.get("ms_ssim"):
                pairs = sorted(zip(r["bpp"], r["ms_ssim"]))
                ax2.plot([b for b, _ in pairs], [metrics.ms_ssim_db(m) for _, m in pairs], ls="--", marker="x", ms=4,
                         label=f"{r['name']} (reference)")
        ax2.set_xlabel("bits per pixel (mean over images)")
        ax2.set_ylabel("MS-SSIM (dB) = −10·log10(1 − MS-SSIM)")
        ax2.set_title("Rate–distortion: MS-SSIM")
        ax2.grid(True, alpha=0.3)
        ax2.legend(fontsize=8)
    files = doc["settings"]["files"]
    fig.suptitle(f"{len(files)} images; sizes are whole .gcx frames", fontsize=9)
    return fig


def plot_lossless(doc: dict[str, Any]):
    """Bars of bits per subpixel (or per byte) per codec, and encode/decode speed in MB/s."""
    tots = [t for t in doc["totals"] if t.get("n_files")]
    images = bool(tots) and all("bits_per_subpixel" in t for t in tots)
    key, label = ("bits_per_subpixel", "bits per subpixel") if images else ("bits_per_byte", "bits per byte")
    tots.sort(key=lambda t: t[key])
    names = [report.job_label(t) for t in tots]
    fig = _figure(max(8, 1.2 * len(names) + 4), 4.5)
    ax = fig.add_subplot(1, 2, 1)
    bars = ax.bar(names, [t[key] for t in tots], color="tab:blue")
    ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_ylabel(label + " (whole .gcx frames)")
    ax.set_xlabel("codec")
    ax.set_title(f"Compressed size: {label}")
    ax.tick_params(axis="x", rotation=30)
    ax2 = fig.add_subplot(1, 2, 2)
    import numpy as np

    x = np.arange(len(names))
    enc = [t["cost"]["encode_mb_per_s"] or 0 for t in tots]
    dec = [t["cost"]["decode_mb_per_s"] or 0 for t in tots]
    ax2.bar(x - 0.2, enc, 0.4, label="encode")
    ax2.bar(x + 0.2, dec, 0.4, label="decode")
    ax2.set_xticks(x, names, rotation=30)
    ax2.set_yscale("log")
    ax2.set_ylabel("MB/s of " + ("raw 8-bit samples" if images else "original bytes") + " (wall time)")
    ax2.set_xlabel("codec")
    ax2.set_title("Speed")
    ax2.legend(fontsize=8)
    ax2.grid(True, axis="y", alpha=0.3)
    return fig


def plot(doc: dict[str, Any]):
    """The figure for a result document: RD curves (lossy) or the size/speed bar chart."""
    return plot_rd(doc) if doc["settings"]["lossy"] else plot_lossless(doc)


def save(doc: dict[str, Any], path: str | os.PathLike):
    """Draw :func:`plot` and write it as a PNG; returns the figure."""
    fig = plot(doc)
    fig.savefig(path, format="png")
    return fig
