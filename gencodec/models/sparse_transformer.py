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

Exact, with integers only: the blocks are :mod:`gencodec.models.attention`'s (power-of-two RMS norm,
integer scores, a lookup-table softmax with integer normalisation, integer linear layers).

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
from dataclasses import asdict, dataclass, fields
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import GencodecError
from ..exact import ExactLinear, QFormat, QuantLinear
from .attention import BLOCK_LAYERS, MAX_WINDOW, AttentionFormats, Block, ExactBlock, attend, softmax_mix
from .pixelcnn import ExactPixelCNN, PixelCNN, PixelCNNConfig, WavefrontSession, phase_index

STRIPE_ROWS = 32  # the encoder's stripes (each recomputes a halo of blocks * (col_window - 1) rows above)
CONTEXT_CACHE_BYTES = 1 << 28  # the encoder keeps an image's blocks' output up to this size (int16)


@dataclass(frozen=True)
class SparseTransformerConfig(AttentionFormats, PixelCNNConfig):
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
def window_offsets(cfg: SparseTransformerConfig) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(dy, dx) the row head and the column head attend to, the pixel itself first."""
    return [(0, -j) for j in range(cfg.row_window)], [(-j, 0) for j in range(cfg.col_window)]


# ---------------------------------------------------------------------------------------------
# training twin
# ---------------------------------------------------------------------------------------------
class StridedBlock(Block):
    """One attention block of the strided pattern: head a over the row window, head b over the column."""

    def heads(self, qkv: torch.Tensor, quantized: bool) -> tuple[torch.Tensor, torch.Tensor]:
        dh = self.cfg.head_dim
        rows, cols = window_offsets(self.cfg)
        return (self.attend(qkv[..., 0:dh], qkv[..., dh : 2 * dh], qkv[..., 2 * dh : 3 * dh], rows, quantized),
                self.attend(qkv[..., 3 * dh : 4 * dh], qkv[..., 4 * dh : 5 * dh], qkv[..., 5 * dh :], cols, quantized))

    def attend(self, q, k, v, offsets, quantized: bool) -> torch.Tensor:
        """q, k, v (B, H, W, dh) -> (B, H, W, dh): softmax over the window positions inside the image."""
        _, h, w, _ = q.shape
        logits, vals = [], []
        for dy, dx in offsets:
            ks = _shift(k, -dy, -dx)
            logits.append((q * ks).sum(-1) * self.cfg.score_scale)
            vals.append(_shift(v, -dy, -dx))
        ys = torch.arange(h, device=q.device)[:, None, None]
        xs = torch.arange(w, device=q.device)[None, :, None]
        dys = torch.tensor([dy for dy, _ in offsets], device=q.device)
        dxs = torch.tensor([dx for _, dx in offsets], device=q.device)
        inside = (ys + dys >= 0) & (xs + dxs >= 0)  # (H, W, n)
        return softmax_mix(torch.stack(logits, -1), torch.stack(vals, -2), inside, self.cfg, quantized)


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
        self.blocks = nn.ModuleList(StridedBlock(cfg) for _ in range(cfg.blocks))

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



# ---------------------------------------------------------------------------------------------
# exact model
# ---------------------------------------------------------------------------------------------
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
        self._blocks = [ExactBlock(b, self.cfg, "sparse-transformer block") for b in self.blocks]
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
