"""Subprocess for the hyperprior exactness test: under this process's ATEN_CPU_CAPABILITY /
OMP_NUM_THREADS (set by the parent), encode an image with a model file and decode a frame; print
JSON with the sha256 of the frame it wrote, of the symbols it decoded and of every table.
Usage: python _hyperprior_child.py MODEL IMAGE.png FRAME.gcx QUALITY"""

import hashlib
import json
import sys

import numpy as np
import torch
from PIL import Image

import gencodec
from gencodec import container
from gencodec.exact import driver
from gencodec.registry import get_codec

if __name__ == "__main__":
    model_path, image_path, frame_path, quality = sys.argv[1:5]
    torch.set_num_threads(int(__import__("os").environ.get("OMP_NUM_THREADS", "1")))
    codec = get_codec("hyperprior", model=model_path)
    img = Image.open(image_path)
    blob = gencodec.compress(img, codec="hyperprior", model=model_path, quality=float(quality))
    header, payload = container.unpack(open(frame_path, "rb").read())
    n_alpha = int.from_bytes(payload[:4], "little")
    rest = payload[4 + n_alpha :]
    n_esc = int.from_bytes(rest[:4], "little")
    shape = codec.model.symbol_shape(header.height, header.width)
    sym = driver.decode(codec.model, shape, rest[4 + n_esc :])
    tables = driver.tables_in_order(codec.model, sym, "session")
    sha = lambda b: hashlib.sha256(b).hexdigest()
    print(json.dumps(dict(frame=sha(blob), symbols=sha(np.ascontiguousarray(sym).tobytes()),
                          tables=sha(np.ascontiguousarray(tables).tobytes()))))
