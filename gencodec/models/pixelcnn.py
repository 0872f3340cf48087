"""PixelCNN-family lossless image model: a causal-neighbourhood network with a finite receptive field.

For each pixel (y, x) the model sees a fixed causal neighbourhood of already-coded pixels (all
channels): by default rows y-2..y-1 over columns x-2..x+2 and row y over columns x-3..x-1 (sizes in
:class:`PixelCNNConfig`). It predicts each channel in order -- R, then G given R, then B given R
and G -- as a discretized logistic with a mean on a grid of 1/D levels (D = 1 or 2) and an
integer scale index::

    neighbours (3, K) --MED predictor P--> features (3K + 3) --trunk MLP--> h
    head_c([h, x_0 - P_0, .., x_{c-1} - P_{c-1}, colour predictions]) --> (D (mean_c - P_c), scale index_c)

With ``colour_preds`` each later channel's head also gets the inter-channel predictions
``x_k + MED(c - k) - P_c`` (MED over the colour-difference plane c - k, for (G,R), (B,R), (B,G)):
colour differences are much smoother than the channels in most photos, and almost flat in the
many that went through 4:2:0 chroma subsampling (:func:`colour_bases`, :func:`head_extra`).

Every layer is a :class:`gencodec.exact.QuantLinear` (fake-quantized training twin) whose
``export()`` is an integer-exact :class:`gencodec.exact.ExactLinear`, so the coder's tables are
identical on every machine. The receptive field reaches ``r = reach_right`` columns to the right
in earlier rows, so all pixels on a wavefront ``t = (r + 1) * y + x`` can be decoded at once
((r+1)·H + W batched steps for an H x W image, see :class:`WavefrontSession`).

Outside the image the neighbourhood is filled causally (:func:`causal_pad`): 128 above the first
row, the first pixel of the row above left of column 0, the last pixel of the same row right of
the last column -- the same rule in training, in the encoder's parallel pass and in the decoder.

One distribution object (:class:`DiscretizedLogistic`) serves training (``log2_prob``) and
coding (``freqs``): the integer tables are the same logistic, floored at one count per symbol,
so the training loss is the code length up to table rounding.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import progress
from ..errors import GencodecError
from ..exact import ExactLinear, QFormat, QuantLinear, check_accumulators, exact_mode
from ..exact.contract import Schedule, wavefront_groups
from ..exact.fastpath import BlasThreads, clip as _clip, dense, prescaled, round_clip, scaled, serial_torch
from ..exact.logistic import CDF_TOTAL, DiscretizedLogistic
from . import modelfile

RESID_FRAC_BITS = 4  # earlier channels' residuals enter the heads as resid / 16 (whatever act_frac_bits)
ROUND_WAVEFRONTS = 8  # wavefronts per round of per-image adaptation (the online histograms' update period)


@dataclass(frozen=True)
class PixelCNNConfig:
    rows_up: int = 2  # rows above the pixel in its context
    reach_left: int = 2  # columns left of the pixel seen in the rows above
    reach_right: int = 2  # r: columns right of the pixel seen in the rows above; wavefront t=(r+1)y+x
    left_now: int = 3  # columns left of the pixel seen in its own row
    hidden: int = 96  # trunk width
    trunk_layers: int = 2  # trunk depth (ReLU layers)
    head_hidden: int = 32  # width of each channel head's hidden layer
    n_scales: int = 64  # number of logistic scales (log-spaced); the scale index is 0..n_scales-1
    log_scale_min: float = math.log(0.1)  # log of the smallest logistic scale s (pixels)
    log_scale_max: float = math.log(80.0)  # log of the largest
    act_frac_bits: int = 4  # hidden activations are q / 2**act_frac_bits in [0, 255 / 16] (>= 4)
    in_frac_bits: int = 4  # inputs (pixel differences, -255..255) are read as q / 2**in_frac_bits
    w_frac_bits: int = 7  # hidden-layer weights are q / 2**w_frac_bits, |q| <= w_max (|w| < 4)
    w_max: int = 511  # bound on |q| of every weight (int16 storage; keeps sums below 2**24)
    out_w_frac_bits: int = 4  # output-layer weights: q / 2**out_w_frac_bits (outputs are whole pixels)
    colour_preds: bool = False  # heads also see inter-channel predictions (see colour_bases)
    mean_frac_bits: int = 0  # the mean is a multiple of 2**-mean_frac_bits (0: whole levels, 1: halves, 2: quarters)
    phase_inputs: bool = False  # the trunk also sees the pixel's position mod 2 (see phase_features)

    @property
    def mean_steps(self) -> int:
        """D: means are integers md / D, md in 0..255 * D."""
        return 1 << self.mean_frac_bits

    @property
    def n_means(self) -> int:
        return 255 * self.mean_steps + 1

    @property
    def cdf_points(self) -> int:
        """Offsets x - mean +- 1/2 a bin edge can take: 512 for whole-level means, 1023 for half levels."""
        return 512 * self.mean_steps - (self.mean_steps - 1)

    def head_inputs(self, c: int) -> int:
        """Inputs of channel c's head besides the trunk output: earlier residuals (+ colour predictions)."""
        return 2 * c if self.colour_preds else c

    @property
    def offsets(self) -> list[tuple[int, int]]:
        """(dy, dx) of the K context pixels: rows above first, then the pixel's own row."""
        up = [(dy, dx) for dy in range(-self.rows_up, 0) for dx in range(-self.reach_left, self.reach_right + 1)]
        return up + [(0, dx) for dx in range(-self.left_now, 0)]

    @property
    def pad(self) -> tuple[int, int, int]:
        """(top, left, right) padding of the causal-padded image."""
        return self.rows_up, max(self.reach_left, self.left_now), self.reach_right

    @property
    def n_features(self) -> int:
        return 3 * (len(self.offsets) + 1) + (2 if self.phase_inputs else 0)

    # activation formats of the layers (derived, not stored: the fields above fix them)
    @property
    def fmt_x(self) -> QFormat:
        """Trunk input: pixel differences -255..255 read as q / 2**in_frac_bits."""
        return QFormat(self.in_frac_bits, -255, 255)

    @property
    def fmt_resid(self) -> QFormat:
        """Head input: trunk output and earlier channels' residuals (as resid / 16), q / 2**act_frac_bits."""
        hi = 255 << (self.act_frac_bits - RESID_FRAC_BITS)
        return QFormat(self.act_frac_bits, -hi, hi)

    @property
    def fmt_h(self) -> QFormat:
        """Hidden (ReLU) activations, q in [0, 255 * 2**(act_frac_bits - 4)]: real values in [0, 16)."""
        return QFormat(self.act_frac_bits, 0, 255 << (self.act_frac_bits - RESID_FRAC_BITS))

    @property
    def fmt_out(self) -> QFormat:
        """Head output: ((mean - P) * D, scale index), integers."""
        return QFormat(0, -255 * self.mean_steps, 255 * self.mean_steps)

    def validate(self) -> None:
        if self.rows_up < 1 or self.reach_left < 1 or self.left_now < 1 or self.reach_right < 0:
            raise ValueError("the context must include W, N and NW (rows_up, reach_left, left_now >= 1)")
        if self.act_frac_bits < RESID_FRAC_BITS:
            raise ValueError(f"act_frac_bits must be at least {RESID_FRAC_BITS}")
        if self.mean_frac_bits not in (0, 1, 2):
            raise ValueError("mean_frac_bits must be 0 (whole levels), 1 (halves) or 2 (quarters)")

    def distribution(self, cdf: np.ndarray | None = None) -> DiscretizedLogistic:
        """The output law of this config (``cdf``: its stored integer table; default: computed)."""
        return DiscretizedLogistic(self.n_scales, self.log_scale_min, self.log_scale_max, self.mean_frac_bits, cdf)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PixelCNNConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise GencodecError(f"unknown PixelCNN config fields: {sorted(unknown)}")
        return cls(**d)


# ---------------------------------------------------------------------------------------------
# context: causal padding, neighbours, MED predictor, features (numpy and torch alike)
# ---------------------------------------------------------------------------------------------
def causal_pad(img, cfg: PixelCNNConfig):
    """img (..., H, W) integer-valued (numpy or torch) -> (..., H + top, W + left + right)."""
    top, left, right = cfg.pad
    *lead, h, w = img.shape
    shape = (*lead, h + top, w + left + right)
    out = np.full(shape, 128, dtype=img.dtype) if isinstance(img, np.ndarray) else img.new_full(shape, 128)
    out[..., top:, left : left + w] = img
    if h > 1:
        out[..., top + 1 :, :left] = img[..., :-1, 0:1]  # left of row y: first pixel of row y-1
    out[..., top:, left + w :] = img[..., :, w - 1 : w]  # right of row y: last pixel of row y
    return out


def neighbours(padded, cfg: PixelCNNConfig, h: int, w: int):
    """All context pixels of an image: padded (..., C, H+top, W+l+r) -> (..., C, H, W, K)."""
    top, left, _ = cfg.pad
    planes = [padded[..., top + dy : top + dy + h, left + dx : left + dx + w] for dy, dx in cfg.offsets]
    if isinstance(padded, np.ndarray):
        return np.stack(planes, axis=-1)
    return torch.stack(planes, dim=-1)


def med_and_features(nb, cfg: PixelCNNConfig):
    """nb (..., 3, K) context pixels -> (P (..., 3) MED prediction, features (..., 3K + 3)).

    P is LOCO-I's median edge detector median(W, N, W + N - NW) per channel; the features are
    every context pixel minus its channel's P, and P - 128. All integers in [-255, 255].
    """
    offs = cfg.offsets
    i_w, i_n, i_nw = offs.index((0, -1)), offs.index((-1, 0)), offs.index((-1, -1))
    xp_min, xp_max = (np.minimum, np.maximum) if isinstance(nb, np.ndarray) else (torch.minimum, torch.maximum)
    a, b, c = nb[..., i_w], nb[..., i_n], nb[..., i_nw]
    grad = a + b - c
    p = xp_max(xp_min(a, b), xp_min(xp_max(a, b), grad))  # median of three; (..., 3)
    diffs = nb - p[..., None]  # (..., 3, K)
    flat = diffs.reshape(*diffs.shape[:-2], diffs.shape[-2] * diffs.shape[-1])  # (..., 3K)
    if isinstance(nb, np.ndarray):
        return p, np.concatenate([flat, p - 128], axis=-1)
    return p, torch.cat([flat, p - 128], dim=-1)


#: config fields added after the first shipped model, with the value that switches each on. A model
#: with them off keeps the id it had before they existed, and a training run may switch them on when
#: it starts from a model without them (gencodec.train.pixelcnn.start_from).
OPTIONAL_FEATURES = {"colour_preds": True, "mean_frac_bits": 1, "phase_inputs": True}

PHASE_AMP = 64  # magnitude of the phase inputs (as pixel differences: +-4 after the input scaling)


def phase_features(ys, xs):
    """Position mod 2 of pixels (rows ys, columns xs; broadcastable integer arrays or tensors) ->
    (..., 2) integers +-PHASE_AMP: (-1)^(y+1) and (-1)^(x+1) times PHASE_AMP.

    Most photos went through 4:2:0 chroma subsampling on a 2x2 grid anchored at the top-left pixel
    (JPEG, camera pipelines, Photo CD); where a pixel sits in its 2x2 block tells how its colour was
    interpolated. Counted from the image's own origin (a crop at an odd offset shifts the grid).
    """
    if isinstance(ys, torch.Tensor):
        ys, xs = torch.broadcast_tensors(ys, xs)
        return torch.stack([ys % 2, xs % 2], dim=-1) * (2 * PHASE_AMP) - PHASE_AMP
    ys, xs = np.broadcast_arrays(np.asarray(ys, np.int64), np.asarray(xs, np.int64))
    return np.stack([ys % 2, xs % 2], axis=-1) * (2 * PHASE_AMP) - PHASE_AMP

def phase_index(ys, xs):
    """2 (y mod 2) + x mod 2: which of the four :func:`phase_features` rows a pixel has (the exact
    path folds the phase inputs into four first-layer biases, one per index)."""
    return 2 * (ys % 2) + xs % 2


COLOUR_PAIRS = ((1, 0), (2, 0), (2, 1))  # (channel c, earlier channel k) of the colour predictions


def _med3(a, b, c):
    xp_min, xp_max = (np.minimum, np.maximum) if isinstance(a, np.ndarray) else (torch.minimum, torch.maximum)
    return xp_max(xp_min(a, b), xp_min(xp_max(a, b), a + b - c))


def colour_bases(nb, p, cfg: PixelCNNConfig):
    """Inter-channel predictions, the part known before the pixel: nb (..., 3, K), p (..., 3) -> (..., 3).

    For each pair (c, k) of COLOUR_PAIRS, MED applied to the colour-difference plane c - k predicts
    x_c - x_k; so x_k + MED(c - k) predicts x_c. Entry j is ``MED(c - k) + P_k - P_c``; adding the
    earlier channel's residual ``x_k - P_k`` (known once channel k is coded) gives that prediction
    minus P_c (:func:`head_extra`). Colour differences are smoother than the channels themselves in
    most photos (and nearly flat after 4:2:0 chroma subsampling).
    """
    offs = cfg.offsets
    near = [offs.index((0, -1)), offs.index((-1, 0)), offs.index((-1, -1))]  # W, N, NW
    nb = nb[..., near]  # (..., 3, 3): only these enter MED
    out = []
    for c, k in COLOUR_PAIRS:
        d = nb[..., c, :] - nb[..., k, :]
        out.append(_med3(d[..., 0], d[..., 1], d[..., 2]) + p[..., k] - p[..., c])
    return np.stack(out, axis=-1) if isinstance(nb, np.ndarray) else torch.stack(out, dim=-1)


def head_extra(c: int, resid, bases, cfg: PixelCNNConfig):
    """Channel c's head inputs besides the trunk output: (..., cfg.head_inputs(c)) integers in [-255, 255].

    resid (..., >= c): earlier channels' x - P; bases (..., 3) from :func:`colour_bases` (or None
    when cfg.colour_preds is off).
    """
    parts = [resid[..., :c]]
    if cfg.colour_preds and c:
        cols = [j for j, (cc, _) in enumerate(COLOUR_PAIRS) if cc == c]
        ks = [COLOUR_PAIRS[j][1] for j in cols]
        parts.append(bases[..., cols] + resid[..., ks])
    if isinstance(resid, np.ndarray):
        out = np.concatenate(parts, axis=-1)
        return _clip(out, -255, 255, out=out)
    return torch.clamp(torch.cat(parts, dim=-1), -255, 255)


# ---------------------------------------------------------------------------------------------
# the network
# ---------------------------------------------------------------------------------------------
class Head(nn.Module):
    """One channel's head: [h, earlier residuals] -> hidden -> (mean - P, scale index)."""

    def __init__(self, cfg: PixelCNNConfig, n_prev: int):
        super().__init__()
        self.fc = QuantLinear(cfg.hidden + n_prev, cfg.head_hidden, cfg.fmt_resid, cfg.fmt_h,
                              w_frac_bits=cfg.w_frac_bits, w_max=cfg.w_max)
        self.out = QuantLinear(cfg.head_hidden, 2, cfg.fmt_h, cfg.fmt_out, w_frac_bits=cfg.out_w_frac_bits,
                               w_max=cfg.w_max)
        with torch.no_grad():
            self.out.weight.mul_(0.5)
            self.out.bias.copy_(torch.tensor([0.0, cfg.n_scales / 2]))

    def forward(self, x):  # (..., hidden + n_prev) -> (..., 2)
        return self.out(self.fc(x))


class PixelCNN(nn.Module):
    """The training model (fake-quantized). ``forward`` -> bits per subpixel (B, H, W, 3)."""

    def __init__(self, cfg: PixelCNNConfig = PixelCNNConfig()):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        dims = [cfg.n_features] + [cfg.hidden] * cfg.trunk_layers
        self.trunk = nn.ModuleList(
            QuantLinear(dims[i], dims[i + 1], cfg.fmt_x if i == 0 else cfg.fmt_h, cfg.fmt_h,
                        w_frac_bits=cfg.w_frac_bits, w_max=cfg.w_max)
            for i in range(cfg.trunk_layers)
        )
        self.heads = nn.ModuleList(Head(cfg, cfg.head_inputs(c)) for c in range(3))
        self.dist = cfg.distribution()

    def forward(self, x: torch.Tensor, quantized: bool = True) -> torch.Tensor:
        """x (B, 3, H, W) float pixel values 0..255 -> bits (B, H, W, 3).

        quantized=False runs the same weights as a plain float network (no grids, continuous mean
        and scale): the "float model" the quantization loss is measured against.
        """
        cfg = self.cfg
        b, _, h, w = x.shape
        nb = neighbours(causal_pad(x, cfg), cfg, h, w)  # (B, 3, H, W, K)
        nb = nb.permute(0, 2, 3, 1, 4)  # (B, H, W, 3, K)
        p, feats = med_and_features(nb, cfg)  # (B, H, W, 3), (B, H, W, 3K+3)
        pix = x.permute(0, 2, 3, 1)  # (B, H, W, 3)
        if cfg.phase_inputs:
            ph = phase_features(torch.arange(h, device=x.device)[:, None], torch.arange(w, device=x.device)[None, :])
            feats = torch.cat([feats, ph.to(feats.dtype).expand(b, h, w, 2)], dim=-1)
        act = feats * 2.0**-cfg.in_frac_bits
        for layer in self.trunk:
            act = layer(act) if quantized else _float_linear(layer, act, relu=True)
        act = self.context(act, quantized)
        resid = pix - p  # (B, H, W, 3) earlier channels' residuals
        bases = colour_bases(nb, p, cfg) if cfg.colour_preds else None
        bits = []
        for c, head in enumerate(self.heads):
            z = torch.cat([act, head_extra(c, resid, bases, cfg) * 2.0**-RESID_FRAC_BITS], dim=-1)
            o = head(z) if quantized else _float_linear(head.out, _float_linear(head.fc, z, relu=True), relu=False)
            idx = torch.clamp(o[..., 1], 0, cfg.n_scales - 1)  # (B, H, W) scale index
            mean = torch.clamp(p[..., c] + o[..., 0] / cfg.mean_steps, 0, 255)  # (B, H, W)
            bits.append(-self.dist.log2_prob(pix[..., c], mean, idx))
        return torch.stack(bits, dim=-1)

    def context(self, act: torch.Tensor, quantized: bool) -> torch.Tensor:
        """The trunk output (B, H, W, hidden) -> what the heads see: unchanged here; a model with a
        wider context (gencodec.models.sparse_transformer) mixes other pixels' outputs in."""
        return act

    def roles(self) -> list[tuple[str, QuantLinear]]:
        """Every layer with its role ("trunk", "head_fc", "head_out"), trunk first, then each head's
        two layers: the order of :meth:`ExactPixelCNN.layers`."""
        return [("trunk", l) for l in self.trunk] + [(r, l) for hd in self.heads for r, l in (("head_fc", hd.fc), ("head_out", hd.out))]

    @classmethod
    def from_exact(cls, exact: "ExactPixelCNN") -> "PixelCNN":
        """The training model whose fake-quantized forward is ``exact`` (``from_exact(e).export()`` == e).

        Lets training continue from a shipped model file: every integer weight q becomes the real
        q / 2**frac_bits, which the fake quantizer maps back to q.
        """
        model = cls(exact.cfg)
        pairs = list(zip(model.trunk, exact.trunk))
        pairs += [(q, e) for hd, (fc, out) in zip(model.heads, exact.heads) for q, e in ((hd.fc, fc), (hd.out, out))]
        with torch.no_grad():
            for q, e in pairs:
                q.weight.copy_(e.weight * 2.0**-q.w_fmt.frac_bits)
                q.bias.copy_(e.bias * 2.0**-q.b_fmt.frac_bits)
        return model

    def export(self) -> "ExactPixelCNN":
        with torch.no_grad():
            return ExactPixelCNN(
                self.cfg,
                [layer.export() for layer in self.trunk],
                [(hd.fc.export(), hd.out.export()) for hd in self.heads],
                self.dist.cdf,
            )


def _float_linear(layer: QuantLinear, x: torch.Tensor, relu: bool) -> torch.Tensor:
    y = F.linear(x, layer.weight, layer.bias)
    return F.relu(y) if relu else y


# ---------------------------------------------------------------------------------------------
# the exact model used by the codec
# ---------------------------------------------------------------------------------------------
class ExactPixelCNN:
    """Integer-exact inference: every output is an integer computed with float32 matmuls whose
    partial sums stay below 2**24 (checked at construction), hence identical everywhere. Implements
    :class:`gencodec.exact.contract.ExactModel` over symbols (n_coded, H, W)."""

    arch = "pixelcnn"

    def __init__(self, cfg: PixelCNNConfig, trunk: list[ExactLinear], heads: list[tuple[ExactLinear, ExactLinear]], cdf):
        self.cfg = cfg
        self.trunk = trunk
        self.heads = heads
        self.dist = cfg.distribution(cdf)
        check_accumulators(self.layers(), "PixelCNN layer")
        self.model_id = self._model_id()
        self._prepare()

    def layers(self) -> list[ExactLinear]:
        return list(self.trunk) + [l for pair in self.heads for l in pair]

    # -- evaluation --------------------------------------------------------------------------------
    def _prepare(self) -> None:
        """float32 numpy copies of the integer weights for the coding path (one code path for the
        encoder's parallel pass and the decoder's wavefronts). The three heads' first layers are
        fused: their inputs share the trunk output, and the earlier-channel residuals are added as
        a separate integer partial sum -- exact, since every partial sum is an integer bounded by
        the (checked) accumulator bound."""
        hid = self.cfg.hidden
        # every layer's weights and bias come pre-multiplied by 2**-shift (exact, see _scaled), so a
        # requantization is only a rounding and a clip
        self._trunk = [prescaled(layer) for layer in self.trunk]
        if self.cfg.phase_inputs:  # the phase inputs' share of the first layer, folded into 4 biases
            first = self.trunk[0]
            w_ph = first.weight.numpy()[:, -2:].astype(np.float64)  # (hidden, 2): the y and x inputs
            ph = phase_features(*np.divmod(np.arange(4), 2)).astype(np.float64)  # (4, 2): row i has phase_index i
            self._trunk[0] = (self._trunk[0][0][:-2].copy(),
                              scaled(first.bias.numpy() + ph @ w_ph.T, first.shift), first.out_fmt)
        self._head_w = np.concatenate([scaled(fc.weight.numpy()[:, :hid], fc.shift) for fc, _ in self.heads]).T.copy()
        self._head_b = np.concatenate([scaled(fc.bias.numpy(), fc.shift) for fc, _ in self.heads])  # (3*hh,)
        up = self.cfg.act_frac_bits - RESID_FRAC_BITS  # residuals as q on the activation grid
        self._head_r = [scaled(fc.weight.numpy()[:, hid:].T, fc.shift - up) for fc, _ in self.heads]  # (c, hh)
        self._head_fmt = [fc.out_fmt for fc, _ in self.heads]
        self._head_out = [prescaled(out) for _, out in self.heads]

    def trunk_forward(self, feats: np.ndarray, phase: np.ndarray | None = None) -> np.ndarray:
        """feats (N, 3K+3) integers in [-255, 255] -> hidden (N, hidden) integer activations (float32).

        phase (N,): :func:`phase_index` of each pixel, when cfg.phase_inputs."""
        act = np.ascontiguousarray(feats, dtype=np.float32)
        for i, (w, b, fmt) in enumerate(self._trunk):
            act = act @ w
            act += b[phase] if i == 0 and self.cfg.phase_inputs else b
            round_clip(act, fmt)
        return act

    def heads_pre(self, hidden: np.ndarray) -> np.ndarray:
        """The trunk's share of all three heads' first layers: (N, hidden) -> (N, 3 * head_hidden) accumulators."""
        pre = hidden @ self._head_w
        pre += self._head_b
        return pre

    def head_acc(self, c: int, pre: np.ndarray, extra: np.ndarray) -> np.ndarray:
        """Channel c's hidden accumulators before rounding: pre (N, 3*hh) from :meth:`heads_pre`, extra
        (N, cfg.head_inputs(c)) from :func:`head_extra` -> (N, hh) float32 (a new array)."""
        hh = self.cfg.head_hidden
        acc = pre[:, c * hh : (c + 1) * hh]
        if c:
            a = np.ascontiguousarray(extra, dtype=np.float32) @ self._head_r[c]
            a += acc
            return a
        return acc.copy()  # pre stays as it was

    def head_hidden(self, c: int, pre: np.ndarray, extra: np.ndarray) -> np.ndarray:
        """Channel c's hidden activations: (N, hh) integers (float32), the inputs of its output layer."""
        return round_clip(self.head_acc(c, pre, extra), self._head_fmt[c])

    def head_out(self, c: int, a: np.ndarray, p_c: np.ndarray):
        """Channel c's output layer: a (N, hh) from :meth:`head_hidden`, p_c (N,) MED prediction ->
        (md, scale index), int64 (N,) each; the mean is md / cfg.mean_steps."""
        o = dense(a, self._head_out[c]).astype(np.int64)  # (N, 2)
        d_steps = self.cfg.mean_steps
        mean = _clip(d_steps * p_c + o[:, 0], 0, 255 * d_steps)
        idx = _clip(o[:, 1], 0, self.cfg.n_scales - 1)
        return mean, idx

    def head_forward(self, c: int, pre: np.ndarray, extra: np.ndarray, p_c: np.ndarray):
        """Channel c's head: :meth:`head_hidden` then :meth:`head_out` -> (md, scale index)."""
        return self.head_out(c, self.head_hidden(c, pre, extra), p_c)

    def with_outputs(self, outs: dict[int, tuple[np.ndarray, np.ndarray]],
                     hidden: dict[int, np.ndarray] | None = None) -> "ExactPixelCNN":
        """This model with the output layers of some heads replaced and their hidden layers shifted:
        outs {channel: (weight (2, hh), bias (2,)) integers}, hidden {channel: (hh,) integers added to
        the hidden accumulators, in activation steps} (a per-image fit, :mod:`gencodec.models.pixelcnn_headfit`).
        Same trunk, shifts and tables; the accumulator bounds are checked again (ExactnessError if
        one could leave float32 exactness). The model id stays the base model's: the file records
        the fit itself."""
        def linear(old, w, b):
            return ExactLinear(torch.as_tensor(np.asarray(w, np.float64), dtype=torch.float32),
                               torch.as_tensor(np.asarray(b, np.float64), dtype=torch.float32),
                               old.shift, old.in_fmt, old.out_fmt)

        heads = list(self.heads)
        for c, (w, b) in outs.items():
            heads[c] = (heads[c][0], linear(heads[c][1], w, b))
        for c, delta in (hidden or {}).items():
            fc = heads[c][0]
            bias = fc.bias.numpy().astype(np.float64) + np.asarray(delta, np.float64) * 2.0**fc.shift
            heads[c] = (linear(fc, fc.weight.numpy(), bias), heads[c][1])
        new = type(self).__new__(type(self))  # the same model (and subclass), other heads
        new.__dict__.update(self.__dict__)
        new.heads = heads
        check_accumulators([layer for c in set(outs) | set(hidden or {}) for layer in heads[c]], "PixelCNN head layer")
        new._prepare()
        return new

    def tables_parallel(self, img: np.ndarray, n_coded: int = 3, rows_per_chunk: int = 8):
        """Encoder's one pass: img (3, H, W) uint8 -> mean, scale_idx (n_coded, H, W) int16.

        Uses the true pixels of earlier channels (they are known to the encoder), in stripes of
        ``rows_per_chunk`` rows: bounded memory, and activations that stay in cache (8 rows of a
        768-wide image take about a quarter less time than 64).
        """
        mean, idx = self.tables_parallel_multi(img, [self], n_coded, rows_per_chunk)
        return mean[0], idx[0]

    def tables_parallel_multi(self, img: np.ndarray, models: list["ExactPixelCNN"], n_coded: int = 3,
                              rows_per_chunk: int = 8, known: tuple[list[int], list] | None = None):
        """:meth:`tables_parallel` under several heads at once: models are this model or
        :meth:`with_outputs` of it (same trunk and hidden weights, evaluated once; the hidden biases
        and output layers may differ) -> mean, scale_idx (len(models), n_coded, H, W) int16.

        known: (rows, :meth:`head_samples` of those rows): their hidden accumulators are taken from
        there instead of being computed again (the same numbers)."""
        _, h, w = img.shape
        padded = causal_pad(img.astype(np.int32), self.cfg)  # (3, H+top, W+l+r)
        mean = np.zeros((len(models), n_coded, h, w), np.int16)
        idx = np.zeros((len(models), n_coded, h, w), np.int16)
        rows, samples = known if known is not None else ([], [])
        skip = set(rows)
        hh = self.cfg.head_hidden
        # each model's hidden accumulators: this model's plus the difference of the biases (an integer
        # shift, exact in float32; the sum is a multiple of 2**-shift within the model's checked bound,
        # so it is exact too, and equals what that model's own pass would compute)
        diffs = [m._head_b - self._head_b for m in models]
        shifts = [[d[c * hh : (c + 1) * hh] if d[c * hh : (c + 1) * hh].any() else None for c in range(n_coded)]
                  for d in diffs]

        def outputs(c, acc, p_c, ys, owned=True):
            for i, m in enumerate(models):
                if shifts[i][c] is not None:
                    a = acc + shifts[i][c]
                else:  # the last model may round an accumulator of this pass in place
                    a = acc if owned and i == len(models) - 1 else acc.copy()
                md, s = m.head_out(c, round_clip(a, self._head_fmt[c]), p_c)
                mean[i, c, ys] = md.reshape(-1, w)
                idx[i, c, ys] = s.reshape(-1, w)

        with exact_mode(), serial_torch():
            for c, (a, p_c, _) in enumerate(samples):
                outputs(c, a, p_c, rows, owned=False)
            y0 = 0
            while y0 < h:  # stripes of at most rows_per_chunk rows between the known ones
                if y0 in skip:
                    y0 += 1
                    continue
                y1 = y0 + 1
                while y1 < h and y1 not in skip and y1 - y0 < rows_per_chunk:
                    y1 += 1
                acc_of, p = self._stripe(img, padded, range(y0, y1))
                for c in range(n_coded):  # each channel's head right after its accumulators (cache)
                    outputs(c, acc_of(c), p[:, c], slice(y0, y1))
                progress.report(y1, h)
                y0 = y1
        return mean, idx

    def head_samples(self, img: np.ndarray, rows, n_coded: int = 3):
        """The heads' hidden accumulators on some rows (a per-image fit's sample): img (3, H, W) uint8 ->
        [(acc (N, hh) float32 before rounding (:meth:`head_acc`), MED prediction (N,) int64, symbols
        (N,) int64) per channel]."""
        padded = causal_pad(img.astype(np.int32), self.cfg)
        rows = list(rows)
        out: list[tuple[list, list]] = [([], []) for _ in range(n_coded)]
        with exact_mode(), serial_torch():
            for i in range(0, len(rows), 8):  # 8 rows at a time, as the parallel pass (cache-sized)
                acc_of, p = self._stripe(img, padded, rows[i : i + 8])
                for c in range(n_coded):
                    out[c][0].append(acc_of(c))
                    out[c][1].append(p[:, c])
        return [(np.concatenate(a), np.concatenate(p_c), img[c, rows].reshape(-1).astype(np.int64))
                for c, (a, p_c) in enumerate(out)]

    def _stripe(self, img, padded, rows):
        """The network up to the heads on the pixels of some rows (a range, or any sequence of rows),
        row-major -> (acc_of, P): acc_of(c) gives channel c's hidden accumulators before rounding
        (:meth:`head_acc`), P (N, 3) the MED predictions."""
        cfg = self.cfg
        nb, p, feats, phase = self.row_features(padded, rows, img.shape[2])
        bases = colour_bases(nb, p, cfg) if cfg.colour_preds else None
        pre = self.heads_pre(self.hidden_rows(img, padded, rows, feats, phase))
        pix = img[:, rows].reshape(3, -1).T.astype(np.int64)  # (N, 3)
        resid = pix - p
        return (lambda c: self.head_acc(c, pre, head_extra(c, resid, bases, cfg))), p

    def row_features(self, padded, rows, w: int):
        """The trunk's inputs on the pixels of some rows (a range, or any sequence of rows), row-major
        -> (context pixels (N, 3, K), MED predictions (N, 3), features (N, F), phase index (N,))."""
        cfg = self.cfg
        top, k = cfg.pad[0], len(cfg.offsets)
        if isinstance(rows, range) and rows.step == 1:  # a stripe: its context in one piece
            nb = neighbours(padded[:, rows.start : rows.stop + top], cfg, len(rows), w)  # (3, n_rows, W, K)
        else:
            nb = np.concatenate([neighbours(padded[:, y : y + 1 + top], cfg, 1, w) for y in rows], axis=1)
        nb = nb.transpose(1, 2, 0, 3).reshape(-1, 3, k)  # (N, 3, K)
        p, feats = med_and_features(nb, cfg)  # (N, 3), (N, F)
        phase = phase_index(np.asarray(rows)[:, None], np.arange(w)).reshape(-1)
        return nb, p, feats, phase

    def hidden_rows(self, img, padded, rows, feats: np.ndarray, phase: np.ndarray) -> np.ndarray:
        """What the heads see at the pixels of some rows (row-major): feats and phase of those pixels ->
        (N, hidden) integers. Here the trunk of each pixel's own neighbourhood; a model with a wider
        context overrides this (it may look at other rows of img / padded)."""
        return self.trunk_forward(feats, phase)

    def ideal_bits(self, img: np.ndarray, n_coded: int = 3) -> float:
        """The exact model's code length in bits for img (3, H, W) uint8 (channels < n_coded)."""
        mean, idx = self.tables_parallel(img, n_coded)
        chosen = self.dist.prob_freq(img[:n_coded], mean, idx)
        return float(np.sum(np.log2(CDF_TOTAL) - np.log2(chosen)))

    # -- identity and storage --------------------------------------------------------------------
    def state(self) -> dict[str, torch.Tensor]:
        """Tensors to save: integer weights (int16), biases (int32), shifts, cdf table (int32)."""
        d: dict[str, torch.Tensor] = {}
        named = [(f"trunk.{i}", l) for i, l in enumerate(self.trunk)]
        named += [(f"heads.{c}.{n}", l) for c, pair in enumerate(self.heads) for n, l in zip(("fc", "out"), pair)]
        for name, layer in named:
            d[f"{name}.weight"] = layer.weight.to(torch.int16)
            d[f"{name}.bias"] = layer.bias.to(torch.int32)
            d[f"{name}.shift"] = torch.tensor([layer.shift], dtype=torch.int32)
        d["cdf"] = torch.from_numpy(self.dist.cdf.astype(np.int32))
        return d

    def id_config(self) -> dict[str, Any]:
        """The config as hashed into the model id: fields switched off (OPTIONAL_FEATURES) are left
        out, so a model keeps the id it had before such a field existed."""
        cfg = asdict(self.cfg)
        for name in OPTIONAL_FEATURES:
            if cfg[name] == getattr(PixelCNNConfig, name):
                del cfg[name]
        return cfg

    def _model_id(self) -> bytes:
        return modelfile.model_id(self.id_config(), self.state())

    def config_dict(self) -> dict[str, Any]:
        return asdict(self.cfg)

    def save(self, path: str | Path, card: dict[str, Any] | None = None) -> None:
        """Write the model file (:mod:`gencodec.models.modelfile`)."""
        modelfile.save(self, path, card)

    @classmethod
    def load(cls, path: str | Path) -> "ExactPixelCNN":
        from .zoo import load

        return load(path, cls.arch)

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> "ExactPixelCNN":
        """The model from a model file's config and tensors (:meth:`state`)."""
        cfg = PixelCNNConfig.from_dict(config)
        return cls(cfg, *cls.parts(cfg, tensors))

    @staticmethod
    def parts(cfg: PixelCNNConfig, tensors: dict[str, torch.Tensor]):
        """(trunk, heads, cdf) of a model file's tensors (:meth:`state`)."""
        try:
            def layer(name, fi, fo):
                return ExactLinear(tensors[f"{name}.weight"].float(), tensors[f"{name}.bias"].float(),
                                   int(tensors[f"{name}.shift"][0]), fi, fo)

            trunk = [layer(f"trunk.{i}", cfg.fmt_x if i == 0 else cfg.fmt_h, cfg.fmt_h) for i in range(cfg.trunk_layers)]
            heads = [(layer(f"heads.{c}.fc", cfg.fmt_resid, cfg.fmt_h), layer(f"heads.{c}.out", cfg.fmt_h, cfg.fmt_out))
                     for c in range(3)]
            cdf = tensors["cdf"].numpy()
        except KeyError as e:
            raise GencodecError(f"PixelCNN model file lacks tensor {e}") from None
        return trunk, heads, cdf

    # -- the neural codec contract (gencodec.exact.contract) ---------------------------------------
    def schedule(self, shape: Sequence[int]) -> Schedule:
        """Symbols (n_coded, H, W), flat index c H W + y W + x: wavefronts t = (r + 1) y + x, within a
        wavefront channel by channel, within a channel by row; a round of adaptation every
        ROUND_WAVEFRONTS wavefronts. Empty wavefronts (of images narrower than r + 1) have no group."""
        n_coded, h, w = shape
        order, counts = wavefront_groups(h, w, self.cfg.reach_right + 1)
        groups, rounds = [], []
        start, last_round = 0, -1
        for t, n in enumerate(counts.tolist()):
            if not n:
                continue
            if t // ROUND_WAVEFRONTS != last_round:
                rounds.append(len(groups))
                last_round = t // ROUND_WAVEFRONTS
            pix = order[start : start + n]
            start += n
            groups.extend(pix + c * (h * w) for c in range(n_coded))
        return Schedule(tuple(groups), n_coded * h * w, tuple(rounds) or (0,))

    def parallel(self, symbols: np.ndarray) -> "PlaneParams":
        """All tables' parameters from one pass over symbols (n_coded, H, W)."""
        mean, idx = self.tables_parallel(_three_planes(symbols), symbols.shape[0])
        return PlaneParams(mean, idx)

    def session(self, shape: Sequence[int]) -> "WavefrontSession":
        """The wavefront decoder (run it inside :meth:`coding`)."""
        return WavefrontSession(self, tuple(shape))

    @contextmanager
    def coding(self) -> Iterator[None]:
        """What the driver runs encoding and decoding in: IEEE precision, torch single-threaded, and
        numpy's BLAS on the thread count the decoder found fastest here (:data:`DECODER_THREADS`)."""
        with exact_mode(), serial_torch(), DECODER_THREADS.scope():
            yield

    trusted_tables = True  # freqs() builds float64 integers >= 1 by construction (the cdf is checked)

    def freqs(self, params) -> tuple[np.ndarray, float]:
        """(channel, mean md, scale index) -> (tables (n, 256), 2**16)."""
        _, md, s = params
        return self.dist.freqs(md, s), float(CDF_TOTAL)


def _three_planes(symbols: np.ndarray) -> np.ndarray:
    """Symbols (n_coded, H, W) -> the (3, H, W) uint8 image the network sees (a grey image as R = G = B)."""
    planes = np.asarray(symbols, np.uint8)
    if planes.shape[0] == 3:
        return np.ascontiguousarray(planes)
    return np.ascontiguousarray(np.broadcast_to(planes[:1], (3,) + planes.shape[1:]))


class PlaneParams:
    """The parallel pass's parameters: mean md and scale index (n_coded, H, W) of every subpixel;
    called with flat indices -> (channel, md, scale index) of those symbols."""

    def __init__(self, mean: np.ndarray, idx: np.ndarray):
        self.mean, self.idx = mean, idx
        self._hw = mean.shape[1] * mean.shape[2]

    def __call__(self, flat: np.ndarray):
        return flat // self._hw, self.mean.reshape(-1)[flat], self.idx.reshape(-1)[flat]


#: the decoder's BLAS thread count, chosen by timing its first wavefronts (once per process)
DECODER_THREADS = BlasThreads()


class WavefrontSession:
    """The decoder: one wavefront at a time, evaluating the trunk on all its pixels at once and then
    the heads channel by channel (one group each). Decoded pixels go into a causal-padded image
    whose padding is completed as rows finish, so every context is a flat gather."""

    def __init__(self, model: ExactPixelCNN, shape: tuple[int, int, int]):
        self.m, cfg = model, model.cfg
        self.n_coded, self.h, self.w = n_coded, h, w = shape
        top, left, _ = cfg.pad
        self.step = cfg.reach_right + 1
        self.padded = np.full((3, h + top, w + left + cfg.reach_right), 128, dtype=np.int32)
        hp, wp = self.padded.shape[1:]
        self.plane = hp * wp
        # flat index of every context pixel of (y, x) = y * wp + x + offs: (3, K), channel-major
        offs = np.array([(dy + top) * wp + dx + left for dy, dx in cfg.offsets])
        self.offs = np.arange(3)[:, None] * self.plane + offs[None, :]
        self.flat = self.padded.reshape(-1)
        self.n_steps = self.step * (h - 1) + w if h and w else 0
        self.t, self.c = -1, n_coded  # before the first wavefront

    def _wavefront(self) -> None:
        """Advance to the next wavefront with pixels and run the network up to the heads there."""
        cfg, step, h, w = self.m.cfg, self.step, self.h, self.w
        top, left, _ = cfg.pad
        wp = self.padded.shape[2]
        while True:
            self.t += 1
            t = self.t
            y_lo = max(0, -(-(t - w + 1) // step))
            ys = np.arange(y_lo, min(h - 1, t // step) + 1)
            if ys.size:
                break
        xs = t - step * ys
        DECODER_THREADS.step(ys.size)
        self.ys, self.xs = ys, xs
        self.pos = (ys + top) * wp + xs + left  # where the wavefront's pixels go in each padded plane
        nb = self.flat.take((ys * wp + xs)[:, None, None] + self.offs)  # (n, 3, K)
        self.p, feats = med_and_features(nb, cfg)  # (n, 3), (n, F)
        self.bases = colour_bases(nb, self.p, cfg) if cfg.colour_preds else None
        self.pre = self.m.heads_pre(self.hidden(feats, ys, xs))
        self.resid = np.zeros((ys.size, 3), np.int64)
        self.c = 0

    def hidden(self, feats: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """What the heads see at the wavefront's pixels (the trunk here; a wider-context model's session
        overrides it, :meth:`ExactPixelCNN.hidden_rows`)."""
        return self.m.trunk_forward(feats, phase_index(ys, xs))

    def next(self):
        if self.c == self.n_coded:
            self._wavefront()
        c, cfg = self.c, self.m.cfg
        mean, idx = self.m.head_forward(c, self.pre, head_extra(c, self.resid, self.bases, cfg), self.p[:, c])
        return c, mean, idx

    def result(self) -> np.ndarray:
        """The decoded planes (n_coded, H, W)."""
        top, left, _ = self.m.cfg.pad
        return self.padded[: self.n_coded, top:, left : left + self.w]

    def push(self, sym: np.ndarray) -> None:
        c, pos, plane = self.c, self.pos, self.plane
        self.flat[pos + c * plane] = sym
        self.resid[:, c] = sym - self.p[:, c]
        self.c = c = c + 1
        if c < self.n_coded:
            return
        if self.n_coded == 1:
            self.flat[pos + plane] = self.flat[pos + 2 * plane] = sym
        top, left, _ = self.m.cfg.pad
        padded, ys, xs, w = self.padded, self.ys, self.xs, self.w
        if xs[-1] == 0 and ys[-1] + 1 < self.h:  # left padding of the next row
            y0 = ys[-1]
            padded[:, y0 + 1 + top, :left] = padded[:, y0 + top, left : left + 1]
        if xs[0] == w - 1:  # right padding of this row
            y1 = ys[0]
            padded[:, y1 + top, left + w :] = padded[:, y1 + top, left + w - 1 : left + w]
