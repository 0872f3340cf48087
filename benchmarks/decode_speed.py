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

import numpy as np
import torch
from PIL import Image

from gencodec.codecs import headfit
from gencodec.codecs.image_lossless import DEFAULT_MODEL, MAX_BIAS, PixelCNNCodec, unpack_remap
from gencodec.models.pixelcnn import ExactPixelCNN, PixelCNN


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("image", type=Path)
    ap.add_argument("--hidden", type=int, nargs="+", default=[])
    ap.add_argument("--model", type=Path, nargs="+", default=[])
    ap.add_argument("--size", default="768x512")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    planes = np.ascontiguousarray(np.asarray(Image.open(args.image).convert("RGB"))[:h, :w].transpose(2, 0, 1))
    _, h, w = planes.shape
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
            codec = PixelCNNCodec(model=path)
            codec.encode_planes(planes[:, :16, :16], 3)  # warm-up
            t0 = time.perf_counter()
            stream, _, remap, fit = codec.encode_planes(planes, 3)
            t1 = time.perf_counter()
            maps = unpack_remap(remap, 3, cfg.n_scales, MAX_BIAS * cfg.mean_steps) if remap else None
            model = headfit.fitted_model(codec.model, headfit.unpack_fit(fit, codec.model, 3)) if fit else None
            out = codec.decode_planes(stream, h, w, 3, remap=maps, hist=True, model=model)
            t2 = time.perf_counter()
            assert np.array_equal(out, planes)
            print(f"{name} (hidden {cfg.hidden}, heads {cfg.head_hidden}): {w}x{h}, encode {t1 - t0:.2f} s, "
                  f"decode {t2 - t1:.2f} s, torch threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
