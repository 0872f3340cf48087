"""The one model-file format: safetensors holding an exact model's integers, with ``format``,
``arch`` (the zoo's name of the model class), ``config`` (JSON) and ``model_id`` in its metadata
(and optionally the model ``card``, JSON).

The model id is 16 bytes of sha256 over the config's JSON (sorted keys) and then every tensor,
by sorted name, as little-endian int32: a hash of the exported integers and the config, so two
files code alike exactly when their ids agree. Files written before this format
(``gencodec-pixelcnn-1``) are read as arch ``pixelcnn``; their ids are computed the same way.

A *decode-only* file (the archive's form of a model whose encoder the decoder never runs, e.g. a
hyperprior without its analysis transforms) keeps the whole model's ``model_id`` -- which its
tensors cannot reproduce -- and ``decoder_id``, the same hash over the tensors it holds, which the
loader checks.

A path ending in ``.xz`` holds the same safetensors bytes xz-compressed (the archive's form: its
integer tables and weights shrink by about 40 %, which keeps the package's many archived models
small; reading one costs about a quarter of a second). Its decompressed size is bounded
(``MAX_XZ_BYTES``), so a hostile file cannot take unbounded memory.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
from pathlib import Path
from typing import Any

from ..errors import GencodecError

__all__ = ["FORMAT", "MAX_XZ_BYTES", "model_id", "save", "read", "read_config", "recorded_id"]

FORMAT = "gencodec-model-1"
MAX_XZ_BYTES = 64 << 20  # a shipped model is at most 10 MB; an .xz file unpacking beyond this is refused
LEGACY_FORMATS = {"gencodec-pixelcnn-1": "pixelcnn"}


def model_id(id_config: dict[str, Any], tensors: dict[str, Any]) -> bytes:
    """sha256 of the config (JSON, sorted keys) and the tensors (by name, as int32 LE) -> 16 bytes."""
    h = hashlib.sha256(json.dumps(id_config, sort_keys=True).encode())
    for k, v in sorted(tensors.items()):
        h.update(k.encode())
        h.update(v.contiguous().numpy().astype("<i4").tobytes())
    return h.digest()[:16]


def save(model: Any, path: str | Path, card: dict[str, Any] | None = None) -> None:
    """Write ``model`` (an exact model: arch, config_dict(), state(), model_id) atomically; the file
    gets the permissions the umask gives any new file. The same model and card give the same bytes."""
    from safetensors.torch import save as save_bytes

    meta = {"format": FORMAT, "arch": model.arch, "config": json.dumps(model.config_dict(), sort_keys=True),
            "model_id": model.model_id.hex()}
    if getattr(model, "decoder_id", None) is not None:  # a decode-only model: its own hash beside the whole one's id
        meta["decoder_id"] = model.decoder_id.hex()
    if card:
        meta["card"] = json.dumps(card, sort_keys=True)
    blob = _canonical(save_bytes(model.state(), metadata=meta))
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(lzma.compress(blob, preset=9 | lzma.PRESET_EXTREME) if _compressed(path) else blob)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # also where a stale .tmp of other permissions was reused
    tmp.replace(path)  # atomic: a failed save never leaves a half-written model


def _canonical(blob: bytes) -> bytes:
    """The safetensors bytes with the header in one canonical order: metadata keys sorted, tensors by
    offset. safetensors writes its metadata map in a per-process random order (its issue #584), so two
    saves of one model would differ byte for byte and a shipped file could not be rebuilt exactly."""
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", None)
    ordered = {"__metadata__": dict(sorted(meta.items()))} if meta else {}
    ordered.update(sorted(header.items(), key=lambda kv: (kv[1]["data_offsets"], kv[0])))
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # the data stays 8-byte aligned, as safetensors writes it
    return len(text).to_bytes(8, "little") + text + blob[8 + n:]


def read(path: str | Path) -> tuple[str, dict[str, Any], dict[str, Any], dict[str, str]]:
    """A model file -> (arch, config, tensors, metadata); GencodecError for anything else."""
    return _read(path, tensors=True)


def read_config(path: str | Path) -> tuple[str, dict[str, Any]]:
    """A model file's (arch, config), from its header alone (no tensor is read)."""
    arch, config, _, _ = _read(path, tensors=False)
    return arch, config


def recorded_id(path: str | Path) -> bytes:
    """The model id a model file records, from its header alone (not checked against its tensors)."""
    _, _, _, meta = _read(path, tensors=False)
    try:
        return bytes.fromhex(meta.get("model_id", ""))
    except ValueError:
        raise GencodecError(f"{path}: damaged model id") from None


def _compressed(path: Path) -> bool:
    return path.name.endswith(".xz")


def _read_xz(path: Path, tensors: bool) -> tuple[dict[str, str], dict[str, Any]]:
    """(metadata, tensors) of an xz-compressed safetensors file; the header alone unless ``tensors``."""
    with lzma.open(path) as f:
        head = f.read(8)
        size = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 0 < size <= MAX_XZ_BYTES - 8:
            raise ValueError("no safetensors header")
        header = f.read(size)
        if len(header) != size:
            raise ValueError("truncated header")
        body = f.read(MAX_XZ_BYTES - 8 - size) if tensors else b""
        if tensors and f.read(1):
            raise ValueError(f"more than {MAX_XZ_BYTES >> 20} MiB unpacked")
    meta = json.loads(header).get("__metadata__") or {}
    if not tensors:
        return meta, {}
    from safetensors.torch import load as load_bytes

    return meta, load_bytes(head + header + body)


def _read(path: str | Path, tensors: bool) -> tuple[str, dict[str, Any], dict[str, Any], dict[str, str]]:
    from safetensors import safe_open

    path = Path(path)
    try:
        if _compressed(path):
            meta, found = _read_xz(path, tensors)
        else:  # one read: metadata and tensors (the header alone needs no torch: numpy's view of it)
            with safe_open(str(path), framework="pt" if tensors else "numpy") as f:
                meta = f.metadata() or {}
                found = {k: f.get_tensor(k) for k in f.keys()} if tensors else {}
    except FileNotFoundError:
        raise GencodecError(f"{path}: no such model file") from None
    except Exception as e:
        raise GencodecError(f"{path}: not a gencodec model file ({type(e).__name__}: {e})") from None
    fmt = meta.get("format")
    arch = meta.get("arch") if fmt == FORMAT else LEGACY_FORMATS.get(fmt or "")
    if not arch or "config" not in meta:
        raise GencodecError(f"{path}: not a gencodec model file")
    try:
        config = json.loads(meta["config"])
    except ValueError:
        raise GencodecError(f"{path}: damaged model config") from None
    return arch, config, found, meta
