"""Load-time exactness check: every accumulation of an exact model must stay in float32's exact range.

A float32 tensor holds every integer of magnitude up to 2**24 exactly (float64: 2**53). Each
:class:`~gencodec.exact.layers.ExactLinear` reports ``max_abs_accumulator()``: the largest
|partial sum| any input allowed by its input format can produce (sum of |weights| times the input
bound, plus |bias|), computed with exact integers. :func:`check_accumulators` refuses a model
whose bound does not fit, when it is built or loaded and whenever its integers change.
"""

from __future__ import annotations

from typing import Iterable

import torch

from ..errors import ExactnessError

__all__ = ["EXACT_LIMIT", "check_accumulators"]

#: Accumulations must stay strictly below these magnitudes (every integer up to them is exact).
EXACT_LIMIT: dict[torch.dtype, int] = {torch.float32: 2**24, torch.float64: 2**53}


def check_accumulators(layers: Iterable, what: str, dtype: torch.dtype = torch.float32) -> None:
    """ExactnessError naming ``what`` unless every layer's accumulator bound is below ``dtype``'s limit."""
    for layer in layers:
        bound = layer.max_abs_accumulator()
        if bound >= EXACT_LIMIT[dtype]:
            raise ExactnessError(f"{what} accumulator bound {bound} is not below 2**{EXACT_LIMIT[dtype].bit_length() - 1}")
