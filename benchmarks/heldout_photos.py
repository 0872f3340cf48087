"""Lossless codecs on held-out photos that are neither Kodak nor training data (the "dev" figures of
docs/MODELS.md and the pixelcnn model card).

    python benchmarks/heldout_photos.py --data ../shared/corpora/train --glob 'wiki/04[0-4]*.png' \
        [--model M.safetensors ...] [--json out.json]

The photos are the training folder's held-out split (pass the same --val-glob the model was trained
with). Each gives centre 512 x 512 crops at 1x and 2x area-downscale, as they are and after a 4:2:0
chroma round trip done with Pillow (YCbCr, chroma box-downscaled 2x and bilinear-upscaled) -- an
implementation independent of the training augmentation. Sizes are whole .gcx frames; the table
gives bits per subpixel per subset and their mean. Kodak is never read.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from gencodec.api import compress_report
from gencodec.train.data import area_downscale


def chroma420(a: np.ndarray) -> np.ndarray:
    im = Image.fromarray(a).convert("YCbCr")
    y, cb, cr = im.split()
    w, h = im.size
    cb, cr = (c.resize((w // 2, h // 2), Image.BOX).resize((w, h), Image.BILINEAR) for c in (cb, cr))
    return np.asarray(Image.merge("YCbCr", (y, cb, cr)).convert("RGB"))


def centre(a: np.ndarray, size: int = 512) -> np.ndarray:
    h, w = a.shape[:2]
    y, x = (h - min(h, size)) // 2, (w - min(w, size)) // 2
    return np.ascontiguousarray(a[y : y + size, x : x + size])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--glob", required=True)
    ap.add_argument("--model", action="append", default=[], help="pixelcnn model file (repeatable; default: shipped)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    paths = sorted(args.data.glob(args.glob))
    if not paths:
        raise SystemExit(f"no images match {args.glob!r} under {args.data}")
    codecs = [("jpeg-xl-lossless", {}), ("webp-lossless", {})]
    codecs += [("pixelcnn", {"model": m}) for m in args.model] or [("pixelcnn", {})]
    totals: dict[str, dict[str, list[int]]] = {}
    for p in paths:
        px = np.asarray(Image.open(p).convert("RGB"))
        for f in (1, 2):
            a = centre(area_downscale(px, f))
            for kind, arr in (("plain", a), ("420", chroma420(a))):
                img = Image.fromarray(np.ascontiguousarray(arr))
                for name, kw in codecs:
                    r = compress_report(img, codec=name, **kw)
                    key = name + (f" ({kw['model']})" if kw else "")
                    t = totals.setdefault(key, {}).setdefault(f"{f}x-{kind}", [0, 0])
                    t[0] += 8 * len(r.blob)
                    t[1] += arr.size
    results = {}
    for key, subsets in totals.items():
        row = {s: round(b / n, 4) for s, (b, n) in sorted(subsets.items())}
        row["mean"] = round(sum(row.values()) / len(row), 4)
        results[key] = row
        print(f"{key:60s} " + " ".join(f"{s} {v:.4f}" for s, v in row.items()))
    if args.json:
        files = [str(p.relative_to(args.data)) for p in paths]
        args.json.write_text(json.dumps(dict(files=files, crops="centre 512x512 at 1x/2x area-downscale; plain and "
                                             "4:2:0 chroma round trip (Pillow)", results=results), indent=1) + "\n")


if __name__ == "__main__":
    main()
