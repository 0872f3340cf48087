"""Encode/decode time of pixelcnn models on one image (speed only).

    OMP_NUM_THREADS=1 python benchmarks/decode_speed.py IMAGE [--hidden 160 224] [--model M ...] [--size 768x512]

`--hidden` sizes a trunk before training it, with untrained weights of the shipped config at that
width (the time depends on the architecture, not on the weights); `--model` times model files. The
image is cropped to --size (top-left); each model is timed once after a warm-up on a small crop.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from PIL import Image

import gencodec
from gencodec.codecs.pixelcnn import DEFAULT_MODEL
from gencodec.models.pixelcnn import ExactPixelCNN, PixelCNN


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("image", type=Path)
    ap.add_argument("--hidden", type=int, nargs="+", default=[])
    ap.add_argument("--model", type=Path, nargs="+", default=[])
    ap.add_argument("--size", default="768x512")
    ap.add_argument("--repeat", type=int, default=1, help="time each model this often (the minimum is printed)")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    with Image.open(args.image) as im:
        img = im.convert("RGB").crop((0, 0, w, h))
    w, h = img.size
    base = ExactPixelCNN.load(DEFAULT_MODEL).cfg
    with tempfile.TemporaryDirectory() as tmp:
        models = {}
        for hidden in args.hidden:
            torch.manual_seed(0)
            models[f"hidden {hidden} (untrained)"] = path = Path(tmp) / f"h{hidden}.safetensors"
            PixelCNN(replace(base, hidden=hidden)).export().save(path)
        models.update({str(m): m for m in args.model})
        if not models:
            models["shipped"] = DEFAULT_MODEL
        for name, path in models.items():
            cfg = ExactPixelCNN.load(path).cfg
            small = gencodec.compress(img.crop((0, 0, 16, 16)), codec="pixelcnn", model=path)  # warm-up
            gencodec.decompress(small, model=path)
            enc, dec = [], []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                blob = gencodec.compress(img, codec="pixelcnn", model=path)
                t1 = time.perf_counter()
                out = gencodec.decompress(blob, model=path)
                t2 = time.perf_counter()
                assert out.tobytes() == img.tobytes()
                enc.append(t1 - t0)
                dec.append(t2 - t1)
            print(f"{name} (hidden {cfg.hidden}, heads {cfg.head_hidden}): {w}x{h}, encode {min(enc):.2f} s, "
                  f"decode {min(dec):.2f} s, {len(blob)} bytes, torch threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
