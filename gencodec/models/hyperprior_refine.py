"""Encoder-side latent refinement for ``hyperprior``: a few gradient steps on one image's latents
toward a lower rate-distortion cost, the hyper-latents held fixed (Campos et al. 2019; Yang et al.
2020 call the gap it closes the amortization gap).

The analysis transform is trained to give good latents on average; for one image, the latents
that minimise ``lambda * 255**2 * MSE + bits / pixels`` under this model's own entropy tables and
synthesis lie a little elsewhere. The decoder is untouched: it decodes whatever symbols the encoder
chose, so a refined file is an ordinary file (same format, same exact tables, same checksum).

The objective, with the hyper-latents (so ``h_s``'s means and scales) fixed at the analysis's:
distortion through rounding (straight-through: the synthesis sees the rounded latents it will
decode), rate at the continuous value under each latent's Gaussian (the training's proxy, which
keeps a gradient where rounding has none), the synthesis in bfloat16 where the CPU has it
(:func:`fast_dtype`). Adam, ``STEPS`` steps at ``LR``; with a checkerboard
context, the second half's tables are then recomputed exactly from the refined first half and the
second half gets ``STEPS_SECOND`` more steps under them (the first half held). These constants
were chosen on the six photos ``corpora/train`` holds out (never Kodak): more steps or a larger step size
lowered the real cost less or raised it (the proxy drifts from the rounded truth), and a fully
straight-through rate gained less.

Example::

    y = refine_latents(model, x, y0, tables, quality, second_tables)   # then quantize y again
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch

__all__ = ["refine_latents", "ladder_lambda", "fast_dtype", "STEPS", "STEPS_SECOND", "LR"]

STEPS = 30  # Adam steps on every latent
STEPS_SECOND = 10  # then on the checkerboard's second half, under its recomputed tables
LR = 0.002  # in latent units (a quantization step is 1)


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


def _optimize(y: torch.Tensor, mu: torch.Tensor, scales: torch.Tensor, mask: torch.Tensor | None,
              synth: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, lam: float, steps: int) -> torch.Tensor:
    y = y.clone().requires_grad_(True)
    opt = torch.optim.Adam([y], lr=LR)
    n = x.shape[-1] * x.shape[-2]
    for _ in range(steps):
        r = y - mu
        v = r + (torch.round(r) - r).detach()  # the rounded residual, straight-through
        loss = lam * 255**2 * ((synth(v + mu) - x) ** 2).mean() + _bits(r, scales).sum() / n
        opt.zero_grad()
        loss.backward()
        if mask is not None:  # only the masked latents move (the rate is elementwise: no other term needs it)
            y.grad.mul_(mask)
        opt.step()
    return y.detach()


def refine_latents(model: Any, x: torch.Tensor, y: np.ndarray, tables: Any, quality: float,
                   second_tables: Callable[[np.ndarray], Any] | None = None) -> np.ndarray:
    """Refined gained latents (M, h, w) float32 for one image.

    model: an :class:`~gencodec.models.hyperprior.ExactHyperprior`; x: the image (1, 3, H, W) in
    [0, 1], uncropped (the distortion counts only these pixels); y: the analysis's gained latents
    (M, h, w); tables: their means and scale indices as the encoder computed them (every phase);
    second_tables: for a checkerboard model, a function of refined latents -> their exact tables
    (the second half's recomputed from the first half's symbols)."""
    cfg = model.cfg
    _, igain = model.gains(quality)
    lam = ladder_lambda(cfg.lambdas, quality)
    height, width = x.shape[-2:]
    st = torch.tensor(model.scales(), dtype=torch.float32)

    dtype = fast_dtype()

    def synth(y_hat: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            out = model.g_s((y_hat[None] * igain).contiguous(memory_format=torch.channels_last))
        return out[..., :height, :width].float()

    def params(t) -> tuple[torch.Tensor, torch.Tensor]:
        mu = torch.from_numpy(t.means.astype(np.float32) / np.float32(2**cfg.mean_frac_bits))
        return mu, st[torch.from_numpy(t.idx)]

    with torch.enable_grad():
        mu, scales = params(tables)
        out = _optimize(torch.from_numpy(np.ascontiguousarray(y, np.float32)), mu, scales, None, synth, x, lam, STEPS)
        phases = model.phases(out.shape[1], out.shape[2])
        if second_tables is not None and len(phases) > 1:
            mu, scales = params(second_tables(out.numpy()))
            second = torch.zeros(out.numel())
            second[torch.from_numpy(phases[-1])] = 1.0
            second = second.reshape(out.shape)
            out = _optimize(out, mu, scales, second, synth, x, lam, STEPS_SECOND)
    return out.numpy()
