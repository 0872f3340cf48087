"""Run a fully convolutional transform over a large image in overlapping tiles, so that its peak
memory is that of one tile whatever the image's size.

A convolutional stack's output at a position depends only on its inputs within its receptive
field. Cutting the input into tiles, each grown by a margin at least that field's half-width (or
clipped at the image's edges, where the untiled stack sees its zero padding too), and keeping each
tile's core gives the untiled output up to float summation order (exactly, for integers held in
float64 with exact sums). The tiles are a function of the input's shape alone, so the same input
gives the same output on a machine; an input no larger than one tile is run whole (the untiled
result itself).

Example::

    x_hat = tiled(g_s, y_hat, tile=64, margin=2, scale=16)  # latents (1, M, h, w) -> (1, 3, 16h, 16w)
    y = tiled(g_a, x, tile=1024, margin=32, scale=Fraction(1, 16))  # pixels -> latents
"""

from __future__ import annotations

from fractions import Fraction
from typing import Callable, NamedTuple

import torch

__all__ = ["tiled", "tiles", "Tile"]


class Tile(NamedTuple):
    """One tile, in input positions: its core ``rows`` x ``cols`` (the part of the output it gives)
    and the ``grown`` rows and columns it is computed from (the core and its margins, clipped)."""
    rows: slice
    cols: slice
    grown_rows: slice
    grown_cols: slice


def tiles(height: int, width: int, tile: int, margin: int) -> list[Tile]:
    """The tiles covering an input of height x width, in raster order: a single tile when the input
    fits in one."""
    if tile < 1 or margin < 0:
        raise ValueError(f"tile {tile} must be positive and margin {margin} not negative")
    if height <= tile and width <= tile:
        return [Tile(slice(0, height), slice(0, width), slice(0, height), slice(0, width))]

    def spans(n: int) -> list[tuple[slice, slice]]:
        return [(slice(a, min(a + tile, n)), slice(max(a - margin, 0), min(a + tile + margin, n)))
                for a in range(0, n, tile)]

    return [Tile(r, c, gr, gc) for r, gr in spans(height) for c, gc in spans(width)]


def tiled(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int, margin: int,
          scale: int | Fraction = 1) -> torch.Tensor:
    """``f(x)`` for x (1, C, H, W), computed a tile at a time (:func:`tiles`).

    f maps an input of (h, w) to an output of (h * scale, w * scale). For a downsampling f (scale
    1/s) the input's size, tile and margin must be multiples of s, so that every tile keeps the
    stride's alignment. margin: input positions added on each side of a tile (clipped at the
    edges), at least the receptive field's half-width."""
    scale = Fraction(scale)
    H, W = x.shape[-2:]
    s = scale.denominator
    if H % s or W % s or tile % s or margin % s:
        raise ValueError(f"input {H}x{W}, tile {tile} and margin {margin} must be multiples of {s}")
    parts = tiles(H, W, tile, margin)
    if len(parts) == 1:
        return f(x)

    def out(i: int) -> int:
        return int(i * scale)

    def core(a: slice, grown: slice) -> slice:
        return slice(out(a.start - grown.start), out(a.stop - grown.start))

    result = None
    for t in parts:
        y = f(x[..., t.grown_rows, t.grown_cols])
        if result is None:
            result = y.new_empty((*y.shape[:-2], out(H), out(W)))
        result[..., out(t.rows.start):out(t.rows.stop), out(t.cols.start):out(t.cols.stop)] = \
            y[..., core(t.rows, t.grown_rows), core(t.cols, t.grown_cols)]
    return result
