"""The PixelCNN recipe: random crops from a folder -> trained model -> exact model file + model card.

Phases: the first ``1 - qat_fraction`` of the steps train the plain float network (fast to move),
the rest train with fake quantization (the exported integer model computes what it computed).
Validation (fixed centre crops of the held-out images) reports bits per subpixel of the float
and the fake-quantized network; the best fake-quantized checkpoint is exported, and the card
records the exact model's ideal bits on the same crops (the quantization loss).

Example::

    card = train_pixelcnn("photos/", "my-model.safetensors", steps=2000, workdir="runs/pixelcnn")
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import GencodecError
from ..models.pixelcnn import OPTIONAL_FEATURES, ExactPixelCNN, PixelCNN, PixelCNNConfig
from .data import CropSampler, TorchCropSampler, chroma_subsample, load_folder, val_crops
from .loop import LoopConfig, machine, open_run, train, write_text_atomic


@dataclass(frozen=True)
class PixelCNNRecipe:
    crop: int = 64  # side of the square training crops
    batch: int = 12  # crops per step
    lr: float = 2e-3  # peak Adam learning rate
    seed: int = 0  # seeds the crops and the initial weights
    downscale: int = 2  # area-downscaling of images not known to be lossless
    val_glob: str | None = None  # relative paths held out for validation (default: 5% by hash)
    val_size: int = 192  # side of the validation centre crops
    qat_fraction: float = 0.35  # final fraction of steps trained with fake quantization
    threads: int = 1  # torch CPU threads
    val_every: int = 1000
    chroma420: float = 0.0  # fraction of crops put through a JPEG-style 4:2:0 chroma round trip


def model_bpsp(model: PixelCNN, crops: list[np.ndarray], quantized: bool) -> float:
    bits, n = 0.0, 0
    device = next(model.parameters()).device
    for c in crops:
        x = torch.from_numpy(c).float()[None].to(device)
        bits += float(model(x, quantized=quantized).sum())
        n += c.size
    return bits / max(n, 1)


def exact_bpsp(exact: ExactPixelCNN, crops: list[np.ndarray]) -> float:
    """Ideal bits per subpixel of the exported integer model (what the coder pays, frame aside)."""
    bits = sum(exact.ideal_bits(c) for c in crops)
    return bits / max(sum(c.size for c in crops), 1)


def train_pixelcnn(
    data: str | Path,
    out: str | Path,
    steps: int = 6000,
    resume: bool = False,
    workdir: str | Path | None = None,
    config: PixelCNNConfig = PixelCNNConfig(),
    recipe: PixelCNNRecipe = PixelCNNRecipe(),
    progress: bool | str = True,
    stop_after: int | None = None,
    init_from: str | Path | None = None,
    device: str = "cpu",
    net: type[PixelCNN] = PixelCNN,
    start=None,
) -> dict[str, Any]:
    """Train on ``data`` (a folder of images), export the exact model to ``out`` (.safetensors)
    with its card beside it (same name, .json). Returns the card.

    stop_after: end this session after that step (checkpointed; ``resume=True`` continues) and
    export the best checkpoint so far. init_from: start from the weights of a checkpoint
    (``best.pt`` / ``last.pt`` of an earlier run with the same config) or of an exported model file
    (``.safetensors``, e.g. the shipped ``gencodec/weights/pixelcnn.safetensors``) instead of a fresh init.
    device: where training runs ("cpu", "cuda"); export and the exact model are always on the CPU.
    Training on a GPU changes float rounding in training only, never the exactness of coding; there the
    crops come from :class:`TorchCropSampler` (same law, other draws than on the CPU).
    net: the training model's class (a :class:`PixelCNN` or a subclass with a wider context, e.g.
    :class:`~gencodec.models.sparse_transformer.SparseTransformer`, whose config ``config`` is);
    start: ``start(init_from, config) -> model`` (default :func:`start_from`).
    """
    setup = dict(config=asdict(config), recipe=asdict(recipe), steps=steps, data=str(data),
                 init_from=str(init_from) if init_from else None)
    out, workdir = open_run(out, workdir, setup, resume, recipe.threads,  # fields added since keep their defaults
                            defaults=dict(config=asdict(type(config)()), recipe=asdict(PixelCNNRecipe())))

    t_start = time.time()
    images = load_folder(data, downscale=recipe.downscale, val_glob=recipe.val_glob)
    if not images.val:
        raise ValueError(f"{data}: no validation images (check val_glob)")
    if torch.device(device).type == "cpu":
        sampler = CropSampler(images.train, recipe.crop, recipe.seed, chroma420=recipe.chroma420)
    else:  # crops made where the model trains: an accelerator never waits for numpy
        sampler = TorchCropSampler(images.train, recipe.crop, recipe.seed, chroma420=recipe.chroma420, device=device)
    crops = val_crops(images.val, recipe.val_size)
    if recipe.chroma420 > 0:  # validate on both kinds of picture the model is trained for
        crops += [np.ascontiguousarray(chroma_subsample(c.transpose(1, 2, 0)).transpose(2, 0, 1)) for c in crops]
    torch.manual_seed(recipe.seed)
    model = net(config)
    if init_from is not None and not (resume and (workdir / "last.pt").exists()):
        model = (start or start_from)(init_from, config)
    model.to(device)
    qat_start = int(round((1 - recipe.qat_fraction) * steps))

    def batch_fn(step: int) -> torch.Tensor:
        b = sampler.batch(step, recipe.batch)
        return (torch.from_numpy(b) if isinstance(b, np.ndarray) else b).float().to(device)

    def loss_fn(m: PixelCNN, x: torch.Tensor, step: int) -> torch.Tensor:
        return m(x, quantized=step >= qat_start).mean()

    def val_fn(m: PixelCNN, step: int) -> dict[str, float]:
        q = model_bpsp(m, crops, quantized=True)
        f = model_bpsp(m, crops, quantized=False)
        return dict(loss=q, bpsp_quantized=q, bpsp_float=f)

    loop_cfg = LoopConfig(steps=steps, lr=recipe.lr, val_every=recipe.val_every, progress=progress,
                          stop_after=stop_after)
    result = train(model, loop_cfg, workdir, batch_fn, loss_fn, val_fn, resume=resume, unit="bpsp")

    best = torch.load(workdir / "best.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(best["model"])
    model.cpu().eval()
    with torch.no_grad():
        f = model_bpsp(model, crops, quantized=False)
        q = model_bpsp(model, crops, quantized=True)
    exact = model.export()
    e = exact_bpsp(exact, crops)
    card = dict(
        model=exact.arch,
        model_id=exact.model_id.hex(),
        config=asdict(config),
        recipe=asdict(recipe),
        steps=result["step"],
        init_from=str(init_from) if init_from else None,
        best_step=best["step"],
        train_seconds=round(result["seconds"], 1),
        wall_seconds_this_run=round(time.time() - t_start, 1),
        machine=machine(device, recipe.threads),
        n_params=sum(p.numel() for p in model.parameters()),
        validation=dict(
            crops=f"centre {recipe.val_size}x{recipe.val_size} of {len(images.val)} held-out images"
            + (" and their 4:2:0 chroma round trips" if recipe.chroma420 > 0 else ""),
            bpsp_float=f, bpsp_fake_quant=q, bpsp_exact_ideal=e,
            quantization_loss_pct=100 * (e / f - 1),
        ),
        data=images.describe(),
    )
    exact.save(out, card=dict(model_id=card["model_id"], steps=card["steps"]))
    write_text_atomic(out.with_suffix(".json"), json.dumps(card, indent=1) + "\n")
    return card


#: grid fields a run may refine when it starts from a model (see start_from): finer or wider, never coarser
REFINABLE_GRIDS = ("act_frac_bits", "w_frac_bits", "w_max", "out_w_frac_bits", "mean_frac_bits", "n_scales")
#: layer widths a run may increase when it starts from a model (see start_from)
WIDENABLE = ("hidden", "head_hidden")


def config_of(init_from: str | Path) -> PixelCNNConfig | None:
    """The model config of an exported model file or of a checkpoint whose run folder has its
    ``setup.json``; None for a checkpoint without one."""
    init_from = Path(init_from)
    if init_from.suffix == ".safetensors":
        return ExactPixelCNN.load(init_from).cfg
    setup = init_from.parent / "setup.json"
    if setup.is_file():
        saved = json.loads(setup.read_text())["config"]
        return PixelCNNConfig.from_dict({**asdict(PixelCNNConfig()), **saved})
    return None


def run_config(init_from: str | Path | None, changes: dict[str, Any]) -> PixelCNNConfig:
    """The config a run trains: ``init_from``'s (or the defaults) with ``changes`` applied, validated
    (what ``gencodec train --init-from M --config JSON`` means)."""
    base = (config_of(init_from) if init_from else None) or PixelCNNConfig()
    config = PixelCNNConfig.from_dict({**asdict(base), **changes})
    config.validate()
    return config


def _refines(old: PixelCNNConfig, new: PixelCNNConfig) -> bool:
    """new's grids hold every number old's do: as many fraction bits or more, bounds as wide or
    wider, scales over the same range (n_scales - 1 a multiple, so every old scale is a new one)."""
    return (new.act_frac_bits >= old.act_frac_bits and new.mean_frac_bits >= old.mean_frac_bits
            and new.w_frac_bits >= old.w_frac_bits and new.out_w_frac_bits >= old.out_w_frac_bits
            and new.w_max * 2.0**-new.w_frac_bits >= old.w_max * 2.0**-old.w_frac_bits
            and new.w_max * 2.0**-new.out_w_frac_bits >= old.w_max * 2.0**-old.out_w_frac_bits
            and (new.n_scales - 1) % (old.n_scales - 1) == 0
            and (new.log_scale_min, new.log_scale_max) == (old.log_scale_min, old.log_scale_max))


def start_from(init_from: str | Path, config: PixelCNNConfig) -> PixelCNN:
    """The training model for ``config`` starting from ``init_from``: an exported model file
    (.safetensors, its config inside) or a checkpoint (.pt; its config is the ``setup.json`` of its
    run folder, else assumed to be ``config``).

    The starting point may lack features this config switches on (``OPTIONAL_FEATURES``); they are added
    without changing what the model computes: the heads' new colour inputs get zero weights, and for
    finer means the mean outputs' weights are multiplied (the same mean in half or quarter levels, up
    to rounding to the finer grid). The config may also refine the grids (``REFINABLE_GRIDS``: more
    activation and weight fraction bits, wider weight bounds, more scales over the same range -- the
    scale outputs are multiplied so that every old scale index maps to the same scale), and widen the
    trunk or the heads (``WIDENABLE``: new units start with zero weight on everything downstream).
    """
    init_from = Path(init_from)
    if init_from.suffix == ".safetensors":  # an exported model file, e.g. the shipped one
        old = PixelCNN.from_exact(ExactPixelCNN.load(init_from))
    else:
        old_cfg = config_of(init_from) or config
        old = PixelCNN(old_cfg)
        old.load_state_dict(torch.load(init_from, map_location="cpu", weights_only=True)["model"])
    old_cfg = old.cfg
    differ = {f for f in asdict(config) if getattr(config, f) != getattr(old_cfg, f)}
    switched_on = {f for f in differ if f in OPTIONAL_FEATURES and getattr(old_cfg, f) == getattr(PixelCNNConfig, f)
                   and getattr(config, f) == OPTIONAL_FEATURES[f]}
    refined = {f for f in differ if f in REFINABLE_GRIDS} if _refines(old_cfg, config) else set()
    widened = {f for f in differ if f in WIDENABLE and getattr(config, f) > getattr(old_cfg, f)}
    if differ - switched_on - refined - widened:
        raise ValueError(f"{init_from}: its config differs from this run's in {sorted(differ)} (pass the same "
                         f"--config; only {sorted(OPTIONAL_FEATURES)} may be switched on, "
                         f"{list(REFINABLE_GRIDS)} refined and {list(WIDENABLE)} increased)")
    model = PixelCNN(config)
    mean_factor = 2.0 ** (config.mean_frac_bits - old_cfg.mean_frac_bits)
    scale_factor = (config.n_scales - 1) / (old_cfg.n_scales - 1)
    with torch.no_grad():
        for (role, new_layer), (_, old_layer) in zip(model.roles(), old.roles()):
            for name in ("weight", "bias"):
                o, v = getattr(old_layer, name).detach().clone(), getattr(new_layer, name)
                if o.shape != v.shape:
                    # the heads' first layers read [trunk output, extra inputs]: a wider trunk moves the extras
                    moved = (old_cfg.hidden, config.hidden) if role == "head_fc" else None
                    o = _grown(o, v.detach(), moved)
                if role == "head_out":  # row 0: the mean offset in 1/D levels, row 1: the scale index
                    o[0] *= mean_factor
                    o[1] *= scale_factor
                v.copy_(o)
    return model


def _grown(old: torch.Tensor, init: torch.Tensor, moved: tuple[int, int] | None) -> torch.Tensor:
    """A parameter grown to the new shape without changing what the network computes: the old
    values in place, every input that is new (colour or phase inputs, the outputs of new units)
    with zero weight, new units keeping their fresh initialisation (``init``) so that they can learn.
    moved: (old, new) width of the leading inputs, whose later inputs move behind the wider ones."""
    if old.dim() == 1:  # a bias: new units keep their initial bias
        grown = init.clone()
        grown[: old.shape[0]] = old
        return grown
    cols = torch.arange(old.shape[1])
    if moved is not None:
        cols = torch.where(cols < moved[0], cols, cols + (moved[1] - moved[0]))
    grown = init.clone()
    grown[: old.shape[0]] = 0  # old units: no weight on new inputs
    grown[: old.shape[0], cols] = old
    return grown


def recipe_from_options(**kw: Any) -> PixelCNNRecipe:
    """A recipe with the given fields replaced (None values are ignored)."""
    return replace(PixelCNNRecipe(), **{k: v for k, v in kw.items() if v is not None})


def run(data: str | Path, out: str | Path, *, steps: int, resume: bool = False, workdir: str | Path | None = None,
        device: str = "cpu", progress: bool | str = True, config: dict[str, Any] | None = None,
        init_from: str | Path | None = None, **options: Any) -> dict[str, Any]:
    """The recipe's entry point for ``gencodec train pixelcnn`` (:mod:`gencodec.train.recipes`):
    ``config`` changes ``init_from``'s config (or the defaults); the other options are recipe fields."""
    cfg = run_config(init_from, config or {})
    return train_pixelcnn(data, out, steps=steps, resume=resume, workdir=workdir, recipe=recipe_from_options(**options),
                          progress=progress, init_from=init_from, device=device, config=cfg)


def check_options(config: dict[str, Any] | None = None, init_from: str | Path | None = None, **options: Any) -> None:
    """The recipe's options checked before any work (:class:`gencodec.train.recipes.OptionError`)."""
    from .recipes import OptionError

    try:
        run_config(init_from, config or {})
    except (ValueError, TypeError, GencodecError) as e:
        raise OptionError("config", str(e)) from None
    try:
        recipe_from_options(**options)
    except TypeError as e:  # pragma: no cover - the CLI only passes declared options
        raise OptionError("recipe", str(e)) from None


def export_checkpoint(ckpt: str | Path, out: str | Path, config: PixelCNNConfig = PixelCNNConfig()) -> ExactPixelCNN:
    """Export the model state in a checkpoint (``best.pt`` / ``last.pt``) to an exact model file."""
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["model"]
    model = PixelCNN(config)
    model.load_state_dict(state)
    exact = model.export()
    exact.save(out)
    return exact
