"""The model zoo: model architectures by name, their shipped default weights, and the archive of
earlier shipped weights by model id (so that files they wrote keep decoding).

    model = zoo.load(path)                        # any gencodec model file, its class from its arch
    model = zoo.default_model("pixelcnn")         # the shipped weights (cached)
    path = zoo.archived("pixelcnn", model_id)     # an earlier shipped model, or None

Shipped weights live in ``gencodec/weights/<file>``. Earlier shipped ones are archived as
``<arch>-<model id hex>.safetensors.xz`` (xz-compressed, see :mod:`.modelfile`; an uncompressed
``.safetensors`` of that name is read too) in two places: ``gencodec/weights/archive/`` keeps the
model each arch shipped before its current one, and the separate data package gencodec-archive
(import name ``gencodec_archive``, in ``archive/`` of the repository) keeps all older ones, found by
name without importing it. ``gencodec/weights/archive-package.json`` lists the ids that package keeps,
so a file written by one of them is told apart from a foreign model's even where the package is not
installed (:func:`origin`). Classes are imported lazily, so reading the zoo never imports torch. A
model class without weights (``weights=None``) builds its default model with no arguments.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import GencodecError
from . import modelfile

__all__ = ["ZooEntry", "register", "unregister", "entry", "model_class", "default_weights", "archive_path", "archived", "origin",
           "archive_package_dir", "archive_package_ids", "load", "default_model", "WEIGHTS", "ARCHIVE",
           "ARCHIVE_PACKAGE", "ARCHIVE_INDEX", "INSTALL_ARCHIVE"]

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
ARCHIVE = WEIGHTS / "archive"  # in the package: the model each arch shipped before its current one
ARCHIVE_PACKAGE = "gencodec_archive"  # the import name of gencodec-archive, which keeps the older ones
ARCHIVE_INDEX = WEIGHTS / "archive-package.json"  # the ids gencodec-archive keeps, by arch
INSTALL_ARCHIVE = "pip install ./archive in a clone of gencodec's repository"


@dataclass(frozen=True)
class ZooEntry:
    arch: str
    target: str  # "module:Class"; a module starting with "." is relative to gencodec.models
    weights: str | None  # file name in gencodec/weights, or None: the class's default model


_ZOO: dict[str, ZooEntry] = {}
_DEFAULTS: dict[str, Any] = {}


def register(arch: str, target: str, weights: str | None = None) -> None:
    """Add a model class to the zoo under ``arch`` (the name its model files record)."""
    if arch in _ZOO:
        raise ValueError(f"model arch {arch!r} registered twice")
    _ZOO[arch] = ZooEntry(arch, target, weights)


def unregister(arch: str) -> None:
    _ZOO.pop(arch, None)
    _DEFAULTS.pop(arch, None)


register("pixelcnn", ".pixelcnn:ExactPixelCNN", "pixelcnn.safetensors")
register("hyperprior", ".hyperprior:ExactHyperprior", "hyperprior.safetensors")
register("sparse-transformer", ".sparse_transformer:ExactSparseTransformer", "sparse-transformer.safetensors")
register("bytemodel", ".bytemodel:ExactByteModel", "bytemodel.safetensors")


def entry(arch: str) -> ZooEntry:
    try:
        return _ZOO[arch]
    except KeyError:
        raise GencodecError(f"unknown model arch {arch!r} (known: {', '.join(_ZOO)})") from None


def model_class(arch: str) -> type:
    module, _, name = entry(arch).target.partition(":")
    return getattr(importlib.import_module(module, __package__), name)


def default_weights(arch: str) -> Path | None:
    weights = entry(arch).weights
    return WEIGHTS / weights if weights else None


def archive_path(arch: str, model_id: bytes, suffix: str = ".safetensors.xz", folder: Path | None = None) -> Path:
    """Where an archive folder (default: the package's own) keeps, or would keep, the model file with
    this id: ``<arch>-<id hex><suffix>``."""
    return (ARCHIVE if folder is None else folder) / f"{arch}-{model_id.hex()}{suffix}"


def archive_package_dir() -> Path | None:
    """The weights folder of gencodec-archive where it is installed (found, never imported), else None."""
    try:
        spec = importlib.util.find_spec(ARCHIVE_PACKAGE)
    except (ImportError, ValueError):  # a broken installation reads as none
        return None
    for root in (spec.submodule_search_locations or []) if spec is not None else []:
        if (Path(root) / "weights").is_dir():
            return Path(root) / "weights"
    return None


def archive_package_ids(arch: str) -> frozenset[bytes]:
    """The ids of the ``arch`` models gencodec-archive keeps (from the package's own index)."""
    try:
        models = json.loads(ARCHIVE_INDEX.read_text())["models"]
        return frozenset(bytes.fromhex(h) for h in models.get(arch, []))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # no index: nothing known there
        return frozenset()


def archived(arch: str, model_id: bytes) -> Path | None:
    """The archived shipped model file with this id: in the package's archive, else in
    gencodec-archive where it is installed; None if neither keeps it."""
    if len(model_id) != 16:  # what a frame claims: never more than a file name of the archive's form
        return None
    folders = [ARCHIVE, archive_package_dir()]
    for folder in (f for f in folders if f is not None):
        for suffix in (".safetensors.xz", ".safetensors"):
            path = archive_path(arch, model_id, suffix, folder)
            if path.is_file():
                return path
    return None


def origin(arch: str, model_id: bytes) -> str | None:
    """Where this installation keeps the model with this id: ``"shipped"`` (the default weights),
    ``"archived"`` (an earlier shipped model, in the package or in gencodec-archive),
    ``"archive-package"`` (an earlier shipped model gencodec-archive keeps, which is not installed),
    or None (no model gencodec shipped). Reads file headers only."""
    path = default_weights(arch)
    if path is not None and path.is_file() and modelfile.recorded_id(path) == model_id:
        return "shipped"
    if archived(arch, model_id) is not None:
        return "archived"
    return "archive-package" if model_id in archive_package_ids(arch) else None


def load(path: str | Path, arch: str | None = None) -> Any:
    """The exact model in a model file (checked against the id it records); ``arch``: refuse any other."""
    found, config, tensors, meta = modelfile.read(path)
    if arch is not None and found != arch:
        raise GencodecError(f"{path}: a {found} model file, not {arch}")
    decode_only = "decoder_id" in meta  # its tensors hash to decoder_id; model_id is the whole model's
    try:
        kw = {"model_id": bytes.fromhex(meta.get("model_id", ""))} if decode_only else {}
        model = model_class(found).from_state(config, tensors, **kw)
    except GencodecError:
        raise
    except Exception as e:  # a damaged config or tensor set: one line, never a traceback
        raise GencodecError(f"{path}: damaged {found} model file ({type(e).__name__}: {e})") from None
    own = getattr(model, "decoder_id", None) if decode_only else model.model_id
    if own is None or meta.get("decoder_id" if decode_only else "model_id") != own.hex():  # no id: refused too
        raise GencodecError(f"{path}: model id in the file does not match its tensors (damaged?)")
    return model


def config_of(path: str | Path) -> dict[str, Any]:
    """A model file's config, read from its header (cheap: for help texts and declared ranges)."""
    return modelfile.read_config(path)[1]


def default_model(arch: str) -> Any:
    """The shipped model of ``arch`` (loaded once)."""
    if arch not in _DEFAULTS:
        path = default_weights(arch)
        _DEFAULTS[arch] = load(path, arch) if path is not None else model_class(arch)()
    return _DEFAULTS[arch]
