"""The pinned hyperprior frames in tests/golden/hyperprior/: a 96x64 crop of kodim23 (shipped
corpus), written by the shipped model of the day in a process with ATEN_CPU_CAPABILITY=default and
one thread, so that CI (another instruction set, other threads) decodes frames made elsewhere:
at quality 3.5 by d0f6e6f8 (no context), at quality 7.5 by 2e7fb25b (checkerboard context,
two coding phases), at quality 5 with a residual layer of step 9 by 2e7fb25b, and at quality 6 by
36a83657 (checkerboard context, the latent widened to 192 channels with h_s's hidden widths kept).

    ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1 python tests/golden/hyperprior_pin.py [checkerboard|residual|wide]   # on purpose only

Only decoding is pinned: the analysis transform is float, so another machine may choose other
latents for the same image; the tables those latents are coded with are exact everywhere.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
KODAK = HERE.parent.parent / "corpora" / "kodak"
FRAME = HERE / "hyperprior" / "kodim23-96x64-q3.5.gcx"
FRAME_CHECKERBOARD = HERE / "hyperprior" / "kodim23-96x64-q7.5-checkerboard.gcx"
FRAME_RESIDUAL = HERE / "hyperprior" / "kodim23-96x64-q5-step9.gcx"
FRAME_WIDE = HERE / "hyperprior" / "kodim23-96x64-q6-m192.gcx"
BOX = (330, 190, 426, 254)
QUALITY = 3.5
QUALITY_CHECKERBOARD = 7.5
STEP = 9


def image() -> Image.Image:
    with Image.open(KODAK / "kodim23.png") as im:
        return im.convert("RGB").crop(BOX)


if __name__ == "__main__":
    import sys

    import torch

    import gencodec

    torch.set_num_threads(1)
    which = sys.argv[1] if len(sys.argv) > 1 else ""
    if which == "checkerboard" and gencodec.get_codec("hyperprior").model.cfg.context != "checkerboard":
        sys.exit("the shipped hyperprior model has no checkerboard context")
    if which == "wide" and gencodec.get_codec("hyperprior").model.cfg.hs_ch == 0:
        sys.exit("the shipped hyperprior model has no widened latent (hs_ch)")
    frame, params = {"": (FRAME, dict(quality=QUALITY)),
                     "checkerboard": (FRAME_CHECKERBOARD, dict(quality=QUALITY_CHECKERBOARD)),
                     "residual": (FRAME_RESIDUAL, dict(quality=5, step=STEP)),
                     "wide": (FRAME_WIDE, dict(quality=6))}[which]
    frame.parent.mkdir(parents=True, exist_ok=True)
    frame.write_bytes(gencodec.compress(image(), codec="hyperprior", name="kodim23-crop.png", **params))
    print(frame, frame.stat().st_size, "bytes")
