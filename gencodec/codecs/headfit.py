"""Per-image output layers for ``pixelcnn``: the encoder refits each head's last layer to the image.

Each channel's head ends in a small linear layer (head_hidden activations -> (mean offset, scale
index)). Photos differ from the training photos in noise, grain and sharpness, and a network
trained on many images is calibrated to none in particular. So the encoder, before it codes,
fits that last layer -- per channel, 2 x (head_hidden + 1) integers -- to the image itself, and
stores the changed integers in the file when they save more than they cost (a few hundred
bytes). The decoder then runs an ordinary exact model whose output layers are the stored ones
(:meth:`ExactPixelCNN.with_outputs`): nothing changes in how tables are computed, so exactness
and decoding speed are untouched.

The fit is Newton's method on the code length of a sample of rows, every number of it computed
so that the encoder writes the same file on every machine (the decoder never needs the fit, only
its integers, but files should not depend on the machine that wrote them):

- costs are integer tables in 1/1024 bit (:func:`cost_tables`, through the pinned integer log2);
  their finite differences give integer gradients and curvatures;
- the products (activations x gradients, activations x curvature x activations) are integer sums
  below 2**53, exact in float64 in any order (so BLAS may run them);
- the 57 x 57 system is solved by Gaussian elimination written with elementwise operations only
  (:func:`solve_spd`: IEEE-rounded, no reductions whose order could vary);
- a step is kept only if it lowers the sample's integer cost.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from ..errors import CorruptFileError, ExactnessError

FIT_VERSION = 1  # header param "fit": per-image output layers stored in the payload (this module)
ROW_STEP = 9  # the sample: rows ROW_STEP // 2, + ROW_STEP, ... (all columns; an odd step)
MAX_SAMPLES = 1 << 17  # the sample's size on large images (per channel); one over 4x this is thinned, so
# every integer sum of the fit stays below 2**53 (n < 2**20 pixels x activations x curvatures < 2**33)
MIN_PIXELS = 48 * 48  # smaller images are not fitted (too few pixels to pay for the stored integers)
ITERATIONS = 6  # Newton steps (the curvature of the first is reused)
CURV_STEP = 3  # the curvature is summed over every CURV_STEP-th pixel of the sample (odd: both column parities)
STOP_GAIN = 20000  # the fit stops after a step that saves less than 1/STOP_GAIN of the sample's cost
HALVINGS = 3  # a step that does not lower the cost is halved this often before the fit stops
MARGIN = 2  # a channel keeps its refit where the whole-image gain before the remap and the histograms is
# more than MARGIN times what its integers cost to store (about half that gain survives them; chosen on
# held-out photos: 128 to 512 pixel crops of the training folder's held-out split, plain and 4:2:0)
W_LIMIT = (1 << 15) - 1  # stored weights fit int16 ...
B_LIMIT = 1 << 23  # ... and biases stay exact in float32


def sample_rows(h: int, w: int) -> range:
    """Rows of the fit's sample: every ROW_STEP-th, fewer on large images (about MAX_SAMPLES pixels;
    :func:`fit_output_layer` thins a sample that is still larger)."""
    step = max(ROW_STEP, -(-h * w // MAX_SAMPLES)) | 1  # odd: rows of both parities (the phase inputs)
    return range(min(step // 2, h - 1), h, step)


class CostTables:
    """Integer code lengths (1/1024 bit) of interior symbols by (scale index, residual index k =
    D x - md + 255 D), and their central differences along k and along the scale index."""

    def __init__(self, dist):
        from .image_lossless import ilog2

        d = dist.steps
        freq = (dist.cdf[:, d:] - dist.cdf[:, :-d] + 1).astype(np.float64)  # (S, 510 D + 1) table entries
        c = (16 << 10) - ilog2(freq)  # rows sum to 2**16: cost = 1024 (16 - log2 f)
        self.cost = c.astype(np.float64)
        pk = np.pad(c, ((0, 0), (1, 1)), mode="edge")
        ps = np.pad(c, ((1, 1), (0, 0)), mode="edge")
        # twice the derivative of the cost by the mean (md up = k down), and the curvature (>= 0)
        self.g_mean = (pk[:, :-2] - pk[:, 2:]).astype(np.float64)
        self.h_mean = np.maximum(pk[:, :-2] - 2 * c + pk[:, 2:], 0).astype(np.float64)
        self.g_scale = (ps[2:] - ps[:-2]).astype(np.float64)
        self.h_scale = np.maximum(ps[2:] - 2 * c + ps[:-2], 0).astype(np.float64)


def solve_spd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x with a x = b for a symmetric positive definite a (n, n), float64, by Gaussian elimination
    without pivoting, using elementwise operations only: the same bits on every machine."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    n = b.size
    for k in range(n - 1):
        f = a[k + 1 :, k] / a[k, k]
        a[k + 1 :, k + 1 :] -= np.multiply.outer(f, a[k, k + 1 :])
        b[k + 1 :] -= f * b[k]
    x = np.zeros(n)
    for k in range(n - 1, -1, -1):
        x[k] = b[k] / a[k, k]
        b[:k] -= a[:k, k] * x[k]
    return x


def _fits(theta: np.ndarray, max_in: int) -> bool:
    """Weights and biases within what the file stores and float32 holds exactly, and every
    accumulator below 2**24."""
    w, b = theta[:, :-1], theta[:, -1]
    return bool(np.abs(w).max() <= W_LIMIT and np.abs(b).max() <= B_LIMIT
                and (np.abs(w).sum(axis=1) * max_in + np.abs(b)).max() < (1 << 24))


def fit_output_layer(a: np.ndarray, p: np.ndarray, x: np.ndarray, layer, cfg, tables: CostTables):
    """Refit one head's output layer to a sample. a (N, hh) hidden activations (integers), p (N,)
    MED predictions, x (N,) symbols; layer: the model's ExactLinear -> (weight (2, hh), bias (2,))
    int64, the model's own when no step helps."""
    d_steps, n_scales = cfg.mean_steps, cfg.n_scales
    lo, hi = layer.out_fmt.lo, layer.out_fmt.hi
    scale = float(2**layer.shift)
    if a.shape[0] > 4 * MAX_SAMPLES:  # a very wide image: every step-th pixel (odd: both column parities)
        step = -(-a.shape[0] // MAX_SAMPLES) | 1
        a, p, x = a[::step], p[::step], x[::step]
    n, hh = a.shape
    a1 = np.empty((n, hh + 1), np.float32)  # activations and a 1 for the bias: integers, exact in float32
    a1[:, :hh] = a
    a1[:, hh] = 1.0
    a64 = a1.astype(np.float64)
    base = np.concatenate([layer.weight.numpy(), layer.bias.numpy()[:, None]], axis=1).astype(np.float64)
    dx = d_steps * x + 255 * d_steps

    def evaluate(theta):
        # partial sums are integers below 2**24 (_fits), so float32 is exact in any order
        o = (a1 @ theta.T.astype(np.float32)).astype(np.float64)
        o = np.clip(np.rint(o / scale), lo, hi)
        md_raw = d_steps * p + o[:, 0]
        md = np.clip(md_raw, 0, 255 * d_steps).astype(np.int64)
        s = np.clip(o[:, 1], 0, n_scales - 1).astype(np.int64)
        k = dx - md
        return tables.cost[s, k].sum(), (md_raw, o[:, 1], s, k)

    best, state = evaluate(base)
    cur = base
    curv: list[np.ndarray] = []
    for it in range(ITERATIONS):
        md_raw, o_s, s, k = state
        live = ((md_raw > 0) & (md_raw < 255 * d_steps), (o_s > 0) & (o_s < n_scales - 1))
        g = np.stack([np.where(live[0], tables.g_mean[s, k], 0.0),  # twice d cost / d output, integers
                      np.where(live[1], tables.g_scale[s, k], 0.0)], axis=1)
        grad = a64.T @ g  # (hh + 1, 2) integers below 2**53: exact in any order
        if it == 0:  # the curvature, from every CURV_STEP-th pixel of the sample
            a_c, s_c, k_c = a64[::CURV_STEP], s[::CURV_STEP], k[::CURV_STEP]
            for j, h_t in enumerate((tables.h_mean, tables.h_scale)):
                h = np.where(live[j][::CURV_STEP], h_t[s_c, k_c], 0.0)
                c_j = CURV_STEP * (a_c.T @ (a_c * h[:, None]))  # integers below 2**53
                trace = float(sum(int(v) for v in np.diagonal(c_j)))  # summed exactly, then rounded once
                curv.append(c_j + np.eye(hh + 1) * (trace * 1e-3 / (hh + 1) + 1.0))
        # d cost / d theta = a1' g / (2 scale), curvature a1' h a1 / scale**2 (plus a little damping)
        new = np.rint(cur - np.stack([solve_spd(curv[j], grad[:, j]) for j in range(2)]) * (scale / 2))
        for _ in range(HALVINGS + 1):
            if _fits(new, layer.in_fmt.max_abs):
                cost, st = evaluate(new)
                if cost < best:
                    gain, best, state, cur = best - cost, cost, st, new
                    break
            new = np.rint((new + cur) / 2)
        else:
            break
        if gain * STOP_GAIN < best:  # the step saved less than 1/STOP_GAIN of the cost: done
            break
    return cur[:, :hh].astype(np.int64), cur[:, hh].astype(np.int64)


def pack_fit(outs: dict[int, tuple[np.ndarray, np.ndarray]], model) -> bytes:
    """{channel: (weight, bias)} -> bytes: a channel mask, then per channel the changes from the
    model's own integers (int32 LE, weights row-major then biases), zlib-compressed."""
    mask = sum(1 << c for c in outs)
    parts = []
    for c in sorted(outs):
        layer = model.heads[c][1]
        w, b = outs[c]
        parts.append(np.concatenate([(w - layer.weight.numpy()).ravel(), b - layer.bias.numpy()]))
    body = np.concatenate(parts).astype("<i4").tobytes() if parts else b""
    return zlib.compress(struct.pack("<B", mask) + body, 9)


def unpack_fit(blob: bytes, model, n_coded: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    try:
        raw = zlib.decompress(blob)
    except zlib.error:
        raise CorruptFileError("pixelcnn: damaged per-image output layers") from None
    if not raw or raw[0] >> n_coded:
        raise CorruptFileError("pixelcnn: per-image output layers do not fit the model")
    chans = [c for c in range(n_coded) if raw[0] >> c & 1]
    hh = model.cfg.head_hidden
    per = 2 * hh + 2
    if len(raw) != 1 + 4 * per * len(chans):
        raise CorruptFileError("pixelcnn: per-image output layers do not fit the model")
    deltas = np.frombuffer(raw, "<i4", offset=1).astype(np.int64).reshape(len(chans), per)
    outs = {}
    for c, dlt in zip(chans, deltas):
        layer = model.heads[c][1]
        w = layer.weight.numpy().astype(np.int64) + dlt[: 2 * hh].reshape(2, hh)
        b = layer.bias.numpy().astype(np.int64) + dlt[2 * hh :]
        if not _fits(np.concatenate([w, b[:, None]], axis=1), layer.in_fmt.max_abs):
            raise CorruptFileError("pixelcnn: per-image output layers do not fit the model")
        outs[c] = (w, b)
    return outs


def fitted_model(model, outs):
    """The model with these output layers (:meth:`ExactPixelCNN.with_outputs`); CorruptFileError
    rather than ExactnessError for integers read from a file."""
    try:
        return model.with_outputs(outs)
    except ExactnessError:  # pragma: no cover - _fits already bounds every accumulator
        raise CorruptFileError("pixelcnn: per-image output layers do not fit the model") from None
