"""Train pixelcnn on a GPU machine within a time budget (how the GPU runs of docs/MODELS.md were made).

    python scripts/device_train.py --data PIXELS --out OUT/w.safetensors --budget 480 \\
        --init-from gencodec/weights/pixelcnn.safetensors --config '{"hidden": 224, "head_hidden": 56}' \\
        --lr 1e-3 --qat-fraction 0.45 [--max-steps N] [--batch 256] [--device cuda]

Times a few float and fake-quantized steps of the model the run will train, takes as many steps as
fit the budget (counted from this script's start, with a safety factor, leaving time for validation
and export), then trains exactly as ``gencodec train pixelcnn`` with that --steps and the other options as given
(the command is printed; checkpoints in OUT/NAME.run). Runs from the repository root without an
install (PYTHONPATH=.). PIXELS: a folder written by ``gencodec.train.data.save_pixels`` (the
training pixels as PNGs, for a machine that receives only the repository).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

T0 = time.time()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--budget", type=float, required=True, help="seconds from start to the end of training")
    ap.add_argument("--init-from", default="gencodec/weights/pixelcnn.safetensors")
    ap.add_argument("--config", default="{}", help="JSON changes to --init-from's config")
    ap.add_argument("--lr", default="1e-3")
    ap.add_argument("--qat-fraction", type=float, default=0.35)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--max-steps", type=int, default=1_000_000)
    ap.add_argument("--val-glob", default="wiki/04[0-4]*")
    ap.add_argument("--chroma420", default="0.5")
    ap.add_argument("--seed", default="0")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--safety", type=float, default=1.2)
    args = ap.parse_args()

    import torch

    from gencodec.train.data import TorchCropSampler, load_folder
    from gencodec.train.pixelcnn import recipe_from_options, run_config, start_from, train_pixelcnn

    cfg = run_config(args.init_from, json.loads(args.config))
    recipe = recipe_from_options(val_glob=args.val_glob, batch=args.batch, lr=float(args.lr), seed=int(args.seed),
                                 chroma420=float(args.chroma420), qat_fraction=args.qat_fraction)
    images = load_folder(args.data, downscale=recipe.downscale, val_glob=recipe.val_glob)
    sampler = TorchCropSampler(images.train, recipe.crop, recipe.seed, chroma420=recipe.chroma420, device=args.device)
    model = start_from(args.init_from, cfg).to(args.device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)  # a throwaway copy: only timed

    def steps(n: int, quantized: bool) -> None:
        for i in range(n):
            loss = model(sampler.batch(i, args.batch).float(), quantized=quantized).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    per = {}
    for q in (False, True):
        steps(3, q)
        t = time.time()
        steps(20, q)
        per[q] = (time.time() - t) / 20
    left = args.budget - (time.time() - T0) - 15  # validations, checkpoints, the run's start-up
    per_step = (1 - args.qat_fraction) * per[False] + args.qat_fraction * per[True]
    n = min(args.max_steps, max(200, int(left / (args.safety * per_step))))
    print(f"s/step float {per[False]:.4f}, fake-quantized {per[True]:.4f}: {n} steps", flush=True)
    workdir = args.out.with_suffix(".run")
    print(f"gencodec train pixelcnn --data {args.data} --out {args.out} --workdir {workdir} --steps {n} "
          f"--batch {args.batch} --lr {args.lr} --seed {args.seed} --qat-fraction {args.qat_fraction} "
          f"--chroma420 {args.chroma420} --val-glob '{args.val_glob}' --init-from {args.init_from} "
          f"--config '{args.config}' --device {args.device}", flush=True)
    card = train_pixelcnn(args.data, args.out, steps=n, workdir=workdir, recipe=recipe, progress=False,
                          init_from=args.init_from, device=args.device, config=cfg)
    print(f"{args.out}: model {card['model_id']}; validation {json.dumps(card['validation'])}", flush=True)
    print(f"done in {time.time() - T0:.1f} s", flush=True)


if __name__ == "__main__":
    main()
