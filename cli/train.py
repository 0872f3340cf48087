"""``gencodec train MODEL --data DIR --out FILE``: train a model on a folder of images and export it.

Only parses and formats: the work is :func:`gencodec.train.pixelcnn.train_pixelcnn`. torch is
imported inside the command, so ``gencodec --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from gencodec.errors import GencodecError

from .common import Failure

MODELS = ("pixelcnn",)


@click.command("train")
@click.argument("model", type=click.Choice(MODELS))
@click.option("--data", "data", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of training images (searched recursively; a manifest.json marks lossless sources).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Model file to write (.safetensors); its model card is written beside it (.json).")
@click.option("--steps", default=6000, show_default=True, type=click.IntRange(min=1), help="Optimizer steps.")
@click.option("--resume", is_flag=True, help="Continue the run in the work folder from its last checkpoint.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Checkpoints and logs (default: OUT with suffix .run).")
@click.option("--val-glob", default=None, help="Hold out images whose relative path matches (default: 5% by hash).")
@click.option("--crop", type=click.IntRange(min=8), default=None, help="Training crop side (default 64).")
@click.option("--batch", type=click.IntRange(min=1), default=None, help="Crops per step (default 12).")
@click.option("--lr", type=float, default=None, help="Peak learning rate (default 2e-3).")
@click.option("--seed", type=int, default=None, help="Seed of crops and initial weights (default 0).")
@click.option("--downscale", type=click.IntRange(min=1), default=None,
              help="Area-downscale factor for images not known to be lossless (default 2).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="torch CPU threads (default 1).")
@click.option("--chroma420", type=click.FloatRange(0, 1), default=None,
              help="Fraction of crops put through a JPEG-style 4:2:0 chroma round trip (default 0).")
@click.option("--qat-fraction", type=click.FloatRange(0, 1), default=None,
              help="Final fraction of the steps trained with fake quantization (default 0.35; 1: all, e.g. to\n"
                   "finish a model trained in float elsewhere).")
@click.option("--init-from", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Start from a checkpoint (best.pt/last.pt of a run with the same config) or an exported model\n"
                   "(.safetensors, e.g. the shipped gencodec/weights/pixelcnn.safetensors), whose config --config then\n"
                   "changes: it may switch on colour_preds, mean_frac_bits and phase_inputs, refine the grids\n"
                   "(act_frac_bits, w_frac_bits, w_max, out_w_frac_bits, mean_frac_bits, n_scales) and widen\n"
                   "hidden and head_hidden.")
@click.option("--config", "config_json", default=None, metavar="JSON",
              help='Model config fields to change (from the defaults, or from --init-from\'s), as a JSON object, e.g. \'{"hidden": 128, "rows_up": 3}\' '
                   "(see PixelCNNConfig; saved in the model file, so the codec rebuilds it).")
@click.option("--device", default="cpu", show_default=True,
              help="Where training runs (cpu, cuda, cuda:1); export is always on the CPU.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def train(model, data, out, steps, resume, workdir, val_glob, crop, batch, lr, seed, downscale, threads, chroma420,
          qat_fraction, init_from, config_json, device, quiet):
    """Train MODEL on the images in --data and export the exact model to --out."""
    try:
        from gencodec.train.pixelcnn import recipe_from_options, run_config, train_pixelcnn
    except ImportError as e:  # pragma: no cover - torch missing
        raise Failure(f"training needs torch: {e}") from None

    try:
        overrides = json.loads(config_json) if config_json else {}
        if not isinstance(overrides, dict):
            raise ValueError("it must be a JSON object")
        config = run_config(init_from, overrides)  # changes apply to the starting model's config
    except (ValueError, TypeError, GencodecError) as e:
        raise click.BadParameter(str(e), param_hint="--config") from None
    recipe = recipe_from_options(val_glob=val_glob, crop=crop, batch=batch, lr=lr, seed=seed,
                                 downscale=downscale, threads=threads, chroma420=chroma420,
                                 qat_fraction=qat_fraction)
    try:
        card = train_pixelcnn(data, out, steps=steps, resume=resume, workdir=workdir, recipe=recipe,
                              progress=not quiet, init_from=init_from, device=device, config=config)
    except (GencodecError, FileNotFoundError, ValueError) as e:
        raise Failure(str(e)) from None
    v = card["validation"]
    click.echo(
        f"{out}: model {card['model_id']}, {card['steps']} steps; validation bpsp float {v['bpsp_float']:.4f}, "
        f"exact {v['bpsp_exact_ideal']:.4f} ({v['quantization_loss_pct']:+.2f}%)"
    )
    click.echo(f"model card: {Path(out).with_suffix('.json')}")
    if not quiet:
        click.echo(json.dumps(v, indent=1), err=True)
