"""Exact attention blocks shared by the Sparse Transformers (images: :mod:`.sparse_transformer`,
bytes: :mod:`.byte_transformer`): a pre-norm block with two attention heads over fixed windows and
an MLP, as a fake-quantized training twin (:class:`Block`) and an integer numpy twin
(:class:`ExactBlock`, :func:`attend`)::

    block: x += proj([attend_a(norm x), attend_b(norm x)]); x += fc2(relu(fc1(norm x)))

Which positions each head sees is the subclass's (:meth:`Block.heads`); everything else is here.
Exact, with integers only (numpy float32 holding integers whose every partial sum stays below 2**24,
float64 below 2**53, so any summation order gives the same numbers):

- **normalization** by a power of two: the block's input q (integers on the activation grid) is
  multiplied by ``2**-s``, s = floor((floor(log2 sum q^2) - floor(log2 d)) / 2) - act_frac_bits (an
  RMS norm whose scale is rounded to a power of two; exact, and the same in training, where s is
  computed from the same integers);
- **scores** ``q . k`` of integer queries and keys, rescaled by a power of two to 1/8 of a logit;
- **softmax** by a lookup table: weights ``LUT[max - score]`` = round(2**12 exp(-d / 8)), and the
  output ``round(sum w v / sum w)`` by integer division;
- linear layers as integer matmuls with power-of-two requantization (:class:`QuantLinear` twins).

A config using these blocks has ``hidden``, ``head_dim``, ``mlp_hidden``, ``act_frac_bits``,
``w_frac_bits``, ``w_max``, the formats ``fmt_res`` (residual stream) and ``fmt_h`` (MLP hidden), and
:class:`AttentionFormats`' ``fmt_qkv`` and ``score_shift``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ExactnessError
from ..exact import ExactLinear, QFormat, QuantLinear
from ..exact.check import EXACT_LIMIT
from ..exact.detmath import CTX, D, det_round
from ..exact.fastpath import clip, prescaled, round_clip
from ..exact.quant import fake_quant

__all__ = ["SOFTMAX_LUT", "MAX_WINDOW", "AttentionFormats", "Block", "ExactBlock", "attend", "norm_shift",
           "softmax_table", "BLOCK_LAYERS", "numpy_linear", "apply_linear"]

WEIGHT_BITS = 12  # softmax weights are integers up to 2**12
LOGIT_FRAC_BITS = 3  # scores are rescaled to 1/8 of a logit before the table
MAX_WINDOW = 32  # attention windows up to this many positions keep every sum of attend() below 2**24
QKV_FRAC_BITS = 3  # queries, keys and values: q / 8, |q| <= 127
QKV_MAX = 127
BLOCK_LAYERS = ("qkv", "proj", "fc1", "fc2")


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


class AttentionFormats:
    """Mixin for configs: the query/key/value format and the score rescale (needs ``head_dim``)."""

    @property
    def fmt_qkv(self) -> QFormat:
        return QFormat(QKV_FRAC_BITS, -QKV_MAX, QKV_MAX)

    @property
    def score_shift(self) -> int:
        """Power of two taking q . k (at 2 QKV_FRAC_BITS) to 1/8 logit, with the 1/sqrt(head_dim) scale."""
        return 2 * QKV_FRAC_BITS + int(math.log2(self.head_dim)) // 2 - LOGIT_FRAC_BITS

    @property
    def score_scale(self) -> float:
        """What training multiplies q . k by: 1/sqrt(head_dim) rounded to the power of two the exact
        path uses (:attr:`score_shift`); the same for head_dim a power of 4."""
        return 2.0 ** -(int(math.log2(self.head_dim)) // 2)


def norm_shift(sumsq, d: int, act_frac_bits: int):
    """sumsq: sums of squares of integer activations (numpy float64 or torch, exact integers) ->
    the power-of-two shift s of the normalization (numpy int64 or torch float); 0 where sumsq is 0."""
    log_d = int(math.floor(math.log2(d)))
    if isinstance(sumsq, np.ndarray):
        _, e = np.frexp(sumsq)  # sumsq = m 2**e, 1/2 <= m < 1: floor(log2) = e - 1 (exact)
        return np.where(sumsq > 0, (e.astype(np.int64) - 1 - log_d) // 2 - act_frac_bits, 0)
    _, e = torch.frexp(sumsq)
    return torch.where(sumsq > 0, torch.div(e - 1 - log_d, 2, rounding_mode="floor") - act_frac_bits,
                       torch.zeros_like(e)).to(sumsq.dtype)


def norm_torch(x: torch.Tensor, cfg) -> torch.Tensor:
    """x real on the activation grid -> x 2**-s (the same power of two as the exact path)."""
    a = cfg.act_frac_bits
    q = (x * 2.0**a).detach()
    s = norm_shift(torch.round(q).double().pow(2).sum(-1, keepdim=True), cfg.hidden, a)
    return x * torch.pow(2.0, -s).to(x.dtype)


def norm_numpy(x: np.ndarray, cfg) -> np.ndarray:
    """x (N, hidden) float32 integers -> x 2**-s, rounded and clipped to ``fmt_res`` (float32)."""
    sq = x * x  # exact in float32 (|q| < 2**12); their sum in float64 (exact in any order)
    s = norm_shift(sq.sum(axis=1, dtype=np.float64), cfg.hidden, cfg.act_frac_bits)
    y = x * np.ldexp(1.0, -s).astype(np.float32)[:, None]  # a power of two: exact
    return round_clip(y, cfg.fmt_res)


# ---------------------------------------------------------------------------------------------
# training twin
# ---------------------------------------------------------------------------------------------
def softmax_mix(logit: torch.Tensor, vals: torch.Tensor, inside: torch.Tensor, cfg, quantized: bool) -> torch.Tensor:
    """logit (..., n) real scores, vals (..., n, dh), inside (..., n) bool (broadcast) -> (..., dh):
    the softmax over the window positions inside, on the table's grid when ``quantized``."""
    if quantized:  # on the table's grid of 1/8 logit (straight-through)
        logit = fake_quant(logit, QFormat(LOGIT_FRAC_BITS, -2**30, 2**30))
    p = torch.softmax(logit.masked_fill(~inside, float("-inf")), dim=-1)
    out = (p[..., None] * vals).sum(-2)
    return fake_quant(out, cfg.fmt_qkv) if quantized else out


class Block(nn.Module):
    """One attention block (fake-quantized): the subclass says which positions its two heads see
    (:meth:`heads`); a new block starts as the identity (its output layers at zero)."""

    def __init__(self, cfg):
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
        return norm_torch(x, self.cfg)

    def heads(self, qkv: torch.Tensor, quantized: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """qkv (..., 6 head_dim): head a's q, k, v, head b's q, k, v -> the two heads' outputs."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, quantized: bool = True) -> torch.Tensor:
        cfg = self.cfg
        lin = (lambda layer, t, relu=False: layer(t)) if quantized else _float
        o_a, o_b = self.heads(lin(self.qkv, self.norm(x)), quantized)
        x = _res(x + lin(self.proj, torch.cat([o_a, o_b], -1)), cfg, quantized)
        hidden = lin(self.fc1, self.norm(x), relu=True)
        return _res(x + lin(self.fc2, hidden), cfg, quantized)


def _float(layer: QuantLinear, x: torch.Tensor, relu: bool = False) -> torch.Tensor:
    y = F.linear(x, layer.weight, layer.bias)
    return F.relu(y) if relu else y


def _res(x: torch.Tensor, cfg, quantized: bool) -> torch.Tensor:
    return fake_quant(x, cfg.fmt_res) if quantized else x


# ---------------------------------------------------------------------------------------------
# exact twin
# ---------------------------------------------------------------------------------------------
def numpy_linear(layer: ExactLinear, what: str):
    """An exact layer for the numpy path: float32 products where every partial sum stays below 2**24,
    float64 (below 2**53) otherwise -- exact either way, so the choice changes the speed only.
    -> (weight (in, out), bias, out format, dtype)."""
    bound = layer.max_abs_accumulator()
    if bound >= EXACT_LIMIT[torch.float64]:
        raise ExactnessError(f"{what}: accumulator bound {bound} is not below 2**53")
    if bound < EXACT_LIMIT[torch.float32]:
        return (*prescaled(layer), np.float32)
    return (layer.weight.numpy().T.astype(np.float64) * 2.0**-layer.shift,
            layer.bias.numpy().astype(np.float64) * 2.0**-layer.shift, layer.out_fmt, np.float64)


def apply_linear(layer, x: np.ndarray) -> np.ndarray:
    """A :func:`numpy_linear` layer on x (N, in) float32 integers -> (N, out) float32 integers."""
    w, b, fmt, dtype = layer
    y = x.astype(dtype, copy=False) @ w
    y += b
    return round_clip(y, fmt).astype(np.float32, copy=False)


class ExactBlock:
    """One block's integers for the numpy path (see the module doc)."""

    def __init__(self, layers: dict[str, ExactLinear], cfg, what: str = "attention block"):
        self.cfg = cfg
        self.lin = {n: numpy_linear(layer, f"{what} layer {n}") for n, layer in layers.items()}

    def linear(self, name: str, x: np.ndarray) -> np.ndarray:
        return apply_linear(self.lin[name], x)

    def norm(self, x: np.ndarray) -> np.ndarray:
        return norm_numpy(x, self.cfg)

    def qkv(self, x: np.ndarray) -> np.ndarray:
        """x (N, hidden) -> (N, 6, head_dim) float32 integers: head a's q, k, v, head b's q, k, v."""
        return self.linear("qkv", self.norm(x)).reshape(x.shape[0], 6, self.cfg.head_dim)

    def finish(self, x: np.ndarray, o_a: np.ndarray, o_b: np.ndarray) -> np.ndarray:
        """The rest of the block after attention: x (N, hidden), o_a, o_b (N, head_dim) -> new x (float32)."""
        fmt = self.cfg.fmt_res
        x = x + self.linear("proj", np.concatenate([o_a, o_b], axis=1))
        clip(x, fmt.lo, fmt.hi, out=x)
        x += self.linear("fc2", self.linear("fc1", self.norm(x)))
        return clip(x, fmt.lo, fmt.hi, out=x)


def attend(q: np.ndarray, k: np.ndarray, v: np.ndarray, inside: np.ndarray, shift: int) -> np.ndarray:
    """Exact attention: q (N, dh), k, v (N, n, dh) float32 integers (|.| <= 127), inside (N, n) bool
    (at least one position inside per row) -> (N, dh) float32 integers ``round(sum w v / sum w)``,
    w = SOFTMAX_LUT[best - score].

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
