"""Regenerate docs/BENCHMARKS.md: Kodak lossless, Kodak lossy (RD plot), Canterbury.

    python benchmarks/run.py all --readme        # every section, the Markdown, README's headline (minutes)
    python benchmarks/run.py kodak-lossless      # one section -> benchmarks/results/kodak_lossless.json
    python benchmarks/run.py markdown            # docs/BENCHMARKS.md from the JSON results present

Options: --workers N (files in parallel processes; the numbers other than timings do not change),
--codec NAME (repeatable; default: every available codec of the section's kind), --out DIR for the
JSON/CSV results (default benchmarks/results), --docs DIR for the Markdown and plots (default docs).

Each section is exactly ``gencodec bench`` on a shipped corpus; the JSON records the date, machine,
CPU, thread settings and library and model versions, and the Markdown repeats them per section.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCES = sorted((ROOT / "benchmarks" / "references").glob("*.json"))

# extra jobs per section: JPEG XL lossless at its slowest effort too (the default, 7, is the one `auto`
# uses); hyperprior's whole ladder again with its latents refined at encode (effort 1: its own curve)
EXTRA_PARAMS = {"kodak-lossless": {"jpeg-xl-lossless": [{"effort": 9}]},
                "kodak-lossy": {"hyperprior": [{"effort": 1}]}}

SECTIONS = {
    # name: (title, corpus, lossy, plot file name)
    "kodak-lossless": ("Kodak, lossless image codecs", "corpora/kodak", False, "kodak_lossless.png"),
    "kodak-lossy": ("Kodak, lossy image codecs", "corpora/kodak", True, "kodak_lossy_rd.png"),
    "canterbury": ("Canterbury corpus, byte codecs", "corpora/canterbury", False, "canterbury.png"),
}


def run_section(name: str, workers: int, codecs: list[str] | None, out: Path, docs: Path, with_extra: bool = True) -> dict:
    from gencodec.bench import plot, report, runner

    title, corpus, lossy, plot_name = SECTIONS[name]
    refs = [c for r in REFERENCES for c in report.load_reference(r)] if lossy else []
    extra = {c: p for c, p in EXTRA_PARAMS.get(name, {}).items() if with_extra and (not codecs or c in codecs)}
    doc = runner.run_bench([corpus], codecs, lossy=lossy, params=extra, workers=workers, references=refs)
    doc["settings"]["section"] = name
    doc["settings"]["paths"] = [corpus]  # relative to the repository root
    out.mkdir(parents=True, exist_ok=True)
    docs.mkdir(parents=True, exist_ok=True)
    stem = name.replace("-", "_")
    (out / f"{stem}.json").write_text(report.to_json(doc))
    (out / f"{stem}.csv").write_text(report.to_csv(doc))
    plot.save(doc, docs / plot_name)
    failed = [r for r in doc["rows"] if r["status"] == "failed"]
    for r in failed:
        print(f"FAILED: {r['file']} {r['codec']}: {r['reason']}", file=sys.stderr)
    print(f"{name}: {len(doc['rows'])} runs, {len(failed)} failed -> {out / (stem + '.json')}", file=sys.stderr)
    return doc


def _load(out: Path, name: str) -> dict | None:
    p = out / f"{name.replace('-', '_')}.json"
    return json.loads(p.read_text()) if p.exists() else None


def headline(docs: dict[str, dict]) -> str:
    """The short table the README shows: one line per codec and section."""
    from gencodec.bench.report import fmt_number, job_label, markdown_table

    parts = []
    d = docs.get("kodak-lossless")
    if d:
        tots = sorted((t for t in d["totals"] if t.get("n_files")), key=lambda t: t["bits_per_subpixel"])
        ideal = any("ideal_bits_per_subpixel" in t for t in tots)
        parts.append("**Kodak lossless** (24 images, bits per subpixel, whole .gcx files):\n\n" + markdown_table(
            ["codec", "bits/subpixel", *(["model's ideal"] if ideal else []), "encode MB/s", "decode MB/s"],
            [[f"`{job_label(t)}`", fmt_number(t["bits_per_subpixel"]), *([fmt_number(t.get("ideal_bits_per_subpixel"))] if ideal else []),
              fmt_number(t["cost"]["encode_mb_per_s"], 2), fmt_number(t["cost"]["decode_mb_per_s"], 2)] for t in tots]))
    d = docs.get("kodak-lossy")
    if d:
        s = d["rd_summary"]
        bd = s["bd_rate_pct"].get("jpeg", {})
        rows = [[f"`{c}`", fmt_number(bd.get(c), 1, " %") if c != "jpeg" else "0 (anchor)",
                 fmt_number(s["bpp_at_psnr"][c].get("32"), 3), fmt_number(s["bpp_at_psnr"][c].get("36"), 3)] for c in d["rd"]]
        for r in s["references"]:
            rows.append([f"{r['name']}", fmt_number(bd.get(r["name"]), 1, " %"), fmt_number(s["bpp_at_psnr"][r["name"]].get("32"), 3),
                         fmt_number(s["bpp_at_psnr"][r["name"]].get("36"), 3)])
        parts.append("**Kodak lossy** (BD-rate against JPEG over the common PSNR range; bpp for 32 and 36 dB):\n\n"
                     + markdown_table(["codec", "BD-rate vs jpeg", "bpp @ 32 dB", "bpp @ 36 dB"], rows))
    d = docs.get("canterbury")
    if d:
        tots = sorted((t for t in d["totals"] if t.get("n_files")), key=lambda t: t["bits_per_byte"])
        parts.append("**Canterbury** (11 files, bits per byte, whole .gcx files):\n\n" + markdown_table(
            ["codec", "bits/byte", "compressed bytes", "encode MB/s", "decode MB/s"],
            [[f"`{t['codec']}`", fmt_number(t["bits_per_byte"]), f"{t['n_bytes_out']:,}", fmt_number(t["cost"]["encode_mb_per_s"], 2),
              fmt_number(t["cost"]["decode_mb_per_s"], 2)] for t in tots]))
    return "\n\n".join(parts) + "\n"


INTRO = """# Benchmarks

Generated by `python benchmarks/run.py all --readme` (each section is `gencodec bench` on a shipped corpus);
do not edit by hand. Raw results, with every file, the exact settings and the environment, are in
`benchmarks/results/*.json` (and `.csv`).

**Definitions.** Sizes are whole `.gcx` files exactly as `gencodec compress` writes them, header
included (the payload alone is in the JSON). *Bits per subpixel* = 8 · bytes / (W · H · C);
*bits per pixel* = 8 · bytes / (W · H); *bits per byte* = 8 · bytes / original file bytes. Totals
divide total bits by total units. Every round trip is verified: lossless codecs must restore
identical pixels or bytes; lossy PSNR (RGB, 8-bit, 10·log10(255²/MSE)) and MS-SSIM (pytorch-msssim)
are measured on the decoded file, then averaged over images, as is bits per pixel (CompressAI's
convention). BD-rate is Bjøntegaard's (cubic fit of log-rate over PSNR, integrated over the PSNR
range both curves cover); "bpp @ X dB" interpolates log(bpp) between measured points (n/a outside
the measured range). Times are wall-clock (`perf_counter`) of the one-shot API calls (input parsing
and checksum verification included), after a warm-up; MB/s counts raw 8-bit samples for images and
original bytes otherwise. Peak memory is the resident peak of the process during the call (Linux
VmHWM, reset before each call; every codec runs in its own fresh process, so a codec's figure
includes only its own imports and models, plus torch for MS-SSIM in the lossy section); growth is
that peak minus the resident memory before the call. Sizes, PSNR and MS-SSIM are deterministic;
timings depend on the machine and on its load (the benchmarks ran on a shared machine, so take
them as indicative).
"""


def write_markdown(out: Path, docs_dir: Path) -> Path:
    from gencodec.bench import report

    docs = {name: d for name in SECTIONS if (d := _load(out, name))}
    parts = [INTRO, "## Headline\n", headline(docs)]
    for name, (title, corpus, lossy, plot_name) in SECTIONS.items():
        d = docs.get(name)
        if d is None:
            parts.append(f"## {title}\n\nNot run yet: `python benchmarks/run.py {name}`.\n")
            continue
        parts.append(report.to_markdown(d, title))
        parts.append(f"![{title}]({plot_name})\n")
        parts.append(f"Regenerate: `python benchmarks/run.py {name} && python benchmarks/run.py markdown`.\n")
    bm = out / "bytemodel.json"  # written by benchmarks/bytemodel.py (not a gencodec bench section)
    if bm.exists():
        from bytemodel import to_markdown  # benchmarks/bytemodel.py, beside this script

        parts.append("## bytemodel against the classical byte codecs\n\n" + to_markdown(json.loads(bm.read_text())))
        if (docs_dir / "bytemodel_segments.png").exists():
            parts.append("![bytemodel: segments against speed](bytemodel_segments.png)\n")
        parts.append("Regenerate: `python benchmarks/bytemodel.py --files <the 11 Canterbury files> --extra README.md docs/EXACTNESS.md "
                     "gencodec/api.py gencodec/models/pixelcnn.py --json benchmarks/results/bytemodel.json "
                     "--plot docs/bytemodel_segments.png && python benchmarks/run.py markdown`.\n")
    bpd = out / "bits_per_dim.json"  # written by benchmarks/bits_per_dim.py
    if bpd.exists():
        from bits_per_dim import to_markdown as bpd_markdown  # benchmarks/bits_per_dim.py, beside this script

        parts.append("## Bits per dimension on small images\n\n" + bpd_markdown(json.loads(bpd.read_text())))
        parts.append("Regenerate: `python benchmarks/bits_per_dim.py --data ../shared/corpora/train --mnist "
                     "../shared/corpora/mnist/t10k-images-idx3-ubyte.gz --crops 512 --mnist-count 1000 --codec png,jpeg-xl-lossless,pixelcnn,sparse-transformer "
                     "--json benchmarks/results/bits_per_dim.json && python benchmarks/run.py markdown`.\n")
    nets = out / "byte_nets.json"  # written by benchmarks/byte_nets.py
    if nets.exists():
        from byte_nets import to_markdown as nets_markdown  # benchmarks/byte_nets.py, beside this script

        parts.append("## The byte model's nets: bytenet against the byte transformer\n\n"
                     + nets_markdown(json.loads(nets.read_text())))
        parts.append("Regenerate: `python benchmarks/byte_nets.py --model <a bytemodel file with the other net> "
                     "--heldout ../shared/corpora/text-train --files corpora/canterbury/* "
                     "--json benchmarks/results/byte_nets.json && python benchmarks/run.py markdown`.\n")
    path = docs_dir / "BENCHMARKS.md"
    path.write_text("\n".join(parts))
    return path


README_START, README_END = "<!-- headline:start -->", "<!-- headline:end -->"


def update_readme(out: Path, readme: Path = ROOT / "README.md") -> bool:
    """Replace what lies between the README's headline markers with the headline tables and the
    RD plot; False (README untouched) when the markers are missing."""
    text = readme.read_text() if readme.exists() else ""
    if README_START not in text or README_END not in text:
        return False
    docs = {n: d for n in SECTIONS if (d := _load(out, n))}
    block = [headline(docs)]
    if "kodak-lossy" in docs:
        block.append("![Rate-distortion on Kodak](docs/kodak_lossy_rd.png)\n")
    where: dict[str, list[str]] = {}  # "date on machine" -> the sections measured there (machines differ between runs)
    for n, d in docs.items():
        where.setdefault(f"{d['environment']['date'][:10]} on {d['environment']['machine']['cpu']}", []).append(n)
    measured = "; ".join(f"{w} ({', '.join(ns)})" if len(where) > 1 else w for w, ns in where.items()) or "?"
    block.append(f"Measured {measured}; every table, the machine and the versions are in "
                 "[docs/BENCHMARKS.md](docs/BENCHMARKS.md), regenerated by `python benchmarks/run.py all --readme`.\n")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    readme.write_text(head + README_START + "\n" + "\n".join(block) + README_END + tail)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("section", choices=[*SECTIONS, "markdown", "headline", "all"])
    ap.add_argument("--readme", action="store_true",
                    help="with markdown/all: also put the headline tables and RD plot into README.md")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--codec", action="append", default=None)
    ap.add_argument("--no-extra", action="store_true",
                    help="leave out the extra jobs (JPEG XL lossless at effort 9, hyperprior with effort 1)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--docs", type=Path, default=ROOT / "docs")
    args = ap.parse_args(argv)
    import os

    args.out, args.docs = args.out.resolve(), args.docs.resolve()
    cwd = os.getcwd()
    os.chdir(ROOT)  # corpus paths in the results are relative to the repository root
    try:
        names = list(SECTIONS) if args.section == "all" else [args.section] if args.section in SECTIONS else []
        for name in names:
            run_section(name, args.workers, args.codec, args.out, args.docs, with_extra=not args.no_extra)
        if args.section == "headline":
            print(headline({n: d for n in SECTIONS if (d := _load(args.out, n))}))
        elif args.section in ("markdown", "all"):
            print(f"wrote {write_markdown(args.out, args.docs)}", file=sys.stderr)
            if args.readme and update_readme(args.out):
                print("updated README.md (headline)", file=sys.stderr)
    finally:
        os.chdir(cwd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
