"""Shared fixtures: the shipped corpora, Kodak crops, and synthetic images in every mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CORPORA = Path(__file__).resolve().parent.parent / "corpora"

#: Every image mode a .gcx frame can describe (gencodec.imageio.BIT_DEPTHS).
ALL_MODES = ("1", "L", "LA", "RGB", "RGBA", "P", "I;16")
#: Synthetic image kinds made by :func:`synthetic_image`.
SYNTHETIC_KINDS = ("constant", "noise", "gradient")
#: (width, height) of synthetic images: tiny, thin and odd shapes.
SYNTHETIC_SIZES = ((1, 1), (1, 9), (9, 1), (17, 5), (31, 23))


def synthetic_image(mode: str, kind: str, size: tuple[int, int], seed: int = 0) -> Image.Image:
    """A deterministic image of ``mode`` and ``size`` (width, height).

    kind: "constant" (one value), "noise" (uniform over the full sample range) or "gradient"
    (a smooth ramp along both axes). P images get a random RGBA palette of 256 entries and a
    transparency table; RGBA/LA noise includes alpha 0 over non-zero colour.
    """
    width, height = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    channels = {"1": 1, "L": 1, "P": 1, "I;16": 1, "LA": 2, "RGB": 3, "RGBA": 4}[mode]
    top = 65535 if mode == "I;16" else 255
    if kind == "constant":
        arr = np.full((height, width, channels), top // 3, dtype=np.int64)
    elif kind == "noise":
        arr = rng.integers(0, top + 1, (height, width, channels))
    elif kind == "gradient":
        ramp = (x * 7 + y * 3) % (top + 1) if mode != "I;16" else (x * 1031 + y * 257) % (top + 1)
        arr = np.stack([(ramp + 40 * c) % (top + 1) for c in range(channels)], axis=-1)
    else:
        raise ValueError(f"unknown synthetic kind {kind!r}")
    if mode == "1":
        return Image.fromarray((arr[:, :, 0] % 2).astype(bool) if kind != "constant" else np.ones((height, width), bool))
    if mode == "I;16":
        return Image.fromarray(arr[:, :, 0].astype(np.uint16))
    plane = arr.astype(np.uint8)
    if mode == "P":
        img = Image.frombytes("P", size, plane[:, :, 0].tobytes())
        img.putpalette(rng.integers(0, 256, 1024, dtype=np.uint8).tobytes(), rawmode="RGBA")
        img.info["transparency"] = bytes(rng.integers(0, 256, 256, dtype=np.uint8))
        return img
    return Image.frombytes(mode, size, np.ascontiguousarray(plane).tobytes())


@pytest.fixture(scope="session")
def kodak_dir() -> Path:
    return CORPORA / "kodak"


@pytest.fixture(scope="session")
def canterbury_dir() -> Path:
    return CORPORA / "canterbury"


@pytest.fixture(scope="session")
def kodak_crop():
    """kodak_crop(name="kodim23", box=(left, upper, right, lower)) -> RGB PIL image (a copy)."""

    def crop(name: str = "kodim23", box: tuple[int, int, int, int] = (256, 128, 384, 224)) -> Image.Image:
        with Image.open(CORPORA / "kodak" / f"{name}.png") as img:
            return img.crop(box).copy()

    return crop


@pytest.fixture(scope="session")
def synthetic():
    """The :func:`synthetic_image` factory: synthetic(mode, kind, (width, height))."""
    return synthetic_image


#: a short text the byte-model tests code and train on
TEXT = (b"It was the best of times, it was the worst of times, it was the age of wisdom, "
        b"it was the age of foolishness, it was the epoch of belief, it was the epoch of incredulity.\n")


@pytest.fixture
def texts(tmp_path) -> Path:
    """A training folder for byte models: four books of shuffled words, a held-out val.txt, a hidden file."""
    root = tmp_path / "texts"
    (root / "books").mkdir(parents=True)
    rng = np.random.default_rng(0)
    words = TEXT.split()
    for i in range(4):
        (root / "books" / f"b{i}.txt").write_bytes(b" ".join(words[j] for j in rng.integers(0, len(words), 3000)))
    (root / "val.txt").write_bytes(TEXT * 20)
    (root / ".hidden").write_bytes(b"never read")
    return root
