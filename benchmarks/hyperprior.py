"""hyperprior beyond the RD curve: start-up, encode and decode time beside JPEG XL's in the same
run, and rate control (``psnr=`` / ``bpp=``) checked on every image of a corpus.

    python benchmarks/hyperprior.py corpora/kodak --out benchmarks/results/hyperprior.json \\
        [--psnr 30,32] [--bpp 0.25,0.5] [--quality 4] [--model PATH]

For each image: one encode and one decode at ``--quality`` (timed after a warm-up; the model is
loaded once and its load time reported apart), JPEG XL lossy (quality 90, effort 7) timed the same
way as the reference, then every ``--psnr`` and ``--bpp`` target through the public API, the
restored file measured (PSNR of what ``decompress`` returns; bpp of the whole frame). A target
is met when PSNR >= target, resp. bpp <= target; each records the quality and, when rate control
chose one, the residual layer's step.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
from PIL import Image

import gencodec
from gencodec.registry import get_codec


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def psnr(a: Image.Image, b: Image.Image) -> float:
    x, y = np.asarray(a.convert("RGB"), np.float64), np.asarray(b.convert("RGB"), np.float64)
    mse = float(np.mean((x - y) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--psnr", default="30,32")
    ap.add_argument("--bpp", default="0.25,0.5")
    ap.add_argument("--quality", type=float, default=4.0)
    ap.add_argument("--model")
    args = ap.parse_args()
    kw = {"model": args.model} if args.model else {}

    codec = get_codec("hyperprior", **kw)
    _, load_s = timed(lambda: codec.model)
    files = sorted(p for p in args.corpus.iterdir() if p.suffix.lower() == ".png")
    warm = Image.open(files[0]).convert("RGB")
    gencodec.decompress(gencodec.compress(warm, codec="hyperprior", quality=args.quality, **kw), **kw)
    rows = []
    for path in files:
        img = Image.open(path).convert("RGB")
        n = img.width * img.height
        blob, enc_s = timed(gencodec.compress, img, codec="hyperprior", quality=args.quality, **kw)
        out, dec_s = timed(gencodec.decompress, blob, **kw)
        ref, ref_enc_s = timed(gencodec.compress, img, codec="jpeg-xl", quality=90)
        _, ref_dec_s = timed(gencodec.decompress, ref)
        row = dict(file=path.name, width=img.width, height=img.height, quality=args.quality,
                   bpp=8 * len(blob) / n, psnr=psnr(out, img), encode_s=enc_s, decode_s=dec_s,
                   jpegxl_encode_s=ref_enc_s, jpegxl_decode_s=ref_dec_s, targets=[])
        for kind, values in (("psnr", args.psnr), ("bpp", args.bpp)):
            for v in (float(x) for x in values.split(",") if x):
                try:
                    b, s = timed(gencodec.compress, img, codec="hyperprior", **{kind: v}, **kw)
                except gencodec.GencodecError as e:
                    row["targets"].append(dict(kind=kind, target=v, met=False, error=str(e)))
                    continue
                o = gencodec.decompress(b, **kw)
                got = dict(psnr=psnr(o, img), bpp=8 * len(b) / n)
                met = got["psnr"] >= v if kind == "psnr" else got["bpp"] <= v
                params = gencodec.info(b)["params"]
                row["targets"].append(dict(kind=kind, target=v, met=met, seconds=s, quality=params["quality"],
                                           residual_step=params.get("step"), **got))
        rows.append(row)
        print(f"{path.name}: {row['bpp']:.3f} bpp {row['psnr']:.2f} dB, decode {dec_s:.2f} s "
              f"(JPEG XL {ref_dec_s:.3f} s); targets met {sum(t['met'] for t in row['targets'])}/{len(row['targets'])}")
    dec = [r["decode_s"] for r in rows]
    ref = [r["jpegxl_decode_s"] for r in rows]
    summary = dict(
        images=len(rows), model_load_s=load_s, mean_decode_s=float(np.mean(dec)), max_decode_s=float(np.max(dec)),
        mean_encode_s=float(np.mean([r["encode_s"] for r in rows])),
        decode_x_jpegxl=float(np.sum(dec) / np.sum(ref)),
        targets_met=sum(t["met"] for r in rows for t in r["targets"]),
        targets=sum(len(r["targets"]) for r in rows),
        targets_with_residual_layer=sum(t.get("residual_step") is not None for r in rows for t in r["targets"]),
        mean_rate_control_s=float(np.mean([t["seconds"] for r in rows for t in r["targets"] if "seconds" in t] or [0])),
        model_id=codec.model_id.hex(),
        machine=_cpu(), cores=os.cpu_count(), torch_threads=__import__("torch").get_num_threads(),
        date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    print(json.dumps(summary, indent=1))
    if args.out:
        args.out.write_text(json.dumps(dict(summary=summary, rows=rows), indent=1) + "\n")


if __name__ == "__main__":
    main()
