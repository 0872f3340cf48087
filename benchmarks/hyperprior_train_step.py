"""Time hyperprior training steps in one precision (the shipped model's config, batch 8 of 128x128).

    farm-bench -n 3 --timeout 600 --vs 'python benchmarks/hyperprior_train_step.py fp32' -- \\
        python benchmarks/hyperprior_train_step.py bf16

Builds the model as the recipe does (channels-last on CPUs, the precision's autocast) and runs
--steps Adam steps on random crops after 3 warm-up steps; prints the median seconds per step.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from gencodec.models import zoo
from gencodec.models.hyperprior import Hyperprior, HyperpriorConfig
from gencodec.train.hyperprior import PRECISIONS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("precision", choices=sorted(PRECISIONS))
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    path = zoo.default_weights("hyperprior")
    cfg = zoo.load(path, "hyperprior").cfg if path is not None and path.is_file() else HyperpriorConfig()
    model = Hyperprior(cfg).to(memory_format=torch.channels_last).train()
    model.autocast = PRECISIONS[args.precision]
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    lam = torch.tensor(cfg.lambdas)
    x = torch.rand(8, 3, 128, 128).contiguous(memory_format=torch.channels_last)
    times = []
    for i in range(3 + args.steps):
        t = time.perf_counter()
        level = torch.randint(0, cfg.levels, (8,))
        o = model(x, level.float())
        loss = (lam[level] * 255**2 * o["mse"] + o["bits"] / 128**2).mean() + model.aux_loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    print(f"{args.precision}: M={cfg.M}, {statistics.median(times[3:]):.4f} s a step (median of {args.steps})")


if __name__ == "__main__":
    main()
