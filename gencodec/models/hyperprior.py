"""hyperprior: a mean-scale hyperprior autoencoder (Ballé et al. 2018, Minnen et al. 2018) with gain
units for a continuous quality ladder (Cui et al. 2021), whose decoder-side entropy parameters are exact.

Encoder: ``y = g_a(x)``; per quality a channel gain ``y_g = y * gain(q)``; ``z = h_a(y_g)``,
coded with a factorized prior (compressai's ``EntropyBottleneck``); the **hyper-synthesis**
``h_s(z_hat)`` gives each latent a mean and a scale; ``y_g - mean`` is rounded and coded under a
Gaussian of that scale (compressai's ``GaussianConditional``). Decoder: ``x_hat = g_s((sym + mean) / gain(q))``.

What must be identical on every machine is only what chooses the coder's tables: the hyper-latent
symbols (integers) and ``h_s``. So ``h_s`` is trained fake-quantized
(:class:`~gencodec.exact.conv.QuantConv2d`) and run exactly (:class:`ExactHyperprior`): integer
weights, float64 integer accumulators, power-of-two rescales; its means land on a 2**-8 grid and its
scales pick a table by integer thresholds. The analysis and synthesis transforms stay float (their
last-bit differences move pixels, never the bitstream); the frame stores a checksum of the latents.

With ``context="checkerboard"`` (He et al. 2021) the latents are coded in two halves: the second
half's means and scales add an exact correction computed from the first half's latents
(:class:`CheckerboardContext`), so the decoder runs h_s once and the context once.

Quality ``q`` is continuous in ``[1, len(lambdas)]``: the model is trained at each lambda of the
ladder with its own gain vector; between two ladder points the gains are interpolated geometrically.

Example::

    model = Hyperprior(HyperpriorConfig())
    out = model(x, level)            # x (B, 3, H, W) in [0, 1]; level (B,) ladder indices
    loss = (lam * 255**2 * out["mse"] + out["bits"] / pixels).mean()
    exact = model.export()           # ExactHyperprior
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, fields
from fractions import Fraction
from typing import Any

import numpy as np
import torch
from torch import nn

from ..exact.conv import ExactConv2d, QuantConv2d
from ..exact.quant import QFormat, fake_quant, round_ste
from .tiling import Tile, tiled, tiles

__all__ = ["HyperpriorConfig", "Hyperprior", "ExactHyperprior", "scale_table"]


CONTEXTS = ("none", "checkerboard")
#: what training trades against the rate: ``lambda * 255**2 * MSE`` (the default) or ``lambda * (1 - MS-SSIM)``
DISTORTIONS = ("mse", "ms-ssim")
#: CompressAI's lambdas for its MS-SSIM models (qualities 1-6), the ladder when none is named
MS_SSIM_LAMBDAS = (2.40, 4.58, 8.73, 16.64, 31.73, 60.50)


@dataclass(frozen=True)
class HyperpriorConfig:
    N: int = 96  # channels of the transforms and of the hyper-latent
    M: int = 128  # latent channels
    lambdas: tuple[float, ...] = (0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483)  # the ladder (MSE, 255**2 scale)
    z_frac_bits: int = 4  # h_s input: hyper-latent symbol + median, on a 2**-4 grid
    z_max: int = 2**14  # |h_s input| in those units
    act_frac_bits: int = 6  # h_s hidden activations (after ReLU)
    act_max: int = 2**16
    w_frac_bits: int = 10  # h_s weights
    w_max: int = 2**14
    mean_frac_bits: int = 8  # latent means
    mean_max: int = 2**16  # |mean| in those units (256)
    n_scales: int = 64  # Gaussian tables, scales log-uniform in [scale_min, scale_max]
    scale_min: float = 0.11
    scale_max: float = 64.0
    table_bits: int = 16  # every table sums to 2**table_bits (compressai's entropy_coder_precision)
    version: int = 1
    context: str = "none"  # "checkerboard": the latents in two halves, the second predicted from the first
    ctx_ch: int = 0  # channels of the context's features (0: M)
    ctx_max: int = 2**20  # |latent| the context reads, on the 2**-mean_frac_bits grid (4096)
    hs_ch: int = 0  # h_s's first hidden width (0: M; the second is 3/2 of it): a wider latent need not widen h_s
    distortion: str = "mse"  # what training traded against the rate (DISTORTIONS); lambdas are on its scale

    def __post_init__(self) -> None:
        if self.context not in CONTEXTS:
            raise ValueError(f"context must be one of {', '.join(CONTEXTS)}, not {self.context!r}")
        if self.distortion not in DISTORTIONS:
            raise ValueError(f"distortion must be one of {', '.join(DISTORTIONS)}, not {self.distortion!r}")
        if self.hs_ch < 0 or self.ctx_ch < 0:
            raise ValueError("hs_ch and ctx_ch must be 0 (their default widths) or positive")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lambdas"] = list(self.lambdas)
        if self.context == "none":  # the fields came after the first models: their ids stay as they were
            for k in ("context", "ctx_ch", "ctx_max"):
                del d[k]
        if self.hs_ch == 0:  # likewise for models from before this field
            del d["hs_ch"]
        if self.distortion == "mse":  # and this one
            del d["distortion"]
        return d

    @property
    def ctx_channels(self) -> int:
        return self.ctx_ch or self.M

    @property
    def hs_channels(self) -> int:
        """h_s's first hidden width (its second, which the context reads too, is 3/2 of it)."""
        return self.hs_ch or self.M

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "HyperpriorConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown hyperprior config fields: {', '.join(sorted(unknown))}")
        d = dict(d)
        if "lambdas" in d:
            d["lambdas"] = tuple(float(v) for v in d["lambdas"])
        return cls(**d)

    @property
    def levels(self) -> int:
        return len(self.lambdas)


def scale_table(cfg: HyperpriorConfig) -> np.ndarray:
    """The scales of the Gaussian tables (n_scales,) float64, log-uniform (CompressAI's get_scale_table)."""
    return np.exp(np.linspace(math.log(cfg.scale_min), math.log(cfg.scale_max), cfg.n_scales))


def _gdn(ch: int, inverse: bool = False) -> nn.Module:
    from compressai.layers import GDN

    return GDN(ch, inverse=inverse)


def _image_transforms(cfg: HyperpriorConfig, gdn=_gdn) -> tuple[nn.Sequential, nn.Sequential, nn.Sequential]:
    """(g_a, g_s, h_a) with ``gdn(channels, inverse)`` for their GDN layers: compressai's for training
    and export, :class:`~gencodec.models.gdn.InferenceGDN` (the same forward, bit for bit) for coding."""
    N, M = cfg.N, cfg.M
    g_a = nn.Sequential(_conv(3, N), gdn(N), _conv(N, N), gdn(N), _conv(N, N), gdn(N), _conv(N, M))
    g_s = nn.Sequential(_deconv(M, N), gdn(N, True), _deconv(N, N), gdn(N, True), _deconv(N, N),
                        gdn(N, True), _deconv(N, 3))
    h_a = nn.Sequential(_conv(M, N, 3, 1), nn.LeakyReLU(inplace=True), _conv(N, N),
                        nn.LeakyReLU(inplace=True), _conv(N, N))
    return g_a, g_s, h_a


def interpolated_gains(log_gain: torch.Tensor, log_igain: torch.Tensor,
                       level: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """level: (B,) float, [0, L-1] the ladder (beyond: extrapolated from the end pair); log_gain,
    log_igain (L, M) -> gain, inverse gain (B, M, 1, 1), geometric interpolation."""
    L = log_gain.shape[0]
    lo = torch.clamp(level.floor().long(), 0, max(L - 2, 0))
    t = (level - lo.to(level.dtype))[:, None]  # beyond [0, L-1]: extrapolated from the end pair
    hi = torch.clamp(lo + 1, max=L - 1)

    def mix(p):
        return ((1 - t) * p[lo] + t * p[hi]).exp()[:, :, None, None]

    return mix(log_gain), mix(log_igain)


def _conv(i: int, o: int, k: int = 5, s: int = 2) -> nn.Conv2d:
    return nn.Conv2d(i, o, k, stride=s, padding=k // 2)


def _deconv(i: int, o: int, k: int = 5, s: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(i, o, k, stride=s, padding=k // 2, output_padding=s - 1)


class HyperSynthesis(nn.Module):
    """h_s: z_hat -> (means, scales), fake-quantized so its export is exact."""

    def __init__(self, cfg: HyperpriorConfig):
        super().__init__()
        zf = QFormat(cfg.z_frac_bits, -cfg.z_max, cfg.z_max)
        af = QFormat(cfg.act_frac_bits, 0, cfg.act_max)
        kw = dict(w_frac_bits=cfg.w_frac_bits, w_max=cfg.w_max)
        width = cfg.hs_channels
        mid = width * 3 // 2
        self.l1 = QuantConv2d(cfg.N, width, 5, zf, af, stride=2, transposed=True, **kw)
        self.l2 = QuantConv2d(width, mid, 5, af, af, stride=2, transposed=True, **kw)
        self.l3 = QuantConv2d(mid, 2 * cfg.M, 3, af, None, stride=1, **kw)
        self.M = cfg.M
        self.mean_fmt = QFormat(cfg.mean_frac_bits, -cfg.mean_max, cfg.mean_max)

    def features(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (the last layer's accumulator: means and scales as real values (B, 2M, H, W), the
        hidden activations before it (B, 3/2 hs_channels, H, W), which a context model reads too)."""
        mid = self.l2(self.l1(z_hat))
        return self.l3(mid), mid

    def split(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Accumulator (B, 2M, H, W) -> (means on their grid, scales)."""
        return fake_quant(h[:, : self.M], self.mean_fmt), h[:, self.M :]

    def forward(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.split(self.features(z_hat)[0])


def anchors(height: int, width: int, device=None) -> torch.Tensor:
    """The checkerboard's first half: (1, 1, H, W) float, 1 where row + column is even."""
    i = torch.arange(height, device=device)[:, None]
    j = torch.arange(width, device=device)[None, :]
    return ((i + j) % 2 == 0).float()[None, None]


class CheckerboardContext(nn.Module):
    """The second half's entropy parameters (He et al. 2021): h_s's accumulator plus a correction
    from the first half's latents (a 5x5 convolution over them, zero elsewhere, whose taps that can
    only see the second half are zero) and from h_s's hidden features (two 1x1 layers). Fake-quantized
    like h_s; the correction starts at zero, so a model fine-tuned from one without context starts
    where that one was."""

    def __init__(self, cfg: HyperpriorConfig):
        super().__init__()
        yf = QFormat(cfg.mean_frac_bits, -cfg.ctx_max, cfg.ctx_max)
        af = QFormat(cfg.act_frac_bits, 0, cfg.act_max)
        kw = dict(w_frac_bits=cfg.w_frac_bits, w_max=cfg.w_max)
        C, mid = cfg.ctx_channels, cfg.hs_channels * 3 // 2
        self.c = QuantConv2d(cfg.M, C, 5, yf, af, **kw)
        self.e1 = QuantConv2d(mid + C, C, 1, af, af, **kw)
        self.e2 = QuantConv2d(C, 2 * cfg.M, 1, af, None, **kw)
        with torch.no_grad():
            self.c.weight.mul_(1 - anchors(5, 5))  # taps at even offsets see only the second half (zeros)
            self.e2.weight.zero_()

    def forward(self, y_first: torch.Tensor, mid: torch.Tensor) -> torch.Tensor:
        """y_first: the first half's rounded latents (sym + mean), zero elsewhere; mid: h_s's hidden
        features -> the correction to h_s's accumulator (B, 2M, H, W), real values."""
        return self.e2(self.e1(torch.cat([mid, self.c(y_first)], dim=1)))


class Hyperprior(nn.Module):
    """The trainable model (float transforms, fake-quantized hyper-synthesis)."""

    def __init__(self, cfg: HyperpriorConfig = HyperpriorConfig()):
        super().__init__()
        from compressai.entropy_models import EntropyBottleneck, GaussianConditional

        self.cfg = cfg
        N, M = cfg.N, cfg.M
        self.g_a, self.g_s, self.h_a = _image_transforms(cfg)
        self.h_s = HyperSynthesis(cfg)
        self.ctx = CheckerboardContext(cfg) if cfg.context == "checkerboard" else None
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian = GaussianConditional(None, scale_bound=cfg.scale_min)
        L = cfg.levels
        ramp = torch.linspace(-0.35 * (L - 1), 0.0, L)[:, None].repeat(1, M)  # higher quality, finer steps
        self.log_gain = nn.Parameter(ramp.clone())
        self.log_igain = nn.Parameter(-ramp.clone())
        #: training only: the float transforms (g_a, h_a, g_s) under torch.autocast in this dtype (e.g.
        #: torch.bfloat16: a step about 1.5x faster on an AVX-512 BF16 CPU, more with AMX); h_s, the context and the entropy
        #: models stay float32, and eval mode (validation, export) runs everything in float32
        self.autocast: torch.dtype | None = None

    def gains(self, level: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """level: (B,) float, [0, L-1] the ladder (beyond: extrapolated from the end pair) -> gain, inverse gain
        (B, M, 1, 1), geometric interpolation."""
        return interpolated_gains(self.log_gain, self.log_igain, level)

    def z_hat(self, z: torch.Tensor) -> torch.Tensor:
        """The hyper-latent as h_s sees it: round(z - median) + median (straight-through)."""
        med = self.entropy_bottleneck._get_medians().reshape(1, -1, 1, 1)
        return round_ste(z - med) + med

    def _float_part(self, part: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.autocast is None or not self.training:
            return part(x)
        with torch.autocast(x.device.type, dtype=self.autocast):
            return part(x).float()

    def forward(self, x: torch.Tensor, level: torch.Tensor) -> dict[str, torch.Tensor]:
        """x (B, 3, H, W) in [0, 1], H and W multiples of 64; level (B,) ladder positions.
        Returns per-image ``bits`` (rate of y and z, noisy proxy) and ``mse`` (of the rounded latents)."""
        gain, igain = self.gains(level.to(x.dtype))
        y = self._float_part(self.g_a, x) * gain
        z = self._float_part(self.h_a, y)
        _, z_lik = self.entropy_bottleneck(z)
        h, mid = self.h_s.features(self.z_hat(z))
        if self.ctx is not None:  # the first half under h_s alone, the second also under its context
            first = anchors(y.shape[2], y.shape[3], y.device)
            means, _ = self.h_s.split(h)
            h = h + self.ctx((round_ste(y - means) + means) * first, mid) * (1 - first)
        means, scales = self.h_s.split(h)
        _, y_lik = self.gaussian(y, scales, means)
        y_hat = round_ste(y - means) + means
        x_hat = self._float_part(self.g_s, y_hat * igain)
        bits = -(torch.log2(y_lik).flatten(1).sum(1) + torch.log2(z_lik).flatten(1).sum(1))
        mse = ((x_hat - x) ** 2).flatten(1).mean(1)
        return dict(bits=bits, mse=mse, x_hat=x_hat)

    def aux_loss(self) -> torch.Tensor:
        return self.entropy_bottleneck.loss()

    @torch.no_grad()
    def export(self) -> "ExactHyperprior":
        return ExactHyperprior.from_trained(self)


FLOAT_PARTS = ("g_a", "g_s", "h_a")  # stored as float16 parameters: they move pixels, never the bitstream
ENCODER_PARTS = ("g_a", "h_a")  # what only the encoder runs (a decode-only model leaves them out)
EXACT_LAYERS = ("l1", "l2", "l3")
CTX_LAYERS = ("c", "e1", "e2")
# The image transforms run in overlapping tiles on a large image (:mod:`.tiling`), so coding a photo
# of any size needs the memory of about one megapixel. Each margin covers its transform's receptive
# field (g_s: a pixel depends on latents less than 2 away from its own; g_a: a latent on pixels
# within 30), so the tiles give the untiled result up to float summation order; an image of at
# most 1024 x 1024 runs whole. The exact layers (h_s, the context) run in tiles too: their sums are
# exact, so their tiles give the untiled integers bit for bit (h_s: a latent depends on hyper-latents
# less than 2 away from its own; the context: on latents within 2).
SYNTH_TILE, SYNTH_MARGIN = 64, 2  # in latents (16 pixels)
ANALYSIS_TILE, ANALYSIS_MARGIN = 1024, 32  # in pixels
EXACT_TILE, EXACT_MARGIN = 64, 2  # in latents (h_s: tiles of EXACT_TILE / 4 hyper-latents, margin 2 of them)


def _id_view(t: torch.Tensor) -> torch.Tensor:
    """A tensor as integers holding its exact bits (what the model id hashes)."""
    if t.dtype == torch.float16:
        return t.view(torch.int16)
    if t.dtype == torch.float32:
        return t.view(torch.int32)
    if t.dtype == torch.int64:
        return t.view(torch.int32)
    return t


class _Tables:
    """The latents' tables (means and scale indices, (M, H, W)), phase by phase, as both sides compute
    them: the first (or only) phase from h_s, the checkerboard's second from the first's latents."""

    def __init__(self, model: "ExactHyperprior", z_sym: np.ndarray):
        self.model = model
        self.means, self.idx, self._acc, self._mid = model.hyper_state(z_sym)
        self.phases = model.phases(self.means.shape[1], self.means.shape[2])
        self.perms: list[np.ndarray] = []
        self.context = np.zeros(self.means.size, np.int64)  # the first phase's latents, as the context reads them

    def open(self) -> np.ndarray:
        """The next phase's coding order: its flat indices into (M, H, W), sorted (stably) by table."""
        k = len(self.perms)
        ph = self.phases[k]
        if k:
            means, idx = self.model.context_tables(self.context.reshape(self.means.shape), self.means, self._acc,
                                                   self._mid)
            self.means.reshape(-1)[ph] = means.reshape(-1)[ph]
            self.idx.reshape(-1)[ph] = idx.reshape(-1)[ph]
        perm = ph[np.argsort(self.idx.reshape(-1)[ph], kind="stable")]
        self.perms.append(perm)
        return perm

    def rows(self, perm: np.ndarray) -> np.ndarray:
        return self.model.cfg.N + self.idx.reshape(-1)[perm]

    def halves(self, perm: np.ndarray) -> np.ndarray:
        return self.model.halves[self.idx.reshape(-1)[perm]]

    def columns(self, perm: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A phase's coded columns (at ``perm``) -> (latent values, which are the overflow symbol,
        the tables' half widths)."""
        h = self.halves(perm)
        return cols - h, cols == 2 * h + 1, h

    def known(self, perm: np.ndarray, values: np.ndarray, over: np.ndarray) -> None:
        """A phase's latents (at ``perm``), overflow ones read as 0 by the context (their values are
        not in the symbol stream)."""
        self.context[perm] = np.where(over, 0, values)


class _Session:
    """Decoder: the hyper-latent groups, then each phase of the latents under its tables (known once
    every symbol before the phase is)."""

    def __init__(self, model: "ExactHyperprior", shape):
        self.model, self.shape = model, tuple(shape)
        self.sched = model.schedule(self.shape)
        self.nz = model.n_z(self.shape)
        self.sym = np.zeros(int(np.prod(self.shape)), dtype=np.int64)
        self.rows = model.z_rows(self.shape)
        self.starts = model.phase_starts(self.shape)
        self.tables: _Tables | None = None
        self.group = 0

    def next(self) -> np.ndarray:
        g = self.sched.groups[self.group]
        if g[0] in self.starts:  # a phase begins: every symbol before it is known
            k = self.starts.index(int(g[0]))
            if k == 0:
                z = self.sym[: self.nz].reshape(self.model.cfg.N, self.shape[1], self.shape[2])
                self.tables = _Tables(self.model, self.model.z_values(z))
            else:
                perm = self.tables.perms[k - 1]
                values, over, _ = self.tables.columns(perm, self.sym[self.starts[k - 1] : self.starts[k]])
                self.tables.known(perm, values, over)
            self.rows = np.concatenate([self.rows, self.tables.rows(self.tables.open())])
            if k == len(self.starts) - 1:  # every table is known: the decoder's synthesis reuses them
                self.model.remember(self.shape, self.sym[: self.starts[-1]], self.tables)
        return self.rows[g]

    def push(self, symbols: np.ndarray) -> None:
        self.sym[self.sched.groups[self.group]] = symbols
        self.group += 1


class ExactHyperprior:
    """The exported model: float transforms (g_a, h_a, g_s) and gains, the exact hyper-synthesis,
    and the integer tables of both entropy models.

    Symbols (what the coding driver codes) have shape ``(N + 16 M, h, w)`` for an image padded to
    ``64 h x 64 w``: the N hyper-latent channels (N, h, w), then the 16 M h w latents, phase by
    phase (one, or the checkerboard's two halves: :meth:`phases`), each phase sorted by table
    (stable: within a table in (channel, row, column) order of the (M, 4h, 4w) latents), each as a
    column of its table (value + offset). Tables: one bank, rows 0..N-1 for the
    hyper-latent channels, then one row per Gaussian scale. Sorting keeps each decoding group to one
    or two tables, so its rows are padded (with ones, counted in the totals) to a narrow width.
    Every group is its own round: the encoder codes it in one batch, as the decoder does, so the
    padding -- which depends on the group's widest table -- is the same on both sides.
    """

    arch = "hyperprior"
    trusted_tables = True  # the bank is checked when the model is loaded
    CHUNK = 8192  # symbols per decoding group (at most the driver's batch: a group is never split)

    def __init__(self, cfg: HyperpriorConfig, tensors: dict[str, torch.Tensor], model_id: bytes | None = None):
        """``model_id``: only for a decode-only model (tensors without the encoder's ENCODER_PARTS):
        the id of the whole model it was cut from, which its tensors cannot reproduce."""
        from ..errors import GencodecError

        self.cfg = cfg
        self._tensors = tensors
        self._memo: tuple[bytes, _Tables] | None = None  # the tables a decoder's session last completed
        self.decode_only = not any(k.split(".")[0] in ENCODER_PARTS for k in tensors)
        try:
            self._setup(tensors)
        except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as e:
            raise GencodecError(f"hyperprior model: inconsistent tensors ({type(e).__name__}: {e})") from None
        from . import modelfile

        own = modelfile.model_id(self.id_config(), {k: _id_view(v) for k, v in tensors.items()})
        #: a decode-only model's own hash (its file records it beside the whole model's id); None otherwise
        self.decoder_id: bytes | None = None
        if self.decode_only:
            if model_id is None or len(model_id) != 16:
                raise GencodecError("hyperprior model: a decode-only model needs the 16-byte id of the model it "
                                    "was cut from")
            self.model_id, self.decoder_id = bytes(model_id), own
        else:
            if model_id is not None and model_id != own:
                raise GencodecError("hyperprior model: the id given does not match the tensors")
            self.model_id = own

    def decoder(self) -> "ExactHyperprior":
        """The same model without its encoder (g_a, h_a): it decodes every file this one writes,
        under this one's id, at about 60 % of the size -- the form the archive keeps."""
        kept = {k: v for k, v in self._tensors.items() if k.split(".")[0] not in ENCODER_PARTS}
        return ExactHyperprior(self.cfg, kept, model_id=self.model_id)

    # -- construction -----------------------------------------------------------------------------
    def _setup(self, t: dict[str, torch.Tensor]) -> None:
        from ..errors import GencodecError

        from .gdn import InferenceGDN

        cfg = self.cfg
        # the float parts with compressai's GDN forward but not compressai (whose import costs seconds)
        float_parts = dict(zip(FLOAT_PARTS, _image_transforms(cfg, InferenceGDN)))
        for part in FLOAT_PARTS:
            if self.decode_only and part in ENCODER_PARTS:
                continue
            module = float_parts[part]
            params = dict(module.named_parameters())
            if {f"{part}.{k}" for k in params} != {k for k in t if k.startswith(part + ".")}:
                raise ValueError(f"{part} parameters do not match the config")
            with torch.no_grad():
                for k, p in params.items():
                    p.copy_(t[f"{part}.{k}"].float())
            module.eval().requires_grad_(False)  # refinement differentiates the input alone
        # the image transforms in channels-last layout: about 30 % faster on CPUs (oneDNN); float
        # parts, so their layout moves no bit of the stream
        self.g_a = None if self.decode_only else float_parts["g_a"].to(memory_format=torch.channels_last)
        self.g_s = float_parts["g_s"].to(memory_format=torch.channels_last)
        self.h_a = None if self.decode_only else float_parts["h_a"]
        L = cfg.levels
        log_gain, log_igain = t["gain.log"].float(), t["gain.ilog"].float()
        if log_gain.shape != (L, cfg.M) or log_igain.shape != (L, cfg.M):
            raise ValueError(f"gains of shape {tuple(log_gain.shape)}, the config needs {(L, cfg.M)}")
        self._log_gains = (log_gain, log_igain)
        self.h_s = {}
        hs = HyperSynthesis(cfg)  # the layers' shapes and formats
        for name in EXACT_LAYERS:
            self.h_s[name] = self._exact_layer(t, f"h_s.{name}", getattr(hs, name))
        self.acc_frac_bits = hs.l3.acc_frac_bits
        self.ctx = {}
        if cfg.context == "checkerboard":
            ctx = CheckerboardContext(cfg)
            for name in CTX_LAYERS:
                self.ctx[name] = self._exact_layer(t, f"ctx.{name}", getattr(ctx, name))
            if ctx.e2.acc_frac_bits != self.acc_frac_bits:
                raise ValueError("the context's accumulator is not on h_s's grid")
            bound = self.h_s["l3"].max_abs_accumulator() + self.ctx["e2"].max_abs_accumulator()
            if bound >= 2**53:
                raise ValueError(f"h_s plus context accumulator bound {bound} is not below 2**53")
        elif any(k.startswith("ctx.") for k in t):
            raise ValueError("context tensors in a model without context")
        self.medians = t["medians"].float().numpy()
        widths = t["tables.widths"].numpy().astype(np.int64)
        flat = t["tables.flat"].numpy().astype(np.float64)
        if widths.ndim != 1 or np.any(widths < 1) or flat.shape != (int(widths.sum()),):
            raise ValueError("table widths do not match the stored tables")
        bank = np.zeros((widths.size, int(widths.max())), np.float64)  # rows padded (with ones, below)
        ends = np.cumsum(widths)
        for r, (a, b) in enumerate(zip(ends - widths, ends)):
            bank[r, : b - a] = flat[a:b]
        self.z_lo = t["z.lo"].numpy().astype(np.int64)
        self.halves = t["y.halves"].numpy().astype(np.int64)
        self.thresholds = t["scale.thresholds"].numpy().astype(np.int64)
        N = cfg.N
        if self.medians.shape != (N,) or self.z_lo.shape != (N,) or self.halves.shape != (cfg.n_scales,):
            raise ValueError("table shapes do not match the config")
        if self.thresholds.shape != (cfg.n_scales - 1,) or np.any(np.diff(self.thresholds) < 0):
            raise ValueError("scale thresholds must be n_scales - 1 increasing integers")
        if bank.shape[0] != N + cfg.n_scales or widths.shape != (bank.shape[0],):
            raise ValueError("table bank does not match the config")
        if np.any(widths < 2) or np.any(widths > bank.shape[1]) or np.any(2 * self.halves + 2 != widths[N:]):
            raise ValueError("table widths out of range")
        if np.any(self.z_lo < 0) or np.any(self.z_lo >= widths[:N] - 1):
            raise ValueError("hyper-latent offsets out of range")
        cols = np.arange(bank.shape[1])[None, :]
        inside = cols < widths[:, None]
        if np.any(inside & (bank < 1)) or np.any(np.where(inside, bank, 0).sum(axis=1) != 2**cfg.table_bits):
            raise GencodecError("hyperprior model: a table is not a distribution over 2**table_bits")
        bank[~inside] = 1.0  # padding: the driver's totals count it
        self.bank, self.widths = bank, widths

    def _exact_layer(self, t: dict[str, torch.Tensor], name: str, q: QuantConv2d) -> ExactConv2d:
        w, b = t[f"{name}.weight"].double(), t[f"{name}.bias"].double()
        if w.shape != q.weight.shape or b.shape != q.bias.shape:
            raise ValueError(f"{name} has shape {tuple(w.shape)}, the config needs {tuple(q.weight.shape)}")
        if w.numel() and w.abs().max() > self.cfg.w_max:
            raise ValueError(f"{name} weights beyond w_max")
        shift = None if q.out_fmt is None else q.acc_frac_bits - q.out_fmt.frac_bits
        return ExactConv2d(w, b, shift, q.in_fmt, q.out_fmt, q.stride, q.transposed)

    @classmethod
    @torch.no_grad()
    def from_trained(cls, model: Hyperprior) -> "ExactHyperprior":
        """Export: float parameters as float16, h_s as integers, the entropy models as integer tables."""
        cfg = model.cfg
        model = model.cpu().eval()
        t: dict[str, torch.Tensor] = {}
        for part in FLOAT_PARTS:
            for k, p in getattr(model, part).named_parameters():
                t[f"{part}.{k}"] = p.detach().half().contiguous()
        t["gain.log"] = model.log_gain.detach().float().contiguous()
        t["gain.ilog"] = model.log_igain.detach().float().contiguous()
        for name in EXACT_LAYERS:
            e = getattr(model.h_s, name).export()
            t[f"h_s.{name}.weight"] = e.weight.to(torch.int16)  # |w| <= w_max = 2**14
            t[f"h_s.{name}.bias"] = e.bias.to(torch.int64)
        for name in CTX_LAYERS if model.ctx is not None else ():
            e = getattr(model.ctx, name).export()
            t[f"ctx.{name}.weight"] = e.weight.to(torch.int16)
            t[f"ctx.{name}.bias"] = e.bias.to(torch.int64)
        # the integer tables: compressai's own update() (its quantized CDFs at 16-bit precision,
        # every symbol >= 1, the last one the overflow symbol, which gencodec never codes: the
        # encoder clamps to the table), computed once here and stored, never recomputed
        eb = model.entropy_bottleneck
        # the hyper-latent tables span the quantiles of the learned density itself (compressai's
        # bisection), not the slowly learned quantile parameters: those lag behind the density
        # (hyper-latents past a table's end are clamped, and then choose wrong tables)
        learned = eb.quantiles.detach().clone()
        eb.update(force=True, update_quantiles=True)
        med = eb._get_medians().reshape(-1).float().clone()  # the density's median too
        eb.quantiles.copy_(learned)  # the training model is left as it was
        gc = model.gaussian
        gc.update_scale_table(torch.tensor(scale_table(cfg), dtype=torch.float32), force=True)
        minima = (-eb._offset).long()
        widths = np.concatenate([(eb._cdf_length - 1).numpy(), (gc._cdf_length - 1).numpy()]).astype(np.int64)
        halves = (-gc._offset).numpy().astype(np.int64)
        kmax = int(widths.max())
        bank = np.zeros((cfg.N + cfg.n_scales, kmax), dtype=np.int64)
        for r, (cdf, n) in enumerate(zip([*eb._quantized_cdf, *gc._quantized_cdf], widths)):
            bank[r, :n] = np.diff(cdf[: n + 1].numpy().astype(np.int64))
        scales = scale_table(cfg)
        thresholds = np.floor(scales[:-1] * 2.0**model.h_s.l3.acc_frac_bits).astype(np.int64)
        t["medians"] = med.contiguous()
        t["tables.flat"] = torch.from_numpy(np.concatenate([bank[r, :n] for r, n in enumerate(widths)]).astype(np.int32))
        t["tables.widths"] = torch.from_numpy(widths.astype(np.int32))
        t["z.lo"] = minima.to(torch.int32)
        t["y.halves"] = torch.from_numpy(halves.astype(np.int32))
        t["scale.thresholds"] = torch.from_numpy(thresholds)
        return cls(cfg, t)

    # -- storage ----------------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        return self.cfg.to_dict()

    def id_config(self) -> dict[str, Any]:
        return dict(arch=self.arch, **self.cfg.to_dict())

    def state(self) -> dict[str, torch.Tensor]:
        return dict(self._tensors)

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor],
                   model_id: bytes | None = None) -> "ExactHyperprior":
        from ..errors import GencodecError

        try:
            cfg = HyperpriorConfig.from_dict(config)
        except (ValueError, TypeError) as e:
            raise GencodecError(f"hyperprior model: bad config ({e})") from None
        return cls(cfg, tensors, model_id=model_id)

    def save(self, path, card: dict[str, Any] | None = None) -> None:
        from . import modelfile

        modelfile.save(self, path, card=card)

    # -- shapes and schedule ----------------------------------------------------------------------
    def scales(self) -> np.ndarray:
        """The Gaussian tables' scales (n_scales,) float64: what a scale index stands for."""
        return scale_table(self.cfg)

    def symbol_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """Symbols of an image of this size (padded to multiples of 64)."""
        return (self.cfg.N + 16 * self.cfg.M, -(-height // 64), -(-width // 64))

    def symbol_shape_of(self, z: np.ndarray) -> tuple[int, int, int]:
        return (self.cfg.N + 16 * self.cfg.M, z.shape[1], z.shape[2])

    def n_z(self, shape) -> int:
        return self.cfg.N * shape[1] * shape[2]

    def phases(self, height: int, width: int) -> list[np.ndarray]:
        """The latents' coding phases, flat indices into (M, H, W): one, or the checkerboard's two
        (row + column even, then odd)."""
        n = self.cfg.M * height * width
        if self.cfg.context == "none":
            return [np.arange(n, dtype=np.int64)]
        first = np.broadcast_to(anchors(height, width)[0, 0].numpy() > 0, (self.cfg.M, height, width)).reshape(-1)
        return [np.flatnonzero(first), np.flatnonzero(~first)]

    def phase_starts(self, shape) -> list[int]:
        """Where each phase's symbols begin (after the hyper-latents)."""
        nz = self.n_z(shape)
        if self.cfg.context == "none":
            return [nz]
        return [nz, nz + 8 * self.cfg.M * shape[1] * shape[2]]  # two halves of the (M, 4h, 4w) latents

    def schedule(self, shape):
        from ..exact.contract import Schedule
        from ..exact.driver import CHUNK_ROWS

        assert self.CHUNK <= CHUNK_ROWS
        n = int(np.prod(shape))
        bounds = [0, *self.phase_starts(shape), n]  # no group crosses a phase: its tables need the one before
        starts = [s for a, b in zip(bounds, bounds[1:]) for s in range(a, b, self.CHUNK)]
        ends = starts[1:] + [n]
        groups = tuple(np.arange(a, b, dtype=np.int64) for a, b in zip(starts, ends))
        return Schedule(groups, n, rounds=tuple(range(len(groups))))

    def z_rows(self, shape) -> np.ndarray:
        """Table rows of the hyper-latent symbols, (N h w,): the channel."""
        return np.repeat(np.arange(self.cfg.N, dtype=np.int64), shape[1] * shape[2])

    # -- the exact part -------------------------------------------------------------------------
    def z_values(self, z_cols: np.ndarray) -> np.ndarray:
        """Hyper-latent columns (N, h, w) -> symbols round(z - median) (int64)."""
        return z_cols.astype(np.int64) - self.z_lo[:, None, None]

    def hyper_state(self, z_sym: np.ndarray):
        """Exact h_s: hyper-latent symbols (N, h, w) -> (means on the 2**-mean_frac_bits grid as
        integers (M, 4h, 4w) int64, scale indices (M, 4h, 4w) int64, the last layer's accumulator
        and the hidden activations before it (float64 integers, for a context model))."""
        cfg = self.cfg
        zf = (z_sym.astype(np.float32) + self.medians[:, None, None]) * np.float32(2**cfg.z_frac_bits)
        zf = np.clip(np.round(zf), -cfg.z_max, cfg.z_max)
        x = torch.from_numpy(zf.astype(np.float64))[None]
        h_s, M2 = self.h_s, 2 * cfg.M

        def run(z: torch.Tensor) -> torch.Tensor:
            mid = h_s["l2"](h_s["l1"](z))
            return torch.cat([h_s["l3"](mid), mid], dim=1)

        with torch.no_grad():
            out = tiled(run, x, EXACT_TILE // 4, EXACT_MARGIN, 4)
        acc, mid = out[:, :M2], out[:, M2:]
        return (*self._tables_of(acc), acc, mid)

    def _tables_of(self, acc: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """An accumulator (1, 2M, H, W) -> (means on their grid as integers, scale indices), int64."""
        from ..exact.quant import requantize

        cfg = self.cfg
        means = requantize(acc[0, : cfg.M], self.acc_frac_bits - cfg.mean_frac_bits, -cfg.mean_max, cfg.mean_max)
        idx = np.searchsorted(self.thresholds, acc[0, cfg.M :].numpy().astype(np.int64), side="left")
        return means.numpy().astype(np.int64), idx.astype(np.int64)

    def context_tables(self, values: np.ndarray, means: np.ndarray, acc: torch.Tensor,
                       mid: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Exact checkerboard context: the first half's latent symbols (M, H, W) int64 (0 elsewhere)
        and h_s's means, accumulator and hidden features -> (means, scale indices) where the
        context applies (its values at first-half positions are not used)."""
        cfg = self.cfg
        first = anchors(values.shape[1], values.shape[2])[0].numpy() > 0
        y = np.where(first, values * 2**cfg.mean_frac_bits + means, 0)
        y = torch.from_numpy(np.clip(y, -cfg.ctx_max, cfg.ctx_max).astype(np.float64))[None]
        ctx = self.ctx

        def run(t: torch.Tensor) -> torch.Tensor:
            return ctx["e2"](ctx["e1"](torch.cat([t[:, cfg.M:], ctx["c"](t[:, :cfg.M])], dim=1)))

        with torch.no_grad():
            return self._tables_of(acc + tiled(run, torch.cat([y, mid], dim=1), EXACT_TILE, EXACT_MARGIN))

    def tables(self, z_sym: np.ndarray) -> _Tables:
        return _Tables(self, z_sym)

    @staticmethod
    def _key(shape, known: np.ndarray) -> bytes:
        return hashlib.blake2b(repr(tuple(shape)).encode() + np.ascontiguousarray(known, np.int64).tobytes(),
                               digest_size=16).digest()

    def remember(self, shape, known: np.ndarray, tables: _Tables) -> None:
        """Keep the complete tables a decoder computed from these symbols (all before the last phase)."""
        self._memo = (self._key(shape, known), tables)

    def complete_tables(self, symbols: np.ndarray) -> _Tables:
        """Every phase's tables for a whole symbol array (the decoder's own, when it just decoded them)."""
        flat = symbols.reshape(-1).astype(np.int64, copy=False)
        starts = self.phase_starts(symbols.shape)
        memo = self._memo
        if memo is not None and memo[0] == self._key(symbols.shape, flat[: starts[-1]]):
            return memo[1]
        nz = starts[0]
        tables = self.tables(self.z_values(flat[:nz].reshape(self.cfg.N, symbols.shape[1], symbols.shape[2])))
        for at in starts:
            perm = tables.open()
            values, over, _ = tables.columns(perm, flat[at : at + perm.size])
            tables.known(perm, values, over)
        return tables

    # -- the contract -----------------------------------------------------------------------------
    def parallel(self, symbols: np.ndarray, tables: _Tables | None = None):
        """The encoder's pass. tables: these symbols' tables where the encoder just computed them
        (:attr:`Analysis.tables`, built phase by phase as the decoder builds them); default:
        computed here from the symbols."""
        tables = self.complete_tables(symbols) if tables is None else tables
        rows = np.concatenate([self.z_rows(symbols.shape), *(tables.rows(perm) for perm in tables.perms)])
        return lambda idx: rows[idx]

    def session(self, shape):
        return _Session(self, shape)

    def freqs(self, rows: np.ndarray):
        widths = self.widths[rows]
        k = int(widths.max()) if widths.size else 1
        tables = self.bank[rows, :k]
        return tables, (2.0**self.cfg.table_bits + (k - widths)).astype(np.float64)

    def coding(self):
        from ..exact.quant import exact_mode

        return exact_mode()

    # -- the float transforms ---------------------------------------------------------------------
    def gains(self, quality: float) -> tuple[torch.Tensor, torch.Tensor]:
        level = torch.tensor([float(quality) - 1.0])
        with torch.no_grad():
            return interpolated_gains(*self._log_gains, level)

    @torch.no_grad()
    def analyse(self, rgb: np.ndarray) -> "Analysis":
        """(H, W, 3) uint8 -> the encoder's analysis, reusable across qualities (:meth:`Analysis.at`)."""
        if self.decode_only:
            from ..errors import GencodecError

            raise GencodecError(f"hyperprior model {self.model_id.hex()} is decode-only (an archived model): it "
                                "decodes the files it wrote but cannot encode")
        return Analysis(self, rgb)

    @torch.no_grad()
    def synthesise(self, symbols: np.ndarray, quality: float, height: int, width: int,
                   escapes: np.ndarray | None = None) -> np.ndarray:
        """Symbols (N + 16 M, h, w) and the escaped latents (in coding order) -> (H, W, 3) uint8
        (the decoder). ValueError if the escapes do not match the overflow symbols."""
        nz = self.n_z(symbols.shape)
        flat = symbols.reshape(-1)
        tables = self.complete_tables(symbols)
        escapes = np.zeros(0, np.int64) if escapes is None else np.asarray(escapes, np.int64)
        y = np.empty(tables.means.size, dtype=np.int64)
        at, n_over, fits = nz, 0, True
        for perm in tables.perms:
            values, over, h = tables.columns(perm, flat[at : at + perm.size].astype(np.int64))
            esc = escapes[n_over : n_over + int(over.sum())]
            n_over += int(over.sum())
            fits = fits and esc.size == int(over.sum()) and bool(np.all(np.abs(esc) > h[over]))
            if fits:
                values[over] = esc
            y[perm] = values
            at += perm.size
        if not fits or n_over != escapes.size:
            raise ValueError(f"{n_over} overflow symbols, {escapes.size} escaped values that fit them")
        return self._pixels(y.reshape(tables.means.shape), tables.means, quality, height, width)

    @staticmethod
    def synthesis_tiles(height: int, width: int) -> list[Tile]:
        """The tiles g_s runs in over latents of height x width (one: the whole)."""
        return tiles(height, width, SYNTH_TILE, SYNTH_MARGIN)

    @torch.no_grad()
    def _pixels(self, y_sym, means, quality, height, width) -> np.ndarray:
        y_hat = torch.from_numpy((y_sym.astype(np.float32) + means.astype(np.float32) / 2**self.cfg.mean_frac_bits))
        _, igain = self.gains(quality)
        y_in = (y_hat[None] * igain).contiguous(memory_format=torch.channels_last)
        x = tiled(self.g_s, y_in, SYNTH_TILE, SYNTH_MARGIN, 16)[0, :, :height, :width]
        return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


class Analysis:
    """The encoder's work for one image: ``y = g_a(x)`` once; :meth:`at` gives the symbols for a
    quality (gain, h_a, exact h_s, rounding) so that rate control tries qualities cheaply."""

    def __init__(self, model: ExactHyperprior, rgb: np.ndarray):
        self.model = model
        self.clamped = 0  # hyper-latents of the last :meth:`at` beyond their tables (coded at the ends)
        self.escapes = np.zeros(0, np.int64)  # latents beyond their tables, in coding order (exact)
        self.tables: _Tables | None = None  # the last :meth:`at`'s tables (every phase), as the decoder computes them
        self.height, self.width = rgb.shape[:2]
        ph, pw = -(-self.height // 64) * 64, -(-self.width // 64) * 64
        x = torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).float().div(255)[None]
        self.x = x  # the image (1, 3, H, W) in [0, 1]: what refinement measures its distortion against
        if (ph, pw) != (self.height, self.width):  # pad by edge replication; the decoder crops
            x = torch.nn.functional.pad(x, (0, pw - self.width, 0, ph - self.height), mode="replicate")
        with torch.no_grad():
            x = x.contiguous(memory_format=torch.channels_last)
            self.y = tiled(model.g_a, x, ANALYSIS_TILE, ANALYSIS_MARGIN, Fraction(1, 16)).contiguous()

    @torch.no_grad()
    def at(self, quality: float, refine: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """-> (symbols (N + 16 M, h, w) int64, latent symbols (M, 4h, 4w), means (M, 4h, 4w) ints).

        A latent beyond its table is coded as the table's overflow symbol and its value kept in
        :attr:`escapes` (in coding order), which the payload carries: latents are never clamped
        (they feed no table). Hyper-latents beyond their tables are clamped to them (they choose
        the tables; both sides use the clamped values): :attr:`clamped` counts them.

        refine: an effort level (0: none) -- move the latents toward a lower rate-distortion cost
        for this image first (:mod:`.hyperprior_refine`; the hyper-latents stay the analysis's):
        120 (effort 1) or 450 (effort 2) passes of the synthesis and its gradient instead of none."""
        m, cfg = self.model, self.model.cfg
        gain, _ = m.gains(quality)
        y = self.y * gain
        z = m.h_a(y)[0].numpy()
        med = m.medians[:, None, None]
        z_sym = np.round(z - med).astype(np.int64)
        hi = (m.widths[: cfg.N] - 2 - m.z_lo)[:, None, None]  # the last column: compressai's overflow symbol, unused
        clipped = np.clip(z_sym, -m.z_lo[:, None, None], hi)
        self.clamped = int(np.count_nonzero(clipped != z_sym))
        z_sym = clipped
        y = y[0].numpy()
        sym, y_sym, tables, escapes = self._quantize(y, z_sym)
        if refine:
            from .hyperprior_refine import refine_latents

            y = refine_latents(m, self.x, y, tables, quality, lambda yr: self._quantize(yr, z_sym)[2], effort=refine)
            sym, y_sym, tables, escapes = self._quantize(y, z_sym)
        self.escapes, self.tables = escapes, tables
        return sym, y_sym, tables.means

    def _quantize(self, y: np.ndarray, z_sym: np.ndarray) -> tuple[np.ndarray, np.ndarray, _Tables, np.ndarray]:
        """Gained latents (M, 4h, 4w) and hyper-latent symbols -> (symbols, latent symbols, the
        tables of every phase, escaped latents in coding order)."""
        m, cfg = self.model, self.model.cfg
        tables = m.tables(z_sym)
        y_flat = y.reshape(-1)
        y_sym = np.empty(y_flat.size, np.int64)
        cols, escapes = [], []
        for _ in tables.phases:
            perm = tables.open()
            mu = tables.means.reshape(-1)[perm].astype(np.float32) / np.float32(2**cfg.mean_frac_bits)
            h = tables.halves(perm)
            v = np.round(y_flat[perm] - mu).astype(np.int64)
            over = np.abs(v) > h
            tables.known(perm, v, over)
            y_sym[perm] = v
            cols.append(np.where(over, 2 * h + 1, v + h))  # 2h + 1: the overflow symbol
            escapes.append(v[over])
        sym = np.concatenate([(z_sym + m.z_lo[:, None, None]).reshape(-1), *cols]).reshape(m.symbol_shape_of(z_sym))
        return sym, y_sym.reshape(tables.means.shape), tables, np.concatenate(escapes)

    def pixels(self, y_sym: np.ndarray, means: np.ndarray, quality: float) -> np.ndarray:
        """What the decoder will restore from these latents, (H, W, 3) uint8."""
        return self.model._pixels(y_sym, means, quality, self.height, self.width)
