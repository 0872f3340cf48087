"""Formatting of what the CLI prints: one line per file, or JSON objects (one per line)."""

from __future__ import annotations

import json
import sys
from typing import Any


def compress_fields(report, source: str, target: str) -> dict[str, Any]:
    """``CompressReport.to_dict()`` plus paths and, when the codec reports ``ideal_bits``,
    the model's ideal size in bytes and the file's overhead over it in percent."""
    d: dict[str, Any] = {"input": source, "output": target}
    d.update(report.to_dict())
    ideal_bits = report.stats.get("ideal_bits")
    if ideal_bits:
        d["ideal_n_bytes"] = ideal_bits / 8
        d["overhead_percent"] = 100.0 * (8 * report.n_bytes_out - ideal_bits) / ideal_bits
    return d


def compress_line(d: dict[str, Any]) -> str:
    """``a.png -> a.png.gcx: 557,596 -> 412,345 bytes, 4.195 bits/subpixel, codec png, 0.41 s``."""
    if d.get("psnr") is not None:  # a lossy codec that measured what it restores
        rate = f"{d['bits_per_pixel']:.3f} bits/pixel, PSNR {d['psnr']:.2f} dB, "
    elif d.get("bits_per_subpixel") is not None:
        rate = f"{d['bits_per_subpixel']:.3f} bits/subpixel, "
    elif d.get("n_bytes_in"):
        rate = f"{d['bits_per_byte']:.3f} bits/byte, "
    else:  # the empty input: no rate to speak of
        rate = ""
    line = (
        f"{d['input']} -> {d['output']}: {d['n_bytes_in']:,} -> {d['n_bytes_out']:,} bytes, "
        f"{rate}codec {d['codec']}, {d['seconds']:.2f} s"
    )
    if "ideal_n_bytes" in d:
        line += f"; model ideal {d['ideal_n_bytes']:,.0f} bytes, overhead {d['overhead_percent']:+.2f}%"
    return line


def decompress_line(d: dict[str, Any]) -> str:
    return (
        f"{d['input']} -> {d['output']}: {d['n_bytes_in']:,} -> {d['n_bytes_out']:,} bytes, "
        f"codec {d['codec']}, {d['seconds']:.2f} s"
    )


def info_lines(source: str, d: dict[str, Any]) -> list[str]:
    """The header of one frame, one field per line."""
    rows: list[tuple[str, str]] = [("file", source), ("codec", d["codec"]), ("kind", d["kind"])]
    rows.append(("name", d["name"] or "(none)"))
    if d["kind"] == "image":
        rows.append(("image", f"{d['width']}x{d['height']} {d['mode']}, {d['bit_depth']} bits per sample"))
    else:
        rows.append(("length", f"{d['length']:,} bytes"))
    rows.append(("params", json.dumps(d["params"], sort_keys=True) if d["params"] else "(none)"))
    where = {"shipped": " (the shipped model)", "archived": " (an earlier shipped model, in the archive)",
             "archive-package": " (an earlier shipped model, kept in gencodec-archive, which is not installed: "
                                "pip install ./archive in a clone of gencodec)",
             "unknown": " (not a model gencodec shipped: decode with --model PATH)"}.get(d.get("model") or "", "")
    rows.append(("model id", (d["model_id"] + where) if d["model_id"] else "(none)"))
    rows.append(("checksum", f"blake2b-128 {d['checksum']}"))
    overhead = d["n_bytes"] - d["payload_bytes"]
    rows.append(("frame", f"{d['n_bytes']:,} bytes (payload {d['payload_bytes']:,}, header and framing {overhead:,})"))
    if d.get("bits_per_subpixel") is not None:
        rows.append(("rate", f"{d['bits_per_subpixel']:.3f} bits/subpixel, {d['bits_per_pixel']:.3f} bits/pixel"))
    elif d.get("bits_per_byte") is not None:
        rows.append(("rate", f"{d['bits_per_byte']:.3f} bits/byte"))
    width = max(len(k) for k, _ in rows) + 1
    return [f"{k + ':':<{width}} {v}" for k, v in rows]


def codec_lines(codecs: list[dict[str, Any]], verbose: bool = False) -> list[str]:
    """A table of codecs: name, kind, availability (with the reason when unavailable), description,
    then the parameters (``-p NAME=VALUE``) with their ranges and defaults; ``verbose`` adds what
    ``-1`` ... ``-9`` mean for each codec that has levels."""
    w_name = max(len(c["name"]) for c in codecs)
    w_kind = max(len(c["kind"]) for c in codecs)
    pad = " " * (w_name + w_kind + 4)
    lines = [f"{'NAME':<{w_name}}  {'KIND':<{w_kind}}  {'AVAILABLE':<9}  DESCRIPTION"]
    for c in codecs:
        line = f"{c['name']:<{w_name}}  {c['kind']:<{w_kind}}  {'yes' if c['available'] else 'no':<9}  {c['description']}"
        if not c["available"]:
            line += f" (unavailable: {c['reason']})"
        lines.append(line)
        if c.get("params"):
            lines.append(f"{pad}{'':<9}  params: " + "; ".join(p["text"] for p in c["params"]))
        if verbose and c.get("levels"):
            levels = ", ".join(f"-{k} " + " ".join(f"{n}={str(v).lower()}" for n, v in p.items())
                               for k, p in c["levels"].items())
            lines.append(f"{pad}{'':<9}  levels: {levels}")
    return lines


def progress_enabled(n_files: int, quiet: bool) -> bool:
    """Progress bars only for several files, on a terminal, without -q."""
    return n_files > 1 and not quiet and sys.stderr.isatty()
