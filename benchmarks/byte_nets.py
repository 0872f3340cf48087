"""The byte model with each of its nets, in one run: the shipped model (bytenet, a window MLP) against a
model file with another net (e.g. the fixed-pattern byte transformer), on held-out files of a
training folder (the split the recipe holds out, in name order up to --limit bytes: what a model is
chosen on) and on test files (reported, never chosen on): bits per byte of whole .gcx files, ideal
code length, encode and decode speed (model loaded), each frame decoded and checked.

    python benchmarks/byte_nets.py --model /work/runs/bt1.safetensors --heldout ../shared/corpora/text-train \
        --files corpora/canterbury/* --json benchmarks/results/byte_nets.json

The rule that picks the shipped net (written before the run): the other net replaces bytenet only if
its real coded size over the held-out files is smaller; the test files do not enter.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gencodec
from gencodec.models import zoo


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t


def heldout_files(root: Path, limit: int) -> list[tuple[str, bytes]]:
    from gencodec.train.textdata import load_texts

    val = load_texts(root).val
    out, total = [], 0
    for row in val.rows():
        if total + row["bytes"] > limit:
            continue
        start = int(val.starts[val.names.index(row["name"])])
        out.append((row["name"], val.data[start : start + row["bytes"]].tobytes()))
        total += row["bytes"]
    return out


def code(data: bytes, name: str, models: dict[str, Path | None]) -> dict:
    row = {"file": name, "bytes": len(data)}
    for label, path in models.items():
        kw = {} if path is None else {"model": path}
        rep, t_enc = timed(gencodec.compress_report, data, codec="bytemodel", **kw)
        out, t_dec = timed(gencodec.decompress, rep.blob, **kw)
        assert out == data, (name, label)
        row[label] = dict(bytes=len(rep.blob), bpb=8 * len(rep.blob) / len(data),
                          ideal_bpb=rep.stats.get("ideal_bits", float("nan")) / len(data), encode_s=t_enc, decode_s=t_dec)
    return row


def summary(rows: list[dict], labels: list[str]) -> dict:
    n = sum(r["bytes"] for r in rows)
    return {lab: dict(bpb=8 * sum(r[lab]["bytes"] for r in rows) / n,
                      decode_kb_s=n / 1e3 / sum(r[lab]["decode_s"] for r in rows),
                      encode_kb_s=n / 1e3 / sum(r[lab]["encode_s"] for r in rows)) for lab in labels} | {"bytes": n}


def to_markdown(doc: dict) -> str:
    labels = doc["labels"]
    e = doc["environment"]
    lines = [f"Byte model nets, one run ({e['machine']['cpu']}, {e['machine']['cores']} cores, {e['date'][:10]}; "
             f"models {', '.join(f'`{k}` {v[:8]}' for k, v in doc['models'].items())}). {doc['note']}".strip(), ""]
    for part in ("heldout", "test"):
        rows = doc[part]
        if not rows:
            continue
        lines += [f"**{'held-out training-folder files (the choice)' if part == 'heldout' else 'test files'}**", "",
                  "| file | bytes | " + " | ".join(f"`{lab}`" for lab in labels) + " |",
                  "| :--- | ---: | " + " | ".join("---:" for _ in labels) + " |"]
        for r in rows:
            best = min(r[lab]["bpb"] for lab in labels)
            cells = [f"**{r[lab]['bpb']:.3f}**" if r[lab]["bpb"] == best else f"{r[lab]['bpb']:.3f}" for lab in labels]
            lines.append(f"| {r['file']} | {r['bytes']:,} | " + " | ".join(cells) + " |")
        s = doc[part + "_summary"]
        lines.append(f"| **all** | {s['bytes']:,} | " + " | ".join(f"{s[lab]['bpb']:.3f}" for lab in labels) + " |")
        lines.append("")
        lines.append("Speed (model loaded): " + "; ".join(
            f"`{lab}` encodes {s[lab]['encode_kb_s']:.0f} KB/s, decodes {s[lab]['decode_kb_s']:.0f} KB/s" for lab in labels))
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, required=True, help="a bytemodel file with the other net")
    ap.add_argument("--label", default="byte-transformer")
    ap.add_argument("--heldout", type=Path, help="the training folder whose held-out split is coded")
    ap.add_argument("--limit", type=int, default=1 << 18, help="held-out bytes (name order, as the recipe's card)")
    ap.add_argument("--files", nargs="*", type=Path, default=[], help="test files (reported, not chosen on)")
    ap.add_argument("--note", default="")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    shipped = zoo.default_model("bytemodel")
    other = zoo.load(args.model, "bytemodel")
    from gencodec.bench.report import environment

    labels = ["bytenet", args.label]
    models = {"bytenet": None, args.label: args.model}
    code(b"warm up: the model loaded and its kernels compiled before anything is timed\n" * 4, "warm-up", models)
    held = [code(d, n, models) for n, d in heldout_files(args.heldout, args.limit)] if args.heldout else []
    test = [code(p.read_bytes(), p.name, models) for p in args.files if p.is_file()]
    doc = dict(labels=labels, models={"bytenet": shipped.model_id.hex(), args.label: other.model_id.hex()},
               nets={"bytenet": shipped.net.cfg.to_dict(), args.label: other.net.cfg.to_dict()},
               environment=environment(["bytemodel"]), note=args.note, heldout=held, test=test,
               heldout_summary=summary(held, labels) if held else None, test_summary=summary(test, labels) if test else None)
    print(to_markdown(doc))
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
