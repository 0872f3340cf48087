"""Put one Kodak run into a pixelcnn model card.

    python scripts/card_from_bench.py gencodec/weights/pixelcnn.json benchmarks/results/kodak_lossless.json \
        [history.json] [dev.json]

Replaces the measured fields of the card's ``kodak`` section with those of the run (which must have
coded with the card's model); fields the run does not measure -- notes, earlier runs, two-core
times -- are kept as they were, to be edited by hand. history.json and dev.json, when given,
replace the card's ``history`` and ``dev``.
"""
import json
import sys

from gencodec.bench.report import job_label


def main(card_path: str, bench_path: str, history: str | None = None, dev: str | None = None) -> None:
    with open(card_path) as f:
        card = json.load(f)
    with open(bench_path) as f:
        bench = json.load(f)
    rows = [r for r in bench["rows"] if r["codec"] == "pixelcnn"]
    tot = next(t for t in bench["totals"] if t["codec"] == "pixelcnn")
    if bench["environment"]["models"]["pixelcnn"] != card["model_id"]:
        raise SystemExit("the bench ran another model than the card's")
    env = bench["environment"]
    threads = env["threads"].get("OMP_NUM_THREADS") or f"unset ({env['machine']['cores']} cores)"
    kodak = card.get("kodak", {})
    kodak.update(
        n_images=len(rows), bpsp=round(tot["bits_per_subpixel"], 4), ideal_bpsp=round(tot["ideal_bits_per_subpixel"], 4),
        frame_overhead_pct=round(tot["frame_overhead_pct"], 3),
        encode_s_mean=round(tot["cost"]["encode_wall_s"] / len(rows), 3),
        decode_s_mean=round(tot["cost"]["decode_wall_s"] / len(rows), 3),
        peak_rss_mib=round(tot["cost"]["peak_rss_mib"]),
        machine=f"{env['machine']['cpu']}, {env['machine']['cores']} cores, threads {threads}",
        date=env["date"],
        per_image_bpsp={r["file"].rsplit("/", 1)[-1][:-4]: round(r["bits_per_subpixel"], 4) for r in rows},
        classical_same_run={job_label(t): round(t["bits_per_subpixel"], 4) for t in bench["totals"] if t["codec"] != "pixelcnn"},
    )
    card["kodak"] = kodak
    for key, path in (("history", history), ("dev", dev)):
        if path:
            with open(path) as f:
                card[key] = json.load(f)
    with open(card_path, "w") as f:
        json.dump(card, f, indent=1)
        f.write("\n")
    print(json.dumps({k: v for k, v in kodak.items() if k != "per_image_bpsp"}, indent=1))


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4, 5):
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
