"""``gencodec train MODEL --data DIR --out FILE``: train a model and export it with its model card.

Only parses and formats: each model's recipe (:mod:`gencodec.train.recipes`) declares its options
and does the work; ``gencodec train --help`` lists the models, ``gencodec train MODEL --help`` a
model's options. torch is imported inside the command, so ``gencodec --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from gencodec.errors import GencodecError
from gencodec.train import recipes

from .common import Failure, UsageFailure

_COMMON = [
    click.Option(["--data"], required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
                 help="Folder of training data (searched recursively; a manifest.json marks lossless sources)."),
    click.Option(["--out"], required=True, type=click.Path(dir_okay=False, path_type=Path),
                 help="Model file to write (.safetensors); its model card is written beside it (.json)."),
    click.Option(["--steps"], type=click.IntRange(min=1), default=None, help="Optimizer steps."),
    click.Option(["--resume"], is_flag=True, help="Continue the run in the work folder from its last checkpoint."),
    click.Option(["--workdir"], type=click.Path(file_okay=False, path_type=Path), default=None,
                 help="Checkpoints and logs (default: OUT with suffix .run)."),
    click.Option(["--device"], default="cpu", show_default=True,
                 help="Where training runs (cpu, cuda, cuda:1); export is always on the CPU."),
    click.Option(["-f", "--force"], is_flag=True,
                 help="Overwrite an existing --out (and its card); without --resume, start the work "
                      "folder's run over."),
    click.Option(["-q", "--quiet"], is_flag=True, help="No progress output."),
]


def _option(opt: recipes.Option) -> click.Option:
    if opt.kind == "flag":
        return click.Option([opt.flag], is_flag=True, help=opt.help)
    types = {
        "int": click.IntRange(min=opt.lo, max=opt.hi) if opt.lo is not None or opt.hi is not None else int,
        "float": click.FloatRange(min=opt.lo, max=opt.hi) if opt.lo is not None or opt.hi is not None else float,
        "str": str,
        "path": click.Path(exists=True, dir_okay=False, path_type=Path),
        "json": str,
        "floats": str,
    }
    metavar = {"json": "JSON", "floats": "X[,X...]"}.get(opt.kind)
    return click.Option([opt.flag, opt.name], type=types[opt.kind], default=None, metavar=metavar, help=opt.help)


def _floats(opt: recipes.Option, text: str) -> list[float]:
    """``--lambda 0.0018,0.0035`` -> [0.0018, 0.0035], each inside the option's bounds (lo exclusive)."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise UsageFailure(f"{opt.flag}: {text!r} is not a number or a comma-separated list of numbers") from None
    for v in values:
        if not (v == v and abs(v) != float("inf")) or (opt.lo is not None and v <= opt.lo) or \
                (opt.hi is not None and v > opt.hi):
            raise UsageFailure(f"{opt.flag}: {v:g} is out of range" + (f" (each must be above {opt.lo:g})"
                                                                       if opt.lo is not None else ""))
    return values


def _command(recipe: recipes.Recipe) -> click.Command:
    def run(data, out, steps, resume, workdir, device, force, quiet, **options):
        try:
            recipes.check_device(device)
        except ValueError as e:
            raise UsageFailure(f"--device: {e}") from None
        except ImportError as e:  # pragma: no cover - torch missing
            raise Failure(f"training needs torch: {e}") from None
        card_path = Path(out).with_suffix(".json")
        if card_path == Path(out):
            raise UsageFailure("--out: a model file cannot end in .json (its model card is written beside it as .json)")
        for opt in recipe.options:
            if opt.kind == "json" and options.get(opt.name) is not None:
                try:
                    value = json.loads(options[opt.name])
                except ValueError as e:
                    raise UsageFailure(f"{opt.flag}: not JSON ({e})") from None
                if not isinstance(value, dict):
                    raise UsageFailure(f"{opt.flag}: it must be a JSON object")
                options[opt.name] = value
            if opt.kind == "floats" and options.get(opt.name) is not None:
                options[opt.name] = _floats(opt, options[opt.name])
        options = {k: v for k, v in options.items() if v is not None}
        try:
            recipe.check(options)
        except recipes.OptionError as e:
            flag = next((o.flag for o in recipe.options if o.name == e.name), f"--{e.name.replace('_', '-')}")
            raise UsageFailure(f"{flag}: {e}") from None
        if not force and (Path(out).exists() or card_path.exists()):
            raise Failure(f"{Path(out) if Path(out).exists() else card_path}: already exists (use -f to overwrite)")
        from gencodec.train.loop import run_folder  # torch: imported only when a command runs

        run_dir = run_folder(out, workdir)
        if not resume and not force and (run_dir / "last.pt").exists():  # starting anew would throw that run away
            raise Failure(f"{run_dir}: holds a run's checkpoint (use --resume to continue it, -f to start over)")
        progress = False if quiet else ("bar" if sys.stderr.isatty() else "lines")
        try:
            card = recipe.run()(data, out, steps=steps or recipe.default_steps, resume=resume, workdir=workdir,
                                device=device, progress=progress, **options)
        except (GencodecError, FileNotFoundError, ValueError) as e:
            raise Failure(str(e)) from None
        click.echo(recipe.summary(card, str(out)))
        click.echo(f"model card: {card_path}")

    params = [*_COMMON, *(_option(o) for o in recipe.options)]
    return click.Command(recipe.model, callback=run, params=params, help=f"Train {recipe.model}: {recipe.summary_line}.",
                         short_help=recipe.summary_line)


class TrainGroup(click.Group):
    """``gencodec train``: one subcommand per registered recipe (built when asked for)."""

    def list_commands(self, ctx):
        return [r.model for r in recipes.recipes()]

    def get_command(self, ctx, name):
        try:
            return _command(recipes.get(name))
        except ValueError:
            return None


train = TrainGroup("train", help="Train MODEL on the data in --data and export the exact model to --out "
                                 "(`gencodec train MODEL --help` for its options).")
