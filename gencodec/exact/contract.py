"""The neural codec contract: what a trainable model, its exact twin and a per-input hook offer.

A likelihood model becomes a codec in three parts (the CompressAI ``CompressionModel`` idea, made
exact):

- a **trainable model** (``torch.nn.Module``, float or fake-quantized): ``forward(batch)`` gives
  the code length in bits that training minimises, ``export()`` gives the exact model;
- the **exact model** (:class:`ExactModel`): integer arithmetic only, so every machine computes
  the same numbers. It states its :class:`Schedule` -- which symbols are known before which (a
  wavefront for images, lockstep segments for bytes, hyper-latents before latents) -- and gives
  per-symbol *parameters* (:meth:`ExactModel.parallel` for all symbols at once, when it can;
  :meth:`ExactModel.session` group by group with cached state) that :meth:`ExactModel.freqs` turns
  into integer frequency tables. Parameters are whatever the model's tables are made of (for
  pixelcnn: channel, mean and scale index; for a count model: the tables themselves).
- **hooks** (:class:`Hook`): per-input adaptation that both sides run identically (a stored
  remap of the parameters, online histograms mixed into the tables, ...).

:mod:`gencodec.exact.driver` is the one loop over a schedule: it encodes from the parallel pass
(or, for a model without one, by running the decoder's session on the known symbols) and decodes
group by group; both paths must give bit-identical tables (:func:`gencodec.exact.driver.tables_in_order`).
docs/ARCHITECTURE.md walks through a complete small model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, ContextManager, Protocol, Sequence

import numpy as np

__all__ = ["Schedule", "Session", "ExactModel", "Hook", "ParamFn", "wavefront_groups"]

#: flat symbol indices (n,) int64 -> the model's parameters of those symbols (any object that
#: :meth:`ExactModel.freqs` and the hooks understand)
ParamFn = Callable[[np.ndarray], Any]


@dataclass(frozen=True)
class Schedule:
    """Coding order. ``groups[t]``: int64 flat indices (into ``symbols.reshape(-1)``) coded at
    step t, together every index 0..n_symbols-1 exactly once; every symbol of group t may depend
    only on symbols of groups < t. ``rounds``: indices of the groups that start a new round of
    per-input adaptation (hooks' :meth:`Hook.end_round` runs before each, except the first; the
    encoder codes a round in one batch). Default: one round."""

    groups: tuple[np.ndarray, ...]
    n_symbols: int
    rounds: tuple[int, ...] = (0,)

    def check(self) -> "Schedule":
        """Raises ValueError unless the groups cover every symbol exactly once (tests, new models)."""
        seen = np.bincount(self.order, minlength=self.n_symbols) if self.groups else np.zeros(self.n_symbols)
        if seen.size != self.n_symbols or not np.all(seen == 1):
            raise ValueError("a schedule must cover every symbol exactly once")
        if list(self.rounds) != sorted(set(self.rounds)) or (self.rounds and self.rounds[0] != 0):
            raise ValueError("rounds must be increasing group indices starting at 0")
        return self

    @property
    def order(self) -> np.ndarray:
        """All flat indices in coding order, (n_symbols,) int64."""
        if not self.groups:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate(self.groups)

    def round_slices(self) -> list[slice]:
        """Group index ranges of the rounds, in order."""
        bounds = [r for r in self.rounds if r < len(self.groups)] + [len(self.groups)]
        return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


class Session(Protocol):
    """The decoder's view of an exact model: alternate ``next`` and ``push`` once per group."""

    def next(self) -> Any:
        """Parameters of the current group's symbols, in the order of its flat indices."""

    def push(self, symbols: np.ndarray) -> None:
        """The group's (n_t,) symbols, just decoded (or known, when the encoder runs the session)."""

    # optional: ``result() -> symbols`` (the decoded symbols, in the schedule's shape) for a session
    # that keeps them anyway; the driver then does not collect them group by group


class ExactModel(Protocol):
    """What an exact model offers the coding driver and the model zoo."""

    arch: ClassVar[str]  # the zoo's name for the model class (stored in its model files)
    model_id: bytes  # 16 bytes: a hash of the exported integers and the config

    def schedule(self, shape: Sequence[int]) -> Schedule:
        """The coding order for symbols of this shape."""

    def parallel(self, symbols: np.ndarray) -> ParamFn | None:
        """All symbols known (encoder): a function from flat indices to parameters, computed in one
        pass -- or None for a model that adapts as it codes (the driver then runs :meth:`session`)."""

    def session(self, shape: Sequence[int]) -> Session:
        """A decoding session for symbols of this shape."""

    def freqs(self, params: Any) -> tuple[np.ndarray, float | np.ndarray]:
        """Parameters -> (tables (n, K) float64 integers >= 1, their row sums: one number or (n,))."""

    def coding(self) -> ContextManager[None]:
        """Optional: a context the driver codes in (e.g. exact float modes, one torch thread)."""

    # storage (gencodec.models.modelfile): the integers and the config, and back
    def config_dict(self) -> dict[str, Any]: ...
    def state(self) -> dict[str, Any]: ...


class Hook:
    """Per-input adaptation, run identically by the encoder (a round at a time) and the decoder
    (a group at a time). Within a round a hook's state must not change what it does; it may learn
    from the coded symbols only in :meth:`end_round`. The base class does nothing."""

    def params(self, params: Any) -> Any:
        """Adjust the model's parameters before tables are made (e.g. a stored per-input remap)."""
        return params

    def mix(self, freqs: np.ndarray, params: Any, total: float | np.ndarray) -> float | np.ndarray:
        """Adjust the tables in place; returns their row sums."""
        return total

    def coded(self, symbols: np.ndarray, freqs: np.ndarray, params: Any) -> None:
        """The symbols just coded under these tables."""

    def end_round(self) -> None:
        """A round ended: update what the next round uses."""


def wavefront_groups(height: int, width: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of an H x W raster on wavefronts ``t = step * y + x``: (flat pixel indices sorted by
    wavefront then row, number of pixels on each wavefront). Pixel (y, x) may then depend on the
    rows above up to ``step - 1`` columns to its right and on its own row to its left."""
    t = (step * np.arange(height)[:, None] + np.arange(width)[None, :]).ravel()
    order = np.argsort(t, kind="stable")  # ties keep row-major order: increasing y
    counts = np.bincount(t, minlength=step * (height - 1) + width) if t.size else np.zeros(0, np.int64)
    return order, counts
