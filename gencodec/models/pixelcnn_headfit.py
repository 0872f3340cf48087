"""Per-image heads for ``pixelcnn``: the encoder refits the end of each channel's head to the image.

Each channel's head is a hidden layer (56 ReLU units) and a small linear output layer (-> mean
offset and scale index). Photos differ from the training photos in noise, grain and sharpness,
and a network trained on many images is calibrated to none in particular. So the encoder, before
it codes, refits per channel the output layer (2 x 57 integers) and a shift of each hidden unit
(56 integers added to its accumulator, i.e. to its bias) to the image itself, and stores the
changed integers in the file where they save clearly more than they cost (a few hundred bytes).
The decoder then runs an ordinary exact model with those biases and output layers
(:meth:`~gencodec.models.pixelcnn.ExactPixelCNN.with_outputs`): nothing changes in how tables are computed, so exactness
and decoding speed are untouched.

The fit is Newton's method on the code length of a sample of rows (rounds of: hidden shifts with
the output layer fixed, the gradient passed straight through the rounding; then the output
layer), every number of it computed so that the encoder writes the same file on every machine
(the decoder never repeats the fit, only uses its integers, but files should not depend on the
machine that wrote them):

- costs are integer tables in 1/1024 bit (:class:`CostTables`, through the pinned integer log2);
  their finite differences give integer gradients and curvatures;
- the reductions (activations x gradients, activations x curvature x activations) are integer
  sums below 2**53, exact in float64 in any order (so BLAS may run them); what is not an integer
  is computed elementwise, or summed with ``math.fsum`` (correctly rounded);
- the linear systems are solved by Gaussian elimination written with elementwise operations only
  (:func:`solve_spd`: IEEE-rounded, no reductions whose order could vary);
- a step is kept only if it lowers the sample's integer cost.
"""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np

from ..errors import CorruptFileError, ExactnessError
from ..exact.intlog import ilog2

FIT_VERSION = 2  # header param "fit": per-image heads stored in the payload (1: output layers only)
ROW_STEP = 11  # the sample: rows ROW_STEP // 2, + ROW_STEP, ... (all columns; an odd step)
MAX_SAMPLES = 1 << 17  # the sample's size on large images (per channel); one over 4x this is thinned, so
# every integer sum of the fit stays below 2**53 (n < 2**20 pixels x activations x curvatures < 2**33)
MIN_PIXELS = 48 * 48  # smaller images are not fitted (too few pixels to pay for the stored integers)
ITERATIONS = 4  # Newton steps (the curvature of the first is reused)
CURV_STEP = 3  # the curvature is summed over every CURV_STEP-th pixel of the sample (odd: both column parities)
STOP_GAIN = 20000  # the fit stops after a step that saves less than 1/STOP_GAIN of the sample's cost
SHIFT_STEP = 3  # the hidden shifts are fitted on every SHIFT_STEP-th pixel of the sample (56 numbers need fewer)
ROUNDS = 2  # rounds of: shift the hidden units (output layer fixed), then refit the output layer
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


class _Sample:
    """A fit's sample: MED predictions p and symbols x of N pixels, with the model's output grid."""

    def __init__(self, p: np.ndarray, x: np.ndarray, out, cfg, tables: CostTables):
        self.p, self.d, self.n_scales, self.tables = p, cfg.mean_steps, cfg.n_scales, tables
        self.dx = self.d * x + 255 * self.d
        self.scale, self.lo, self.hi = float(2**out.shift), out.out_fmt.lo, out.out_fmt.hi

    def cost(self, acc: np.ndarray):
        """Output accumulators (N, 2), exact integers -> (integer cost of the sample, state for :meth:`grads`)."""
        o = np.clip(np.rint(acc.astype(np.float64) / self.scale), self.lo, self.hi)
        md_raw = self.d * self.p + o[:, 0]
        md = np.clip(md_raw, 0, 255 * self.d).astype(np.int64)
        s = np.clip(o[:, 1], 0, self.n_scales - 1).astype(np.int64)
        k = self.dx - md
        live = ((md_raw > 0) & (md_raw < 255 * self.d), (o[:, 1] > 0) & (o[:, 1] < self.n_scales - 1))
        return self.tables.cost[s, k].sum(), (live, s, k)

    def grads(self, state) -> np.ndarray:
        """Twice d cost / d output (N, 2) in a state: integers, 0 where an output is clipped."""
        live, s, k = state
        t = self.tables
        return np.stack([np.where(live[0], t.g_mean[s, k], 0.0), np.where(live[1], t.g_scale[s, k], 0.0)], axis=1)

    def curvature(self, state, j: int, step: int) -> np.ndarray:
        """Output j's curvature (integers) on every step-th pixel, 0 where the output is clipped."""
        live, s, k = state
        h_t = (self.tables.h_mean, self.tables.h_scale)[j]
        return np.where(live[j][::step], h_t[s[::step], k[::step]], 0.0)


def _newton_step(cur, new, best, state, fits, evaluate):
    """Try ``new``, halving the step towards ``cur`` up to HALVINGS times, until one fits and lowers
    the cost -> (accepted, cur, best, state, gain)."""
    for _ in range(HALVINGS + 1):
        if fits(new):
            cost, st = evaluate(new)
            if cost < best:
                return True, new, cost, st, best - cost
        new = np.rint((new + cur) / 2)
    return False, cur, best, state, 0


def fit_output_layer(a: np.ndarray, p: np.ndarray, x: np.ndarray, layer, cfg, tables: CostTables,
                     start: tuple[np.ndarray, np.ndarray] | None = None, curv: list | None = None):
    """Refit one head's output layer to a sample. a (N, hh) hidden activations (integers), p (N,)
    MED predictions, x (N,) symbols; layer: the model's ExactLinear; start: (weight, bias) to start
    from (default: the layer's) -> (weight (2, hh), bias (2,)) int64, the start when no step helps.
    curv: a list that receives the curvature matrices of the first step, or that holds them from an
    earlier fit of the same sample (they change little; reused)."""
    if a.shape[0] > 4 * MAX_SAMPLES:  # a very wide image: every step-th pixel (odd: both column parities)
        step = -(-a.shape[0] // MAX_SAMPLES) | 1
        a, p, x = a[::step], p[::step], x[::step]
    sample = _Sample(p, x, layer, cfg, tables)
    n, hh = a.shape
    a1 = np.empty((n, hh + 1), np.float32)  # activations and a 1 for the bias: integers, exact in float32
    a1[:, :hh] = a
    a1[:, hh] = 1.0
    a64 = a1.astype(np.float64)
    w0, b0 = start if start is not None else (layer.weight.numpy(), layer.bias.numpy())
    cur = np.concatenate([w0, np.asarray(b0)[:, None]], axis=1).astype(np.float64)

    def evaluate(theta):  # partial sums are integers below 2**24 (_fits), so float32 is exact in any order
        return sample.cost(a1 @ theta.T.astype(np.float32))

    def fits(theta):
        return _fits(theta, layer.in_fmt.max_abs)

    best, state = evaluate(cur)
    curv = [] if curv is None else curv
    for _ in range(ITERATIONS):
        g = sample.grads(state)
        grad = a64.T @ g  # (hh + 1, 2) integers below 2**53: exact in any order
        if not curv:  # the curvature, from every CURV_STEP-th pixel of the sample
            a_c = a64[::CURV_STEP]
            for j in range(2):
                c_j = CURV_STEP * (a_c.T @ (a_c * sample.curvature(state, j, CURV_STEP)[:, None]))  # integers < 2**53
                trace = float(sum(int(v) for v in np.diagonal(c_j)))  # summed exactly, then rounded once
                curv.append(c_j + np.eye(hh + 1) * (trace * 1e-3 / (hh + 1) + 1.0))
        # d cost / d theta = a1' g / (2 scale), curvature a1' h a1 / scale**2 (plus a little damping)
        new = np.rint(cur - np.stack([solve_spd(curv[j], grad[:, j]) for j in range(2)]) * (sample.scale / 2))
        accepted, cur, best, state, gain = _newton_step(cur, new, best, state, fits, evaluate)
        if not accepted or gain * STOP_GAIN < best:  # no step helps, or it saved less than 1/STOP_GAIN: done
            break
    return cur[:, :hh].astype(np.int64), cur[:, hh].astype(np.int64)


def fit_hidden_shift(acc: np.ndarray, p: np.ndarray, x: np.ndarray, fc, out, w: np.ndarray, b: np.ndarray,
                     cfg, tables: CostTables, start: np.ndarray | None = None) -> np.ndarray:
    """Per-image shifts of one head's hidden units: acc (N, hh) the hidden accumulators before
    rounding (:meth:`ExactPixelCNN.head_acc`), the output layer (w, b) held fixed, start: the shifts
    to start from (default zeros) -> (hh,) int64 added to the accumulators (in activation steps;
    the start when no step helps). Newton steps as in :func:`fit_output_layer`, the gradient passed
    straight through the rounding where a unit is not clipped; every reduction is an integer sum
    below 2**53, the rest elementwise."""
    hi = fc.out_fmt.hi
    step = max(SHIFT_STEP, -(-acc.shape[0] // (4 * MAX_SAMPLES)) | 1)  # odd: both column parities
    acc, p, x = acc[::step], p[::step], x[::step]
    sample = _Sample(p, x, out, cfg, tables)
    hh = acc.shape[1]
    acc = np.ascontiguousarray(acc, np.float32)  # multiples of 2**-shift: + integer shifts within the bound is exact
    w64 = np.asarray(w, np.float64)
    w32, b32 = w64.T.astype(np.float32), np.asarray(b, np.float32)
    # the hidden layer's accumulator bound with a shifted bias: rows |W| . max input + |bias + shift 2**k|
    rows = np.abs(fc.weight.numpy().astype(np.float64)).sum(axis=1) * fc.in_fmt.max_abs
    fc_bias, unit = fc.bias.numpy().astype(np.float64), float(2**fc.shift)

    def fits(delta):
        return bool(np.abs(delta).max() <= hi and (rows + np.abs(fc_bias + delta * unit)).max() < (1 << 24))

    def evaluate(delta):
        z = acc + delta.astype(np.float32)
        a = np.rint(z)
        np.clip(a, 0, hi, out=a)
        cost, state = sample.cost(a @ w32 + b32)  # integer partial sums below 2**24: exact (the output layer fits)
        return cost, (z, state)

    cur = np.zeros(hh) if start is None else np.asarray(start, np.float64)
    best, state = evaluate(cur)
    curv = None
    for _ in range(ITERATIONS):
        z, out_state = state
        through = ((z > 0) & (z < hi)).astype(np.float64)  # (n, hh): units the gradient passes
        g = sample.grads(out_state)
        grad = w64[0] * (through.T @ g[:, 0]) + w64[1] * (through.T @ g[:, 1])  # integer products: exact sums
        if curv is None:
            t_c = through[::CURV_STEP]
            curv = np.zeros((hh, hh))
            for j in range(2):
                h = sample.curvature(out_state, j, CURV_STEP)
                curv += np.multiply.outer(w64[j], w64[j]) * (CURV_STEP * (t_c.T @ (t_c * h[:, None])))
            trace = math.fsum(np.diagonal(curv).tolist())  # correctly rounded: the same on every machine
            curv += np.eye(hh) * (trace * 1e-3 / hh + 1.0)
        new = np.rint(cur - solve_spd(curv, grad) * (sample.scale / 2))
        accepted, cur, best, state, gain = _newton_step(cur, new, best, state, fits, evaluate)
        if not accepted or gain * STOP_GAIN < best:
            break
    return cur.astype(np.int64)


def fit_channel(acc: np.ndarray, p: np.ndarray, x: np.ndarray, model, c: int, tables: CostTables):
    """Channel c's per-image head, in ROUNDS rounds of: shift the hidden units with the output layer
    fixed, then refit the output layer (its curvature computed once) -> (weight (2, hh), bias (2,),
    hidden shift (hh,)) int64, the model's own where nothing helps."""
    fc, out = model.heads[c]
    hi = fc.out_fmt.hi
    w, b = out.weight.numpy().astype(np.int64), out.bias.numpy().astype(np.int64)
    delta = np.zeros(acc.shape[1], np.int64)
    curv: list[np.ndarray] = []  # the output layer's curvature, computed by its first fit
    for _ in range(ROUNDS):
        new = fit_hidden_shift(acc, p, x, fc, out, w, b, model.cfg, tables, start=delta)
        if np.array_equal(new, delta):
            break
        delta = new
        a = np.clip(np.rint(acc.astype(np.float64) + delta), 0, hi)  # exact: multiples of 2**-shift plus integers
        w, b = fit_output_layer(a, p, x, out, model.cfg, tables, start=(w, b), curv=curv)
    return w, b, delta


def pack_fit(fits: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]], model) -> bytes:
    """{channel: (weight, bias, hidden shift)} -> bytes: a channel mask, then per channel the changes
    from the model's own integers (int32 LE: output weights row-major, output biases, hidden
    shifts), zlib-compressed (FIT_VERSION 2; version 1 had no hidden shifts)."""
    mask = sum(1 << c for c in fits)
    parts = []
    for c in sorted(fits):
        layer = model.heads[c][1]
        w, b, delta = fits[c]
        parts.append(np.concatenate([(w - layer.weight.numpy()).ravel(), b - layer.bias.numpy(), delta]))
    body = np.concatenate(parts).astype("<i4").tobytes() if parts else b""
    return zlib.compress(struct.pack("<B", mask) + body, 9)


def unpack_fit(blob: bytes, model, n_coded: int, version: int = FIT_VERSION):
    """bytes from :func:`pack_fit` (or version 1) -> {channel: (weight, bias, hidden shift)} int64."""
    try:
        raw = zlib.decompress(blob)
    except zlib.error:
        raise CorruptFileError("pixelcnn: damaged per-image heads") from None
    if not raw or raw[0] >> n_coded:
        raise CorruptFileError("pixelcnn: per-image heads do not fit the model")
    chans = [c for c in range(n_coded) if raw[0] >> c & 1]
    hh = model.cfg.head_hidden
    per = 2 * hh + 2 + (hh if version >= 2 else 0)
    if len(raw) != 1 + 4 * per * len(chans):
        raise CorruptFileError("pixelcnn: per-image heads do not fit the model")
    deltas = np.frombuffer(raw, "<i4", offset=1).astype(np.int64).reshape(len(chans), per)
    fits = {}
    for c, dlt in zip(chans, deltas):
        fc, layer = model.heads[c]
        w = layer.weight.numpy().astype(np.int64) + dlt[: 2 * hh].reshape(2, hh)
        b = layer.bias.numpy().astype(np.int64) + dlt[2 * hh : 2 * hh + 2]
        shift = dlt[2 * hh + 2 :] if version >= 2 else np.zeros(hh, np.int64)
        bias = fc.bias.numpy().astype(np.float64) + shift * 2.0**fc.shift
        rows = np.abs(fc.weight.numpy().astype(np.float64)).sum(axis=1) * fc.in_fmt.max_abs
        if (not _fits(np.concatenate([w, b[:, None]], axis=1), layer.in_fmt.max_abs)
                or np.abs(shift).max() > fc.out_fmt.hi or (rows + np.abs(bias)).max() >= (1 << 24)):
            raise CorruptFileError("pixelcnn: per-image heads do not fit the model")
        fits[c] = (w, b, shift)
    return fits


def fitted_model(model, fits):
    """The model with these heads (:meth:`~gencodec.models.pixelcnn.ExactPixelCNN.with_outputs`); CorruptFileError rather than
    ExactnessError for integers read from a file."""
    try:
        return model.with_outputs({c: (w, b) for c, (w, b, _) in fits.items()},
                                  {c: d for c, (_, _, d) in fits.items() if np.any(d)})
    except ExactnessError:  # pragma: no cover - unpack_fit already bounds every accumulator
        raise CorruptFileError("pixelcnn: per-image heads do not fit the model") from None


def fit_and_tables(model, planes: np.ndarray, n_coded: int):
    """The encoder's per-image heads and its parallel pass: planes (3, H, W) uint8 -> (mean, scale
    index (n_coded, H, W) under the heads kept, packed heads or b"").

    Each channel's head is refitted to a sample of rows (:func:`fit_channel`); the parallel pass
    then evaluates both heads at once, and a channel keeps its refit only where, over the whole
    image, it saves clearly more than its integers cost to store (:data:`MARGIN`)."""
    m = model
    _, h, w = planes.shape
    if h * w < MIN_PIXELS:
        mean, idx = m.tables_parallel(planes, n_coded)
        return mean, idx, b""
    tables = CostTables(m.dist)
    rows = list(sample_rows(h, w))
    samples = m.head_samples(planes, rows, n_coded)
    fits = {}
    for c, (acc, p, x) in enumerate(samples):
        wt, b, shift = fit_channel(acc, p, x, m, c, tables)
        layer = m.heads[c][1]
        if shift.any() or not (np.array_equal(wt, layer.weight.numpy()) and np.array_equal(b, layer.bias.numpy())):
            fits[c] = (wt, b, shift)
    models = [m, fitted_model(m, fits)] if fits else [m]
    means, idxs = m.tables_parallel_multi(planes, models, n_coded, known=(rows, samples))
    if not fits:
        return means[0], idxs[0], b""
    d = m.cfg.mean_steps
    keep = {}
    for c in fits:  # whole-image integer costs (1/1024 bit), against the stored integers' cost
        k = [d * planes[c].astype(np.int64) - mi[c] + 255 * d for mi in means]
        saved = tables.cost[idxs[0][c], k[0]].sum() - tables.cost[idxs[1][c], k[1]].sum()
        if saved > MARGIN * 8 * 1024 * len(pack_fit({c: fits[c]}, m)):
            keep[c] = fits[c]
    for c in keep:
        means[0][c], idxs[0][c] = means[1][c], idxs[1][c]
    return means[0], idxs[0], pack_fit(keep, m) if keep else b""
