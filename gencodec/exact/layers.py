"""Integer-exact Linear and Conv2d, and their fake-quantized training twins.

Exact layers (``ExactLinear``, ``ExactConv2d``) take and return *integer activations* (integers
held in float32/float64 tensors, see :class:`~gencodec.exact.quant.QFormat`). Each computes an
integer accumulator ``x @ W.T + b`` with a plain matmul (convolution = im2col gather + matmul,
never ``F.conv2d``), then ``requantize(acc, shift, lo, hi)``. As long as every accumulation stays
below 2**24 (float32) or 2**53 (float64) the result is the same on every machine, thread count,
batch split and CPU instruction set; :mod:`gencodec.exact.check` verifies that bound at load.

Training twins (``QuantLinear``, ``QuantConv2d``) hold float weights and work on real values;
their forward snaps weights, bias and output onto the same grids (straight-through gradients),
so it computes exactly what the exported exact layer computes, scaled by ``2**-frac_bits``.

Example::

    fmt_in, fmt_h = QFormat(0, 0, 255), QFormat(4, 0, 127)        # pixels; ReLU hidden units
    layer = QuantConv2d.down_right_shifted(3, 16, (2, 3), fmt_in, fmt_h, w_frac_bits=8)
    y_real = layer(x_pixels.float())                              # train on real values
    exact = layer.export()                                        # ExactConv2d, integer buffers
    with exact_mode():
        y_int = exact(x_pixels.float())                           # == y_real * 16, bit for bit
        y_at = exact.forward_at(x_pixels.float(), rows, cols)     # only some output positions

Causal building blocks: :func:`shift_down`, :func:`shift_right`, :func:`causal_mask` and the
``QuantConv2d.down_shifted`` / ``down_right_shifted`` / ``masked`` constructors (PixelCNN++
shifted convolutions; PixelCNN channel-group masks A and B).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ExactnessError
from .quant import QFormat, fake_quant, requantize

__all__ = [
    "ExactLinear",
    "ExactConv2d",
    "QuantLinear",
    "QuantConv2d",
    "shift_down",
    "shift_right",
    "causal_mask",
    "export_model",
    "check_input_range",
]

Padding = tuple[int, int, int, int]  # (top, bottom, left, right)


def check_input_range(x: torch.Tensor, fmt: QFormat, where: str) -> None:
    """Raise ``ExactnessError`` unless ``x`` holds integers inside ``[fmt.lo, fmt.hi]`` (NaN fails too)."""
    if x.numel() == 0:
        return
    if x.is_floating_point() and not torch.equal(x, torch.round(x)):
        raise ExactnessError(f"{where}: input holds non-integers (an exact layer takes integer activations)")
    lo, hi = torch.aminmax(x)
    if not (float(lo) >= fmt.lo and float(hi) <= fmt.hi):
        raise ExactnessError(f"{where}: input range [{float(lo)}, {float(hi)}] outside [{fmt.lo}, {fmt.hi}]")


# ---------------------------------------------------------------------------------------------
# exact layers
# ---------------------------------------------------------------------------------------------
def _max_abs_accumulator(layer: nn.Module) -> int:
    """Largest |partial sum| any input in ``layer.in_fmt`` can produce (exact Python integers).

    Shared by :class:`ExactLinear` (weight (out, in)) and :class:`ExactConv2d` (weight (out, in, kh, kw)).
    """
    w = layer.weight.double().abs().flatten(1).sum(dim=1)  # (out,)
    b = layer.bias.double().abs()
    return int(torch.max(w * layer.in_fmt.max_abs + b).item()) if w.numel() else 0


class ExactLinear(nn.Module):
    """``requantize(x @ W.T + b, shift)`` on integer activations.

    weight: (out, in) integers; bias: (out,) integers in accumulator units
    (``2**-(in_fmt.frac_bits + w_frac_bits)``); shift = in + w - out fraction bits.
    forward: x (..., in) integers within ``in_fmt`` -> (..., out) integers within ``out_fmt``.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, shift: int, in_fmt: QFormat, out_fmt: QFormat):
        super().__init__()
        self.register_buffer("weight", weight.detach().clone().to(torch.float32))
        self.register_buffer("bias", bias.detach().clone().to(torch.float32))
        self.shift = int(shift)
        self.in_fmt = in_fmt
        self.out_fmt = out_fmt

    max_abs_accumulator = _max_abs_accumulator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_range(x, self.in_fmt, "ExactLinear")
        x = x.to(self.weight.dtype)
        acc = torch.matmul(x, self.weight.t()) + self.bias  # (..., out)
        return requantize(acc, self.shift, self.out_fmt.lo, self.out_fmt.hi)


class ExactConv2d(nn.Module):
    """Convolution as zero padding + im2col + matmul, then ``requantize``.

    weight: (C_out, C_in, kh, kw) integers (any causal mask already applied); bias: (C_out,);
    padding: (top, bottom, left, right) zeros added before a stride-1 'valid' convolution.
    forward: x (B, C_in, H, W) -> (B, C_out, H + top + bottom - kh + 1, W + left + right - kw + 1).
    """

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor,
        shift: int,
        padding: Padding,
        in_fmt: QFormat,
        out_fmt: QFormat,
    ):
        super().__init__()
        self.register_buffer("weight", weight.detach().clone().to(torch.float32))
        self.register_buffer("bias", bias.detach().clone().to(torch.float32))
        self.shift = int(shift)
        self.padding = tuple(int(p) for p in padding)
        self.in_fmt = in_fmt
        self.out_fmt = out_fmt

    @property
    def kernel_size(self) -> tuple[int, int]:
        return int(self.weight.shape[2]), int(self.weight.shape[3])

    max_abs_accumulator = _max_abs_accumulator

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom, left, right = self.padding
        return F.pad(x, (left, right, top, bottom))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_range(x, self.in_fmt, "ExactConv2d")
        x = self._pad(x.to(self.weight.dtype))
        b, _, h, w = x.shape
        kh, kw = self.kernel_size
        h_out, w_out = h - kh + 1, w - kw + 1
        if kh == kw == 1:
            cols = x.flatten(2)  # (B, C_in, h*w): a 1x1 convolution needs no gather
        else:
            cols = F.unfold(x, (kh, kw))  # (B, C_in*kh*kw, h_out*w_out), a pure gather
        acc = torch.matmul(self.weight.flatten(1), cols) + self.bias[:, None]  # (B, C_out, L)
        out = requantize(acc, self.shift, self.out_fmt.lo, self.out_fmt.hi)
        return out.view(b, -1, h_out, w_out)

    def forward_at(self, x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Outputs at output positions ``(rows[p], cols[p])`` only: x (B, C_in, H, W) -> (B, C_out, P).

        Gathers just the P receptive fields (for incremental decoding); identical to
        ``forward(x)[:, :, rows, cols]`` bit for bit.
        """
        return self.forward_at_padded(self._pad(x.to(self.weight.dtype)), rows, cols)

    def forward_at_padded(self, xp: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """As :meth:`forward_at`, on an input already zero-padded by ``self.padding``
        (B, C_in, H + top + bottom, W + left + right): caches keep their buffers padded so that a
        decoding step costs only its P receptive fields. Only the gathered values are range-checked.
        """
        kh, kw = self.kernel_size
        rows = torch.as_tensor(rows, dtype=torch.long, device=xp.device)
        cols = torch.as_tensor(cols, dtype=torch.long, device=xp.device)
        if rows.shape != cols.shape or rows.ndim != 1:
            raise ValueError("rows and cols must be 1-D of equal length")
        if rows.numel() and (int(rows.min()) < 0 or int(cols.min()) < 0 or int(rows.max()) > xp.shape[2] - kh
                             or int(cols.max()) > xp.shape[3] - kw):
            raise ValueError("forward_at: an output position lies outside the output")
        dy = torch.arange(kh, device=xp.device)
        dx = torch.arange(kw, device=xp.device)
        rr = (rows[:, None, None] + dy[None, :, None]).expand(-1, kh, kw)  # (P, kh, kw)
        cc = (cols[:, None, None] + dx[None, None, :]).expand(-1, kh, kw)  # (P, kh, kw)
        patches = xp[:, :, rr, cc].to(self.weight.dtype)  # (B, C_in, P, kh, kw)
        check_input_range(patches, self.in_fmt, "ExactConv2d")
        patches = patches.permute(0, 1, 3, 4, 2).reshape(xp.shape[0], -1, rows.numel())  # (B, C_in*kh*kw, P)
        acc = torch.matmul(self.weight.flatten(1), patches) + self.bias[:, None]  # (B, C_out, P)
        return requantize(acc, self.shift, self.out_fmt.lo, self.out_fmt.hi)


# ---------------------------------------------------------------------------------------------
# training twins
# ---------------------------------------------------------------------------------------------
def _bias_fmt(in_fmt: QFormat, w_frac_bits: int, bias_max: int) -> QFormat:
    return QFormat(in_fmt.frac_bits + w_frac_bits, -bias_max, bias_max)


class _QuantTwin(nn.Module):
    """What QuantLinear and QuantConv2d share: the bias grid and the integers ``export()`` stores.

    Subclasses set ``weight``, ``bias`` (or None), ``in_fmt``, ``out_fmt``, ``w_fmt``, ``b_fmt``
    and define ``quantized_weight()``.
    """

    def quantized_bias(self) -> torch.Tensor:
        if self.bias is None:
            return torch.zeros(self.weight.shape[0], device=self.weight.device, dtype=self.weight.dtype)
        return fake_quant(self.bias, self.b_fmt)

    def _exact_ints(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(integer weight, integer bias in accumulator units, requantize shift), on the CPU."""
        w = torch.round(self.quantized_weight() * 2.0**self.w_fmt.frac_bits)
        b = torch.round(self.quantized_bias() * 2.0**self.b_fmt.frac_bits)
        shift = self.in_fmt.frac_bits + self.w_fmt.frac_bits - self.out_fmt.frac_bits
        return w.cpu(), b.cpu(), shift


class QuantLinear(_QuantTwin):
    """Fake-quantized Linear; ``export()`` gives the :class:`ExactLinear` computing the same numbers.

    in_fmt/out_fmt: formats of input and output activations (``out_fmt.lo = 0`` acts as ReLU).
    w_frac_bits: weights are integers ``w_q`` with real value ``w_q * 2**-w_frac_bits``,
    ``|w_q| <= w_max``. bias_max: bound on the integer bias (accumulator units).
    forward: x (..., in) real -> (..., out) real, on ``out_fmt``'s grid.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        in_fmt: QFormat,
        out_fmt: QFormat,
        w_frac_bits: int = 7,
        w_max: int = 127,
        bias: bool = True,
        bias_max: int = 2**20,
    ):
        super().__init__()
        self.in_fmt, self.out_fmt = in_fmt, out_fmt
        self.w_fmt = QFormat(w_frac_bits, -w_max, w_max)
        self.b_fmt = _bias_fmt(in_fmt, w_frac_bits, bias_max)
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def quantized_weight(self) -> torch.Tensor:
        return fake_quant(self.weight, self.w_fmt)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = fake_quant(x, self.in_fmt)
        y = F.linear(x, self.quantized_weight(), self.quantized_bias())
        return fake_quant(y, self.out_fmt)

    @torch.no_grad()
    def export(self) -> ExactLinear:
        w, b, shift = self._exact_ints()
        return ExactLinear(w, b, shift, self.in_fmt, self.out_fmt)


def _as_pair(k: int | Sequence[int]) -> tuple[int, int]:
    return (int(k), int(k)) if isinstance(k, int) else (int(k[0]), int(k[1]))


class QuantConv2d(_QuantTwin):
    """Fake-quantized stride-1 Conv2d with explicit (top, bottom, left, right) zero padding and an
    optional fixed 0/1 weight mask; ``export()`` gives the matching :class:`ExactConv2d`.

    forward: x (B, C_in, H, W) real -> (B, C_out, H', W') real (see ExactConv2d for H', W').
    Training uses ``F.conv2d`` for speed; on integer-grid inputs it equals the exact im2col
    result (all products and sums are exact dyadic numbers) except on backends that lower
    precision (TF32), which only perturbs training, never coding.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        in_fmt: QFormat,
        out_fmt: QFormat,
        padding: Padding | None = None,
        mask: torch.Tensor | None = None,
        w_frac_bits: int = 7,
        w_max: int = 127,
        bias: bool = True,
        bias_max: int = 2**20,
    ):
        super().__init__()
        kh, kw = _as_pair(kernel_size)
        self.in_fmt, self.out_fmt = in_fmt, out_fmt
        self.w_fmt = QFormat(w_frac_bits, -w_max, w_max)
        self.b_fmt = _bias_fmt(in_fmt, w_frac_bits, bias_max)
        self.padding: Padding = tuple(padding) if padding is not None else ((kh - 1) // 2, kh // 2, (kw - 1) // 2, kw // 2)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kh, kw))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        if mask is not None and tuple(mask.shape) != tuple(self.weight.shape):
            raise ValueError(f"mask shape {tuple(mask.shape)} != weight shape {tuple(self.weight.shape)}")
        self.register_buffer("mask", None if mask is None else mask.detach().clone().float())

    # -- causal constructors ------------------------------------------------------------------
    @classmethod
    def down_shifted(cls, in_channels: int, out_channels: int, kernel_size: Sequence[int], in_fmt: QFormat,
                     out_fmt: QFormat, **kw) -> "QuantConv2d":
        """Output (i, j) sees rows i-kh+1..i and columns j-(kw-1)/2..j+(kw-1)/2 (PixelCNN++ vertical
        stack); follow with :func:`shift_down` to see only rows above. kw must be odd."""
        kh, kwid = _as_pair(kernel_size)
        return cls(in_channels, out_channels, (kh, kwid), in_fmt, out_fmt,
                   padding=(kh - 1, 0, (kwid - 1) // 2, (kwid - 1) // 2), **kw)

    @classmethod
    def down_right_shifted(cls, in_channels: int, out_channels: int, kernel_size: Sequence[int], in_fmt: QFormat,
                           out_fmt: QFormat, **kw) -> "QuantConv2d":
        """Output (i, j) sees rows i-kh+1..i and columns j-kw+1..j (PixelCNN++ horizontal stack);
        follow with :func:`shift_right` to exclude the current pixel."""
        kh, kwid = _as_pair(kernel_size)
        return cls(in_channels, out_channels, (kh, kwid), in_fmt, out_fmt, padding=(kh - 1, 0, kwid - 1, 0), **kw)

    @classmethod
    def masked(cls, in_channels: int, out_channels: int, kernel_size: int, in_fmt: QFormat, out_fmt: QFormat,
               mask_type: str, n_groups: int = 1, **kw) -> "QuantConv2d":
        """PixelCNN masked convolution ('A': excludes the current pixel's own channel group,
        'B': includes it), with channels split into ``n_groups`` ordered groups (R, G, B)."""
        mask = causal_mask(out_channels, in_channels, kernel_size, mask_type, n_groups)
        return cls(in_channels, out_channels, kernel_size, in_fmt, out_fmt, mask=mask, **kw)

    # -- forward / export ---------------------------------------------------------------------
    def quantized_weight(self) -> torch.Tensor:
        w = fake_quant(self.weight, self.w_fmt)
        return w if self.mask is None else w * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = fake_quant(x, self.in_fmt)
        top, bottom, left, right = self.padding
        x = F.pad(x, (left, right, top, bottom))
        y = F.conv2d(x, self.quantized_weight(), self.quantized_bias())
        return fake_quant(y, self.out_fmt)

    @torch.no_grad()
    def export(self) -> ExactConv2d:
        w, b, shift = self._exact_ints()
        return ExactConv2d(w, b, shift, self.padding, self.in_fmt, self.out_fmt)


# ---------------------------------------------------------------------------------------------
# causal helpers (exact: they only move values and insert zeros)
# ---------------------------------------------------------------------------------------------
def shift_down(x: torch.Tensor, n: int = 1) -> torch.Tensor:
    """Move (B, C, H, W) down by ``n`` rows, zeros entering at the top; same shape."""
    return F.pad(x, (0, 0, n, 0))[:, :, : x.shape[2], :]


def shift_right(x: torch.Tensor, n: int = 1) -> torch.Tensor:
    """Move (B, C, H, W) right by ``n`` columns, zeros entering at the left; same shape."""
    return F.pad(x, (n, 0, 0, 0))[:, :, :, : x.shape[3]]


def causal_mask(out_channels: int, in_channels: int, kernel_size: int, mask_type: str, n_groups: int = 1) -> torch.Tensor:
    """PixelCNN raster-scan mask (C_out, C_in, k, k) of 0/1 floats.

    Positions above, and left in the centre row, are visible. At the centre, input channel group
    g_in is visible to output group g_out when g_in < g_out ('A') or g_in <= g_out ('B');
    channel c of C belongs to group ``c * n_groups // C``.
    """
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    k = int(kernel_size)
    c = k // 2
    mask = torch.zeros(out_channels, in_channels, k, k)
    mask[:, :, :c, :] = 1
    mask[:, :, c, :c] = 1
    g_out = torch.arange(out_channels) * n_groups // out_channels
    g_in = torch.arange(in_channels) * n_groups // in_channels
    visible = (g_in[None, :] < g_out[:, None]) if mask_type == "A" else (g_in[None, :] <= g_out[:, None])
    mask[:, :, c, c] = visible.float()
    return mask


def export_model(module: nn.Module) -> nn.Module:
    """Copy of ``module`` with every child that has ``export()`` replaced by its exact twin.

    Walks the tree recursively; containers (``nn.Sequential``, custom modules) are kept, so a
    model written as a composition of Quant* layers, :func:`shift_down` etc. exports as a whole.
    """
    import copy

    if hasattr(module, "export") and callable(module.export):
        return module.export()
    out = copy.deepcopy(module)
    _replace_children(out)
    return out


def _replace_children(module: nn.Module) -> None:
    for name, child in list(module.named_children()):
        if hasattr(child, "export") and callable(child.export):
            setattr(module, name, child.export())
        else:
            _replace_children(child)
