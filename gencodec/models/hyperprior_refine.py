"""Encoder-side latent refinement for ``hyperprior``: gradient steps on one image's latents toward a
lower rate-distortion cost, the hyper-latents held fixed (Campos et al. 2019; Yang et al. 2020 call
the gap it closes the amortization gap).

The analysis transform is trained to give good latents on average; for one image, the latents
that minimise ``lambda * 255**2 * MSE + bits / pixels`` under this model's own entropy tables and
synthesis lie a little elsewhere. The decoder is untouched: it decodes whatever symbols the encoder
chose, so a refined file is an ordinary file (same format, same exact tables, same checksum).

The objective, with the hyper-latents (so ``h_s``'s means and scales) fixed at the analysis's, is
taken at a stochastic soft rounding of the latents, annealed toward hard rounding (Yang et al.
2020's stochastic Gumbel annealing): each latent's residual from its mean is a random mix of its
floor and its ceiling, the nearer one likelier, with a temperature that falls from 0.5 to 0.05 over
the run; distortion (the synthesis in bfloat16 where the CPU has it, :func:`fast_dtype`) and rate
(the discretized Gaussian's mass) are both measured there, so the optimisation ends where the
rounded file is. Adam on every latent; with a checkerboard context, the second half's tables are
then recomputed exactly from the refined first half (rounded, now fixed) and the second half gets
more steps under them. The noise comes from a seeded generator: the same image and settings give
the same file. On an image larger than one synthesis tile the distortion is taken a tile at a
time (:class:`_TiledMSE`), each tile's graph freed before the next, so memory stays that of one
tile. Steps and step sizes per effort (:data:`SCHEDULES`) were chosen on the six photos
``corpora/train`` holds out (never Kodak).

Example::

    y = refine_latents(model, x, y0, tables, quality, second_tables, effort=1)  # then quantize y again
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import numpy as np
import torch

__all__ = ["refine_latents", "soft_round", "ladder_lambda", "fast_dtype", "SCHEDULES", "Schedule"]


class Schedule(NamedTuple):
    steps: int  # Adam steps on every latent
    steps_second: int  # then on the checkerboard's second half, under its recomputed tables
    lr: float  # Adam's step size, in latent units (a quantization step is 1)


SCHEDULES = {1: Schedule(100, 20, 0.01), 2: Schedule(400, 50, 0.005)}  # per effort level
TAU_START, TAU_END = 0.5, 0.05  # the soft rounding's temperature, annealed geometrically
SEED = 0  # the soft rounding's noise


def ladder_lambda(lambdas: tuple[float, ...], quality: float) -> float:
    """The rate-distortion trade-off at a (continuous) quality: the ladder's lambdas interpolated
    geometrically, as the gains are, and extrapolated from the end pair beyond it."""
    logs = np.log(np.asarray(lambdas, np.float64))
    if logs.size == 1:
        return float(lambdas[0])
    t = float(quality) - 1.0
    lo = int(min(max(math.floor(t), 0), logs.size - 2))
    f = t - lo
    return float(math.exp((1 - f) * logs[lo] + f * logs[lo + 1]))


def fast_dtype() -> torch.dtype | None:
    """bfloat16 where the CPU computes it natively (AVX-512 BF16 or AMX, and torch's kernels for
    AVX-512 in use): the refinement's synthesis passes then run about 2.5x faster (a 1 MP photo on
    one thread of an AMD EPYC, a one-off probe: 10 s against 27 s) for the same result within noise. Elsewhere None
    (float32): emulated bfloat16 would be slower."""
    try:
        cap = torch.backends.cpu.get_cpu_capability()
        native = any(getattr(torch.cpu, f, lambda: False)() for f in ("_is_avx512_bf16_supported",
                                                                       "_is_amx_tile_supported"))
    except Exception:  # an older or newer torch without these probes: float32
        return None
    return torch.bfloat16 if native and cap.startswith("AVX512") else None


def _bits(r: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """-log2 of the discretized Gaussian mass of a residual r (from the mean), elementwise."""
    def cdf(v):
        return 0.5 * torch.erfc(-v / math.sqrt(2.0))

    p = cdf((r + 0.5) / scales) - cdf((r - 0.5) / scales)
    return -torch.log2(p.clamp_min(1e-9))


def soft_round(r: torch.Tensor, tau: float, gen: torch.Generator) -> torch.Tensor:
    """A random point between floor(r) and floor(r) + 1: a Gumbel-softmax sample over the two, whose
    logits grow as r nears each (-atanh of the distance, over tau); as tau falls it becomes hard
    rounding. Differentiable in r."""
    fl = torch.floor(r).detach()
    d = (r - fl).clamp(1e-5, 1 - 1e-5)
    logits = torch.stack([-torch.atanh(d), -torch.atanh(1 - d)]) / tau
    u = torch.rand(logits.shape, generator=gen).clamp(1e-10, 1 - 1e-7)
    w = torch.softmax((logits - torch.log(-torch.log(u))) / tau, dim=0)
    return fl + w[1]


class _TiledMSE(torch.autograd.Function):
    """The synthesis's mean squared error over an image, differentiable in the latents, computed a
    tile at a time (:func:`~gencodec.models.tiling.tiles`): each tile's graph is built, run
    backward and freed in the forward pass, which keeps only the gradient."""

    @staticmethod
    def forward(ctx, y_hat, synth, x, grid):
        height, width = x.shape[-2:]
        grad = torch.zeros_like(y_hat)
        total = 0.0
        for t in grid:
            r0, c0 = 16 * (t.rows.start - t.grown_rows.start), 16 * (t.cols.start - t.grown_cols.start)
            rows = slice(16 * t.rows.start, min(16 * t.rows.stop, height))
            cols = slice(16 * t.cols.start, min(16 * t.cols.stop, width))
            if rows.start >= rows.stop or cols.start >= cols.stop:
                continue  # a tile of padding alone
            part = y_hat[:, t.grown_rows, t.grown_cols].detach().requires_grad_(True)
            with torch.enable_grad():
                out = synth(part)[..., r0 : r0 + rows.stop - rows.start, c0 : c0 + cols.stop - cols.start]
                sse = ((out - x[..., rows, cols]) ** 2).sum()
                sse.backward()
            grad[:, t.grown_rows, t.grown_cols] += part.grad
            total += float(sse)
        n = x.numel()
        ctx.save_for_backward(grad / n)
        return y_hat.new_tensor(total / n)

    @staticmethod
    def backward(ctx, g):
        (grad,) = ctx.saved_tensors
        return g * grad, None, None, None


def _optimize(y: torch.Tensor, mu: torch.Tensor, scales: torch.Tensor, mask: torch.Tensor | None,
              distortion: Callable[[torch.Tensor], torch.Tensor], n: int, lam: float, steps: int,
              lr: float, gen: torch.Generator) -> torch.Tensor:
    """Adam on y under the soft-rounded cost; with a mask, only the masked latents move and the
    others stay at their rounded values. distortion: latents -> the image's MSE (differentiable);
    n: its pixels."""
    y = y.clone().requires_grad_(True)
    opt = torch.optim.Adam([y], lr=lr)
    fixed = None if mask is None else torch.round(y - mu).detach()
    for t in range(steps):
        tau = TAU_START * (TAU_END / TAU_START) ** (t / max(steps - 1, 1))
        v = soft_round(y - mu, tau, gen)
        if mask is not None:
            v = torch.where(mask, v, fixed)
        loss = lam * 255**2 * distortion(v + mu) + _bits(v, scales).sum() / n
        opt.zero_grad()
        loss.backward()
        opt.step()
    return y.detach()


def refine_latents(model: Any, x: torch.Tensor, y: np.ndarray, tables: Any, quality: float,
                   second_tables: Callable[[np.ndarray], Any] | None = None, effort: int = 1) -> np.ndarray:
    """Refined gained latents (M, h, w) float32 for one image.

    model: an :class:`~gencodec.models.hyperprior.ExactHyperprior`; x: the image (1, 3, H, W) in
    [0, 1], uncropped (the distortion counts only these pixels); y: the analysis's gained latents
    (M, h, w); tables: their means and scale indices as the encoder computed them (every phase);
    second_tables: for a checkerboard model, a function of refined latents -> their exact tables
    (the second half's recomputed from the first half's symbols); effort: a key of
    :data:`SCHEDULES`."""
    sched = SCHEDULES[effort]
    gen = torch.Generator().manual_seed(SEED)
    cfg = model.cfg
    _, igain = model.gains(quality)
    lam = ladder_lambda(cfg.lambdas, quality)
    height, width = x.shape[-2:]
    st = torch.tensor(model.scales(), dtype=torch.float32)

    dtype = fast_dtype()

    def synth(y_hat: torch.Tensor) -> torch.Tensor:  # latents (M, h, w) -> pixels (1, 3, 16h, 16w)
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            return model.g_s((y_hat[None] * igain).contiguous(memory_format=torch.channels_last)).float()

    grid = model.synthesis_tiles(y.shape[1], y.shape[2])
    if len(grid) == 1:
        def distortion(y_hat: torch.Tensor) -> torch.Tensor:
            return ((synth(y_hat)[..., :height, :width] - x) ** 2).mean()
    else:  # a large image: its pixels' graph is held for one tile at a time
        def distortion(y_hat: torch.Tensor) -> torch.Tensor:
            return _TiledMSE.apply(y_hat, synth, x, grid)

    def params(t) -> tuple[torch.Tensor, torch.Tensor]:
        mu = torch.from_numpy(t.means.astype(np.float32) / np.float32(2**cfg.mean_frac_bits))
        return mu, st[torch.from_numpy(t.idx)]

    with torch.enable_grad():
        mu, scales = params(tables)
        y0 = torch.from_numpy(np.ascontiguousarray(y, np.float32))
        out = _optimize(y0, mu, scales, None, distortion, height * width, lam, sched.steps, sched.lr, gen)
        phases = model.phases(out.shape[1], out.shape[2])
        if second_tables is not None and len(phases) > 1:
            mu, scales = params(second_tables(out.numpy()))
            second = torch.zeros(out.numel(), dtype=torch.bool)
            second[torch.from_numpy(phases[-1])] = True
            second = second.reshape(out.shape)
            out = _optimize(out, mu, scales, second, distortion, height * width, lam, sched.steps_second, sched.lr,
                            gen)
    return out.numpy()
