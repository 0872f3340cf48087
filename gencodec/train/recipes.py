"""Training recipes by model name: what ``gencodec train MODEL`` offers.

Each model brings a :class:`Recipe`: its own options (declared here as plain data, so the CLI
builds ``gencodec train MODEL --help`` from them without importing torch) and the function that
trains it. Every recipe also gets the common options (``--data``, ``--out``, ``--steps``,
``--resume``, ``--workdir``, ``--device``, ``-f``, ``-q``); its function is called as
``run(data, out, steps=, resume=, workdir=, device=, progress=, **its options)`` and returns the
model card (a dict), which ``summary(card)`` turns into the line the CLI prints.

A new model adds one ``register(Recipe(...))`` line (see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Option", "OptionError", "Recipe", "register", "recipes", "get", "check_device"]


class OptionError(ValueError):
    """A recipe option that cannot work (checked before any training): ``name`` is the option's."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name


@dataclass(frozen=True)
class Option:
    """One option of a recipe. kind: "int", "float", "str", "path" (an existing file), "json" (an
    object), "floats" (one number or several, comma-separated: a list) or "flag"; lo/hi bound
    numbers (each of a list's); default None means the recipe's own default."""

    name: str  # the run function's keyword; the flag is --name with "_" as "-", unless flag_name
    kind: str
    help: str
    lo: float | None = None
    hi: float | None = None
    flag_name: str | None = None  # the flag's own name where it differs (e.g. --lambda for "lambdas")

    @property
    def flag(self) -> str:
        return "--" + (self.flag_name or self.name.replace("_", "-"))


@dataclass(frozen=True)
class Recipe:
    model: str  # the name after `gencodec train`
    summary_line: str  # one line for `gencodec train --help`
    target: str  # "module:function" of the run function, relative to gencodec.train
    options: tuple[Option, ...] = ()
    default_steps: int = 6000
    check_target: str | None = None  # "module:function"(options) raising OptionError, run before any work

    def run(self) -> Callable[..., dict[str, Any]]:
        return _resolve(self.target)

    def check(self, options: dict[str, Any]) -> None:
        """OptionError for options that cannot work (e.g. a config with unknown fields)."""
        if self.check_target:
            _resolve(self.check_target)(**options)

    def summary(self, card: dict[str, Any], out: str) -> str:
        """The line printed after training: the model id, steps and validation numbers of the card."""
        v = card.get("validation", {})
        vals = ", ".join(f"{k} {x:.4f}" for k, x in v.items() if isinstance(x, float))
        return f"{out}: model {card.get('model_id', '?')}, {card.get('steps', '?')} steps; validation {vals}"


def _resolve(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module, __package__), name)


_RECIPES: dict[str, Recipe] = {}


def register(recipe: Recipe) -> None:
    if recipe.model in _RECIPES:
        raise ValueError(f"training recipe {recipe.model!r} registered twice")
    _RECIPES[recipe.model] = recipe


def recipes() -> list[Recipe]:
    return list(_RECIPES.values())


def get(model: str) -> Recipe:
    try:
        return _RECIPES[model]
    except KeyError:
        raise ValueError(f"no training recipe for {model!r} (known: {', '.join(_RECIPES)})") from None


def check_device(name: str) -> str:
    """The torch device a run asks for, checked before any work: ValueError with a one-line reason
    for a name torch does not know or a device this machine does not have."""
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f"{name!r} is not a torch device (cpu, cuda, cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name!r}: this machine has no CUDA device (torch {torch.__version__})")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"{name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type not in ("cpu", "mps"):
        raise ValueError(f"{name!r}: training runs on cpu or cuda")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{name!r}: this machine has no MPS device")
    return name


#: options the two pixelcnn-family recipes (pixelcnn, sparse-transformer) declare alike
IMAGE_VAL_GLOB = Option("val_glob", "str", "Hold out images whose relative path matches (default: 5% by hash).")
IMAGE_SEED = Option("seed", "int", "Seed of crops and initial weights (default 0).")
IMAGE_DOWNSCALE = Option("downscale", "int", "Area-downscale factor for images not known to be lossless (default 2).", lo=1)
IMAGE_CHROMA420 = Option("chroma420", "float", "Fraction of crops put through a JPEG-style 4:2:0 chroma round trip "
                         "(default 0).", lo=0, hi=1)


register(Recipe(
    model="pixelcnn",
    summary_line="the lossless image model (random crops of a folder of images)",
    target=".pixelcnn:run",
    check_target=".pixelcnn:check_options",
    options=(
        IMAGE_VAL_GLOB,
        Option("crop", "int", "Training crop side (default 64).", lo=8),
        Option("batch", "int", "Crops per step (default 12).", lo=1),
        Option("lr", "float", "Peak learning rate (default 2e-3)."),
        IMAGE_SEED,
        IMAGE_DOWNSCALE,
        Option("threads", "int", "torch CPU threads (default 1).", lo=1),
        IMAGE_CHROMA420,
        Option("qat_fraction", "float", "Final fraction of the steps trained with fake quantization (default 0.35; "
               "1: all, e.g. to finish a model trained in float elsewhere).", lo=0, hi=1),
        Option("init_from", "path", "Start from a checkpoint (best.pt/last.pt of a run with the same config) or an "
               "exported model (.safetensors, e.g. the shipped gencodec/weights/pixelcnn.safetensors), whose config "
               "--config then changes: it may switch on colour_preds, mean_frac_bits and phase_inputs, refine the "
               "grids (act_frac_bits, w_frac_bits, w_max, out_w_frac_bits, mean_frac_bits, n_scales) and widen "
               "hidden and head_hidden."),
        Option("config", "json", "Model config fields to change (from the defaults, or from --init-from's), as a JSON "
               "object, e.g. '{\"hidden\": 128, \"rows_up\": 3}' (see PixelCNNConfig; saved in the model file, so the "
               "codec rebuilds it)."),
    ),
))


register(Recipe(
    model="sparse-transformer",
    summary_line="the attention image model: pixelcnn's trunk and heads with row and column attention between them",
    target=".sparse_transformer:run",
    check_target=".sparse_transformer:check_options",
    default_steps=4000,
    options=(
        IMAGE_VAL_GLOB,
        Option("crop", "int", "Training crop side (default 48).", lo=8),
        Option("batch", "int", "Crops per step (default 8).", lo=1),
        Option("lr", "float", "Peak learning rate (default 5e-4: a fine-tuning of the start)."),
        IMAGE_SEED,
        IMAGE_DOWNSCALE,
        Option("threads", "int", "torch CPU threads (default 2).", lo=1),
        IMAGE_CHROMA420,
        Option("qat_fraction", "float", "Final fraction of the steps trained with fake quantization (default 1: "
               "the start is an integer model already).", lo=0, hi=1),
        Option("init_from", "path", "Start from a pixelcnn model file (its trunk and heads; the blocks start as the "
               "identity; default: the shipped gencodec/weights/pixelcnn.safetensors), a sparse-transformer model "
               "file, or a checkpoint (best.pt/last.pt) of a run with the same config."),
        Option("config", "json", "Config fields to change, as a JSON object, e.g. '{\"blocks\": 3, \"col_window\": 8}' "
               "(see SparseTransformerConfig; the trunk and heads' fields must match --init-from's)."),
    ),
))


register(Recipe(
    model="hyperprior",
    summary_line="the learned lossy image codec: one model for the whole quality ladder (random crops of a folder)",
    target=".hyperprior:run",
    check_target=".hyperprior:check_options",
    default_steps=20000,
    options=(
        Option("val_glob", "str", "Hold out images whose relative path matches (default: 5% by hash)."),
        Option("crop", "int", "Training crop side, a multiple of 64 (default 128).", lo=64),
        Option("batch", "int", "Crops per step (default 8).", lo=1),
        Option("lr", "float", "Peak learning rate (default 3e-4)."),
        Option("seed", "int", "Seed of crops, levels and initial weights (default 0)."),
        Option("downscale", "int", "Area-downscale factor for images not known to be lossless (default 2).", lo=1),
        Option("threads", "int", "torch CPU threads (default 2).", lo=1),
        Option("precision", "str", "fp32 (default) or bf16: the transforms under bfloat16 autocast while training "
               "(a step about 1.5x faster on an AVX-512 BF16 CPU, more with AMX, but many times slower where bfloat16 is "
               "emulated, as on AVX2-only CPUs; validation and export stay float32)."),
        Option("init_from", "path", "Start from a checkpoint (best.pt/last.pt of a run with the same config) or an "
               "exported model (.safetensors, e.g. the shipped gencodec/weights/hyperprior.safetensors)."),
        Option("lambdas", "floats", "The quality ladder: the rate-distortion trade-off of each quality, lowest first "
               "(lambda * 255^2 * MSE + bits per pixel), e.g. 0.013 for one quality or 0.0018,0.0035,0.0067 for three "
               "(default CompressAI's six, 0.0018 ... 0.0483).", lo=0.0, flag_name="lambda"),
        Option("distortion", "str", "mse (default: lambda * 255^2 * MSE) or ms-ssim (lambda * (1 - MS-SSIM), crops of "
               "192 or more; default ladder CompressAI's MS-SSIM lambdas, 2.40 ... 60.50)."),
        Option("config", "json", "Model config fields to change, as a JSON object, e.g. '{\"N\": 128, \"M\": 192, "
               "\"lambdas\": [0.0067, 0.013, 0.025]}' (see HyperpriorConfig; saved in the model file)."),
    ),
))


register(Recipe(
    model="bytemodel",
    summary_line="the byte model's pretrained net (next byte from a window of bytes; a folder of any files)",
    target=".bytemodel:run",
    check_target=".bytemodel:check_options",
    default_steps=6000,
    options=(
        Option("val_glob", "str", "Hold out files whose relative path matches (default: 5% of the files by hash)."),
        Option("batch", "int", "Positions per step (default 4096).", lo=1),
        Option("lr", "float", "Peak learning rate (default 2e-3)."),
        Option("seed", "int", "Seed of positions and initial weights (default 0)."),
        Option("threads", "int", "torch CPU threads (default 2).", lo=1),
        Option("init_from", "path", "Start from a checkpoint (best.pt/last.pt of a run with the same config) or an "
               "exported bytemodel file (e.g. the shipped gencodec/weights/bytemodel.safetensors)."),
        Option("seq_len", "int", "Byte transformer: bytes per training segment (default 512).", lo=2),
        Option("config", "json", "Net config fields to change, as a JSON object, e.g. '{\"context\": 24, \"hidden\": "
               "384}' (see ByteNetConfig; saved in the model file); '{\"arch\": \"byte-transformer\"}' trains the "
               "fixed-pattern Sparse Transformer instead (see ByteTransformerConfig)."),
    ),
))
