"""Write the lossy codecs' held-out photos: the six photos of the training folder that the hyperprior's
training holds out (its validation split), area-downscaled by 2 as in training, as PNGs.

    python benchmarks/heldout_lossy.py --data ../shared/corpora/train --out /tmp/hp_heldout
    gencodec bench --lossy /tmp/hp_heldout --codec jpeg,webp,avif,jpeg-xl,hyperprior \
        --param hyperprior:effort=1 --no-ms-ssim --workers 2 --json benchmarks/results/hyperprior_heldout.json -q
    python benchmarks/lossy_summary.py benchmarks/results/hyperprior_heldout.json

They are neither Kodak nor training data (their crops only pick the exported checkpoint): the
"held-out photos" figures of docs/MODELS.md and the README. Each file's sha256 is checked against
the training folder's manifest before it is used.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

from gencodec.train.data import area_downscale

PHOTOS = ("cbsd68/106024.png", "cbsd68/19021.png", "cbsd68/223061.png", "wiki/006.png", "wiki/026.png", "wiki/036.png")


def manifest_hashes(data: Path) -> dict[str, str]:
    """path inside ``data`` -> sha256, from the corpus manifest (its paths are relative to the
    folder above: ``train/wiki/006.png``); empty where there is no manifest (nothing to check)."""
    path = data / "manifest.json"
    if not path.is_file():
        return {}
    files = json.loads(path.read_text()).get("files", [])
    return {f["file"].split("/", 1)[1]: f["sha256"] for f in files if "/" in f.get("file", "") and "sha256" in f}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="the training folder (corpora/train)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    hashes = manifest_hashes(args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    for rel in PHOTOS:
        src = args.data / rel
        raw = src.read_bytes()
        if hashes and hashlib.sha256(raw).hexdigest() != hashes.get(rel):
            raise SystemExit(f"{src}: not the file the manifest names")
        with Image.open(src) as im:
            pixels = np.asarray(im.convert("RGB"))
        out = args.out / rel.replace("/", "_")
        Image.fromarray(area_downscale(pixels, 2)).save(out)
        print(f"{out}: {pixels.shape[1]}x{pixels.shape[0]} -> {pixels.shape[1] // 2}x{pixels.shape[0] // 2}")


if __name__ == "__main__":
    main()
