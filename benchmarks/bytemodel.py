"""bytemodel against the classical byte codecs, in one run: bits per byte of whole .gcx files, the
model's ideal code length, encode and decode speed (model loaded; start-up apart), and the
size/speed trade-off of the segment count.

    python benchmarks/bytemodel.py [--corpus corpora/canterbury] [--files alice29.txt ...] [--segments 16 64 256]
                                   [--extra FILE ...] [--note TEXT] [--json out.json] [--plot curve.png]

Prints markdown; with --json benchmarks/results/bytemodel.json and --plot docs/bytemodel_segments.png,
``python benchmarks/run.py markdown`` puts the same section into docs/BENCHMARKS.md. Every frame is decoded and checked. Speeds depend on the machine: read them beside
the classical codecs timed in the same run.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import gencodec
from gencodec.codecs.bytemodel import ByteModelCodec
from gencodec.models import zoo
from gencodec.models.bytemodel import ByteModelConfig, ExactByteModel

TEXT = ["alice29.txt", "asyoulik.txt", "lcet10.txt", "plrabn12.txt", "cp.html", "fields.c", "grammar.lsp", "xargs.1"]
CLASSICAL = ["xz", "zstd", "brotli", "bz2"]


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t


def run_file(data: bytes, name: str) -> dict:
    row = {"file": name, "bytes": len(data)}
    for codec in ["bytemodel", *CLASSICAL]:
        rep, t_enc = timed(gencodec.compress_report, data, codec=codec)
        out, t_dec = timed(gencodec.decompress, rep.blob)
        assert out == data, (name, codec)
        row[codec] = {"bpb": 8 * len(rep.blob) / len(data), "n_bytes": len(rep.blob), "encode_s": t_enc, "decode_s": t_dec}
        if codec == "bytemodel":
            row[codec]["ideal_bpb"] = rep.stats["ideal_bits"] / len(data)
            row[codec]["coding"] = gencodec.info(rep.blob)["params"].get("coding", "model")
    return row


def segments_curve(data: bytes, counts: list[int]) -> list[dict]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for s in counts:
            path = Path(tmp) / f"s{s}.safetensors"
            net = zoo.default_model("bytemodel").net  # the shipped net, under another segment count
            ExactByteModel(ByteModelConfig(segments=s, segment_min=16, segment_max=1 << 30), net).save(path)
            codec = ByteModelCodec(model=path)
            codec.encode(b"warm up " * 10)
            enc, t_enc = timed(codec.encode, data)
            out.append({"segments": s, "bpb": 8 * len(enc.payload) / len(data), "encode_kb_s": len(data) / t_enc / 1e3})
    return out


def to_markdown(doc: dict) -> str:
    """The benchmark as Markdown: per-file table, totals, speed, the segment curve, the environment."""
    rows, tot, curve = doc["rows"], doc["totals"], doc["segments"]
    codecs = ["bytemodel", *CLASSICAL]
    out = ["| file | bytes | " + " | ".join(f"`{c}`" for c in codecs) + " | bytemodel ideal |",
           "| :--- | ---: | " + " | ".join("---:" for _ in codecs) + " | ---: |"]
    for r in rows:
        best = min(codecs, key=lambda c: r[c]["bpb"])
        cells = [(f"**{r[c]['bpb']:.3f}**" if c == best else f"{r[c]['bpb']:.3f}") for c in codecs]
        out.append(f"| {r['file']} | {r['bytes']:,} | " + " | ".join(cells) + f" | {r['bytemodel']['ideal_bpb']:.3f} |")
    total = sum(r["bytes"] for r in rows)
    out.append("| **all** | " + f"{total:,} | " + " | ".join(f"{tot[c]:.3f}" for c in codecs) + " | |")
    out += ["", "Speed (KB/s over all files; model loaded, start-up apart):", "",
            "| codec | encode KB/s | decode KB/s |", "| :--- | ---: | ---: |"]
    for c in codecs:
        enc = sum(r[c]["encode_s"] for r in rows)
        dec = sum(r[c]["decode_s"] for r in rows)
        out.append(f"| `{c}` | {total / enc / 1e3:.1f} | {total / dec / 1e3:.1f} |")
    if curve:
        out += ["", f"Segments coded in lockstep ({doc.get('settings', {}).get('curve_file', rows[0]['file'])}): "
                "size against encode speed (decode runs the same session)", "",
                "| segments | bits/byte | encode KB/s |", "| ---: | ---: | ---: |"]
        out += [f"| {c['segments']} | {c['bpb']:.3f} | {c['encode_kb_s']:.1f} |" for c in curve]
    e = doc.get("environment")
    if e:
        out += ["", f"- date: {e['date']}; gencodec {e['gencodec']['version']} ({e['gencodec'].get('git') or 'no git'})",
                f"- machine: {e['machine']['cpu']}, {e['machine']['cores']} cores, {e['machine']['platform']}",
                "- versions: " + ", ".join(f"{k} {x}" for k, x in e["versions"].items() if x)]
        if e.get("models"):
            out.append("- models: " + ", ".join(f"`{c}` {m[:16]}" for c, m in e["models"].items()))
    if doc.get("settings", {}).get("note"):
        out.append(f"- note: {doc['settings']['note']}")
    return "\n".join(out) + "\n"


def plot_segments(doc: dict, path: Path) -> bool:
    """The segment count's size/speed curve as a PNG; False when the run has no curve."""
    curve = doc["segments"]
    if not curve:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=110)
    ax.plot([c["encode_kb_s"] for c in curve], [c["bpb"] for c in curve], "o-")
    for c in curve:
        ax.annotate(str(c["segments"]), (c["encode_kb_s"], c["bpb"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("encode KB/s (model loaded)")
    ax.set_ylabel("bits per byte (whole frame)")
    ax.set_title(f"bytemodel: segments in lockstep ({doc.get('settings', {}).get('curve_file', 'first file')})", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def main() -> None:
    from gencodec.bench.report import environment

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=Path("corpora/canterbury"))
    ap.add_argument("--files", nargs="+", default=TEXT)
    ap.add_argument("--extra", nargs="*", type=Path, default=[], help="more files (held-out text)")
    ap.add_argument("--segments", nargs="*", type=int, default=[8, 32, 64, 128, 256], help="segment counts for the curve (on the first file)")
    ap.add_argument("--note", default="", help="a line on the conditions of the run (e.g. other load on the machine)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--plot", type=Path, help="the segment curve as a PNG (e.g. docs/bytemodel_segments.png)")
    args = ap.parse_args()
    gencodec.compress(b"warm up the model " * 20, codec="bytemodel")
    rows = [run_file((args.corpus / f).read_bytes(), f) for f in args.files]
    rows += [run_file(p.read_bytes(), str(p)) for p in args.extra]
    codecs = ["bytemodel", *CLASSICAL]
    total = sum(r["bytes"] for r in rows)
    tot = {c: 8 * sum(r[c]["n_bytes"] for r in rows) / total for c in codecs}
    curve = segments_curve((args.corpus / args.files[0]).read_bytes(), args.segments) if args.segments else []
    doc = {"environment": environment(codecs), "rows": rows, "totals": tot, "segments": curve,
           "settings": {"corpus": str(args.corpus), "curve_file": args.files[0], "note": args.note}}
    print(to_markdown(doc))
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1))
    if args.plot:
        plot_segments(doc, args.plot)


if __name__ == "__main__":
    main()
