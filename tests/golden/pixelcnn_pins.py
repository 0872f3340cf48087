"""Inputs of the pinned pixelcnn frames in tests/golden/pixelcnn/pins/ (built from the shipped Kodak
photos with integer operations only, so every machine makes the same pixels).

    python tests/golden/pixelcnn_pins.py      # writes the frames with today's code: run only on purpose

The frames were first written before the neural codec contract (issue 13) by the code they pin,
so the test that compares today's payloads with them checks that the move kept every bit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
KODAK = HERE.parent.parent / "corpora" / "kodak"
PINS = HERE / "pixelcnn" / "pins"


def _kodak(name: str, box: tuple[int, int, int, int]) -> np.ndarray:
    with Image.open(KODAK / f"{name}.png") as im:
        return np.asarray(im.convert("RGB").crop(box))


def inputs() -> dict[str, Image.Image]:
    """Pin name -> image."""
    rgb = _kodak("kodim23", (300, 200, 380, 260))  # 80 x 60: big enough for refitted heads
    grey = _kodak("kodim05", (100, 100, 228, 196))[..., 1]  # 128 x 96, the green plane as L
    rgba = np.concatenate([_kodak("kodim13", (0, 0, 40, 30)), ((np.arange(40)[None, :] * 7 + np.arange(30)[:, None] * 3) % 256)[..., None].astype(np.uint8)], axis=-1)
    tiny = _kodak("kodim01", (10, 10, 13, 12))  # 3 x 2
    return {
        "rgb-80x60": Image.fromarray(rgb, "RGB"),
        "l-128x96": Image.fromarray(np.ascontiguousarray(grey), "L"),
        "rgba-40x30": Image.fromarray(np.ascontiguousarray(rgba), "RGBA"),
        "rgb-3x2": Image.fromarray(np.ascontiguousarray(tiny), "RGB"),
        "rgb-1x1": Image.fromarray(np.ascontiguousarray(tiny[:1, :1]), "RGB"),
        "l-1x1": Image.fromarray(np.ascontiguousarray(grey[:1, :1]), "L"),
    }


def main() -> None:
    import gencodec

    PINS.mkdir(parents=True, exist_ok=True)
    for name, img in inputs().items():
        blob = gencodec.compress(img, codec="pixelcnn", name=f"{name}.png")
        (PINS / f"{name}.gcx").write_bytes(blob)
        print(f"{name}: {len(blob)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
