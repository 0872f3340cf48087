"""hyperprior's residual layer against its own top qualities, on photos that are not test data.

    python benchmarks/residual_layers.py DIR [--model PATH] [--out benchmarks/results/residual_layers.json]

For each PNG in DIR: (1) at each plain quality 4..L, the smallest file that a residual layer over a
lower trained quality (the largest step that reaches the same PSNR) gives, beside the plain file;
(2) the BD-rate against JPEG (the bench's JPEG qualities) of the ladder 1..L and of qualities 1-5
with layers over quality 5 (steps 96, 72, 56, 44, 34). Whole frames as rate control sizes them.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

import gencodec
from gencodec.bench.metrics import bd_rate
from gencodec.bench.runner import DEFAULT_QUALITIES
from gencodec.registry import get_codec

STEPS = (96, 72, 56, 44, 34)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--model")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    codec = get_codec("hyperprior", **({"model": args.model} if args.model else {}))
    L = codec.n_qualities
    rows = []
    for path in sorted(args.corpus.glob("*.png")):
        img = Image.open(path).convert("RGB")
        rgb, n = np.asarray(img), img.width * img.height
        c = codec.trials(rgb)
        plain = [c.trial(float(q)) for q in range(1, L + 1)]
        versus = []
        for q in range(4, L + 1):
            t = plain[q - 1]
            best = min((c.layered(b, c.step_for_psnr(b, c.psnr(t))) for b in plain[: q - 1]), key=c.size)
            versus.append(dict(quality=q, bpp=8 * c.size(t) / n, psnr=c.psnr(t), layer_base=best.q,
                               layer_step=best.step, layer_bpp=8 * c.size(best) / n,
                               change_pct=100 * (c.size(best) / c.size(t) - 1)))
        jpeg = []
        for q in DEFAULT_QUALITIES["jpeg"]:
            blob = gencodec.compress(img, codec="jpeg", quality=q)
            x = np.asarray(gencodec.decompress(blob), np.float64)
            jpeg.append((8 * len(blob) / n, 10 * math.log10(255**2 / np.mean((x - rgb) ** 2))))
        ladder = [(8 * c.size(t) / n, c.psnr(t)) for t in plain]
        layered = ladder[:5] + [(8 * c.size(lt) / n, c.psnr(lt)) for lt in (c.layered(plain[4], s) for s in STEPS)]

        def bd(curve):
            return bd_rate([a for a, _ in jpeg], [b for _, b in jpeg], [a for a, _ in curve], [b for _, b in curve])

        rows.append(dict(file=path.name, versus=versus, bd_ladder=bd(ladder), bd_q1_5_and_layers=bd(layered)))
        print(path.name, " ".join(f"q{v['quality']}:{v['change_pct']:+.1f}%" for v in versus),
              f"BD ladder {rows[-1]['bd_ladder']:.1f} %, with layers {rows[-1]['bd_q1_5_and_layers']:.1f} %", flush=True)
    summary = dict(model_id=codec.model_id.hex(), images=len(rows),
                   mean_bd_ladder=float(np.mean([r["bd_ladder"] for r in rows])),
                   mean_bd_q1_5_and_layers=float(np.mean([r["bd_q1_5_and_layers"] for r in rows])))
    print(json.dumps(summary, indent=1))
    if args.out:
        args.out.write_text(json.dumps(dict(summary=summary, rows=rows), indent=1) + "\n")


if __name__ == "__main__":
    main()
