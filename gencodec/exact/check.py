"""Load-time exactness check: every accumulation of an exact model must stay in its dtype's exact range.

A float32 tensor holds every integer of magnitude up to 2**24 exactly, float64 up to 2**53. Each
exact layer reports ``max_abs_accumulator()``: the largest |partial sum| any input allowed by its
input format can produce (sum of |weights| times the input bound, plus |bias|), computed with
exact integers. :func:`prepare_exact` refuses a model whose bound does not fit, and refuses float
layers (anything still holding trainable parameters, or a plain ``nn.Linear``/``nn.Conv*``).

Example::

    exact = prepare_exact(export_model(trained))   # float32 when every bound < 2**24, else float64
    exact = prepare_exact(model, torch.float32)     # or demand a dtype: ExactnessError if unsafe
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ExactnessError

__all__ = ["EXACT_LIMIT", "accumulation_bounds", "required_dtype", "check_exact", "prepare_exact"]

#: Accumulations must stay strictly below these magnitudes (every integer up to them is exact).
EXACT_LIMIT: dict[torch.dtype, int] = {torch.float32: 2**24, torch.float64: 2**53}

_FLOAT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.LayerNorm,
                 nn.BatchNorm2d, nn.GroupNorm, nn.MultiheadAttention)


def accumulation_bounds(model: nn.Module) -> dict[str, int]:
    """``{module name: max |accumulator|}`` for every submodule that reports one."""
    out = {}
    for name, mod in model.named_modules():
        fn = getattr(mod, "max_abs_accumulator", None)
        if callable(fn):
            out[name or type(mod).__name__] = int(fn())
    return out


def _refuse_float_parts(model: nn.Module) -> None:
    params = [n for n, p in model.named_parameters()]
    if params:
        raise ExactnessError(
            f"model still has trainable float parameters ({', '.join(params[:3])}...): export it first"
        )
    for name, mod in model.named_modules():
        if isinstance(mod, _FLOAT_LAYERS) or hasattr(mod, "export"):
            raise ExactnessError(f"module {name!r} ({type(mod).__name__}) is not an exact layer")


def required_dtype(model: nn.Module) -> torch.dtype:
    """float32 if every accumulation bound is below 2**24, float64 if below 2**53, else ExactnessError."""
    bounds = accumulation_bounds(model)
    worst = max(bounds.values(), default=0)
    for dtype in (torch.float32, torch.float64):
        if worst < EXACT_LIMIT[dtype]:
            return dtype
    name = max(bounds, key=bounds.get)
    raise ExactnessError(f"layer {name!r} can accumulate {worst}, beyond float64's exact range 2**53")


def check_exact(model: nn.Module, dtype: torch.dtype) -> None:
    """Raise ``ExactnessError`` unless ``model`` is all exact layers whose bounds fit ``dtype``."""
    if dtype not in EXACT_LIMIT:
        raise ExactnessError(f"exact execution needs float32 or float64, not {dtype}")
    _refuse_float_parts(model)
    limit = EXACT_LIMIT[dtype]
    over = {n: b for n, b in accumulation_bounds(model).items() if b >= limit}
    if over:
        detail = ", ".join(f"{n}: {b}" for n, b in list(over.items())[:5])
        raise ExactnessError(f"accumulations reach the exact range of {dtype} ({limit}): {detail}")


def prepare_exact(model: nn.Module, dtype: torch.dtype | None = None) -> nn.Module:
    """Check ``model`` and return it in eval mode with its buffers in ``dtype`` (default: the
    cheapest safe one, see :func:`required_dtype`). Converting integer buffers is exact."""
    dtype = dtype or required_dtype(model)
    check_exact(model, dtype)
    return model.to(dtype).eval()
