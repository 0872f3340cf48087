"""``bytenet``: the pretrained network of :mod:`gencodec.models.bytemodel`, a small causal model
of the next byte given the previous ``context`` bytes.

Architecture (a causal convolution of width ``context`` followed by two 1x1 layers, i.e. a
one-layer WaveNet without dilation, written as an MLP over a window):

- **Window**: the previous ``context`` bytes, newest first; positions before the start of the input
  (or of a lockstep segment) are byte 0.
- **Layer 1** is a sum of embeddings: one row per (offset, byte value), ``hidden`` wide, plus a
  bias, clamped to the activation grid ``[0, 127/128]`` (a bounded ReLU, 7 bits).
- **Layer 2**: a fake-quantized Linear ``hidden -> hidden`` with the same activation.
- **Layer 3**: a fake-quantized Linear ``hidden -> 256`` giving logits on a 1/16 grid.

Exact inference (:class:`ExactByteNet`) computes the very same integers in numpy: embeddings
and weights are small integers held in float32 whose every partial sum stays below 2**24 (checked
at load), rescaled by powers of two (:mod:`gencodec.exact.fastpath`). The softmax is a table:
``EXP[d] = round(2**16 exp(-d / 16))`` for the logit's distance ``d`` (in 1/16) below the largest
one, at least 1, so every byte keeps a probability. What the byte model's mixer takes from the
net is, for each bit, ``p(bit = 1 | the bits of this byte so far)`` as a 12-bit integer: two sums
of those weights over the bit's subtree (:meth:`ExactByteNet.bit_probs`).

Training (:class:`ByteNet`, torch) sees exactly these grids from its first step (straight-through
fake quantization), so the export loses nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ExactnessError
from ..exact.fastpath import dense, round_clip, serial_torch
from ..exact.layers import QuantLinear
from ..exact.quant import QFormat, fake_quant

__all__ = ["ByteNetConfig", "ByteNet", "ExactByteNet", "exp_table", "exp_weights", "running_sums", "windows"]

ACT_FRAC = 7  # activations q / 128, 0 <= q <= 127
LOGIT_FRAC = 4  # logits q / 16
LOGIT_MAX = 2047
EXP_BITS = 16
EXP_SPAN = 256  # distances (1/16) beyond this share the smallest weight


@dataclass(frozen=True)
class ByteNetConfig:
    context: int = 16  # bytes of history the net sees
    hidden: int = 256
    emb_frac_bits: int = 7  # embeddings e / 128, |e| <= emb_max
    emb_max: int = 255
    w_frac_bits: int = 8  # weights w / 256, |w| <= w_max
    w_max: int = 255

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ByteNetConfig":
        cfg = cls(**d)
        if not (1 <= cfg.context <= 64 and 8 <= cfg.hidden <= 1024):
            raise ValueError(f"bytenet config out of range: {d}")
        if cfg.emb_frac_bits != ACT_FRAC:
            raise ValueError(f"bytenet emb_frac_bits must be {ACT_FRAC} (the activations' grid)")
        return cfg


def exp_table() -> np.ndarray:
    """EXP[d] = round(2**16 exp(-d / 16)) for 0 <= d < EXP_SPAN, at least 1 (int64, machine independent)."""
    from ..exact.detmath import CTX, D, det_round

    d = np.arange(EXP_SPAN, dtype=np.float64)
    est = (1 << EXP_BITS) * np.exp(-d / (1 << LOGIT_FRAC))
    exact = det_round(est, lambda idx: [CTX.multiply(D(1 << EXP_BITS), CTX.exp(CTX.divide(D(-i), D(1 << LOGIT_FRAC))))
                                        for i in idx])
    return np.maximum(exact, 1)


def exp_weights(logits: np.ndarray, exp: np.ndarray) -> np.ndarray:
    """(k, 256) logits (1/16) -> (k, 256) int64 softmax weights ``exp[max - logit]`` (distances
    beyond the table share its last entry), each >= 1: the softmax of every byte-model net."""
    d = np.minimum(logits.max(1, keepdims=True) - logits, exp.size - 1)
    return exp[d]


def running_sums(w: np.ndarray) -> np.ndarray:
    """(k, 256) weights -> (k, 257) int64 running sums (column 0 is 0), what :meth:`ExactByteNet.bit_probs` reads."""
    out = np.zeros((w.shape[0], 257), np.int64)
    np.cumsum(w, axis=1, out=out[:, 1:])
    return out


def windows(data: np.ndarray, positions: np.ndarray, starts: np.ndarray, context: int) -> np.ndarray:
    """The net's input for each position: (len(positions), context) int64, column j the byte at
    ``position - 1 - j``, 0 where that lies before the position's ``start`` (its file or segment)."""
    back = positions[:, None] - 1 - np.arange(context)[None, :]
    ok = back >= starts[:, None]
    return np.where(ok, data[np.maximum(back, 0)], 0).astype(np.int64)


class ByteNet(nn.Module):
    """The trainable net: ``forward(windows (B, context) int64) -> logits (B, 256)``, real values on
    the 1/16 grid, exactly what :meth:`export`'s :class:`ExactByteNet` computes (times 16)."""

    def __init__(self, cfg: ByteNetConfig = ByteNetConfig()):
        super().__init__()
        self.cfg = cfg
        self.act = QFormat(ACT_FRAC, 0, 127)
        self.e_fmt = QFormat(cfg.emb_frac_bits, -cfg.emb_max, cfg.emb_max)
        self.emb = nn.Parameter(torch.randn(cfg.context * 256, cfg.hidden) * (0.5 / cfg.context ** 0.5))
        self.bias1 = nn.Parameter(torch.full((cfg.hidden,), 0.1))
        self.l2 = QuantLinear(cfg.hidden, cfg.hidden, self.act, self.act, w_frac_bits=cfg.w_frac_bits, w_max=cfg.w_max)
        self.l3 = QuantLinear(cfg.hidden, 256, self.act, QFormat(LOGIT_FRAC, -LOGIT_MAX, LOGIT_MAX),
                              w_frac_bits=cfg.w_frac_bits, w_max=cfg.w_max)
        self.register_buffer("offsets", torch.arange(cfg.context) * 256, persistent=False)

    def forward(self, win: torch.Tensor) -> torch.Tensor:
        e = fake_quant(self.emb, self.e_fmt)
        h = F.embedding_bag(win + self.offsets, e, mode="sum") + fake_quant(self.bias1, self.e_fmt)
        return self.l3(self.l2(fake_quant(h, self.act)))

    @torch.no_grad()
    def export(self) -> "ExactByteNet":
        scale = 2.0 ** self.cfg.emb_frac_bits
        tensors = {"net.emb": torch.round(fake_quant(self.emb, self.e_fmt) * scale).to(torch.int16).cpu(),
                   "net.bias1": torch.round(fake_quant(self.bias1, self.e_fmt) * scale).to(torch.int16).cpu()}
        for name in ("l2", "l3"):
            w, b, _ = getattr(self, name)._exact_ints()
            tensors[f"net.{name}.weight"] = w.to(torch.int16)
            tensors[f"net.{name}.bias"] = b.to(torch.int32)
        return ExactByteNet(self.cfg, tensors)

    @torch.no_grad()
    def load_exact(self, net: "ExactByteNet") -> None:
        """Start from an exported net: its integers read back onto the training grids."""
        t = net.tensors
        self.emb.copy_(t["net.emb"].float() / 2.0 ** self.cfg.emb_frac_bits)
        self.bias1.copy_(t["net.bias1"].float() / 2.0 ** self.cfg.emb_frac_bits)
        for name in ("l2", "l3"):
            q = getattr(self, name)
            q.weight.copy_(t[f"net.{name}.weight"].float() / 2.0 ** q.w_fmt.frac_bits)
            q.bias.copy_((t[f"net.{name}.bias"].double() / 2.0 ** q.b_fmt.frac_bits).float())


class ExactByteNet:
    """The exported net: integers only. ``weights(win)`` -> (k, 256) int64 softmax weights;
    ``bit_probs(cum, c0, bit)`` -> 12-bit p(bit = 1) from their running sums."""

    def __init__(self, cfg: ByteNetConfig, tensors: dict[str, Any]):
        self.cfg, self.tensors = cfg, tensors
        H, K = cfg.hidden, cfg.context
        emb = tensors["net.emb"].numpy().astype(np.int64)
        b1 = tensors["net.bias1"].numpy().astype(np.int64)
        if emb.shape != (K * 256, H) or b1.shape != (H,) or np.abs(emb).max(initial=0) > cfg.emb_max:
            raise ExactnessError("bytenet embeddings do not fit the config")
        self.emb = emb.astype(np.float32)
        self.b1 = b1.astype(np.float32)
        act = QFormat(ACT_FRAC, 0, 127)
        self.layers = []
        for name, n_out, fmt in (("l2", H, act), ("l3", 256, QFormat(LOGIT_FRAC, -LOGIT_MAX, LOGIT_MAX))):
            w = tensors[f"net.{name}.weight"].numpy().astype(np.int64)
            b = tensors[f"net.{name}.bias"].numpy().astype(np.int64)
            if w.shape != (n_out, H) or b.shape != (n_out,) or np.abs(w).max(initial=0) > cfg.w_max:
                raise ExactnessError(f"bytenet layer {name} does not fit the config")
            bound = int((np.abs(w).sum(1) * 127 + np.abs(b)).max())
            if bound >= 1 << 24:
                raise ExactnessError(f"bytenet layer {name}: accumulator bound {bound} is not below 2**24")
            shift = ACT_FRAC + cfg.w_frac_bits - fmt.frac_bits
            self.layers.append(((w.T * 2.0 ** -shift).astype(np.float32), (b * 2.0 ** -shift).astype(np.float32), fmt))
        if int(np.abs(emb).reshape(K, 256, H).max(1).sum(0).max() + np.abs(b1).max()) >= 1 << 24:
            raise ExactnessError("bytenet embedding sums exceed 2**24")
        self.offsets = np.arange(K, dtype=np.int64) * 256
        self.exp = exp_table()

    def logits(self, win: np.ndarray) -> np.ndarray:
        """win (k, context) bytes -> (k, 256) int64 logits (1/16)."""
        h = self.emb[win + self.offsets].sum(1, dtype=np.float32) + self.b1  # integers < 2**24: exact in float32
        return self.logits_from_sums(h)

    def logits_from_sums(self, h: np.ndarray) -> np.ndarray:
        """The first layer's sums (k, hidden) float32 (its embeddings and bias added) -> logits, as
        :meth:`logits`; ``h`` is overwritten."""
        with serial_torch():
            a = round_clip(h, QFormat(ACT_FRAC, 0, 127))
            for layer in self.layers:
                a = dense(a, layer)
        return a.astype(np.int64)

    def weights(self, win: np.ndarray) -> np.ndarray:
        """win (k, context) bytes -> (k, 256) int64 weights EXP[max - logit], each >= 1."""
        return exp_weights(self.logits(win), self.exp)

    def cumulative(self, win: np.ndarray) -> np.ndarray:
        """(k, 257) int64 running sums of :meth:`weights` (column 0 is 0)."""
        return running_sums(self.weights(win))

    @staticmethod
    def bit_probs(cum: np.ndarray, c0: np.ndarray, bit: int) -> np.ndarray:
        """12-bit p(bit ``bit`` = 1) per row, given the byte's bits so far (``c0``: them with a
        leading 1, 2**bit <= c0 < 2**(bit + 1)) and the rows' running sums: the weight of the
        subtree where the bit is 1 over the weight of the subtree of ``c0``; in [1, 4095]."""
        span = 256 >> bit
        lo = (c0 - (1 << bit)) * span
        rows = np.arange(cum.shape[0])
        total = cum[rows, lo + span] - cum[rows, lo]
        ones = cum[rows, lo + span] - cum[rows, lo + span // 2]
        return np.clip((ones << 12) // total, 1, 4095)
