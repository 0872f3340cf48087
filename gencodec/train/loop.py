"""One generic training loop: seeded batches, Adam with cosine decay, progress bar, validation,
periodic resumable checkpoints and the best checkpoint by validation loss.

The loop knows nothing about images: a recipe passes ``batch_fn(step) -> batch`` (a pure function
of the step, so a resumed run sees the same data), ``loss_fn(model, batch, step) -> scalar`` (or
``(scalar, {name: value})``: quantities the progress line and the log show beside the loss, each as
the same running mean) and ``val_fn(model, step) -> dict`` (must contain ``"loss"``).

Files in ``workdir``: ``last.pt`` (model, optimizer, step, log, and torch's random state, so that a
loss's own noise resumes where it was), ``best.pt`` (model state with the
lowest validation loss), ``log.jsonl`` (one line per log or validation event).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch


@dataclass
class LoopConfig:
    steps: int  # total optimizer steps
    lr: float = 2e-3  # peak learning rate (cosine decay to lr * final_lr_ratio)
    final_lr_ratio: float = 0.05
    warmup: int = 100  # linear warm-up steps
    val_every: int = 500  # steps between validations (and after the last step)
    ckpt_every_s: float = 120.0  # seconds between checkpoints of last.pt
    log_every: int = 50
    grad_clip: float = 1.0
    progress: bool | str = True  # True or "bar": a tqdm bar on stderr; "lines": a plain line every log_every steps
    # (for logs: no carriage returns); False: nothing
    stop_after: int | None = None  # end this session after this step (a later --resume continues)


def machine(device: str, threads: int) -> str:
    """Where a run trained, for its model card: CPU (and torch threads) or the GPU's name."""
    import platform

    where = f"{platform.machine()} {platform.processor() or ''}".strip()
    if torch.device(device).type == "cuda":
        return where + f", {torch.cuda.get_device_name(device)}"
    return where + f", torch threads {threads}"


def run_folder(out: str | Path, workdir: str | Path | None) -> Path:
    """A run's work folder: ``workdir`` if given, else the model file ``out`` with suffix .run."""
    return Path(workdir) if workdir else Path(out).with_suffix(".run")


def open_run(out: str | Path, workdir: str | Path | None, setup: dict[str, Any], resume: bool, threads: int,
             defaults: dict[str, dict[str, Any]] | None = None) -> tuple[Path, Path]:
    """Start (or, with ``resume``, continue) a run: refuse a model path the card would overwrite, set
    torch's threads, make the work folder (default: ``out`` with suffix .run) and write ``setup``
    there (its ``config`` and ``recipe`` must match those of the run being resumed; ``defaults`` fill
    the fields an older setup lacks). Without ``resume`` the run starts over: the checkpoints, log and
    partial card of an earlier run there are removed first. Returns (out, workdir)."""
    out = Path(out)
    if out.with_suffix(".json") == out:  # refused before any work: the card would overwrite the model
        raise ValueError(f"{out}: a model file cannot end in .json (its model card is written beside it as .json)")
    torch.set_num_threads(threads)
    workdir = run_folder(out, workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    setup_path = workdir / "setup.json"
    if resume and setup_path.exists():
        old = json.loads(setup_path.read_text())
        for key in ("config", "recipe"):
            if {**(defaults or {}).get(key, {}), **old[key]} != setup[key]:
                raise ValueError(f"{workdir}: cannot resume, the run there used another config or recipe")
    if not resume:  # a fresh run: nothing of an earlier one may mix into its log or be exported as its best
        for name in ("last.pt", "best.pt", "log.jsonl", "card_partial.json"):
            (workdir / name).unlink(missing_ok=True)
    write_text_atomic(setup_path, json.dumps(setup, indent=1))
    return out, workdir


def finished_run(workdir: str | Path, default_card: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """What an export needs of a run: its ``setup.json``, the card the training wrote
    (``card_partial.json``; ``default_card`` if it has none) and the best checkpoint."""
    workdir = Path(workdir)
    setup = json.loads((workdir / "setup.json").read_text())
    partial = workdir / "card_partial.json"
    card = json.loads(partial.read_text()) if partial.exists() else default_card
    return setup, card, torch.load(workdir / "best.pt", map_location="cpu", weights_only=True)


def write_card(out: Path, card: dict[str, Any]) -> None:
    """The model card beside the model file ``out`` (same name, .json), written atomically."""
    write_text_atomic(out.with_suffix(".json"), json.dumps(card, indent=1) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Write a temporary file beside ``path``, then rename it over."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def lr_at(cfg: LoopConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr * (cfg.final_lr_ratio + (1 - cfg.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def _save_atomic(obj: dict[str, Any], path: Path) -> None:
    """torch.save to a temporary file, then rename: an interrupted save never leaves a torn checkpoint."""
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def train(
    model: torch.nn.Module,
    cfg: LoopConfig,
    workdir: str | Path,
    batch_fn: Callable[[int], Any],
    loss_fn: Callable[[torch.nn.Module, Any, int], torch.Tensor],
    val_fn: Callable[[torch.nn.Module, int], dict[str, float]],
    resume: bool = False,
    unit: str = "loss",
    no_clip: Callable[[str], bool] | None = None,
) -> dict[str, Any]:
    """Train ``model`` in place; returns {"step", "best_val", "seconds", "log"}.

    With ``resume`` the run continues from ``workdir/last.pt`` (same step, optimizer and best).
    no_clip: names of parameters left out of gradient clipping (e.g. the entropy bottleneck's
    quantiles, whose auxiliary loss has gradients of another scale).
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    clipped = [p for n, p in model.named_parameters() if no_clip is None or not no_clip(n)]
    step, best, seconds = 0, math.inf, 0.0
    last = workdir / "last.pt"
    if resume and last.exists():
        ck = torch.load(last, map_location="cpu", weights_only=True)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, best, seconds = ck["step"], ck["best_val"], ck.get("seconds", 0.0)
        if "rng" in ck:  # the losses' own noise (e.g. compressai's uniform noise) continues where it was
            torch.set_rng_state(ck["rng"])
        if ck.get("cuda_rng") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ck["cuda_rng"])
    log_path = workdir / "log.jsonl"

    def log(event: dict[str, Any]) -> None:
        with open(log_path, "a") as f:
            f.write(json.dumps(event) + "\n")

    def save_last() -> None:
        cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else []
        _save_atomic(dict(model=model.state_dict(), opt=opt.state_dict(), step=step, best_val=best,
                          seconds=seconds, rng=torch.get_rng_state(), cuda_rng=cuda_rng), last)

    def validate() -> None:
        nonlocal best
        model.eval()
        with torch.no_grad():
            res = val_fn(model, step)
        model.train()
        log(dict(event="val", step=step, seconds=round(seconds, 1), **res))
        if lines:
            vals = ", ".join(f"{k} {v:.4f}" for k, v in res.items() if isinstance(v, float))
            print(f"step {step}/{cfg.steps}: validation {vals}", file=sys.stderr, flush=True)
        if res["loss"] < best:
            best = res["loss"]
            _save_atomic(dict(model=model.state_dict(), step=step, val=res), workdir / "best.pt")

    bar = None
    lines = cfg.progress == "lines"
    if cfg.progress and not lines:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, unit="step", dynamic_ncols=True)
    t_ckpt = time.monotonic()
    running = None
    means: dict[str, float] = {}  # running means of the loss function's extra quantities
    model.train()
    end = cfg.steps if cfg.stop_after is None else min(cfg.steps, cfg.stop_after)
    while step < end:
        t0 = time.monotonic()
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, step)
        loss = loss_fn(model, batch_fn(step), step)
        loss, extra = loss if isinstance(loss, tuple) else (loss, {})
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(clipped, cfg.grad_clip)
        opt.step()
        step += 1
        seconds += time.monotonic() - t0
        value = float(loss.detach())
        running = value if running is None else 0.98 * running + 0.02 * value
        for k, v in extra.items():
            v = float(v.detach()) if isinstance(v, torch.Tensor) else float(v)
            means[k] = v if k not in means else 0.98 * means[k] + 0.02 * v
        shown = "".join(f", {k} {v:.3f}" for k, v in means.items())
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"{unit} {running:.3f}{shown}")
        if step % cfg.log_every == 0 or step == end:
            log(dict(event="train", step=step, seconds=round(seconds, 1), loss=running, **means, lr=lr_at(cfg, step)))
            if lines:
                print(f"step {step}/{cfg.steps}: {unit} {running:.4f}{shown}, lr {lr_at(cfg, step):.2e}, {seconds:.0f} s",
                      file=sys.stderr, flush=True)
        if step % cfg.val_every == 0 or step == cfg.steps:
            validate()
        if time.monotonic() - t_ckpt > cfg.ckpt_every_s or step == end:
            save_last()
            t_ckpt = time.monotonic()
    if bar is not None:
        bar.close()
    if not (workdir / "best.pt").exists():
        validate()
        save_last()
    return dict(step=step, best_val=best, seconds=seconds)
