"""The Sparse Transformer recipe: pixelcnn's recipe (crops, validation, export, card) with the
attention model (:mod:`gencodec.models.sparse_transformer`).

By default a run starts from the shipped pixelcnn model: its trunk and heads are copied and the
blocks start as the identity, so step 0 is exactly the pixelcnn model and the blocks learn what
attention adds. ``--init-from`` may name another pixelcnn or sparse-transformer model file, or a
checkpoint of an earlier sparse-transformer run.

Example::

    gencodec train sparse-transformer --data photos/ --out st.safetensors --steps 4000
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from ..errors import GencodecError
from ..models import zoo
from ..models.pixelcnn import ExactPixelCNN
from ..models.sparse_transformer import SparseTransformer, SparseTransformerConfig
from .pixelcnn import PixelCNNRecipe, train_pixelcnn

#: the recipe's defaults where they differ from pixelcnn's: the start is an integer model already, so
#: every step trains with fake quantization, at a fine-tuning rate
DEFAULTS = dict(lr=5e-4, qat_fraction=1.0, crop=48, batch=8, threads=2)


def default_init() -> Path:
    path = zoo.default_weights("pixelcnn")
    assert path is not None
    return path


def _base_config(init_from: str | Path) -> SparseTransformerConfig:
    init_from = Path(init_from)
    if init_from.suffix == ".safetensors":
        return SparseTransformerConfig.extending(zoo.load(init_from).cfg)
    setup = init_from.parent / "setup.json"
    if not setup.is_file():
        raise ValueError(f"{init_from}: a checkpoint without its run's setup.json")
    return SparseTransformerConfig.from_dict(json.loads(setup.read_text())["config"])


def run_config(init_from: str | Path | None, changes: dict[str, Any]) -> SparseTransformerConfig:
    base = _base_config(init_from or default_init())
    config = SparseTransformerConfig.from_dict({**asdict(base), **changes})
    config.validate()
    return config


def start_from(init_from: str | Path, config: SparseTransformerConfig) -> SparseTransformer:
    """The training model for ``config`` from a model file (pixelcnn: its trunk and heads, identity
    blocks; sparse-transformer: all of it) or a checkpoint of a run with this config."""
    init_from = Path(init_from)
    if init_from.suffix == ".safetensors":
        exact = zoo.load(init_from)
        if not isinstance(exact, ExactPixelCNN):
            raise ValueError(f"{init_from}: a {exact.arch} model, not pixelcnn or sparse-transformer")
        mismatch = [k for k, v in asdict(exact.cfg).items() if getattr(config, k) != v]
        if mismatch:
            raise ValueError(f"{init_from}: its config differs from this run's in {sorted(mismatch)}")
        return SparseTransformer.from_pixelcnn(exact, config)
    model = SparseTransformer(config)
    model.load_state_dict(torch.load(init_from, map_location="cpu", weights_only=True)["model"])
    return model


def recipe_from_options(**kw: Any) -> PixelCNNRecipe:
    return replace(PixelCNNRecipe(), **{**DEFAULTS, **{k: v for k, v in kw.items() if v is not None}})


def run(data: str | Path, out: str | Path, *, steps: int, resume: bool = False, workdir: str | Path | None = None,
        device: str = "cpu", progress: bool | str = True, config: dict[str, Any] | None = None,
        init_from: str | Path | None = None, **options: Any) -> dict[str, Any]:
    """``gencodec train sparse-transformer`` (:mod:`gencodec.train.recipes`)."""
    init_from = init_from or default_init()
    cfg = run_config(init_from, config or {})
    return train_pixelcnn(data, out, steps=steps, resume=resume, workdir=workdir, config=cfg,
                          recipe=recipe_from_options(**options), progress=progress, init_from=init_from,
                          device=device, net=SparseTransformer, start=start_from)


def check_options(config: dict[str, Any] | None = None, init_from: str | Path | None = None, **options: Any) -> None:
    from .recipes import OptionError

    try:
        run_config(init_from, config or {})
    except (ValueError, TypeError, GencodecError, OSError) as e:
        raise OptionError("config", str(e)) from None
    try:
        recipe_from_options(**options)
    except TypeError as e:  # pragma: no cover - the CLI only passes declared options
        raise OptionError("recipe", str(e)) from None
