"""The numbers the README and docs/MODELS.md quote from a lossy bench's JSON, in one place.

    python benchmarks/lossy_summary.py benchmarks/results/kodak_lossy.json
    python benchmarks/lossy_summary.py benchmarks/results/hyperprior_heldout.json --upto 6

For every curve in the file (a codec, or a codec with parameters such as ``hyperprior effort=1``):
its BD-rate against JPEG over its whole curve and, for curves whose qualities are a learned ladder,
over qualities 1..UPTO (default 6: CompressAI's lambdas, the range its published curves cover);
against each reference curve the file holds; and the mean encode and decode time of one file at
one quality, over all its points (wall seconds, the bench's own timing: compare them only with
codecs of the same run, on the machine the file's ``environment`` names).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gencodec.bench import metrics, report


def summary(doc: dict, upto: int) -> list[str]:
    curves = report.rd_curves(doc["totals"])
    summ = doc.get("rd_summary") or report.rd_summary(curves)
    refs = {r["name"]: r for r in summ.get("references", [])}
    jpeg = curves.get("jpeg")
    env = doc.get("environment", {})
    machine = env.get("machine", {})
    lines = [f"{', '.join(doc['settings'].get('paths', []))}: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, "
             f"{env.get('date', '?')}, models {env.get('models', {})}"]

    def finite(pts):
        pts = [p for p in pts if p["psnr"] not in (None, "inf") and p["psnr"] == p["psnr"] and p["bpp"] > 0]
        return [p["bpp"] for p in pts], [float(p["psnr"]) for p in pts]

    timing: dict[str, list[tuple[float, float]]] = {}
    for t in doc["totals"]:
        n = t.get("n_files") or 0
        if n and "cost" in t:
            timing.setdefault(report.job_label(t), []).append((t["cost"]["encode_wall_s"] / n,
                                                               t["cost"]["decode_wall_s"] / n))
    for name, pts in curves.items():
        parts = []
        if jpeg and name != "jpeg":
            b, p = finite(pts)
            parts.append(f"BD-rate vs JPEG {metrics.bd_rate(*finite(jpeg), b, p):+.1f} %")
            ladder = [q for q in pts if isinstance(q.get("quality"), (int, float)) and 1 <= q["quality"] <= upto]
            if name.startswith("hyperprior") and 2 <= len(ladder) < len(pts):
                parts.append(f"(1-{upto}: {metrics.bd_rate(*finite(jpeg), *finite(ladder)):+.1f} %)")
            for ref, r in refs.items():
                parts.append(f"vs {ref.split(',')[0]} {metrics.bd_rate(r['bpp'], r['psnr'], b, p):+.1f} %")
        if name in timing:
            enc = sum(e for e, _ in timing[name]) / len(timing[name])
            dec = sum(d for _, d in timing[name]) / len(timing[name])
            parts.append(f"encode {enc:.3f} s, decode {dec:.3f} s a file")
        lines.append(f"{name:>24}: " + "; ".join(parts))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, help="a lossy bench's JSON (gencodec bench --lossy --json, or run.py's)")
    ap.add_argument("--upto", type=int, default=6, help="the learned ladder's last quality for the partial BD-rate")
    args = ap.parse_args()
    print("\n".join(summary(json.loads(args.results.read_text()), args.upto)))


if __name__ == "__main__":
    main()
