"""The hyperprior recipe: random crops from a folder -> one model for the whole quality ladder.

Each crop of a batch draws a ladder level (its lambda and its gain vector); the loss is
``lambda * 255**2 * MSE + bits per pixel`` (with ``distortion="ms-ssim"`` in the config,
``lambda * (1 - MS-SSIM) + bits per pixel``, pytorch-msssim's) averaged over the batch, plus the entropy bottleneck's
quantile loss (compressai's aux loss, same optimizer: it moves only the quantiles). The
hyper-synthesis is fake-quantized from the first step, so the exact export computes what training
saw. Validation: fixed centre crops of the held-out images at every level (bpp from the model's
likelihoods of the rounded latents, PSNR of the reconstruction); the loss is their mean RD cost.

Example::

    card = train_hyperprior("photos/", "hp.safetensors", steps=20000, workdir="runs/hp")
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..models.hyperprior import (CTX_LAYERS, DISTORTIONS, EXACT_LAYERS, MS_SSIM_LAMBDAS, Hyperprior,
                                 HyperpriorConfig)
from ..models.hyperprior_refine import fast_dtype
from .data import CropSampler, TorchCropSampler, load_folder, val_crops
from .loop import LoopConfig, finished_run, machine, open_run, train, write_card


@dataclass(frozen=True)
class HyperpriorRecipe:
    crop: int = 128  # side of the square training crops (a multiple of 64)
    batch: int = 8
    lr: float = 3e-4
    seed: int = 0
    downscale: int = 2  # area-downscaling of images not known to be lossless (washes out JPEG blocks)
    val_glob: str | None = None
    val_size: int = 256
    threads: int = 2
    val_every: int = 1000
    precision: str = "fp32"  # "bf16": the float transforms under bfloat16 autocast while training (see Hyperprior.autocast)


#: training precisions of the float transforms (``HyperpriorRecipe.precision``)
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def _crops64(crops: list[np.ndarray]) -> list[np.ndarray]:
    """Validation crops cut to multiples of 64 (the model's stride); smaller ones dropped."""
    out = []
    for c in crops:
        h, w = c.shape[1] // 64 * 64, c.shape[2] // 64 * 64
        if h and w:
            out.append(np.ascontiguousarray(c[:, :h, :w]))
    return out


#: MS-SSIM's five scales need a side above 160 pixels (pytorch-msssim's 11-tap window, four halvings)
MS_SSIM_MIN_SIDE = 192


def ms_ssim_of(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-image MS-SSIM (B,) of images in [0, 1], both sides at least :data:`MS_SSIM_MIN_SIDE`."""
    from pytorch_msssim import ms_ssim

    return ms_ssim(x_hat.float(), x.float(), data_range=1.0, size_average=False)


@torch.no_grad()
def evaluate(model: Hyperprior, crops: list[np.ndarray]) -> dict[str, float]:
    """Per ladder level: bpp (model likelihoods, eval-mode rounding) and PSNR (with an MS-SSIM
    model also MS-SSIM, averaged over the crops large enough for it); ``loss`` their mean RD cost."""
    model.eval()
    device = next(model.parameters()).device
    ms = model.cfg.distortion == "ms-ssim"
    res: dict[str, float] = {}
    costs = []
    for lv, lam in enumerate(model.cfg.lambdas):
        bits = sq = pixels = 0.0
        ssims = []
        for c in crops:
            x = torch.from_numpy(c).float().div(255)[None].to(device)
            o = model(x, torch.tensor([float(lv)], device=device))
            bits += float(o["bits"].sum())
            xh = (o["x_hat"].clamp(0, 1) * 255).round()
            sq += float(((xh - x * 255) ** 2).sum())
            pixels += c.shape[1] * c.shape[2]
            if ms and min(c.shape[1:]) >= MS_SSIM_MIN_SIDE:
                ssims.append(float(ms_ssim_of(xh / 255, x)[0]))
        bpp = bits / pixels
        mse = sq / (3 * pixels)
        psnr = 10 * math.log10(255**2 / max(mse, 1e-12))
        res[f"bpp_q{lv + 1}"] = bpp
        res[f"psnr_q{lv + 1}"] = psnr
        if ms:
            res[f"msssim_q{lv + 1}"] = float(np.mean(ssims))
            costs.append(lam * (1 - res[f"msssim_q{lv + 1}"]) + bpp)
        else:
            costs.append(lam * mse + bpp)
    res["loss"] = float(np.mean(costs))
    return res


def train_hyperprior(data: str | Path, out: str | Path, steps: int = 20000, resume: bool = False,
                     workdir: str | Path | None = None, config: HyperpriorConfig = HyperpriorConfig(),
                     recipe: HyperpriorRecipe = HyperpriorRecipe(), progress: bool | str = True,
                     stop_after: int | None = None, device: str = "cpu", export: bool = True,
                     init_from: str | Path | None = None) -> dict[str, Any]:
    """Train on ``data``; export the best checkpoint to ``out`` with its card (.json beside it).

    init_from: start from a checkpoint of a run with the same config (``best.pt`` / ``last.pt``)
    or from an exported model file (:func:`start_from`) instead of a fresh init."""
    if recipe.crop % 64:
        raise ValueError(f"crop {recipe.crop} is not a multiple of 64")
    if recipe.precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {recipe.precision!r}")
    if recipe.precision == "bf16" and device == "cpu" and fast_dtype() is None and progress:
        print("note: this CPU has no native bfloat16 (AVX-512 BF16 or AMX): bf16 steps are emulated and run "
              "many times slower than fp32 (--precision fp32)", file=sys.stderr, flush=True)
    setup = dict(config=config.to_dict(), recipe=asdict(recipe), steps=steps, data=str(data),
                 init_from=str(init_from) if init_from else None)
    out, workdir = open_run(out, workdir, setup, resume, recipe.threads,
                            defaults=dict(recipe=dict(precision="fp32")))  # runs from before the field

    t_start = time.time()
    images = load_folder(data, downscale=recipe.downscale, val_glob=recipe.val_glob)
    crops = _crops64(val_crops(images.val, recipe.val_size))
    if not crops:
        raise ValueError(f"{data}: no validation images of at least 64x64 (check val_glob)")
    if config.distortion == "ms-ssim":
        if recipe.crop < MS_SSIM_MIN_SIDE:
            raise ValueError(f"MS-SSIM training needs crops of at least {MS_SSIM_MIN_SIDE}, not {recipe.crop}")
        if not any(min(c.shape[1:]) >= MS_SSIM_MIN_SIDE for c in crops):
            raise ValueError(f"{data}: MS-SSIM validation needs a held-out image of at least "
                             f"{MS_SSIM_MIN_SIDE}x{MS_SSIM_MIN_SIDE} (check val_glob)")
    if torch.device(device).type == "cpu":
        sampler = CropSampler(images.train, recipe.crop, recipe.seed)
    else:
        sampler = TorchCropSampler(images.train, recipe.crop, recipe.seed, device=device)
    torch.manual_seed(recipe.seed)
    model = Hyperprior(config)
    if init_from is not None and not (resume and (workdir / "last.pt").exists()):
        model = start_from(init_from, config)
        if Path(init_from).suffix != ".pt":  # an exported file keeps only the bottleneck's tables
            fit_bottleneck(model, sampler, recipe.batch, recipe.seed)
    # on CPUs the channels-last layout makes a training step about 12 % faster (oneDNN convolutions)
    layout = torch.channels_last if torch.device(device).type == "cpu" else torch.contiguous_format
    model = model.to(device, memory_format=layout)
    model.autocast = PRECISIONS[recipe.precision]
    lambdas = torch.tensor(config.lambdas, device=device)
    L = config.levels

    def batch_fn(step: int):
        b = sampler.batch(step, recipe.batch)
        x = (torch.from_numpy(b) if isinstance(b, np.ndarray) else b).float().div(255).to(device)
        x = x.contiguous(memory_format=layout)
        g = torch.Generator().manual_seed(recipe.seed * 1_000_003 + step)
        level = torch.randint(0, L, (recipe.batch,), generator=g).to(device)
        return x, level

    def loss_fn(m: Hyperprior, batch, step: int) -> torch.Tensor:
        x, level = batch
        o = m(x, level.float())
        pixels = x.shape[2] * x.shape[3]
        bpp = o["bits"] / pixels
        if config.distortion == "ms-ssim":
            rd = lambdas[level] * (1 - ms_ssim_of(o["x_hat"], x)) + bpp
        else:
            rd = lambdas[level] * 255**2 * o["mse"] + bpp
        aux = m.aux_loss()
        # shown beside the loss: the batch's bits per pixel and PSNR (over its mix of ladder levels), and
        # the bottleneck's quantile loss, which only moves its quantiles (the export recomputes them)
        psnr = -10 * torch.log10(o["mse"].detach().float().clamp_min(1e-10))
        return rd.mean() + aux, dict(rd=rd.mean(), bpp=bpp.mean(), psnr=psnr.mean(), aux=aux)

    def val_fn(m: Hyperprior, step: int) -> dict[str, float]:
        return evaluate(m, crops)

    loop_cfg = LoopConfig(steps=steps, lr=recipe.lr, warmup=200, val_every=recipe.val_every, progress=progress,
                          stop_after=stop_after)
    result = train(model, loop_cfg, workdir, batch_fn, loss_fn, val_fn, resume=resume, unit="rd + aux",
                   no_clip=lambda name: name.endswith("quantiles"))
    card = dict(model="hyperprior", config=config.to_dict(), recipe=asdict(recipe), steps=result["step"],
                train_seconds=round(result["seconds"], 1), wall_seconds_this_run=round(time.time() - t_start, 1),
                machine=machine(device, recipe.threads), data=images.describe(),
                validation_crops=f"centre crops (at most {recipe.val_size}, multiples of 64) of {len(crops)} held-out images")
    (workdir / "card_partial.json").write_text(json.dumps(card, indent=1))
    if export:
        card = export_run(workdir, out, card)
    return card


#: JPEG qualities of the validation anchor curve (the bench's JPEG: 4:2:0, optimized Huffman)
JPEG_QUALITIES = (10, 20, 30, 40, 50, 60, 70, 80, 90, 95)


def jpeg_curve(crops: list[np.ndarray]) -> tuple[list[float], list[float]]:
    """The bench's JPEG codec on the validation crops at :data:`JPEG_QUALITIES`: (bits per pixel,
    PSNR), each pooled over the crops as :func:`exact_results` pools them (payload bytes: neither
    side counts a frame)."""
    import io

    from PIL import Image

    from ..registry import get_codec

    jpeg = get_codec("jpeg")
    bpps, psnrs = [], []
    for q in JPEG_QUALITIES:
        bits = sq = pixels = 0.0
        for c in crops:
            rgb = np.ascontiguousarray(c.transpose(1, 2, 0))
            payload = jpeg.encode(Image.fromarray(rgb), quality=q).payload
            px = np.asarray(Image.open(io.BytesIO(payload)).convert("RGB"), np.float64)
            bits += 8 * len(payload)
            sq += float(((px - rgb) ** 2).sum())
            pixels += rgb.shape[0] * rgb.shape[1]
        bpps.append(bits / pixels)
        psnrs.append(10 * math.log10(255**2 / max(sq / (3 * pixels), 1e-12)))
    return bpps, psnrs


def bd_rate_vs_jpeg(res: dict[str, float], levels: int, crops: list[np.ndarray]) -> float | None:
    """BD-rate (%) of the levels' (bpp, PSNR) against JPEG on the same crops: the measure the
    benchmark's targets use, for rules that pick a model on validation data."""
    from ..bench.metrics import bd_rate

    jb, jp = jpeg_curve(crops)
    return bd_rate(jb, jp, [res[f"bpp_q{k}"] for k in range(1, levels + 1)],
                   [res[f"psnr_q{k}"] for k in range(1, levels + 1)])


def exact_results(exact, crops: list[np.ndarray]) -> dict[str, float]:
    """The exported model on the validation crops, per ladder level: real coded bits per pixel
    (the range coder's stream) and PSNR of what the decoder restores; and the BD-rate of those
    points against JPEG on the same crops (``bd_rate_vs_jpeg``, percent)."""
    from ..codecs.hyperprior import pack_escapes
    from ..exact import driver

    res: dict[str, float] = {}
    for q in range(1, exact.cfg.levels + 1):
        bits = sq = pixels = 0.0
        for c in crops:
            rgb = np.ascontiguousarray(c.transpose(1, 2, 0))
            an = exact.analyse(rgb)
            sym, y_sym, means = an.at(q)
            stream, _ = driver.encode(exact, sym)
            px = an.pixels(y_sym, means, q)
            bits += 8 * (len(stream) + 4 + len(pack_escapes(an.escapes)))
            sq += float(((px.astype(np.float64) - rgb) ** 2).sum())
            pixels += rgb.shape[0] * rgb.shape[1]
        res[f"bpp_q{q}"] = bits / pixels
        res[f"psnr_q{q}"] = 10 * math.log10(255**2 / max(sq / (3 * pixels), 1e-12))
    bd = bd_rate_vs_jpeg(res, exact.cfg.levels, crops)
    if bd is not None:
        res["bd_rate_vs_jpeg"] = bd
    return res


def export_run(workdir: str | Path, out: str | Path, card: dict[str, Any] | None = None,
               data: str | Path | None = None) -> dict[str, Any]:
    """Export ``workdir/best.pt`` (its config from ``setup.json``) to ``out`` + card: the model card
    gets the best step, the fake-quantized model's validation numbers and the exact model's (coded
    streams, restored pixels) on the same crops."""
    out = Path(out)
    setup, partial, best = finished_run(workdir, dict(model="hyperprior"))
    cfg = HyperpriorConfig.from_dict(setup["config"])
    recipe = HyperpriorRecipe(**setup["recipe"])
    card = partial if card is None else card
    model = Hyperprior(cfg)
    model.load_state_dict(best["model"])
    model.eval()
    images = load_folder(data or setup["data"], downscale=recipe.downscale, val_glob=recipe.val_glob)
    crops = _crops64(val_crops(images.val, recipe.val_size))
    exact = model.export()
    card = dict(card, config=exact.cfg.to_dict(), model_id=exact.model_id.hex(), best_step=best["step"], n_params=sum(
        p.numel() for p in model.parameters()), validation=dict(model=best["val"], exact=exact_results(exact, crops)))
    exact.save(out, card=dict(model_id=card["model_id"], steps=card.get("steps"), best_step=card["best_step"]))
    write_card(out, card)
    return card


def start_from(path: str | Path, config: HyperpriorConfig) -> Hyperprior:
    """A trainable model with the weights of a checkpoint (``best.pt`` / ``last.pt``, same config) or of
    an exported model file: its float16 transforms and gains, its integer hyper-synthesis (exactly
    as trained), and a fresh entropy bottleneck (the file keeps only its tables; :func:`train_hyperprior`
    fits it with :func:`fit_bottleneck` before the first step). The ladder may be extended upwards, a
    source without context may start a model with one (the context starts at zero: the new model
    codes as the source did), and the latent may be widened (:func:`widen`: the new model restores
    the source's pixels)."""
    path = Path(path)
    if path.suffix == ".pt":
        model = Hyperprior(config)
        state = torch.load(path, map_location="cpu", weights_only=True)["model"]
        if state["log_gain"].shape[0] < config.levels:  # the source's ladder, extended upwards
            state = dict(state, log_gain=extend_ladder(state["log_gain"], config.levels),
                         log_igain=extend_ladder(state["log_igain"], config.levels))
        adds_context = model.ctx is not None and not any(k.startswith("ctx.") for k in state)
        missing, unexpected = model.load_state_dict(state, strict=not adds_context)
        if unexpected or any(not k.startswith("ctx.") for k in missing):
            raise ValueError(f"{path}: its weights do not fit this run's config")
        return model
    from ..models import zoo

    exact = zoo.load(path, "hyperprior")
    if exact.decode_only:
        raise ValueError(f"{path}: a decode-only model (an archive's form, without g_a and h_a): train from "
                         "the whole model")
    src = exact.cfg
    lams = tuple(src.lambdas)
    ctx = dict(context=config.context, ctx_ch=config.ctx_ch, ctx_max=config.ctx_max) if src.context == "none" else {}
    wider = dict(M=config.M, hs_ch=config.hs_ch, ctx_ch=config.ctx_ch) if config.M > src.M else {}
    if (replace(src, lambdas=config.lambdas, **{**ctx, **wider}) != config or tuple(config.lambdas[: len(lams)]) != lams
            or config.M < src.M):
        raise ValueError(f"{path}: its config differs from this run's (pass the same --config; the ladder "
                         "may only be extended upwards, a context only added, the latent only widened)")
    if wider:
        if config.hs_channels != src.hs_channels or (src.context != "none" and config.ctx_channels != src.ctx_channels):
            raise ValueError(f"{path}: widening the latent keeps h_s's and the context's hidden widths: pass "
                             f'"hs_ch": {src.hs_channels}' + (f', "ctx_ch": {src.ctx_channels}' if src.context != "none" else ""))
        narrow = replace(config, M=src.M, hs_ch=src.hs_ch, ctx_ch=src.ctx_ch if src.context != "none" else config.ctx_ch)
        if config.context != "none" and src.context == "none":
            narrow = replace(narrow, ctx_ch=config.ctx_channels)
        return widen(_from_exported(exact, path, narrow), config)
    return _from_exported(exact, path, config)


def _from_exported(exact, path: Path, config: HyperpriorConfig) -> Hyperprior:
    from safetensors.torch import load_file

    model = Hyperprior(config)
    t = load_file(str(path))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.split(".")[0] in ("g_a", "g_s", "h_a"):
                p.copy_(t[name].float())
        model.log_gain.copy_(extend_ladder(t["gain.log"], config.levels))
        model.log_igain.copy_(extend_ladder(t["gain.ilog"], config.levels))
        layers = [(f"h_s.{n}", getattr(model.h_s, n)) for n in EXACT_LAYERS]
        if exact.cfg.context != "none":
            layers += [(f"ctx.{n}", getattr(model.ctx, n)) for n in CTX_LAYERS]
        for name, q in layers:
            q.weight.copy_(t[f"{name}.weight"].double() / 2.0**q.w_fmt.frac_bits)
            q.bias.copy_(t[f"{name}.bias"].double() / 2.0**q.b_fmt.frac_bits)
    return model


@torch.no_grad()
def widen(src: Hyperprior, config: HyperpriorConfig, seed: int = 0) -> Hyperprior:
    """``src`` with more latent channels (``config.M`` > ``src.cfg.M``; everything else as in ``src``):
    the old channels keep their weights; each new one gets a fresh analysis filter (scaled to the old
    filters' mean norm), a synthesis input that starts at zero (so the new model restores what the old
    one did), zero weights into h_a and the context, a mean predicted as zero and a scale from the
    average of h_s's old scale rows, and the old channels' mean gains. So training can start to use
    the extra dimensions (the latent's width caps the transforms' fidelity at high rates)."""
    m0, M = src.cfg.M, config.M
    torch.manual_seed(seed)
    model = Hyperprior(config)
    old, new = src.state_dict(), model.state_dict()

    def rows2(o: torch.Tensor, n: torch.Tensor) -> None:  # (2*m0, ...) -> (2*M, ...): means, then scales
        n.zero_()
        n[:m0], n[M : M + m0] = o[:m0], o[m0:]

    for k, o in old.items():
        n = new[k]
        if o.shape == n.shape:
            n.copy_(o)
        elif k == "g_a.6.weight":
            norm = o.flatten(1).norm(dim=1).mean()
            n[:m0] = o
            n[m0:] *= norm / n[m0:].flatten(1).norm(dim=1).mean()
        elif k == "g_a.6.bias":
            n[:m0] = o
            n[m0:] = 0
        elif k in ("g_s.0.weight", "h_a.0.weight", "ctx.c.weight"):  # the latent as input: new ones unused
            n.zero_()
            if k == "g_s.0.weight":
                n[:m0] = o
            else:
                n[:, :m0] = o
        elif k in ("h_s.l3.weight", "h_s.l3.bias"):
            rows2(o, n)
            n[M + m0 :] = o[m0:].mean(0)  # new scales: the old scale rows' average
        elif k in ("ctx.e2.weight", "ctx.e2.bias"):
            rows2(o, n)  # no correction for the new channels yet
        elif k in ("log_gain", "log_igain"):
            n[:, :m0] = o
            n[:, m0:] = o.mean(1, keepdim=True)
        else:
            raise ValueError(f"cannot widen {k}: {tuple(o.shape)} -> {tuple(n.shape)}")
    model.load_state_dict(new)
    return model


def fit_bottleneck(model: Hyperprior, sampler, batch: int, seed: int, iters: int = 400, lr: float = 1e-2) -> float:
    """Fit the entropy bottleneck alone (and its quantiles) to the hyper-latents of training crops,
    the rest of the model frozen: a model started from an exported file has a fresh one (the file
    keeps only its tables). Crops come from step numbers the run never draws. -> its last rate, bits
    per hyper-latent."""
    eb = model.entropy_bottleneck
    device = next(model.parameters()).device
    opt = torch.optim.Adam(eb.parameters(), lr=lr)
    was = model.training
    model.train()
    L = model.cfg.levels
    bits = float("nan")
    for i in range(iters):
        b = sampler.batch(2**40 + i, batch)
        x = (torch.from_numpy(b) if isinstance(b, np.ndarray) else b).float().div(255).to(device)
        g = torch.Generator().manual_seed(seed * 1_000_003 + 2**40 + i)
        level = torch.randint(0, L, (batch,), generator=g).float().to(device)
        with torch.no_grad():
            gain, _ = model.gains(level)
            z = model.h_a(model.g_a(x) * gain)
        _, lik = eb(z)
        rate = -torch.log2(lik).sum() / z.numel()
        loss = rate + eb.loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
        bits = float(rate.detach())
    # the quantiles (and so the medians) of the fitted density, by compressai's bisection (the export's
    # update(update_quantiles=True) without building tables: a checkpoint's buffers keep their shapes)
    eb._update_quantiles()
    model.train(was)
    return bits


def extend_ladder(log_gains: torch.Tensor, levels: int) -> torch.Tensor:
    """(L, M) log gains -> (levels, M): the rows beyond L extrapolated from the last pair, as the
    codec extrapolates qualities beyond the ladder (a start for new, finer ladder points)."""
    n = log_gains.shape[0]
    if levels <= n:
        return log_gains[:levels].clone()
    if n < 2:
        return log_gains[-1:].repeat(levels, 1)
    step = log_gains[-1] - log_gains[-2]
    extra = log_gains[-1] + step * torch.arange(1, levels - n + 1, dtype=log_gains.dtype)[:, None]
    return torch.cat([log_gains, extra])


def recipe_from_options(**kw: Any) -> HyperpriorRecipe:
    return replace(HyperpriorRecipe(), **{k: v for k, v in kw.items() if v is not None})


def run(data: str | Path, out: str | Path, *, steps: int, resume: bool = False, workdir: str | Path | None = None,
        device: str = "cpu", progress: bool | str = True, config: dict[str, Any] | None = None,
        **options: Any) -> dict[str, Any]:
    """Entry point of ``gencodec train hyperprior`` (``lambdas``: the ladder, ``--lambda``; the same as
    the config's field, which may not also name one)."""
    cfg = HyperpriorConfig.from_dict(_config(config, options.pop("lambdas", None), options.pop("distortion", None)))
    init_from = options.pop("init_from", None)
    return train_hyperprior(data, out, steps=steps, resume=resume, workdir=workdir, config=cfg,
                            recipe=recipe_from_options(**options), progress=progress, device=device,
                            init_from=init_from)


def _config(config: dict[str, Any] | None, lambdas: list[float] | None, distortion: str | None) -> dict[str, Any]:
    """The config's fields with ``--lambda`` and ``--distortion`` in them; an MS-SSIM model without a
    ladder gets CompressAI's MS-SSIM lambdas (the default ladder is on MSE's scale)."""
    given = dict(config or {})
    out = {**HyperpriorConfig().to_dict(), **given}
    if distortion is not None:
        out["distortion"] = distortion
    if lambdas is not None:
        out["lambdas"] = list(lambdas)
    elif out.get("distortion") == "ms-ssim" and "lambdas" not in given:
        out["lambdas"] = list(MS_SSIM_LAMBDAS)
    return out


def check_options(config: dict[str, Any] | None = None, init_from: str | Path | None = None,
                  lambdas: list[float] | None = None, distortion: str | None = None, **options: Any) -> None:
    from .recipes import OptionError

    if lambdas is not None:
        if "lambdas" in (config or {}):
            raise OptionError("lambdas", "give the ladder once: --lambda or the config's \"lambdas\", not both")
        if any(b <= a for a, b in zip(lambdas, lambdas[1:])):
            raise OptionError("lambdas", "the ladder's lambdas must increase (quality 1 is the lowest rate)")
    if distortion is not None:
        if "distortion" in (config or {}) and config["distortion"] != distortion:
            raise OptionError("distortion", "give the distortion once: --distortion or the config's, not both")
        if distortion not in DISTORTIONS:
            raise OptionError("distortion", f"must be one of {', '.join(DISTORTIONS)}, not {distortion!r}")
    try:
        cfg = HyperpriorConfig.from_dict(_config(config, lambdas, distortion))
        if cfg.levels < 1:
            raise ValueError("lambdas must name at least one quality")
    except (ValueError, TypeError) as e:
        raise OptionError("config", str(e)) from None
    precision = options.get("precision")
    if precision is not None and precision not in PRECISIONS:
        raise OptionError("precision", f"--precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    crop = options.get("crop")
    if crop is not None and crop % 64:
        raise OptionError("crop", f"--crop {crop} is not a multiple of 64")
    if cfg.distortion == "ms-ssim" and (crop or HyperpriorRecipe.crop) < MS_SSIM_MIN_SIDE:
        raise OptionError("crop", f"MS-SSIM training needs --crop {MS_SSIM_MIN_SIDE} or more (its five scales), "
                                  f"not {crop or HyperpriorRecipe.crop}")
