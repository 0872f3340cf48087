"""A sequential stack of causal exact convolutions with a cache for incremental decoding.

Every layer keeps the spatial size (its padding adds kh-1 rows and kw-1 columns) and is causal:
a weight tap may read rows above, or the same row to the left, or the centre (where channel-group
masks, e.g. :func:`~gencodec.exact.layers.causal_mask`, order the channels). The encoder runs
``forward`` on the whole image; the decoder keeps one padded buffer per layer input
(:class:`StackCache`) and evaluates all layers only at the positions of the current group. Both
give bit-identical outputs (tested), because the exact layers are exact and a tap that reads a
not-yet-decoded position carries weight zero.

Example::

    stack = CausalConvStack([conv_a.export(), conv_b.export(), head_1x1.export()])
    out = stack(image)                                   # (B, C_out, H, W), encoder
    sched = wavefront_schedule(H, W, C, stack.reach_right)
    cache = stack.begin(image_shape=(B, C, H, W), dtype=torch.float32)
    for each group (positions rows, cols; channel c):
        params = cache.outputs_at(rows, cols)            # (B, C_out, P) -> tables -> decode
        cache.set_input(c, rows, cols, decoded)          # (B, P) decoded values of channel c
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .layers import ExactConv2d

__all__ = ["CausalConvStack", "StackCache", "causal_reach"]


def _taps(layer: ExactConv2d) -> set[tuple[int, int]]:
    """(d_row, d_col) offsets from an output position to the inputs its nonzero weights read."""
    top, _, left, _ = layer.padding
    nz = torch.nonzero(layer.weight.abs().sum(dim=(0, 1)) > 0).tolist()
    return {(dy - top, dx - left) for dy, dx in nz}


def causal_reach(layers: Sequence[ExactConv2d]) -> int:
    """Smallest r such that wavefronts t = (r+1)·row + col respect the stack's dependencies.

    The cache needs more than the image-to-output dependencies: every *layer's* output at a
    position must be final before another position reads it, so r is taken over each layer's
    own taps: a tap (-a, b) with a > 0 needs b < (r+1)·a. Raises ValueError if a layer reads a
    later row or a later column of its own row, or changes the spatial size.
    """
    reach = 0
    for i, layer in enumerate(layers):
        top, bottom, left, right = layer.padding
        kh, kw = layer.kernel_size
        if top + bottom != kh - 1 or left + right != kw - 1:
            raise ValueError(f"layer {i}: a causal stack needs size-preserving padding")
        taps = _taps(layer)
        bad = [t for t in taps if t[0] > 0 or (t[0] == 0 and t[1] > 0)]
        if bad:
            raise ValueError(f"layer {i} is not causal: it reads offsets {sorted(bad)}")
        for d_row, d_col in taps:
            if d_row < 0:
                a = -d_row
                reach = max(reach, -(-(d_col + 1) // a) - 1)  # ceil((d_col + 1) / a) - 1
    return reach


class StackCache:
    """Per-decode state of a :class:`CausalConvStack`: padded input buffers of every layer."""

    def __init__(self, stack: "CausalConvStack", image_shape: Sequence[int], dtype: torch.dtype,
                 device: torch.device | str):
        b, _, h, w = image_shape
        self.stack, self.height, self.width = stack, h, w
        self.buffers = []  # buffers[l]: input of layer l, zero-padded by layer l's padding
        channels = [image_shape[1]] + [int(l.weight.shape[0]) for l in stack.layers[:-1]]
        for layer, c in zip(stack.layers, channels):
            top, bottom, left, right = layer.padding
            self.buffers.append(torch.zeros(b, c, h + top + bottom, w + left + right, dtype=dtype, device=device))

    def set_input(self, channel: int, rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor) -> None:
        """Write decoded values (B, P) of input ``channel`` at positions (rows, cols)."""
        top, _, left, _ = self.stack.layers[0].padding
        buf = self.buffers[0]
        buf[:, channel, torch.as_tensor(rows) + top, torch.as_tensor(cols) + left] = values.to(buf)

    def set_image(self, image: torch.Tensor) -> None:
        """Write a whole known input (B, C, H, W) (the encoder's chunked path)."""
        top, _, left, _ = self.stack.layers[0].padding
        self.buffers[0][:, :, top : top + self.height, left : left + self.width] = image.to(self.buffers[0])

    def outputs_at(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """All layers at positions (rows, cols), layer by layer, caching the intermediate outputs;
        returns the last layer's (B, C_out, P). Positions must follow a causal order (a schedule
        from :attr:`CausalConvStack.reach_right`, or raster order)."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        cols = torch.as_tensor(cols, dtype=torch.long)
        layers = self.stack.layers
        out = None
        for i, layer in enumerate(layers):
            out = layer.forward_at_padded(self.buffers[i], rows, cols)  # (B, C_l, P)
            if i + 1 < len(layers):
                top, _, left, _ = layers[i + 1].padding
                self.buffers[i + 1][:, :, rows + top, cols + left] = out
        return out


class CausalConvStack(nn.Module):
    """Sequential causal :class:`ExactConv2d` layers (each requantizes; ReLU via its output format).

    forward: x (B, C_in, H, W) -> (B, C_out, H, W). ``reach_right``: see :func:`causal_reach`.
    """

    def __init__(self, layers: Sequence[ExactConv2d]):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.reach_right = causal_reach(list(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def begin(self, image_shape: Sequence[int], dtype: torch.dtype | None = None,
              device: torch.device | str | None = None) -> StackCache:
        """A fresh cache for decoding an input of ``image_shape`` (B, C, H, W), all zeros."""
        ref = self.layers[0].weight
        return StackCache(self, image_shape, dtype or ref.dtype, device or ref.device)
