"""usage: card_from_bench.py CARD.json BENCH.json [history.json] [dev.json]
Add the Kodak result (from one `benchmarks/run.py kodak-lossless` run) and the lineage / dev results to a model card."""
import json, sys
from gencodec.bench.report import job_label
card_path, bench_path = sys.argv[1:3]
card = json.load(open(card_path))
bench = json.load(open(bench_path))
rows = [r for r in bench["rows"] if r["codec"] == "pixelcnn"]
tot = next(t for t in bench["totals"] if t["codec"] == "pixelcnn")
assert bench["environment"]["models"]["pixelcnn"] == card["model_id"], "the bench ran another model"
card["kodak"] = dict(
    note="Kodak is a test set: measured once on the shipped model (benchmarks/run.py kodak-lossless), never used "
         "for training, tuning or checkpoint selection",
    n_images=len(rows), bpsp=round(tot["bits_per_subpixel"], 4), ideal_bpsp=round(tot["ideal_bits_per_subpixel"], 4),
    frame_overhead_pct=round(tot["frame_overhead_pct"], 3),
    encode_s_mean=round(tot["cost"]["encode_wall_s"] / len(rows), 3),
    decode_s_mean=round(tot["cost"]["decode_wall_s"] / len(rows), 3),
    peak_rss_mib=round(tot["cost"]["peak_rss_mib"]),
    machine=f"{bench['environment']['machine']['cpu']}, {bench['environment']['machine']['cores']} cores, 1 thread",
    date=bench["environment"]["date"],
    per_image_bpsp={r["file"].rsplit("/", 1)[-1][:-4]: round(r["bits_per_subpixel"], 4) for r in rows},
    classical_same_run={job_label(t): round(t["bits_per_subpixel"], 4) for t in bench["totals"] if t["codec"] != "pixelcnn"},
)
if len(sys.argv) > 3:
    card["history"] = json.load(open(sys.argv[3]))
if len(sys.argv) > 4:
    card["dev"] = json.load(open(sys.argv[4]))
json.dump(card, open(card_path, "w"), indent=1)
open(card_path, "a").write("\n")
print(json.dumps(card["kodak"], indent=1))
