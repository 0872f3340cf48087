"""Peak memory of pixelcnn on a 4000 x 3000 RGB image (issue target: within 4 GB of RAM).

    OMP_NUM_THREADS=1 /usr/bin/time -v python benchmarks/big_image_memory.py enc   # "Maximum resident set size"
    OMP_NUM_THREADS=1 /usr/bin/time -v python benchmarks/big_image_memory.py dec

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

FRAME = Path(tempfile.gettempdir()) / "gencodec-big-image.gcx"
rng = np.random.default_rng(0)
y, x = np.mgrid[0:3000, 0:4000]
arr = np.stack([(x // 7 + y // 5) % 256, (x // 3) % 256, (y // 4) % 256], -1) + rng.integers(0, 6, (3000, 4000, 3))
img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
if sys.argv[1:] == ["enc"]:
    t = time.time()
    blob = gencodec.compress(img, codec="pixelcnn")
    print(f"encode {time.time() - t:.1f} s, {8 * len(blob) / img.width / img.height / 3:.3f} bpsp")
    FRAME.write_bytes(blob)
elif sys.argv[1:] == ["dec"]:
    t = time.time()
    out = gencodec.decompress(FRAME.read_bytes())
    print(f"decode {time.time() - t:.1f} s, identical: {out.tobytes() == img.tobytes()}")
else:
    sys.exit(__doc__)
