"""The tiny hyperprior models the tests code with (tests/golden/hyperprior/tiny*.safetensors): N 16,
M 32, a three-level ladder, with and without a checkerboard context, trained here on synthetic
64x64 photos (``photo`` of tests/test_hyperprior.py) and pinned.

They were trained in each test session before; float training ends in other weights on another
instruction set, and on an AVX-512 machine such a model's extrapolated quality -1 took more bits
than quality 1. Pinned, every machine codes with the same weights; 16 hidden channels instead of 8
and longer training (600 steps instead of 120, the learning rate decaying) give them a ladder whose
rate rises at every quality and whose PSNR spans 15-22 dB from quality -1 to 5 instead of 15-18. The
exact parts of a model code identically everywhere; its float analysis and synthesis may differ in
last bits, which the tests allow for.

    ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1 python tests/golden/tiny_hyperprior.py   # on purpose only
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TINY_PATH = HERE / "hyperprior" / "tiny.safetensors"
TINY_CB_PATH = HERE / "hyperprior" / "tiny-cb.safetensors"
#: HyperpriorConfig fields of the plain model (the other adds context="checkerboard")
CONFIG = dict(N=16, M=32, lambdas=(0.004, 0.016, 0.064))
STEPS = 600


def train(cfg, path: Path, photo) -> Path:
    """Train a tiny model of config ``cfg`` on eight synthetic crops (``photo(64, 64, seed=s)``), seeded;
    export it to ``path``."""
    import numpy as np
    import torch

    from gencodec.models.hyperprior import Hyperprior

    torch.manual_seed(3)
    model = Hyperprior(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    crops = torch.from_numpy(np.stack([np.asarray(photo(64, 64, seed=s)) for s in range(8)])).permute(0, 3, 1, 2)
    lam = torch.tensor(cfg.lambdas)
    level = torch.arange(8) % len(cfg.lambdas)
    for step in range(STEPS):
        for group in opt.param_groups:  # cosine decay to a tenth
            group["lr"] = 3e-3 * (0.1 + 0.45 * (1 + math.cos(math.pi * step / STEPS)))
        out = model(crops.float() / 255, level.float())
        loss = (lam[level] * 255**2 * out["mse"] + out["bits"] / 64**2).mean() + model.aux_loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
    path.parent.mkdir(parents=True, exist_ok=True)
    model.export().save(path)
    return path


if __name__ == "__main__":
    import torch

    from gencodec.models.hyperprior import HyperpriorConfig

    sys.path.insert(0, str(HERE.parent))
    from test_hyperprior import photo

    torch.set_num_threads(1)
    for context, path in (("none", TINY_PATH), ("checkerboard", TINY_CB_PATH)):
        train(HyperpriorConfig(**CONFIG, context=context), path, photo)
        print(path, path.stat().st_size, "bytes")
