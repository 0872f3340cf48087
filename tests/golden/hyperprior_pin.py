"""The pinned hyperprior frames in tests/golden/hyperprior/: a 96x64 crop of kodim23 (shipped
corpus), written by the shipped model of the day in a process with ATEN_CPU_CAPABILITY=default and
one thread, so that CI (another instruction set, other threads) decodes frames made elsewhere:
at quality 3.5 by d0f6e6f8 (no context), and at quality 7.5 by 2e7fb25b (checkerboard context,
two coding phases).

    ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1 python tests/golden/hyperprior_pin.py [checkerboard]   # on purpose only

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
BOX = (330, 190, 426, 254)
QUALITY = 3.5
QUALITY_CHECKERBOARD = 7.5


def image() -> Image.Image:
    with Image.open(KODAK / "kodim23.png") as im:
        return im.convert("RGB").crop(BOX)


if __name__ == "__main__":
    import sys

    import torch

    import gencodec

    torch.set_num_threads(1)
    cb = sys.argv[1:] == ["checkerboard"]
    frame, quality = (FRAME_CHECKERBOARD, QUALITY_CHECKERBOARD) if cb else (FRAME, QUALITY)
    if cb and gencodec.get_codec("hyperprior").model.cfg.context != "checkerboard":
        sys.exit("the shipped hyperprior model has no checkerboard context")
    frame.parent.mkdir(parents=True, exist_ok=True)
    frame.write_bytes(gencodec.compress(image(), codec="hyperprior", quality=quality, name="kodim23-crop.png"))
    print(frame, frame.stat().st_size, "bytes")
