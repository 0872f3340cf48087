"""``byte-transformer``: a Sparse Transformer (Child et al. 2019) with the *fixed* attention pattern
over bytes, as a network for :mod:`gencodec.models.bytemodel` (in place of :mod:`.bytenet`).

Tokens: token ``t`` of a segment is the byte at ``t - 1`` (token 0: a start symbol, 256), with an
embedding of its value and of its position in its block; its output predicts the byte at ``t``.
The fixed pattern, made finite: positions are cut into blocks of ``block_len``; the last
``summary`` positions of a block are its summary. Every attention block has two heads:

- **local** (head a): the token and the tokens before it in its block;
- **summary** (head b): the token and the summaries of the ``summary_blocks`` blocks before its own,

so a token reaches ``block_len * summary_blocks`` bytes back in one layer, and the reach grows with
depth. Both windows stay within :data:`gencodec.models.attention.MAX_WINDOW` positions, where the
exact attention's sums are exact in float32. After the blocks: the power-of-two norm, then a linear
layer to 256 logits on the 1/16 grid; from there on it is bytenet's: the exp table, the cumulative
weights and the per-bit probabilities (:func:`gencodec.models.bytenet.exp_table`,
:meth:`ExactByteNet.bit_probs`).

Exact (:class:`ExactByteTransformer`): the blocks are :mod:`gencodec.models.attention`'s integer twins.
Decoding runs every segment of the byte model in lockstep, one token per step (:class:`Stepper`):
per block a ring of the current block's keys and values and a ring of the previous blocks'
summaries, so a step costs one pass of each layer over the segments, never the history again.
:meth:`ExactByteTransformer.logits_parallel` computes a whole segment at once (training's
validation, tests): the same integers.

Training (:class:`ByteTransformer`): sequences of ``seq_len`` bytes starting anywhere in a file,
as a segment does, fake-quantized from the first step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ExactnessError
from ..exact import ExactLinear, QFormat, QuantLinear
from ..exact.fastpath import clip, serial_torch
from ..exact.quant import fake_quant
from .attention import (BLOCK_LAYERS, MAX_WINDOW, AttentionFormats, Block, ExactBlock, apply_linear, attend,
                        norm_numpy, norm_torch, numpy_linear, softmax_mix)
from .bytenet import LOGIT_FRAC, LOGIT_MAX, ExactByteNet, exp_table, exp_weights

__all__ = ["ByteTransformerConfig", "ByteTransformer", "ExactByteTransformer", "Stepper", "START"]

START = 256  # token 0's value: nothing before it
ARCH = "byte-transformer"
MAX_CACHE_WIDTH = 256  # blocks * head_dim: rings of at most 256 KiB per segment (default config: 32 KiB)


@dataclass(frozen=True)
class ByteTransformerConfig(AttentionFormats):
    arch: str = ARCH
    hidden: int = 128  # width of the residual stream
    blocks: int = 2
    head_dim: int = 32  # width of each of the two heads; a power of two
    mlp_hidden: int = 256
    block_len: int = 32  # the local head sees the token and those before it in its block
    summary: int = 2  # the last ``summary`` positions of a block are its summary
    summary_blocks: int = 15  # the summary head sees the token and the summaries of this many blocks before
    act_frac_bits: int = 4  # activations q / 16
    w_frac_bits: int = 7  # weights q / 128, |q| <= w_max
    w_max: int = 511

    def __post_init__(self):
        if self.arch != ARCH:
            raise ValueError(f"arch must be {ARCH!r}")
        if not (1 <= self.block_len <= MAX_WINDOW and 1 <= self.summary <= self.block_len
                and 0 <= self.summary_blocks and 1 + self.summary * self.summary_blocks <= MAX_WINDOW):
            raise ValueError(f"windows: block_len <= {MAX_WINDOW}, summary <= block_len, "
                             f"1 + summary * summary_blocks <= {MAX_WINDOW}")
        if self.head_dim < 1 or self.head_dim & (self.head_dim - 1) or self.head_dim > 1024:
            raise ValueError("head_dim must be a power of two up to 1024")
        if not (8 <= self.hidden <= 1024 and 1 <= self.mlp_hidden <= 4096 and 0 <= self.blocks <= 16):
            raise ValueError("hidden 8..1024, mlp_hidden 1..4096, blocks 0..16")
        if self.blocks * self.head_dim > MAX_CACHE_WIDTH:  # the decoder's rings: 64 positions per block and head
            raise ValueError(f"blocks * head_dim must be at most {MAX_CACHE_WIDTH} (the decoder's key/value rings)")
        if not 4 <= self.act_frac_bits <= 6 or not 1 <= self.w_max < 2**15:
            raise ValueError("act_frac_bits 4..6, w_max < 2**15")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ByteTransformerConfig":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown byte-transformer config fields: {sorted(unknown)}")
        return cls(**d)

    @property
    def fmt_res(self) -> QFormat:
        """The residual stream: signed, real values within (-16, 16)."""
        hi = 255 << (self.act_frac_bits - 4)
        return QFormat(self.act_frac_bits, -hi, hi)

    @property
    def fmt_h(self) -> QFormat:
        """MLP hidden (ReLU) activations: real values in [0, 16)."""
        return QFormat(self.act_frac_bits, 0, 255 << (self.act_frac_bits - 4))

    @property
    def fmt_logit(self) -> QFormat:
        return QFormat(LOGIT_FRAC, -LOGIT_MAX, LOGIT_MAX)

    @property
    def context(self) -> int:
        """Bytes back one layer reaches (the byte model's cards report it)."""
        return self.block_len * (self.summary_blocks + 1)


def windows(cfg: ByteTransformerConfig, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For token positions t (n,): (local sources (n, block_len), inside, summary sources (n, 1 +
    summary * summary_blocks), inside) -- the token itself first in both; sources clipped to 0 where
    not inside."""
    L, c = cfg.block_len, cfg.summary
    j = np.arange(L)
    loc = t[:, None] - j
    loc_in = j[None, :] <= (t % L)[:, None]
    m = np.repeat(np.arange(1, cfg.summary_blocks + 1), c)
    r = np.tile(np.arange(c), cfg.summary_blocks)
    blk = (t // L)[:, None] - m
    summ = np.concatenate([t[:, None], blk * L + (L - 1 - r)], axis=1)
    summ_in = np.concatenate([np.ones((t.size, 1), bool), blk >= 0], axis=1)
    return np.where(loc_in, loc, 0), loc_in, np.where(summ_in, summ, 0), summ_in


# ---------------------------------------------------------------------------------------------
# training twin
# ---------------------------------------------------------------------------------------------
class FixedBlock(Block):
    """An attention block of the fixed pattern over a sequence (B, T, hidden)."""

    def heads(self, qkv: torch.Tensor, quantized: bool) -> tuple[torch.Tensor, torch.Tensor]:
        cfg, dh = self.cfg, self.cfg.head_dim
        src_a, in_a, src_b, in_b = windows(cfg, np.arange(qkv.shape[1]))
        out = []
        for head, src, inside in ((0, src_a, in_a), (1, src_b, in_b)):
            src, inside = torch.from_numpy(src).to(qkv.device), torch.from_numpy(inside).to(qkv.device)
            q, k, v = (qkv[..., (3 * head + i) * dh : (3 * head + i + 1) * dh] for i in range(3))
            logit = (q[:, :, None, :] * k[:, src]).sum(-1) * cfg.score_scale  # (B, T, n)
            out.append(softmax_mix(logit, v[:, src], inside, cfg, quantized))
        return out[0], out[1]


class ByteTransformer(nn.Module):
    """The trainable net: ``forward(tokens (B, T) int64) -> logits (B, T, 256)`` real values on the
    1/16 grid: exactly what :class:`ExactByteTransformer` computes (times 16)."""

    def __init__(self, cfg: ByteTransformerConfig = ByteTransformerConfig()):
        super().__init__()
        self.cfg = cfg
        self.emb = nn.Parameter(torch.randn(257, cfg.hidden) * 0.5)
        self.pos = nn.Parameter(torch.randn(cfg.block_len, cfg.hidden) * 0.1)
        self.blocks = nn.ModuleList(FixedBlock(cfg) for _ in range(cfg.blocks))
        self.out = QuantLinear(cfg.hidden, 256, cfg.fmt_res, cfg.fmt_logit, w_frac_bits=cfg.w_frac_bits,
                               w_max=cfg.w_max)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        fmt = self.cfg.fmt_res
        t = torch.arange(tokens.shape[1], device=tokens.device) % self.cfg.block_len
        return fake_quant(fake_quant(self.emb, fmt)[tokens] + fake_quant(self.pos, fmt)[t], fmt)

    def forward(self, tokens: torch.Tensor, quantized: bool = True) -> torch.Tensor:
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x, quantized)
        return self.out(norm_torch(x, self.cfg))

    def layers(self) -> list[tuple[str, QuantLinear]]:
        return [(f"net.blocks.{i}.{n}", getattr(b, n)) for i, b in enumerate(self.blocks) for n in BLOCK_LAYERS] + \
               [("net.out", self.out)]

    @torch.no_grad()
    def export(self) -> "ExactByteTransformer":
        scale = 2.0**self.cfg.act_frac_bits
        fmt = self.cfg.fmt_res
        t = {"net.emb": torch.round(fake_quant(self.emb, fmt) * scale).to(torch.int16).cpu(),
             "net.pos": torch.round(fake_quant(self.pos, fmt) * scale).to(torch.int16).cpu()}
        for name, layer in self.layers():
            w, b, shift = layer._exact_ints()
            t[f"{name}.weight"] = w.to(torch.int16)
            t[f"{name}.bias"] = b.to(torch.int32)
        return ExactByteTransformer(self.cfg, t)

    @torch.no_grad()
    def load_exact(self, net: "ExactByteTransformer") -> None:
        """Start from an exported net: its integers read back onto the training grids."""
        t, scale = net.tensors, 2.0**self.cfg.act_frac_bits
        self.emb.copy_(t["net.emb"].float() / scale)
        self.pos.copy_(t["net.pos"].float() / scale)
        for name, q in self.layers():
            q.weight.copy_(t[f"{name}.weight"].float() / 2.0**q.w_fmt.frac_bits)
            q.bias.copy_((t[f"{name}.bias"].double() / 2.0**q.b_fmt.frac_bits).float())


# ---------------------------------------------------------------------------------------------
# exact net
# ---------------------------------------------------------------------------------------------
class ExactByteTransformer:
    """The exported net: integers only. :meth:`stepper` decodes segments in lockstep;
    :meth:`logits_parallel` computes one segment at once (the same integers)."""

    stateful = True  # the byte model keeps a :class:`Stepper` per coding session

    def __init__(self, cfg: ByteTransformerConfig, tensors: dict[str, Any]):
        self.cfg, self.tensors = cfg, tensors
        fmt = cfg.fmt_res
        if any(t.is_floating_point() or t.is_complex() for t in tensors.values()):
            raise ExactnessError("byte-transformer tensors must be integers")
        emb, pos = tensors["net.emb"].numpy(), tensors["net.pos"].numpy()
        if emb.shape != (257, cfg.hidden) or pos.shape != (cfg.block_len, cfg.hidden):
            raise ExactnessError("byte-transformer embeddings do not fit the config")
        if max(np.abs(emb).max(initial=0), np.abs(pos).max(initial=0)) > fmt.hi:
            raise ExactnessError("byte-transformer embeddings beyond the residual format")
        self.emb, self.pos = emb.astype(np.float32), pos.astype(np.float32)
        fmts = {"qkv": (fmt, cfg.fmt_qkv), "proj": (cfg.fmt_qkv, fmt), "fc1": (fmt, cfg.fmt_h), "fc2": (cfg.fmt_h, fmt)}
        shapes = {"qkv": (6 * cfg.head_dim, cfg.hidden), "proj": (cfg.hidden, 2 * cfg.head_dim),
                  "fc1": (cfg.mlp_hidden, cfg.hidden), "fc2": (cfg.hidden, cfg.mlp_hidden)}

        def layer(name, shape, in_fmt, out_fmt):
            w, b = tensors[f"{name}.weight"], tensors[f"{name}.bias"]
            if (tuple(w.shape) != shape or tuple(b.shape) != shape[:1] or int(w.abs().max()) > cfg.w_max
                    or int(b.abs().max()) >= 2**24):
                raise ExactnessError(f"byte-transformer layer {name} does not fit the config")
            shift = in_fmt.frac_bits + cfg.w_frac_bits - out_fmt.frac_bits
            return ExactLinear(w.float(), b.float(), shift, in_fmt, out_fmt)  # |bias| < 2**24: exact in float32

        self.blocks = [ExactBlock({n: layer(f"net.blocks.{i}.{n}", shapes[n], *fmts[n]) for n in BLOCK_LAYERS}, cfg,
                                  "byte-transformer block") for i in range(cfg.blocks)]
        self.out = numpy_linear(layer("net.out", (256, cfg.hidden), fmt, cfg.fmt_logit), "byte-transformer output")
        self.exp = exp_table()

    bit_probs = staticmethod(ExactByteNet.bit_probs)

    def embed(self, tokens: np.ndarray, t: np.ndarray) -> np.ndarray:
        fmt = self.cfg.fmt_res
        x = self.emb[tokens] + self.pos[t % self.cfg.block_len]
        return clip(x, fmt.lo, fmt.hi, out=x)

    def head(self, x: np.ndarray) -> np.ndarray:
        """The blocks' output (n, hidden) -> (n, 256) int64 logits (1/16)."""
        return apply_linear(self.out, norm_numpy(x, self.cfg)).astype(np.int64)

    def logits_parallel(self, data: np.ndarray) -> np.ndarray:
        """The bytes of one segment (n,) -> (n, 256) int64 logits of each byte given those before it."""
        cfg = self.cfg
        n = data.size
        t = np.arange(n)
        tokens = np.concatenate([[START], data[:-1].astype(np.int64)]) if n else np.zeros(0, np.int64)
        src_a, in_a, src_b, in_b = windows(cfg, t)
        with serial_torch():
            x = self.embed(tokens, t)
            for blk in self.blocks:
                qkv = blk.qkv(x)
                o_a = attend(qkv[:, 0], qkv[src_a, 1], qkv[src_a, 2], in_a, cfg.score_shift)
                o_b = attend(qkv[:, 3], qkv[src_b, 4], qkv[src_b, 5], in_b, cfg.score_shift)
                x = blk.finish(x, o_a, o_b)
            return self.head(x)

    def weights_of(self, logits: np.ndarray) -> np.ndarray:
        """(n, 256) logits -> (n, 256) int64 weights EXP[max - logit], each >= 1 (bytenet's softmax)."""
        return exp_weights(logits, self.exp)

    def stepper(self, segments: int) -> "Stepper":
        return Stepper(self, segments)


class Stepper:
    """Lockstep decoding of ``segments`` segments: :meth:`logits` for token ``t`` of the first ``k``
    (all segments reach ``t`` together; those that ended are the last ones and drop out)."""

    def __init__(self, net: ExactByteTransformer, segments: int):
        cfg = net.cfg
        self.net, self.t = net, 0
        n, dh, nb = max(segments, 1), cfg.head_dim, len(net.blocks)
        self.local = np.zeros((nb, n, cfg.block_len, 2, dh), np.float32)
        self.summ = np.zeros((nb, n, cfg.summary_blocks + 1, cfg.summary, 2, dh), np.float32)

    def logits_at(self, buf: np.ndarray, starts: np.ndarray, p: int) -> np.ndarray:
        """The logits of byte ``p`` of the segments that start at ``starts`` (the first k), their bytes
        so far in ``buf``: the token is the byte before (START at a segment's start)."""
        if p != self.t:
            raise ValueError(f"the stepper is at position {self.t}, not {p}")
        tokens = np.full(starts.size, START, np.int64) if p == 0 else buf[starts + p - 1].astype(np.int64)
        return self.logits(tokens)

    def logits(self, tokens: np.ndarray) -> np.ndarray:
        """The tokens at position ``t`` of the first k segments (k,) -> (k, 256) int64 logits; t += 1."""
        net, cfg, t = self.net, self.net.cfg, self.t
        k = tokens.size
        L, c, S = cfg.block_len, cfg.summary, cfg.summary_blocks
        j = t % L
        loc_slots = (t - np.arange(L)) % L
        loc_in = np.broadcast_to(np.arange(L) <= j, (k, L))
        prev = t // L - np.arange(1, S + 1)  # the blocks the summary head reads
        summ_in = np.broadcast_to(np.concatenate([[True], np.repeat(prev >= 0, c)]), (k, 1 + S * c))
        summ_slots = prev % (S + 1)
        with serial_torch():
            x = net.embed(tokens.astype(np.int64), np.full(k, t))
            for b, blk in enumerate(net.blocks):
                qkv = blk.qkv(x)
                self.local[b, :k, j] = qkv[:, 1:3]
                a = self.local[b, :k][:, loc_slots]  # (k, L, 2, dh)
                s = self.summ[b, :k][:, summ_slots].reshape(k, S * c, 2, -1)
                s = np.concatenate([qkv[:, None, 4:6], s], axis=1)
                o_a = attend(qkv[:, 0], a[:, :, 0], a[:, :, 1], loc_in, cfg.score_shift)
                o_b = attend(qkv[:, 3], s[:, :, 0], s[:, :, 1], summ_in, cfg.score_shift)
                if j >= L - c:  # a summary position: kept for the blocks after this one
                    self.summ[b, :k, (t // L) % (S + 1), L - 1 - j] = qkv[:, 4:6]
                x = blk.finish(x, o_a, o_b)
            self.t += 1
            return net.head(x)
