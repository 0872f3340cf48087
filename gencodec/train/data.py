"""Training images from a folder: discovery, area downscaling, a held-out split, seeded random crops.

A folder is any directory of PNG/PPM/BMP/TIFF images (searched recursively). If it holds a
``manifest.json`` whose ``files`` entries carry ``lossless_source``, images not known to be
lossless are area-downscaled (box filter) by ``downscale`` to wash out JPEG 8x8 block statistics;
otherwise every image is downscaled. Nothing here knows any particular corpus.

Example::

    images = load_folder("photos/", downscale=2, val_glob="wiki/04*")
    crops = CropSampler(images.train, crop=64, seed=0).batch(step=0, batch_size=8)  # (8, 3, 64, 64) uint8
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".png", ".ppm", ".pgm", ".bmp", ".tif", ".tiff"}


@dataclass
class TrainImage:
    name: str  # path relative to the folder
    pixels: np.ndarray  # (H, W, 3) uint8, after downscaling
    sha256: str  # of the file's bytes
    downscaled: int  # factor applied (1 = none)


@dataclass
class ImageFolder:
    root: str
    train: list[TrainImage] = field(default_factory=list)
    val: list[TrainImage] = field(default_factory=list)

    def describe(self) -> dict:
        """Names, hashes and sizes, for a model card."""
        def rows(items):
            return [dict(name=i.name, sha256=i.sha256, downscaled=i.downscaled, shape=list(i.pixels.shape)) for i in items]

        return dict(root=str(self.root), train=rows(self.train), val=rows(self.val))


def _lossless_flags(root: Path) -> dict[str, bool]:
    """Relative path -> lossless_source is True, from the folder's manifest.json (if any)."""
    manifest = root / "manifest.json"
    if not manifest.is_file():
        return {}
    try:
        entries = json.loads(manifest.read_text()).get("files", [])
    except (ValueError, AttributeError):
        return {}
    flags = {}
    for e in entries:
        f = str(e.get("file", ""))
        parts = Path(f).parts
        rel = str(Path(*parts[1:])) if parts and parts[0] == root.name else f  # "train/wiki/x.png" -> "wiki/x.png"
        flags[rel] = e.get("lossless_source") is True
    return flags


def area_downscale(pixels: np.ndarray, factor: int) -> np.ndarray:
    """(H, W, C) uint8 -> (H // f, W // f, C): mean over f x f boxes, rounded half up."""
    if factor <= 1:
        return pixels
    h, w = pixels.shape[0] // factor * factor, pixels.shape[1] // factor * factor
    boxes = pixels[:h, :w].reshape(h // factor, factor, w // factor, factor, -1).astype(np.int64)
    total = boxes.sum(axis=(1, 3))
    n = factor * factor
    return ((total + n // 2) // n).astype(np.uint8)


def load_folder(root: str | Path, downscale: int = 2, val_glob: str | None = None, val_fraction: float = 0.05,
                min_side: int = 16) -> ImageFolder:
    """Read every image under ``root`` as RGB, downscale, and split into train / validation.

    val_glob: images whose relative path matches go to validation; without it, a fixed
    ``val_fraction`` chosen by hash of the relative path (deterministic, at least one image).
    """
    from PIL import Image

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory")
    flags = _lossless_flags(root)
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise FileNotFoundError(f"{root}: no images (png, ppm, bmp, tiff) found")
    out = ImageFolder(str(root))
    rels = [str(p.relative_to(root)) for p in paths]
    if val_glob:
        is_val = [fnmatch.fnmatch(r, val_glob) for r in rels]
    else:
        ranked = sorted(rels, key=lambda r: hashlib.sha256(r.encode()).hexdigest())
        chosen = set(ranked[: max(1, round(val_fraction * len(rels)))]) if len(rels) > 1 else set()
        is_val = [r in chosen for r in rels]
    for path, rel, val in zip(paths, rels, is_val):
        raw = path.read_bytes()
        with Image.open(path) as im:
            pixels = np.asarray(im.convert("RGB"))
        factor = 1 if flags.get(rel, False) else downscale
        pixels = area_downscale(pixels, factor)
        if min(pixels.shape[:2]) < min_side:
            continue
        item = TrainImage(rel, np.ascontiguousarray(pixels), hashlib.sha256(raw).hexdigest(), factor)
        (out.val if val else out.train).append(item)
    return out


def save_pixels(folder: ImageFolder, out: str | Path) -> dict:
    """Write every image of ``folder`` (train and validation, after downscaling) as a PNG under
    ``out`` (same relative path, suffix .png) with a manifest.json marking each lossless, so that
    ``load_folder(out)`` reads exactly these pixels with no further downscaling: the training data of
    a machine that receives only the repository (see docs/MODELS.md, "Training"). Also writes
    describe.json (the originals' names and hashes, for the model card). Returns folder.describe()."""
    from PIL import Image

    out = Path(out)
    entries = []
    for item in folder.train + folder.val:
        rel = str(Path(item.name).with_suffix(".png"))
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(item.pixels).save(out / rel)
        entries.append(dict(file=rel, lossless_source=True))
    note = f"pixels of {folder.root} after gencodec's load_folder (downscaled where not lossless)"
    (out / "manifest.json").write_text(json.dumps(dict(note=note, files=entries), indent=1))
    desc = folder.describe()
    (out / "describe.json").write_text(json.dumps(desc, indent=1))
    return desc


def pick_weights(images: list[TrainImage]) -> np.ndarray:
    """Probability of drawing each image: its area, capped at 4x the median (one huge image must not dominate)."""
    areas = np.array([i.pixels.shape[0] * i.pixels.shape[1] for i in images], dtype=np.float64)
    areas = np.minimum(areas, 4 * np.median(areas))
    return areas / areas.sum()


class CropSampler:
    """Random crops, a pure function of (seed, step): resuming at step k gives the same batches.

    Images are drawn with probability proportional to their area (capped at 4x the median); crops are flipped left-right
    at random (a causal model's context is unchanged by the flip's statistics).
    """

    def __init__(self, images: list[TrainImage], crop: int, seed: int, chroma420: float = 0.0):
        if not images:
            raise ValueError("no training images")
        self.images = images
        self.crop = crop
        self.seed = seed
        self.chroma420 = chroma420
        self.p = pick_weights(images)

    def batch(self, step: int, batch_size: int) -> np.ndarray:
        """-> (B, 3, crop, crop) uint8."""
        rng = np.random.default_rng([self.seed, step])
        out = np.empty((batch_size, 3, self.crop, self.crop), np.uint8)
        picks = rng.choice(len(self.images), size=batch_size, p=self.p)
        for b, k in enumerate(picks):
            px = self.images[k].pixels
            h, w = px.shape[:2]
            ch, cw = min(self.crop, h), min(self.crop, w)
            y = int(rng.integers(0, h - ch + 1))
            x = int(rng.integers(0, w - cw + 1))
            tile = px[y : y + ch, x : x + cw]
            if rng.random() < 0.5:
                tile = tile[:, ::-1]
            if (ch, cw) != (self.crop, self.crop):  # tiny image: pad by edge replication
                tile = np.pad(tile, ((0, self.crop - ch), (0, self.crop - cw), (0, 0)), mode="edge")
            out[b] = tile.transpose(2, 0, 1)
        if self.chroma420 > 0:  # drawn after the crops: with chroma420 = 0 the batches are unchanged
            for b in range(batch_size):
                if rng.random() < self.chroma420:
                    up = UPSAMPLERS[int(rng.integers(0, len(UPSAMPLERS)))]
                    out[b] = chroma_subsample(out[b].transpose(1, 2, 0), up).transpose(2, 0, 1)
        return out


UPSAMPLERS = ("triangle", "nearest")


def chroma_subsample(rgb: np.ndarray, upsample: str = "triangle") -> np.ndarray:
    """(H, W, 3) uint8 -> the same picture after a JPEG-style 4:2:0 chroma round trip.

    Most photos have been through one: cameras and JPEG encoders store YCbCr (BT.601 full range,
    as JFIF) with chroma averaged over 2 x 2 blocks, and decoders upsample it -- "triangle" is
    libjpeg's fancy upsampling (3/4, 1/4 weights), "nearest" replicates. Training on such crops
    teaches the model the strong colour structure they leave (the RGB planes carry much less than
    three planes' worth of information).
    """
    import torch

    return chroma_subsample_torch(torch.from_numpy(np.asarray(rgb).astype(np.float64)), upsample).numpy()


class TorchCropSampler:
    """CropSampler's job on an accelerator: random crops, flips and 4:2:0 round trips made on ``device``.

    All training images sit in one flat uint8 tensor on the device; a batch is one gather, so a GPU is
    never left waiting for Python. Same law as CropSampler (area-weighted picks capped at 4x the median,
    left-right flips, edge replication for images smaller than the crop, ``chroma420`` of the crops
    round-tripped with a random upsampler), drawn from a torch generator seeded with (seed, step):
    a pure function of the step on a given device, but not the same crops as CropSampler's.
    """

    def __init__(self, images: list[TrainImage], crop: int, seed: int, chroma420: float = 0.0, device="cpu"):
        import torch

        if not images:
            raise ValueError("no training images")
        self.crop, self.seed, self.chroma420, self.device = crop, seed, chroma420, torch.device(device)
        self.flat = torch.from_numpy(np.concatenate([i.pixels.reshape(-1) for i in images])).to(self.device)
        sizes = [i.pixels.size for i in images]
        self.offset = torch.tensor(np.cumsum([0] + sizes[:-1]), dtype=torch.int64, device=self.device)
        self.h = torch.tensor([i.pixels.shape[0] for i in images], dtype=torch.int64, device=self.device)
        self.w = torch.tensor([i.pixels.shape[1] for i in images], dtype=torch.int64, device=self.device)
        self.p = torch.tensor(pick_weights(images), device=self.device)

    def batch(self, step: int, batch_size: int):
        """-> (B, 3, crop, crop) uint8 tensor on the device."""
        import torch

        g = torch.Generator(self.device)
        g.manual_seed(self.seed * 1_000_003 + step)
        n = self.crop

        def uniform(size):
            return torch.rand(size, generator=g, device=self.device, dtype=torch.float64)

        k = torch.multinomial(self.p, batch_size, replacement=True, generator=g)
        h, w = self.h[k], self.w[k]
        ch, cw = torch.clamp(h, max=n), torch.clamp(w, max=n)
        y = (uniform(batch_size) * (h - ch + 1)).long()
        x = (uniform(batch_size) * (w - cw + 1)).long()
        flip = uniform(batch_size) < 0.5
        j = torch.arange(n, device=self.device)
        dy = torch.minimum(j[None, :], ch[:, None] - 1)  # (B, n): rows past a small image repeat its last
        dx = torch.minimum(j[None, :], cw[:, None] - 1)
        dx = torch.where(flip[:, None], cw[:, None] - 1 - dx, dx)
        pix = (y[:, None] + dy)[:, :, None] * w[:, None, None] + (x[:, None] + dx)[:, None, :]  # (B, n, n)
        idx = self.offset[k][:, None, None] + 3 * pix
        out = self.flat[idx[..., None] + torch.arange(3, device=self.device)]  # (B, n, n, 3)
        if self.chroma420 > 0:
            pick = uniform(batch_size) < self.chroma420
            up = torch.randint(0, len(UPSAMPLERS), (batch_size,), generator=g, device=self.device)
            rgb = out.double()
            for u, how in enumerate(UPSAMPLERS):
                sel = pick & (up == u)
                if bool(sel.any()):
                    out[sel] = chroma_subsample_torch(rgb[sel], how)
        return out.permute(0, 3, 1, 2).contiguous()


def chroma_subsample_torch(rgb, upsample: str = "triangle"):
    """:func:`chroma_subsample` on a float64 tensor (..., H, W, 3) of pixel values -> uint8 tensor, any
    leading (batch) dimensions, on any device (the one implementation of the round trip)."""
    import torch

    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = torch.clamp(torch.round(0.299 * r + 0.587 * g + 0.114 * b), 0, 255)
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    h, w = y.shape[-2:]
    he, we = h + h % 2, w + w % 2
    chroma = []
    for c in (cb, cr):
        if (he, we) != (h, w):  # edge replication to even sides
            c = torch.cat([c, c[..., -1:, :]], dim=-2) if he != h else c
            c = torch.cat([c, c[..., :, -1:]], dim=-1) if we != w else c
        small = c.reshape(*c.shape[:-2], he // 2, 2, we // 2, 2).mean(dim=(-3, -1))
        small = torch.clamp(torch.round(small), 0, 255)
        chroma.append(_upsample2_torch(small, upsample)[..., :h, :w])
    cb, cr = chroma
    out = torch.stack([y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128),
                       y + 1.772 * (cb - 128)], dim=-1)
    return torch.clamp(torch.round(out), 0, 255).to(torch.uint8)


def _upsample2_torch(c, how: str):
    import torch

    if how == "nearest":
        return c.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
    if how != "triangle":
        raise ValueError(f"unknown upsampling {how!r}")
    for dim in (-2, -1):
        n = c.shape[dim]
        prev = torch.cat([c.narrow(dim, 0, 1), c.narrow(dim, 0, n - 1)], dim=dim)
        nxt = torch.cat([c.narrow(dim, 1, n - 1), c.narrow(dim, n - 1, 1)], dim=dim)
        even, odd = 0.75 * c + 0.25 * prev, 0.75 * c + 0.25 * nxt
        both = torch.stack([even, odd], dim=dim)  # (..., n, 2, ...) at dim
        shape = list(c.shape)
        shape[dim] = 2 * n
        c = both.reshape(shape) if dim == -1 else both.reshape(*c.shape[:-2], 2 * n, c.shape[-1])
    return c


def val_crops(images: list[TrainImage], size: int = 256, per_image: int = 1) -> list[np.ndarray]:
    """Fixed centre crops (3, h, w) uint8 of the validation images (at most size x size each)."""
    out = []
    for item in images:
        px = item.pixels
        h, w = px.shape[:2]
        ch, cw = min(size, h), min(size, w)
        y, x = (h - ch) // 2, (w - cw) // 2
        out.append(np.ascontiguousarray(px[y : y + ch, x : x + cw].transpose(2, 0, 1)))
    return out
