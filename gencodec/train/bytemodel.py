"""The bytemodel recipe: a folder of files -> the byte model's pretrained net: :mod:`gencodec.models.bytenet`
(default) or :mod:`gencodec.models.byte_transformer` (config ``{"arch": "byte-transformer"}``).

Each step draws ``batch`` positions of the training files (seeded by the step) and minimizes the
cross-entropy of the next byte given its window (bytenet), or given the bytes before it in a
segment of ``seq_len`` bytes that starts anywhere in a file, as a coded segment does (the byte
transformer: ``batch / seq_len`` segments a step), in bits per byte; the net is fake-quantized from
the first step, so the exported integers compute what training saw. Validation: fixed positions
of held-out files (split by file). The export is the whole byte model (the context mixer with the
net as one of its inputs) and its card also gives the exact net's bits per byte on those
positions and the real coded size of held-out files.

Example::

    card = train_bytemodel("corpora/text-train", "bytemodel.safetensors", steps=6000)
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..models.byte_transformer import ByteTransformer, ByteTransformerConfig
from ..models.bytenet import ByteNet, ByteNetConfig
from .loop import LoopConfig, finished_run, machine, open_run, train, write_card
from .textdata import load_texts

LN2 = math.log(2)


@dataclass(frozen=True)
class ByteModelRecipe:
    batch: int = 4096  # positions per step
    lr: float = 2e-3
    seed: int = 0
    threads: int = 2
    val_glob: str | None = None
    val_positions: int = 1 << 18
    val_every: int = 500
    coded_val_bytes: int = 1 << 18  # held-out bytes coded by the exported model for its card
    seq_len: int = 512  # the byte transformer's training segments


NetConfig = ByteNetConfig | ByteTransformerConfig


def net_config(d: dict[str, Any] | None) -> NetConfig:
    """A net config from ``--config`` fields over the defaults of its arch (bytenet without ``arch``)."""
    d = dict(d or {})
    if d.get("arch") == "byte-transformer":
        return ByteTransformerConfig.from_dict({**ByteTransformerConfig().to_dict(), **d})
    return ByteNetConfig.from_dict({**ByteNetConfig().to_dict(), **d})


def make_net(cfg: NetConfig):
    return ByteTransformer(cfg) if isinstance(cfg, ByteTransformerConfig) else ByteNet(cfg)


def validation_set(texts, cfg: NetConfig, recipe: ByteModelRecipe):
    """Fixed held-out examples: (window, next byte) pairs for bytenet; segments (tokens, next bytes,
    mask) of seq_len bytes for the byte transformer, about val_positions positions either way."""
    if isinstance(cfg, ByteTransformerConfig):
        n = max(1, recipe.val_positions // recipe.seq_len)
        return texts.val.sequences(texts.val.sample_positions(n), recipe.seq_len)
    return texts.val.pairs(texts.val.sample_positions(recipe.val_positions), cfg.context)


def evaluate(net, val, chunk: int = 16384) -> dict[str, float]:
    """The net's bits per byte on the validation set (eval mode, fake-quantized as exported)."""
    device = next(net.parameters()).device
    bits, n = 0.0, 0
    if isinstance(net, ByteTransformer):
        tokens, nxt, mask = val
        per = max(1, chunk // tokens.shape[1])
        for i in range(0, len(tokens), per):
            t = torch.from_numpy(tokens[i : i + per]).to(device)
            y = torch.from_numpy(nxt[i : i + per]).to(device)
            m = torch.from_numpy(mask[i : i + per]).to(device)
            ce = F.cross_entropy(net(t).flatten(0, 1), y.flatten(), reduction="none")
            bits += float((ce * m.flatten()).sum()) / LN2
            n += int(m.sum())
        return {"loss": bits / max(n, 1)}
    windows, targets = val
    for i in range(0, len(targets), chunk):
        w = torch.from_numpy(windows[i : i + chunk]).to(device)
        y = torch.from_numpy(targets[i : i + chunk]).to(device)
        bits += float(F.cross_entropy(net(w), y, reduction="sum")) / LN2
    return {"loss": bits / max(len(targets), 1)}


def exact_bpb(exact_net, val, chunk: int = 16384) -> float:
    """The exported net's bits per byte on the validation set, from its integer softmax weights."""
    if isinstance(exact_net.cfg, ByteTransformerConfig):
        _, nxt, mask = val
        bits, n = 0.0, 0
        for y, m in zip(nxt, mask):
            w = exact_net.weights_of(exact_net.logits_parallel(y.astype(np.uint8)))
            b = np.log2(w.sum(1)) - np.log2(w[np.arange(len(w)), y])
            bits, n = bits + float(b[m].sum()), n + int(m.sum())
        return bits / max(n, 1)
    windows, targets = val
    bits = 0.0
    for i in range(0, len(targets), chunk):
        w = exact_net.weights(windows[i : i + chunk])
        bits += float(np.sum(np.log2(w.sum(1)) - np.log2(w[np.arange(len(w)), targets[i : i + chunk]])))
    return bits / max(len(targets), 1)


def train_bytemodel(data: str | Path, out: str | Path, steps: int = 6000, resume: bool = False,
                    workdir: str | Path | None = None, config: NetConfig = ByteNetConfig(),
                    recipe: ByteModelRecipe = ByteModelRecipe(), progress: bool | str = True,
                    stop_after: int | None = None, device: str = "cpu", export: bool = True,
                    init_from: str | Path | None = None) -> dict[str, Any]:
    """Train on ``data``; export the best checkpoint to ``out`` with its card (.json beside it).
    init_from: a checkpoint of a run with the same config or an exported bytemodel file."""
    setup = dict(config=config.to_dict(), recipe=asdict(recipe), steps=steps, data=str(data),
                 init_from=str(init_from) if init_from else None)
    out, workdir = open_run(out, workdir, setup, resume, recipe.threads)

    t_start = time.time()
    texts = load_texts(data, val_glob=recipe.val_glob)
    val = validation_set(texts, config, recipe)
    torch.manual_seed(recipe.seed)
    net = make_net(config)
    if init_from is not None and not (resume and (workdir / "last.pt").exists()):
        net = start_from(init_from, config)
    net = net.to(device)
    transformer = isinstance(config, ByteTransformerConfig)

    def batch_fn(step: int):
        if transformer:
            n = max(1, recipe.batch // recipe.seq_len)
            return tuple(torch.from_numpy(a).to(device) for a in texts.train.sequence_batch(step, n, recipe.seq_len,
                                                                                             recipe.seed))
        w, y = texts.train.batch(step, recipe.batch, config.context, recipe.seed)
        return torch.from_numpy(w).to(device), torch.from_numpy(y).to(device)

    def loss_fn(m, batch, step: int) -> torch.Tensor:
        if transformer:
            t, y, mask = batch
            ce = F.cross_entropy(m(t).flatten(0, 1), y.flatten(), reduction="none")
            return (ce * mask.flatten()).sum() / mask.sum().clamp(min=1) / LN2
        w, y = batch
        return F.cross_entropy(m(w), y) / LN2

    loop_cfg = LoopConfig(steps=steps, lr=recipe.lr, warmup=200, val_every=recipe.val_every, progress=progress,
                          stop_after=stop_after)
    result = train(net, loop_cfg, workdir, batch_fn, loss_fn, lambda m, step: evaluate(m, val),
                   resume=resume, unit="bits/byte")
    card = dict(model="bytemodel", net=config.to_dict(), recipe=asdict(recipe), steps=result["step"],
                train_seconds=round(result["seconds"], 1), wall_seconds_this_run=round(time.time() - t_start, 1),
                machine=machine(device, recipe.threads), data=texts.describe(),
                validation_positions=validation_note(val, len(texts.val.names)))
    (workdir / "card_partial.json").write_text(json.dumps(card, indent=1))
    if export:
        card = export_run(workdir, out, card)
    return card


def validation_note(val, n_files: int) -> str:
    if len(val) == 3:
        return (f"{int(val[2].sum()):,} positions of {len(val[0]):,} fixed segments of {val[0].shape[1]} bytes "
                f"of {n_files} held-out files")
    return f"{len(val[1]):,} fixed positions of {n_files} held-out files"


def coded_results(model, texts, limit: int) -> dict[str, Any]:
    """The exported byte model on whole held-out files (in name order, up to ``limit`` bytes in all):
    real coded bits per byte (the range coder's stream) next to the net alone and no net."""
    from ..exact import driver
    from ..models.bytemodel import ExactByteModel

    bare = ExactByteModel(model.cfg)
    rows, total, n_bits, bare_bits = [], 0, 0, 0
    for row in texts.val.rows():
        if total + row["bytes"] > limit:
            continue
        start = int(texts.val.starts[texts.val.names.index(row["name"])])
        raw = texts.val.data[start : start + row["bytes"]]
        sym = np.unpackbits(raw).reshape(-1, 8)
        stream, _ = driver.encode(model, sym)
        plain, _ = driver.encode(bare, sym)
        rows.append(dict(name=row["name"], bytes=row["bytes"], bpb=8 * len(stream) / row["bytes"],
                         bpb_without_net=8 * len(plain) / row["bytes"]))
        total += row["bytes"]
        n_bits += 8 * len(stream)
        bare_bits += 8 * len(plain)
    return dict(files=rows, bytes=total, bpb=n_bits / max(total, 1), bpb_without_net=bare_bits / max(total, 1))


def export_run(workdir: str | Path, out: str | Path, card: dict[str, Any] | None = None,
               data: str | Path | None = None) -> dict[str, Any]:
    """Export ``workdir/best.pt`` (config from ``setup.json``) to ``out`` + card (validation of the
    fake-quantized net, of the exact net, and real coded sizes of held-out files)."""
    from ..models.bytemodel import ExactByteModel

    out = Path(out)
    setup, partial, best = finished_run(workdir, dict(model="bytemodel"))
    cfg = net_config(setup["config"])
    recipe = ByteModelRecipe(**setup["recipe"])
    card = dict(partial, net=cfg.to_dict()) if card is None else card
    net = make_net(cfg)
    net.load_state_dict(best["model"])
    net.eval()
    texts = load_texts(data or setup["data"], val_glob=recipe.val_glob)
    val = validation_set(texts, cfg, recipe)
    model = ExactByteModel(net=net.export())
    card = dict(card, model_id=model.model_id.hex(), best_step=best["step"],
                n_params=sum(p.numel() for p in net.parameters()),
                validation=dict(net_bpb=best["val"]["loss"], exact_net_bpb=exact_bpb(model.net, val),
                                coded=coded_results(model, texts, recipe.coded_val_bytes)))
    model.save(out, card=dict(model_id=card["model_id"], steps=card.get("steps"), best_step=card["best_step"]))
    write_card(out, card)
    return card


def start_from(path: str | Path, config: NetConfig):
    """A trainable net from a checkpoint (``best.pt`` / ``last.pt``, same config) or an exported bytemodel file."""
    net = make_net(config)
    path = Path(path)
    if path.suffix == ".pt":
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["model"])
        return net
    from ..models import zoo

    model = zoo.load(path, "bytemodel")
    if model.net is None or model.net.cfg != config:
        raise ValueError(f"{path}: its net differs from this run's config (pass the same --config)")
    net.load_exact(model.net)
    return net


def run(data: str | Path, out: str | Path, *, steps: int, resume: bool = False, workdir: str | Path | None = None,
        device: str = "cpu", progress: bool | str = True, config: dict[str, Any] | None = None,
        **options: Any) -> dict[str, Any]:
    """Entry point of ``gencodec train bytemodel``."""
    cfg = net_config(config)
    init_from = options.pop("init_from", None)
    recipe = replace(ByteModelRecipe(), **{k: v for k, v in options.items() if v is not None})
    return train_bytemodel(data, out, steps=steps, resume=resume, workdir=workdir, config=cfg, recipe=recipe,
                           progress=progress, device=device, init_from=init_from)


def check_options(config: dict[str, Any] | None = None, **options: Any) -> None:
    from .recipes import OptionError

    try:
        net_config(config)
    except (ValueError, TypeError) as e:
        raise OptionError("config", str(e)) from None
