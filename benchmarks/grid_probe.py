"""Validation bits of a pixelcnn training checkpoint evaluated on other grids, without retraining.

    python benchmarks/grid_probe.py CHECKPOINT --data TRAIN_DIR [--val-glob 'wiki/04[0-4]*'] \\
        --grids '{}' '{"act_frac_bits": 6}' '{"act_frac_bits": 6, "w_frac_bits": 9, "w_max": 1532}'

Each grid (JSON changes to the checkpoint's config, as `gencodec train --config` takes them) is
applied with `start_from` and scored with fake quantization on the training recipe's validation crops
(centre 192x192 and their 4:2:0 round trips). How the "Measured leads" of docs/MODELS.md were
measured, on the last checkpoint of the run that made the shipped model (w2.run/last.pt; run
artefacts are not kept in the repository). Finer grids may exceed the 2**24 accumulator bound: this
scores them, it does not export them.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace

import numpy as np
import torch

from gencodec.train.data import chroma_subsample, load_folder, val_crops
from gencodec.train.pixelcnn import config_of, model_bpsp, start_from


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--data", required=True)
    ap.add_argument("--val-glob", default="wiki/04[0-4]*")
    ap.add_argument("--grids", nargs="+", default=["{}"])
    args = ap.parse_args()
    base = config_of(args.checkpoint)
    images = load_folder(args.data, downscale=2, val_glob=args.val_glob)
    crops = val_crops(images.val, 192)
    crops += [np.ascontiguousarray(chroma_subsample(c.transpose(1, 2, 0)).transpose(2, 0, 1)) for c in crops]
    for grid in args.grids:
        model = start_from(args.checkpoint, replace(base, **json.loads(grid))).eval()
        with torch.no_grad():
            print(f"{grid}: fake-quantized {model_bpsp(model, crops, True):.4f}, float {model_bpsp(model, crops, False):.4f} bpsp",
                  flush=True)


if __name__ == "__main__":
    main()
