"""GDN for running a trained model: compressai's ``GDN`` forward, without importing compressai.

Training and export use compressai's own ``GDN`` (``compressai.layers.GDN``). A coder that only runs
a trained model needs its forward alone, and ``import compressai`` costs about 3 s of every process
(its package imports its datasets and transforms registries, which import torch_geometric and torch's
compiler). This module holds the same parameters under the same names (``beta``, ``gamma``, in
compressai's non-negative reparametrization) and computes the same operations in the same order, so
its output is bit for bit compressai's (tests/test_hyperprior_gdn.py holds it to that)::

    gdn = InferenceGDN(96, inverse=True)
    gdn.load_state_dict(compressai_gdn.state_dict(), strict=False)  # beta, gamma
    y = gdn(x)  # == compressai_gdn(x), exactly
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: compressai's NonNegativeParametrizer offset and GDN's beta floor (its defaults)
REPARAM_OFFSET = 2.0**-18
BETA_MIN = 1e-6


def _nonnegative(x: torch.Tensor, minimum: float) -> torch.Tensor:
    """compressai's ``NonNegativeParametrizer(minimum)`` forward: max(x, bound)^2 - pedestal, with
    its bound and pedestal as float32 tensors, as compressai stores them."""
    pedestal = torch.tensor([REPARAM_OFFSET**2], dtype=torch.float32)
    bound = torch.tensor([float((minimum + REPARAM_OFFSET**2) ** 0.5)], dtype=torch.float32)
    return torch.max(x, bound) ** 2 - pedestal


class InferenceGDN(nn.Module):
    """``y = x / sqrt(beta + gamma * x^2)`` per position (``inverse``: times the root), with
    ``beta`` (C,) and ``gamma`` (C, C) stored reparametrized as compressai stores them."""

    def __init__(self, channels: int, inverse: bool = False):
        super().__init__()
        self.inverse = bool(inverse)
        self.beta = nn.Parameter(torch.ones(channels))
        self.gamma = nn.Parameter(torch.eye(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        beta = _nonnegative(self.beta, BETA_MIN)
        gamma = _nonnegative(self.gamma, 0.0).reshape(c, c, 1, 1)
        norm = F.conv2d(x**2, gamma, beta)
        norm = torch.sqrt(norm) if self.inverse else torch.rsqrt(norm)
        return x * norm
