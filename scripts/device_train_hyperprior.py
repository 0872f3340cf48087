"""Train the hyperprior ladder on a GPU machine within a time budget, then export it.

    python scripts/device_train_hyperprior.py --data PIXELS --out OUT/hyperprior.safetensors --budget 480 \\
        [--init-from gencodec/weights/hyperprior.safetensors] [--batch 16] [--crop 256] [--lr 2e-4] [--device cuda] \\
        [--precision bf16]

Times a few training steps of the model the run will train, takes as many steps as fit the
budget (counted from this script's start, with a safety factor, leaving time for validation and
export), then trains exactly as ``gencodec train hyperprior`` would with that --steps (the
command is printed; checkpoints in OUT/NAME.run) and exports the best checkpoint with its card.
Runs from the repository root without an install (PYTHONPATH=.). PIXELS: a folder written by
``gencodec.train.data.save_pixels`` (the training pixels as PNGs, for a machine that receives
only the repository).
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
    ap.add_argument("--budget", type=float, required=True, help="seconds from start to the end of export")
    ap.add_argument("--init-from", default=None)
    ap.add_argument("--config", default="{}", help="JSON changes to the default HyperpriorConfig")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--max-steps", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--precision", default="fp32", help="fp32 or bf16 (the float transforms under autocast)")
    ap.add_argument("--safety", type=float, default=1.25)
    ap.add_argument("--export-s", type=float, default=60.0, help="seconds kept for validation and export")
    args = ap.parse_args()

    import torch

    from gencodec.models.hyperprior import Hyperprior, HyperpriorConfig
    from gencodec.train.data import TorchCropSampler, load_folder
    from gencodec.train.hyperprior import PRECISIONS, recipe_from_options, start_from, train_hyperprior

    cfg = HyperpriorConfig.from_dict({**HyperpriorConfig().to_dict(), **json.loads(args.config)})
    recipe = recipe_from_options(batch=args.batch, crop=args.crop, lr=args.lr, seed=args.seed, val_every=2000,
                                 precision=args.precision)
    images = load_folder(args.data, downscale=recipe.downscale, val_glob=recipe.val_glob)
    sampler = TorchCropSampler(images.train, recipe.crop, recipe.seed, device=args.device)
    model = (start_from(args.init_from, cfg) if args.init_from else Hyperprior(cfg)).to(args.device)
    model.autocast = PRECISIONS[args.precision]  # timed as it will train
    opt = torch.optim.Adam(model.parameters(), lr=1e-6)  # a throwaway copy: only timed
    lam = torch.tensor(cfg.lambdas, device=args.device)

    def steps(n: int) -> None:
        for i in range(n):
            x = sampler.batch(i, args.batch).float().div(255)
            level = torch.randint(0, cfg.levels, (args.batch,), device=args.device)
            o = model(x, level.float())
            loss = (lam[level] * 255**2 * o["mse"] + o["bits"] / x[0, 0].numel()).mean() + model.aux_loss()
            opt.zero_grad()
            loss.backward()
            opt.step()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    steps(3)
    t = time.time()
    steps(20)
    per = (time.time() - t) / 20
    left = args.budget - (time.time() - T0) - args.export_s
    n = min(args.max_steps, max(200, int(left / (args.safety * per))))
    print(f"s/step {per:.4f}: {n} steps", flush=True)
    workdir = args.out.with_suffix(".run")
    print(f"gencodec train hyperprior --data {args.data} --out {args.out} --workdir {workdir} --steps {n} "
          f"--batch {args.batch} --crop {args.crop} --lr {args.lr} --seed {args.seed} --device {args.device} "
          f"--precision {args.precision}"
          + (f" --init-from {args.init_from}" if args.init_from else "") + f" --config '{args.config}'", flush=True)
    del model, opt
    card = train_hyperprior(args.data, args.out, steps=n, workdir=workdir, config=cfg, recipe=recipe,
                            progress="lines", device=args.device, init_from=args.init_from)
    print(f"{args.out}: model {card['model_id']}; validation {json.dumps(card['validation']['exact'])}", flush=True)
    print(f"done in {time.time() - T0:.1f} s", flush=True)


if __name__ == "__main__":
    main()
