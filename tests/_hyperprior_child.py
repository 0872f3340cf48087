"""Subprocess for the hyperprior exactness test: under this process's ATEN_CPU_CAPABILITY /
OMP_NUM_THREADS (set by the parent), encode an image with a model file and decode a frame; print
JSON with the sha256 of the frame it wrote, of the symbols it decoded and of every table.
With STEP, the frame has a residual layer: its symbols' sha256 too.
Usage: python _hyperprior_child.py MODEL IMAGE.png FRAME.gcx QUALITY [STEP]"""

import hashlib
import json
import sys

import numpy as np
import torch
from PIL import Image

import gencodec
from gencodec import container
from gencodec.codecs import residual
from gencodec.codecs.hyperprior import activity, residual_classes
from gencodec.exact import driver
from gencodec.registry import get_codec

if __name__ == "__main__":
    model_path, image_path, frame_path, quality = sys.argv[1:5]
    step = {"step": int(sys.argv[5])} if len(sys.argv) > 5 else {}
    torch.set_num_threads(int(__import__("os").environ.get("OMP_NUM_THREADS", "1")))
    codec = get_codec("hyperprior", model=model_path)
    img = Image.open(image_path)
    blob = gencodec.compress(img, codec="hyperprior", model=model_path, quality=float(quality), **step)
    header, payload = container.unpack(open(frame_path, "rb").read())
    n_alpha = int.from_bytes(payload[:4], "little")
    rest = payload[4 + n_alpha :]
    n_esc = int.from_bytes(rest[:4], "little")
    stream, layer = rest[4 + n_esc :], b""
    if step:  # u32 symbols length | symbols | layer
        n = int.from_bytes(stream[:4], "little")
        stream, layer = stream[4 : 4 + n], stream[4 + n :]
    shape = codec.model.symbol_shape(header.height, header.width)
    sym = driver.decode(codec.model, shape, stream)
    tables = driver.tables_in_order(codec.model, sym, "session")
    sha = lambda b: hashlib.sha256(b).hexdigest()
    out = dict(frame=sha(blob), symbols=sha(np.ascontiguousarray(sym).tobytes()),
               tables=sha(np.ascontiguousarray(tables).tobytes()))
    if step:
        classes = residual_classes(activity(codec.model.complete_tables(sym)), header.height, header.width)
        q = residual.decode_symbols(layer, step["step"], classes, (header.height, header.width, 3))
        out["residual"] = sha(np.ascontiguousarray(q).tobytes())
    print(json.dumps(out))
