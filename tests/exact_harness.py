"""Exactness harness: a tiny exact causal image model (a reference implementation of
:class:`gencodec.exact.protocol.TableModel`) and a plain float twin for the negative control.

Both the test process and the subprocess script ``_exact_child.py`` import this module. Weights
come from numpy's integer generator, so every process builds bit-identical models without files.

TinyCausalModel: RGB (H, W, 3) uint8 -> per subpixel a mean (units 1/4) and scale index ->
LogisticTables freqs. A :class:`~gencodec.exact.stack.CausalConvStack`: 3x3 masked conv 'A' with
3 channel groups (3 -> 16, ReLU), 3x3 masked 'B' (16 -> 16, ReLU), 1x1 masked 'B' (16 -> 6: mean
and scale per channel). Each layer reaches one column right in the row above, so the schedule is
a wavefront with reach 1; the decoder caches every layer's outputs.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from gencodec.exact import ExactConv2d, LogisticTables, QFormat, causal_mask, exact_mode, prepare_exact
from gencodec.exact.protocol import Schedule, wavefront_schedule
from gencodec.exact.stack import CausalConvStack

PIXELS = QFormat(0, 0, 255)
HIDDEN = QFormat(4, 0, 127)
OUT = QFormat(2, -2047, 2047)
TABLES = LogisticTables(n_values=256, n_scales=32, scale_min=0.25, scale_max=40.0, mean_frac_bits=2)


def _conv(rng: np.random.Generator, c_in: int, c_out: int, k: int, mask_type: str, in_fmt: QFormat,
          out_fmt: QFormat, w_frac_bits: int, w_max: int) -> ExactConv2d:
    w = torch.from_numpy(rng.integers(-w_max, w_max + 1, size=(c_out, c_in, k, k)).astype(np.float32))
    w = w * causal_mask(c_out, c_in, k, mask_type, n_groups=3)
    b = torch.from_numpy(rng.integers(-2000, 2001, size=c_out).astype(np.float32))
    shift = in_fmt.frac_bits + w_frac_bits - out_fmt.frac_bits
    pad = (k // 2, k // 2, k // 2, k // 2)
    return ExactConv2d(w, b, shift, pad, in_fmt, out_fmt)


def build_stack(seed: int = 0) -> CausalConvStack:
    rng = np.random.default_rng(seed)
    return CausalConvStack([
        _conv(rng, 3, 16, 3, "A", PIXELS, HIDDEN, 11, 127),
        _conv(rng, 16, 16, 3, "B", HIDDEN, HIDDEN, 7, 63),
        _conv(rng, 16, 6, 1, "B", HIDDEN, OUT, 6, 63),
    ])


def _split(idx: np.ndarray, width: int) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """Flat symbol indices of one group -> (channels, rows, cols)."""
    pixel, ch = np.divmod(idx, 3)
    rows, cols = np.divmod(pixel, width)
    return ch, torch.from_numpy(rows), torch.from_numpy(cols)


class _Session:
    """Decoder: the stack's cache holds the decoded pixels and every layer's outputs so far."""

    def __init__(self, model: "TinyCausalModel", shape: tuple[int, int, int]):
        h, w, _ = shape
        self.model, self.width = model, w
        self.cache = model.stack.begin((1, 3, h, w))
        self.schedule = model.schedule(shape)
        self.t = 0

    def next_freqs(self) -> np.ndarray:
        ch, rows, cols = _split(self.schedule.groups[self.t], self.width)
        with exact_mode():
            out = self.cache.outputs_at(rows, cols)[0].cpu()  # (6, P)
        c = int(ch[0])
        return self.model.freqs_from_outputs(out[2 * c], out[2 * c + 1])

    def push(self, symbols: np.ndarray) -> None:
        ch, rows, cols = _split(self.schedule.groups[self.t], self.width)
        self.cache.set_input(int(ch[0]), rows, cols, torch.from_numpy(np.asarray(symbols))[None])
        self.t += 1


class TinyCausalModel:
    """Reference TableModel over RGB images (H, W, 3). ``batch``: pixels per evaluation in the
    parallel path (None: whole-image convolutions; k: raster chunks of k pixels through the
    decoder's cache machinery); ``dtype``: float32 or float64; ``device``: where the network runs
    (tables are always built on the CPU)."""

    def __init__(self, dtype: torch.dtype = torch.float32, batch: int | None = None, seed: int = 0,
                 device: str = "cpu"):
        self.stack = prepare_exact(build_stack(seed), dtype).to(device)
        self.dtype, self.batch, self.device = dtype, batch, torch.device(device)

    @staticmethod
    def freqs_from_outputs(mean_raw: torch.Tensor, scale_raw: torch.Tensor) -> np.ndarray:
        mean_q = mean_raw.to(torch.int64).numpy() + 512  # units of 1/4 around 128
        scale_idx = np.floor_divide(scale_raw.to(torch.int64).numpy(), 64) + 16
        return TABLES.freqs(mean_q, scale_idx)

    # -- protocol -------------------------------------------------------------------------------
    def schedule(self, shape) -> Schedule:
        h, w, c = shape
        return wavefront_schedule(h, w, c, self.stack.reach_right)

    def parallel(self, symbols: np.ndarray):
        h, w, _ = symbols.shape
        image = torch.from_numpy(np.ascontiguousarray(symbols.transpose(2, 0, 1))[None]).to(self.dtype)
        image = image.to(self.device)  # (1, 3, H, W)
        with exact_mode():
            if self.batch is None:
                out = self.stack(image)[0].flatten(1).cpu()  # (6, H*W)
            else:
                cache = self.stack.begin(tuple(image.shape))
                cache.set_image(image)
                rows, cols = np.divmod(np.arange(h * w), w)
                out = torch.cat([cache.outputs_at(torch.from_numpy(rows[i:i + self.batch]),
                                                  torch.from_numpy(cols[i:i + self.batch]))[0].cpu()
                                 for i in range(0, h * w, self.batch)], dim=1)  # (6, H*W)

        def tables(idx: np.ndarray) -> np.ndarray:
            pixel, ch = np.divmod(idx, 3)
            pix_t, ch_t = torch.from_numpy(pixel), torch.from_numpy(ch)
            return self.freqs_from_outputs(out[2 * ch_t, pix_t], out[2 * ch_t + 1, pix_t])

        return tables

    def incremental(self, shape) -> _Session:
        return _Session(self, tuple(shape))


def harness_image(h: int = 24, w: int = 20, seed: int = 1) -> np.ndarray:
    """A smooth-plus-noise RGB image (H, W, 3) uint8, deterministic."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = 100 + 60 * np.sin(x / 4.0)[..., None] + 40 * np.cos(y / 5.0)[..., None] + np.array([0, 20, -20])
    return np.clip(base + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)


def sha(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


# -- negative control: a plain float network ------------------------------------------------------
def float_outputs(batch: int, n: int = 192, seed: int = 0) -> np.ndarray:
    """Softmax outputs (n, 256) float32 of a float MLP 300-512-256, evaluated ``batch`` rows at a
    time. Ordinary float inference: the bits depend on batch split and CPU instruction set."""
    rng = np.random.default_rng(seed)
    w1 = torch.from_numpy(rng.standard_normal((512, 300)).astype(np.float32) / 17)
    w2 = torch.from_numpy(rng.standard_normal((256, 512)).astype(np.float32) / 22)
    x = torch.from_numpy(rng.standard_normal((n, 300)).astype(np.float32))
    with torch.no_grad():
        parts = [torch.softmax(torch.relu(x[i:i + batch] @ w1.T) @ w2.T, -1) for i in range(0, n, batch)]
    return torch.cat(parts).numpy()


#: (torch threads, dtype, batch) for the exact model; batch "inc" = the incremental (decoder) path,
#: None = whole-image convolutions, an int = pixels per evaluation in the parallel path.
EXACT_VARIATIONS = [
    *[(1, torch.float32, b) for b in (None, 1, 7, 64, "inc")],
    *[(1, torch.float64, b) for b in (None, 7, "inc")],
    *[(2, torch.float32, b) for b in (None, 64, "inc")],
    (2, torch.float64, None),
]


def all_hashes(image: np.ndarray) -> dict[str, str]:
    """sha256 of the tables under every in-process variation (:data:`EXACT_VARIATIONS`), keys
    ``exact/...``; plus the float control under batch splits 1/7/64, keys ``float/...``."""
    from gencodec.exact.protocol import tables_in_order

    out = {}
    saved = torch.get_num_threads()
    try:
        for threads, dtype, batch in EXACT_VARIATIONS:
            torch.set_num_threads(threads)
            name = "f32" if dtype == torch.float32 else "f64"
            if batch == "inc":
                tables = tables_in_order(TinyCausalModel(dtype), image, "incremental")
            else:
                tables = tables_in_order(TinyCausalModel(dtype, batch), image, "parallel")
            out[f"exact/{batch}/t{threads}/{name}"] = sha(tables)
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for batch in (1, 7, 64):
                out[f"float/b{batch}/t{threads}"] = sha(float_outputs(batch))
    finally:
        torch.set_num_threads(saved)
    return out
