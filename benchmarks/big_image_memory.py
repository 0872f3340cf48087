"""Peak memory of a codec (pixelcnn unless named) on a 4000 x 3000 RGB image (pixelcnn's issue
target: within 4 GB of RAM).

    OMP_NUM_THREADS=1 /usr/bin/time -v python benchmarks/big_image_memory.py enc   # "Maximum resident set size"
    OMP_NUM_THREADS=1 /usr/bin/time -v python benchmarks/big_image_memory.py dec
    OMP_NUM_THREADS=1 /usr/bin/time -v python benchmarks/big_image_memory.py enc hyperprior   # at quality 4

The image is synthetic (integer ramps plus seeded noise), so the numbers can be reproduced anywhere;
the frame is kept in the system temp folder between the two calls.
"""
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import gencodec


def psnr(a: Image.Image, b: Image.Image) -> float:
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return 10 * np.log10(255**2 / np.mean(d**2))

FRAME = Path(tempfile.gettempdir()) / "gencodec-big-image.gcx"
CODEC = sys.argv[2] if len(sys.argv) > 2 else "pixelcnn"
PARAMS = {"hyperprior": {"quality": 4}}.get(CODEC, {})


def image() -> Image.Image:
    """The synthetic photo; its int64 intermediates (about 0.9 GB) are freed before coding."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:3000, 0:4000]
    arr = np.stack([(x // 7 + y // 5) % 256, (x // 3) % 256, (y // 4) % 256], -1) + rng.integers(0, 6, (3000, 4000, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


img = image()
if sys.argv[1:2] == ["enc"]:
    t = time.time()
    blob = gencodec.compress(img, codec=CODEC, **PARAMS)
    print(f"{CODEC}: encode {time.time() - t:.1f} s, {8 * len(blob) / img.width / img.height:.3f} bits per pixel")
    FRAME.write_bytes(blob)
elif sys.argv[1:2] == ["dec"]:
    t = time.time()
    out = gencodec.decompress(FRAME.read_bytes())
    same = out.tobytes() == img.tobytes()
    print(f"decode {time.time() - t:.1f} s, identical: {same}" + ("" if same else f", PSNR {psnr(out, img):.2f} dB"))
else:
    sys.exit(__doc__)
