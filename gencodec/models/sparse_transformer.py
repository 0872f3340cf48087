"""sparse-transformer: pixelcnn's neighbourhood trunk and heads with factorized attention between them.

A Sparse Transformer (Child et al. 2019) with the *strided* pattern for images, made finite so that
it decodes on pixelcnn's wavefronts: every attention block has two heads, one over the pixel and the
``row_window - 1`` pixels before it in its row, one over the pixel and the ``col_window - 1`` pixels
above it in its column. A token is a pixel; its embedding is the pixelcnn trunk's output on the
pixel's causal neighbourhood (which never sees the pixel itself), so a token may attend to itself::

    neighbourhood --pixelcnn trunk--> x_0 --blocks--> x_L --pixelcnn heads (R, G|R, B|R,G)--> logistic
    block: x += proj([attend_row(norm x), attend_col(norm x)]); x += fc2(relu(fc1(norm x)))

Everything after the trunk is the pixelcnn model's (:class:`~gencodec.models.pixelcnn.ExactPixelCNN`,
of which the exact model is a subclass): the discretized logistic, the per-image head refits, the
scale remap and the online histograms, the payload. Only what the heads see changes
(:meth:`ExactPixelCNN.hidden_rows`, :meth:`WavefrontSession.hidden`).

Exact, with integers only (numpy int64 / float64 holding integers below 2**53, so any summation
order gives the same numbers):

- **normalization** by a power of two: the block's input q (integers on the activation grid) is
  multiplied by ``2**-s``, s = floor((floor(log2 sum q^2) - floor(log2 d)) / 2) - act_frac_bits (an
  RMS norm whose scale is rounded to a power of two; exact, and the same in training, where s is
  computed from the same integers);
- **scores** ``q . k`` of integer queries and keys, rescaled by a power of two to 1/8 of a logit;
- **softmax** by a lookup table: weights ``LUT[max - score]`` = round(2**12 exp(-d / 8)), and the
  output ``round(sum w v / sum w)`` by integer division;
- linear layers as integer matmuls with power-of-two requantization (:class:`QuantLinear` twins).

Decoding keeps each block's keys and values in ring buffers (a row's last ``row_window`` columns, a
column's last ``col_window`` rows): every position a wavefront's pixels attend to was decoded on an
earlier wavefront (or is the pixel itself), so one pass per block and wavefront serves all its pixels.
The encoder's parallel pass runs stripes of rows with a halo of ``blocks * (col_window - 1)`` rows
above (the column heads' reach), recomputed: the same integers, so the same tables.

Training starts from a pixelcnn model file: its trunk and heads are copied and every block's output
layers start at zero, so the model begins exactly where the pixelcnn was and training only adds.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ExactnessError, GencodecError
from ..exact import ExactLinear, QFormat, QuantLinear
from ..exact.check import EXACT_LIMIT
from ..exact.detmath import CTX, D, det_round
from ..exact.fastpath import clip, prescaled, round_clip
from ..exact.quant import fake_quant
from .pixelcnn import ExactPixelCNN, PixelCNN, PixelCNNConfig, WavefrontSession, phase_index

WEIGHT_BITS = 12  # softmax weights are integers up to 2**12
LOGIT_FRAC_BITS = 3  # scores are rescaled to 1/8 of a logit before the table


def softmax_table() -> np.ndarray:
    """The softmax table: the weight round(2**12 exp(-d / 8)) of a score d steps (1/8 logit) below the
    best, while it is at least 1 (0 beyond the end). Rounded identically on every machine
    (:func:`gencodec.exact.detmath.det_round`: libm's exp may differ in the last bit); pinned by a test."""
    d = np.arange(128)
    scale = 2**WEIGHT_BITS
    est = scale * np.exp(-d / 2**LOGIT_FRAC_BITS)
    lut = det_round(est, lambda idx: [CTX.multiply(D(scale), CTX.exp(CTX.divide(D(-int(d[i])), D(2**LOGIT_FRAC_BITS))))
                                      for i in idx])
    return lut[: int(np.nonzero(lut)[0][-1]) + 1]


SOFTMAX_LUT = softmax_table()
_LUT32 = np.append(SOFTMAX_LUT, 0).astype(np.float32)  # and 0 past the end
MAX_WINDOW = 32  # attention windows up to this many positions keep every sum of attend() below 2**24
STRIPE_ROWS = 32  # the encoder's stripes (each recomputes a halo of blocks * (col_window - 1) rows above)
CONTEXT_CACHE_BYTES = 1 << 28  # the encoder keeps an image's blocks' output up to this size (int16)
QKV_FRAC_BITS = 3  # queries, keys and values: q / 8, |q| <= 127
QKV_MAX = 127


@dataclass(frozen=True)
class SparseTransformerConfig(PixelCNNConfig):
    blocks: int = 2  # attention blocks after the trunk
    head_dim: int = 16  # width of each of the two heads (row, column); a power of two
    row_window: int = 8  # the row head sees the pixel and the row_window - 1 before it in its row
    col_window: int = 6  # the column head sees the pixel and the col_window - 1 above it
    mlp_hidden: int = 224  # width of each block's MLP

    def validate(self) -> None:
        super().validate()
        if self.blocks < 0 or not 1 <= self.row_window <= MAX_WINDOW or not 1 <= self.col_window <= MAX_WINDOW:
            raise ValueError(f"blocks >= 0 and windows of 1 to {MAX_WINDOW} positions")
        if self.mlp_hidden < 1:
            raise ValueError("mlp_hidden >= 1")
        if self.head_dim < 1 or self.head_dim & (self.head_dim - 1) or self.head_dim > 1024:
            raise ValueError("head_dim must be a power of two up to 1024 (scores stay below 2**24)")

    @property
    def halo(self) -> int:
        """Rows above a stripe that its blocks reach (through the column heads)."""
        return self.blocks * (self.col_window - 1)

    @property
    def fmt_res(self) -> QFormat:
        """The residual stream: signed, on the activation grid (what the heads' first layers read)."""
        return self.fmt_resid

    @property
    def fmt_qkv(self) -> QFormat:
        return QFormat(QKV_FRAC_BITS, -QKV_MAX, QKV_MAX)

    @property
    def score_shift(self) -> int:
        """Power of two taking q . k (at 2 QKV_FRAC_BITS) to 1/8 logit, with the 1/sqrt(head_dim) scale."""
        return 2 * QKV_FRAC_BITS + int(math.log2(self.head_dim)) // 2 - LOGIT_FRAC_BITS

    @classmethod
    def extending(cls, cfg: PixelCNNConfig) -> "SparseTransformerConfig":
        """The config of a model started from one with ``cfg``: itself if it is a sparse-transformer
        config, else its trunk and heads with the default blocks (MLP as wide as the trunk)."""
        if isinstance(cfg, cls):
            return cfg
        return cls(**{**asdict(cfg), "mlp_hidden": cfg.hidden})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SparseTransformerConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise GencodecError(f"unknown sparse-transformer config fields: {sorted(unknown)}")
        return cls(**d)


# ---------------------------------------------------------------------------------------------
# the pieces both twins share: normalization shift, attention windows
# ---------------------------------------------------------------------------------------------
def norm_shift(sumsq, d: int, act_frac_bits: int):
    """sumsq: sums of squares of integer activations (numpy float64 or torch, exact integers) ->
    the power-of-two shift s of :func:`pow2_norm` (numpy int64 or torch float); 0 where sumsq is 0."""
    log_d = int(math.floor(math.log2(d)))
    if isinstance(sumsq, np.ndarray):
        _, e = np.frexp(sumsq)  # sumsq = m 2**e, 1/2 <= m < 1: floor(log2) = e - 1 (exact)
        return np.where(sumsq > 0, (e.astype(np.int64) - 1 - log_d) // 2 - act_frac_bits, 0)
    _, e = torch.frexp(sumsq)
    return torch.where(sumsq > 0, torch.div(e - 1 - log_d, 2, rounding_mode="floor") - act_frac_bits,
                       torch.zeros_like(e)).to(sumsq.dtype)


def window_offsets(cfg: SparseTransformerConfig) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(dy, dx) the row head and the column head attend to, the pixel itself first."""
    return [(0, -j) for j in range(cfg.row_window)], [(-j, 0) for j in range(cfg.col_window)]


# ---------------------------------------------------------------------------------------------
# training twin
# ---------------------------------------------------------------------------------------------
class Block(nn.Module):
    """One attention block (fake-quantized; see the module doc for what it computes)."""

    def __init__(self, cfg: SparseTransformerConfig):
        super().__init__()
        self.cfg = cfg
        fmt_n = cfg.fmt_res
        kw = dict(w_frac_bits=cfg.w_frac_bits, w_max=cfg.w_max)
        self.qkv = QuantLinear(cfg.hidden, 6 * cfg.head_dim, fmt_n, cfg.fmt_qkv, **kw)
        self.proj = QuantLinear(2 * cfg.head_dim, cfg.hidden, cfg.fmt_qkv, cfg.fmt_res, **kw)
        self.fc1 = QuantLinear(cfg.hidden, cfg.mlp_hidden, fmt_n, cfg.fmt_h, **kw)
        self.fc2 = QuantLinear(cfg.mlp_hidden, cfg.hidden, cfg.fmt_h, cfg.fmt_res, **kw)
        with torch.no_grad():  # the block starts as the identity
            for layer in (self.proj, self.fc2):
                layer.weight.zero_()
                layer.bias.zero_()

    def norm(self, x: torch.Tensor) -> torch.Tensor:
        """x real on the activation grid -> x 2**-s (the same power of two as the exact path)."""
        a = self.cfg.act_frac_bits
        q = (x * 2.0**a).detach()
        s = norm_shift(torch.round(q).double().pow(2).sum(-1, keepdim=True), self.cfg.hidden, a)
        return x * torch.pow(2.0, -s).to(x.dtype)

    def attend(self, q, k, v, offsets, quantized: bool) -> torch.Tensor:
        """q, k, v (B, H, W, dh) -> (B, H, W, dh): softmax over the window positions inside the image."""
        _, h, w, _ = q.shape
        logits, vals = [], []
        for dy, dx in offsets:
            ks = _shift(k, -dy, -dx)
            logits.append((q * ks).sum(-1) / math.sqrt(self.cfg.head_dim))
            vals.append(_shift(v, -dy, -dx))
        logit = torch.stack(logits, -1)  # (B, H, W, n)
        if quantized:  # on the table's grid of 1/8 logit (straight-through)
            logit = fake_quant(logit, QFormat(LOGIT_FRAC_BITS, -2**30, 2**30))
        ys = torch.arange(h, device=q.device)[:, None, None]
        xs = torch.arange(w, device=q.device)[None, :, None]
        dys = torch.tensor([dy for dy, _ in offsets], device=q.device)
        dxs = torch.tensor([dx for _, dx in offsets], device=q.device)
        inside = (ys + dys >= 0) & (xs + dxs >= 0)  # (H, W, n)
        p = torch.softmax(logit.masked_fill(~inside, float("-inf")), dim=-1)
        out = (p[..., None] * torch.stack(vals, -2)).sum(-2)
        return fake_quant(out, self.cfg.fmt_qkv) if quantized else out

    def forward(self, x: torch.Tensor, quantized: bool = True) -> torch.Tensor:
        cfg, dh = self.cfg, self.cfg.head_dim
        lin = (lambda layer, t, relu=False: layer(t)) if quantized else _float
        qkv = lin(self.qkv, self.norm(x))
        rows, cols = window_offsets(cfg)
        o_r = self.attend(qkv[..., 0:dh], qkv[..., dh : 2 * dh], qkv[..., 2 * dh : 3 * dh], rows, quantized)
        o_c = self.attend(qkv[..., 3 * dh : 4 * dh], qkv[..., 4 * dh : 5 * dh], qkv[..., 5 * dh :], cols, quantized)
        x = _res(x + lin(self.proj, torch.cat([o_r, o_c], -1)), cfg, quantized)
        hidden = lin(self.fc1, self.norm(x), relu=True)
        return _res(x + lin(self.fc2, hidden), cfg, quantized)


def _float(layer: QuantLinear, x: torch.Tensor, relu: bool = False) -> torch.Tensor:
    y = F.linear(x, layer.weight, layer.bias)
    return F.relu(y) if relu else y


def _res(x: torch.Tensor, cfg: SparseTransformerConfig, quantized: bool) -> torch.Tensor:
    return fake_quant(x, cfg.fmt_res) if quantized else x


def _shift(t: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """t (B, H, W, C) -> t at (y - dy, x - dx), zeros where that is outside (dy, dx >= 0)."""
    if dy:
        t = F.pad(t, (0, 0, 0, 0, dy, 0))[:, : t.shape[1]]
    if dx:
        t = F.pad(t, (0, 0, dx, 0))[:, :, : t.shape[2]]
    return t


class SparseTransformer(PixelCNN):
    """The training model: pixelcnn's trunk and heads with attention blocks between them."""

    def __init__(self, cfg: SparseTransformerConfig = SparseTransformerConfig()):
        super().__init__(cfg)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.blocks))

    def context(self, act: torch.Tensor, quantized: bool) -> torch.Tensor:
        for block in self.blocks:
            act = block(act, quantized)
        return act

    def block_layers(self) -> list[tuple[str, QuantLinear]]:
        return [(f"blocks.{i}.{n}", getattr(b, n)) for i, b in enumerate(self.blocks) for n in BLOCK_LAYERS]

    @classmethod
    def from_pixelcnn(cls, exact: ExactPixelCNN, cfg: SparseTransformerConfig | None = None) -> "SparseTransformer":
        """A training model that computes what ``exact`` (a pixelcnn model, or an exact sparse
        transformer) computes: its trunk and heads; new blocks start as the identity."""
        if cfg is None:
            cfg = SparseTransformerConfig.extending(exact.cfg)
        model = cls(cfg)
        base = PixelCNN.from_exact(exact)  # the trunk and heads as training layers
        model.trunk.load_state_dict(base.trunk.state_dict())
        model.heads.load_state_dict(base.heads.state_dict())
        if isinstance(exact, ExactSparseTransformer):
            with torch.no_grad():
                for (name, q), e in zip(model.block_layers(), exact.block_list()):
                    q.weight.copy_(e.weight * 2.0**-q.w_fmt.frac_bits)
                    q.bias.copy_(e.bias * 2.0**-q.b_fmt.frac_bits)
        return model

    def export(self) -> "ExactSparseTransformer":
        with torch.no_grad():
            return ExactSparseTransformer(
                self.cfg, [layer.export() for layer in self.trunk],
                [(hd.fc.export(), hd.out.export()) for hd in self.heads], self.dist.cdf,
                [{n: getattr(b, n).export() for n in BLOCK_LAYERS} for b in self.blocks])


BLOCK_LAYERS = ("qkv", "proj", "fc1", "fc2")


# ---------------------------------------------------------------------------------------------
# exact model
# ---------------------------------------------------------------------------------------------
class _ExactBlock:
    """One block's integers for the numpy path: float32 products where every partial sum of the layer
    stays below 2**24 (checked, as pixelcnn's layers), float64 (below 2**53) otherwise -- exact either
    way, so the choice changes the speed only."""

    def __init__(self, layers: dict[str, ExactLinear], cfg: SparseTransformerConfig):
        self.cfg = cfg
        self.lin = {}
        for n, layer in layers.items():
            bound = layer.max_abs_accumulator()
            if bound >= EXACT_LIMIT[torch.float64]:
                raise ExactnessError(f"sparse-transformer block layer accumulator bound {bound} is not below 2**53")
            dtype = np.float32 if bound < EXACT_LIMIT[torch.float32] else np.float64
            w, b, fmt = prescaled(layer) if dtype == np.float32 else (
                layer.weight.numpy().T.astype(np.float64) * 2.0**-layer.shift,
                layer.bias.numpy().astype(np.float64) * 2.0**-layer.shift, layer.out_fmt)
            self.lin[n] = (w, b, fmt, dtype)

    def linear(self, name: str, x: np.ndarray) -> np.ndarray:
        w, b, fmt, dtype = self.lin[name]
        y = x.astype(dtype, copy=False) @ w
        y += b
        return round_clip(y, fmt).astype(np.float32, copy=False)

    def norm(self, x: np.ndarray) -> np.ndarray:
        """x (N, hidden) float32 integers -> x 2**-s, rounded and clipped (float32)."""
        cfg = self.cfg
        sq = x * x  # exact in float32 (|q| <= 510); their sum in float64 (exact in any order)
        s = norm_shift(sq.sum(axis=1, dtype=np.float64), cfg.hidden, cfg.act_frac_bits)
        y = x * np.ldexp(1.0, -s).astype(np.float32)[:, None]  # a power of two: exact
        return round_clip(y, cfg.fmt_res)

    def qkv(self, x: np.ndarray) -> np.ndarray:
        """x (N, hidden) -> (N, 6, head_dim) float32 integers: row q, k, v, column q, k, v."""
        return self.linear("qkv", self.norm(x)).reshape(x.shape[0], 6, self.cfg.head_dim)

    def finish(self, x: np.ndarray, o_r: np.ndarray, o_c: np.ndarray) -> np.ndarray:
        """The rest of the block after attention: x (N, hidden), o_r, o_c (N, head_dim) -> new x (float32)."""
        fmt = self.cfg.fmt_res
        x = x + self.linear("proj", np.concatenate([o_r, o_c], axis=1))
        clip(x, fmt.lo, fmt.hi, out=x)
        x += self.linear("fc2", self.linear("fc1", self.norm(x)))
        return clip(x, fmt.lo, fmt.hi, out=x)


def attend(q: np.ndarray, k: np.ndarray, v: np.ndarray, inside: np.ndarray, shift: int) -> np.ndarray:
    """Exact attention: q (N, dh), k, v (N, n, dh) float32 integers (|.| <= 127), inside (N, n) bool
    (position 0, the pixel itself, always inside) -> (N, dh) float32 integers
    ``round(sum w v / sum w)``, w = SOFTMAX_LUT[best - score].

    Every sum is of integers below 2**24 (scores: head_dim 127^2; weighted values: window 2**12 127,
    windows of at most MAX_WINDOW), so the float32 products are exact in any order; the division is
    float64, whose rounding cannot reach the next integer (the quotient's distance to it is at least
    1 / (2 sum w) > 2**-17), and floored: round half up."""
    score = np.matmul(k, q[:, :, None])[:, :, 0]
    score *= np.float32(2.0**-shift)
    np.rint(score, out=score)
    score[~inside] = -np.float32(2**30)
    gap = np.minimum(score.max(axis=1, keepdims=True) - score, np.float32(SOFTMAX_LUT.size)).astype(np.int64)
    w = _LUT32[gap]
    w *= inside
    num = np.matmul(w[:, None, :], v)[:, 0, :].astype(np.float64)
    den = w.sum(axis=1, keepdims=True, dtype=np.float64)
    return np.floor((2 * num + den) / (2 * den)).astype(np.float32)


class ExactSparseTransformer(ExactPixelCNN):
    """The exact model: :class:`ExactPixelCNN` (trunk, heads, tables, adaptation) with blocks between
    the trunk and the heads (see the module doc)."""

    arch = "sparse-transformer"

    def __init__(self, cfg: SparseTransformerConfig, trunk, heads, cdf, blocks: list[dict[str, ExactLinear]]):
        self.blocks = blocks
        super().__init__(cfg, trunk, heads, cdf)

    def block_list(self) -> list[ExactLinear]:
        return [b[n] for b in self.blocks for n in BLOCK_LAYERS]

    def _prepare(self) -> None:
        super()._prepare()
        self._blocks = [_ExactBlock(b, self.cfg) for b in self.blocks]
        self._context = None  # (image key, its blocks' output): see hidden_rows

    def state(self) -> dict[str, torch.Tensor]:
        d = super().state()
        for i, b in enumerate(self.blocks):
            for n in BLOCK_LAYERS:
                layer = b[n]
                d[f"blocks.{i}.{n}.weight"] = layer.weight.to(torch.int16)
                d[f"blocks.{i}.{n}.bias"] = layer.bias.to(torch.int32)
                d[f"blocks.{i}.{n}.shift"] = torch.tensor([layer.shift], dtype=torch.int32)
        return d

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> "ExactSparseTransformer":
        cfg = SparseTransformerConfig.from_dict(config)
        cfg.validate()
        trunk, heads, cdf = cls.parts(cfg, tensors)
        fmts = {"qkv": (cfg.fmt_res, cfg.fmt_qkv), "proj": (cfg.fmt_qkv, cfg.fmt_res),
                "fc1": (cfg.fmt_res, cfg.fmt_h), "fc2": (cfg.fmt_h, cfg.fmt_res)}
        try:
            blocks = [{n: ExactLinear(tensors[f"blocks.{i}.{n}.weight"].float(), tensors[f"blocks.{i}.{n}.bias"].float(),
                                      int(tensors[f"blocks.{i}.{n}.shift"][0]), *fmts[n]) for n in BLOCK_LAYERS}
                      for i in range(cfg.blocks)]
        except KeyError as e:
            raise GencodecError(f"sparse-transformer model file lacks tensor {e}") from None
        return cls(cfg, trunk, heads, cdf, blocks)

    # -- what the heads see ------------------------------------------------------------------------
    def hidden_rows(self, img, padded, rows, feats, phase):
        """The blocks' output on some rows. The encoder asks for rows in any order (the per-image fit's
        sample rows, then the stripes between them), so an image's whole output is computed once, in
        stripes of STRIPE_ROWS with their halo, and kept (int16) while the same image is asked for
        (:meth:`release`); an image too large for CONTEXT_CACHE_BYTES is computed run by run, each
        run of consecutive rows with its halo. The same integers either way."""
        rows = list(rows)
        h, w = img.shape[1:]
        if h * w * self.cfg.hidden * 2 <= CONTEXT_CACHE_BYTES:
            key = (img.shape, hashlib.blake2b(np.ascontiguousarray(img).tobytes(), digest_size=16).digest())
            if self._context is None or self._context[0] != key:
                self._context = None  # the old one goes first (memory)
                full = np.empty((h * w, self.cfg.hidden), np.int16)
                for y0 in range(0, h, STRIPE_ROWS):
                    y1 = min(h, y0 + STRIPE_ROWS)
                    full[y0 * w : y1 * w] = self.stripe_context(img, padded, max(0, y0 - self.cfg.halo), y1)[-(y1 - y0) * w :]
                self._context = (key, full)
            full = self._context[1].reshape(h, w, -1)
            return full[rows].reshape(len(rows) * w, -1).astype(np.float32)
        return self._runs(img, padded, rows)

    def release(self) -> None:
        """Drop the kept output of the last image (:meth:`hidden_rows`)."""
        self._context = None

    def _runs(self, img, padded, rows):
        """Runs of consecutive rows, each with its halo of rows above (recomputed: the same integers)."""
        w = img.shape[2]
        out = np.empty((len(rows) * w, self.cfg.hidden), np.float32)
        i = 0
        while i < len(rows):
            j = i + 1
            while j < len(rows) and rows[j] == rows[j - 1] + 1:
                j += 1
            y0, y1 = rows[i], rows[j - 1] + 1
            x = self.stripe_context(img, padded, max(0, y0 - self.cfg.halo), y1)
            out[i * w : j * w] = x[-(y1 - y0) * w :]  # the rows asked for: the halo's end
            i = j
        return out

    def stripe_context(self, img, padded, y0: int, y1: int) -> np.ndarray:
        """Rows y0..y1-1 through the trunk and the blocks, with nothing above y0 (rows within the halo
        of y0 are therefore not final) -> (n_rows W, hidden) float32 integers."""
        cfg = self.cfg
        w = img.shape[2]
        _, _, feats, phase = self.row_features(padded, range(y0, y1), w)
        x = self.trunk_forward(feats, phase)
        n = y1 - y0
        ys = np.repeat(np.arange(n), w)
        xs = np.tile(np.arange(w), n)
        rows, cols = window_offsets(cfg)
        for blk in self._blocks:
            qkv = blk.qkv(x)
            o = []
            for head, offs in ((0, rows), (1, cols)):
                q, k, v = qkv[:, 3 * head], qkv[:, 3 * head + 1], qkv[:, 3 * head + 2]
                yy = ys[:, None] + np.array([dy for dy, _ in offs])
                xx = xs[:, None] + np.array([dx for _, dx in offs])
                inside = (yy >= 0) & (xx >= 0)
                src = np.where(inside, yy * w + xx, 0)
                o.append(attend(q, k[src], v[src], inside, cfg.score_shift))
            x = blk.finish(x, *o)
        return x

    def session(self, shape: Sequence[int]) -> "AttentionSession":
        return AttentionSession(self, tuple(shape))


class AttentionSession(WavefrontSession):
    """The wavefront decoder with the blocks' keys and values in ring buffers: per block, a row's last
    ``row_window`` columns and a column's last ``col_window`` rows."""

    def __init__(self, model: ExactSparseTransformer, shape):
        super().__init__(model, shape)
        cfg = model.cfg
        _, h, w = self.n_coded, self.h, self.w
        dh = cfg.head_dim
        self.row_kv = [np.zeros((max(h, 1), cfg.row_window, 2, dh), np.float32) for _ in model._blocks]
        self.col_kv = [np.zeros((cfg.col_window, max(w, 1), 2, dh), np.float32) for _ in model._blocks]

    def hidden(self, feats, ys, xs):
        m, cfg = self.m, self.m.cfg
        x = m.trunk_forward(feats, phase_index(ys, xs))
        kr, kc = cfg.row_window, cfg.col_window
        jr, jc = np.arange(kr), np.arange(kc)
        for blk, row_kv, col_kv in zip(m._blocks, self.row_kv, self.col_kv):
            qkv = blk.qkv(x)
            row_kv[ys, xs % kr] = qkv[:, 1:3]
            col_kv[ys % kc, xs] = qkv[:, 4:6]
            r = row_kv[ys[:, None], (xs[:, None] - jr) % kr]  # (n, kr, 2, dh)
            c = col_kv[(ys[:, None] - jc) % kc, xs[:, None]]
            o_r = attend(qkv[:, 0], r[:, :, 0], r[:, :, 1], xs[:, None] - jr >= 0, cfg.score_shift)
            o_c = attend(qkv[:, 3], c[:, :, 0], c[:, :, 1], ys[:, None] - jc >= 0, cfg.score_shift)
            x = blk.finish(x, o_r, o_c)
        return x
