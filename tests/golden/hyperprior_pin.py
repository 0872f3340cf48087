"""The pinned hyperprior frame in tests/golden/hyperprior/: a 96x64 crop of kodim23 (shipped
corpus) at quality 3.5, written by the shipped model in a process with ATEN_CPU_CAPABILITY=default
and one thread, so that CI (another instruction set, other threads) decodes a frame made elsewhere.

    ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1 python tests/golden/hyperprior_pin.py   # on purpose only

Only decoding is pinned: the analysis transform is float, so another machine may choose other
latents for the same image; the tables those latents are coded with are exact everywhere.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
KODAK = HERE.parent.parent / "corpora" / "kodak"
FRAME = HERE / "hyperprior" / "kodim23-96x64-q3.5.gcx"
BOX = (330, 190, 426, 254)
QUALITY = 3.5


def image() -> Image.Image:
    with Image.open(KODAK / "kodim23.png") as im:
        return im.convert("RGB").crop(BOX)


if __name__ == "__main__":
    import torch

    import gencodec

    torch.set_num_threads(1)
    FRAME.parent.mkdir(parents=True, exist_ok=True)
    FRAME.write_bytes(gencodec.compress(image(), codec="hyperprior", quality=QUALITY, name="kodim23-crop.png"))
    print(FRAME, FRAME.stat().st_size, "bytes")
