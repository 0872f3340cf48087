"""How much the latent's width caps hyperprior's fidelity, on photos that are not test data.

    python benchmarks/latent_width.py DIR [--model PATH ...] [--widths 128,192,256] [--out FILE.json]

For each image of DIR's validation split (``gencodec.train.data.load_folder``'s, the training's own
held-out photos, downscaled as in training), cut to multiples of 16: the PSNR of a linear code with
K numbers per 16x16x3 block, unquantized, for each K of --widths -- the K leading principal
components of the training split's blocks (a linear transform learned on the training photos, as
the model's are), and those of the image's own blocks (an oracle; meaningful only where the image
has many more blocks than 768) -- beside what each model restores at its top quality
(``Analysis.at`` + ``pixels``: the codec's own path). A model whose PSNR sits near the bound of its
width cannot gain much at high rates from more training; a wider latent can.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(255**2 / max(mse, 1e-12))


def blocks_of(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[0] // 16 * 16, rgb.shape[1] // 16 * 16
    return rgb[:h, :w].reshape(h // 16, 16, w // 16, 16, 3).transpose(0, 2, 1, 3, 4).reshape(-1, 768).astype(np.float64)


def basis(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """-> (mean (768,), principal directions (768, 768), leading first)."""
    mean = blocks.mean(0)
    _, vecs = np.linalg.eigh(np.cov((blocks - mean).T))
    return mean, vecs[:, ::-1]


def pca_psnr(blocks: np.ndarray, mean: np.ndarray, vecs: np.ndarray, widths: list[int]) -> dict[str, float]:
    """PSNR of ``blocks`` projected onto the K leading directions, for each K."""
    out = {}
    for k in widths:
        p = vecs[:, :k]
        approx = np.clip(np.round((blocks - mean) @ p @ p.T + mean), 0, 255)
        out[str(k)] = psnr(approx, blocks)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--model", action="append", default=[])
    ap.add_argument("--widths", default="128,192,256")
    ap.add_argument("--downscale", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    from gencodec.models import zoo
    from gencodec.train.data import load_folder

    widths = [int(v) for v in args.widths.split(",")]
    models = [zoo.load(p, "hyperprior") for p in args.model] or [zoo.load(zoo.default_weights("hyperprior"), "hyperprior")]
    folder = load_folder(args.data, downscale=args.downscale)
    train_mean, train_vecs = basis(np.concatenate([blocks_of(im.pixels) for im in folder.train]))
    rows = []
    for im in folder.val:
        rgb = np.ascontiguousarray(im.pixels[: im.pixels.shape[0] // 16 * 16, : im.pixels.shape[1] // 16 * 16])
        b = blocks_of(rgb)
        row = dict(image=im.name, shape=list(rgb.shape[:2]), blocks=len(b),
                   pca_train_basis_psnr=pca_psnr(b, train_mean, train_vecs, widths),
                   pca_own_basis_psnr=pca_psnr(b, *basis(b), widths))
        for m in models:
            an = m.analyse(rgb)
            top = float(m.cfg.levels)
            _, y_sym, means = an.at(top)
            row[f"{m.model_id.hex()[:8]} M={m.cfg.M} top quality"] = psnr(an.pixels(y_sym, means, top), rgb)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps(dict(data=str(args.data), train_images=len(folder.train), rows=rows),
                                   indent=1) + "\n")


if __name__ == "__main__":
    main()
