"""Bits per dimension of the lossless image models on small images, beside the published CIFAR-10
negative log-likelihoods (which are on other data, and are likelihoods, not files).

    python benchmarks/bits_per_dim.py --data ../shared/corpora/train --glob 'wiki/04[0-4]*.png' \
        --mnist ../shared/corpora/mnist/t10k-images-idx3-ubyte.gz [--crops 256] [--mnist-count 500] \
        [--codec pixelcnn,sparse-transformer] [--json benchmarks/results/bits_per_dim.json]

Two sets: the non-overlapping 32 x 32 crops of the training folder's held-out photos (the split the
shipped models were validated on, area-downscaled by 2 as in training; RGB, 3072 dimensions a
crop; ``--crops`` of them, evenly spaced), and the first ``--mnist-count`` images of the MNIST test split (28 x 28 grey, 784
dimensions). Each image is its own .gcx file: ``file`` is 8 x its size over its dimensions (the
frame's header included, which on images this small is a good part of the file); ``payload`` leaves
the header out; ``ideal`` is the model's own code length (what a likelihood table reports, with the
per-image adaptation the coder uses). Kodak is never read.
"""

from __future__ import annotations

import argparse
import fnmatch
import gzip
import json
import platform
import time
from pathlib import Path

import numpy as np
from PIL import Image

from gencodec import container
from gencodec.api import compress_report
from gencodec.train.data import area_downscale

#: published test negative log-likelihoods on CIFAR-10 (bits/dim): other data (32 x 32 natural images
#: at low resolution), likelihoods of the model, not file sizes
PUBLISHED_CIFAR10 = {"PixelCNN (van den Oord et al. 2016)": 3.03, "PixelCNN++ (Salimans et al. 2017)": 2.92,
                     "Image Transformer (Parmar et al. 2018)": 2.90, "PixelSNAIL (Chen et al. 2018)": 2.85,
                     "Sparse Transformer (Child et al. 2019)": 2.80}


def heldout_crops(root: Path, glob: str, count: int, size: int = 32) -> list[np.ndarray]:
    """``count`` of the photos' non-overlapping crops, evenly spaced in reading order (all if fewer)."""
    crops = []
    for path in sorted(p for p in root.rglob("*.png") if fnmatch.fnmatch(str(p.relative_to(root)), glob)):
        with Image.open(path) as im:
            a = area_downscale(np.asarray(im.convert("RGB")), 2)
        for y in range(0, a.shape[0] - size + 1, size):
            for x in range(0, a.shape[1] - size + 1, size):
                crops.append(np.ascontiguousarray(a[y : y + size, x : x + size]))
    keep = np.unique(np.linspace(0, len(crops) - 1, min(count, len(crops))).round().astype(int))
    return [crops[i] for i in keep]


def mnist(path: Path, count: int) -> list[np.ndarray]:
    raw = gzip.decompress(path.read_bytes())
    n, h, w = (int.from_bytes(raw[i : i + 4], "big") for i in (4, 8, 12))
    images = np.frombuffer(raw, np.uint8, offset=16).reshape(n, h, w)
    return [np.ascontiguousarray(a) for a in images[:count]]


def measure(images: list[np.ndarray], codec: str) -> dict:
    file_bits = payload_bits = ideal_bits = dims = 0.0
    t0 = time.perf_counter()
    for a in images:
        rep = compress_report(Image.fromarray(a), codec=codec)
        header, payload = container.unpack(rep.blob)
        file_bits += 8 * len(rep.blob)
        payload_bits += 8 * len(payload)
        ideal_bits += rep.stats.get("model_ideal_bits", float("nan"))  # nan: a codec without a model
        dims += a.size
    return dict(images=len(images), dims=int(dims), file=file_bits / dims, payload=payload_bits / dims,
                ideal=ideal_bits / dims, encode_s=round(time.perf_counter() - t0, 1))


def to_markdown(doc: dict) -> str:
    """The section of docs/BENCHMARKS.md (benchmarks/run.py markdown)."""
    lines = [f"Measured {doc['date'][:10]} on {doc['machine']} (`benchmarks/bits_per_dim.py`). Each image is its own "
             ".gcx file; *file* counts all of it, *payload* leaves the frame's header out, *ideal* is the model's code "
             "length with its per-image adaptation. Bits per dimension = bits / (W H C).", "",
             "| set | codec | images | file | payload | ideal |", "| :--- | :--- | ---: | ---: | ---: | ---: |"]
    for name, rows in doc["sets"].items():
        for codec, r in rows.items():
            ideal = "n/a" if r["ideal"] != r["ideal"] else f"{r['ideal']:.3f}"
            lines.append(f"| {name} | `{codec}` | {r['images']} | {r['file']:.3f} | {r['payload']:.3f} | {ideal} |")
    lines += ["", "Published test negative log-likelihoods on **CIFAR-10** (other data -- 32 x 32 photos at low resolution "
              "-- and likelihoods of the models, not files; for scale only):", "",
              "| model | bits/dim |", "| :--- | ---: |"]
    lines += [f"| {k} | {v:.2f} |" for k, v in doc["published_cifar10_nll"].items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="the training folder (its held-out photos are read)")
    ap.add_argument("--glob", default="wiki/04[0-4]*.png", help="the held-out photos (the models' --val-glob)")
    ap.add_argument("--mnist", type=Path, help="MNIST test images (t10k-images-idx3-ubyte.gz)")
    ap.add_argument("--crops", type=int, default=256, help="held-out crops to code (evenly spaced)")
    ap.add_argument("--mnist-count", type=int, default=500)
    ap.add_argument("--codec", default="pixelcnn,sparse-transformer")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    sets = {"held-out photos, 32x32 crops": heldout_crops(args.data, args.glob, args.crops)}
    if args.mnist:
        sets[f"MNIST test, first {args.mnist_count}"] = mnist(args.mnist, args.mnist_count)
    results = {"sets": {}, "published_cifar10_nll": PUBLISHED_CIFAR10, "machine": platform.processor() or platform.machine(),
               "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for name, images in sets.items():
        results["sets"][name] = {}
        for codec in args.codec.split(","):
            r = measure(images, codec)
            results["sets"][name][codec] = r
            print(f"{name:34s} {codec:20s} file {r['file']:.3f}  payload {r['payload']:.3f}  ideal {r['ideal']:.3f} "
                  f"bits/dim ({r['images']} images, {r['encode_s']} s)", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
