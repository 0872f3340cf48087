"""Keep a shipped model in the archive, so the files it wrote keep decoding.

    python scripts/archive_model.py gencodec/weights/hyperprior.safetensors   # before shipping another
    python scripts/archive_model.py --in-place gencodec/weights/archive/*.safetensors

Writes ``gencodec/weights/archive/<arch>-<model id>.safetensors.xz`` (xz-compressed: about 40 % smaller;
and copies the card JSON beside the model, when there is one). A model that can be cut to a decoder
(``decoder()``: a hyperprior without its analysis transforms) is archived in that decode-only form,
under the whole model's id: the archive only ever decodes. The package keeps one archived model an
arch, the one the shipped model replaced: the one it held before moves (with its card) to
gencodec-archive (``archive/gencodec_archive/weights/``), whose ids gencodec lists in
``gencodec/weights/archive-package.json``, and whose version (``archive/pyproject.toml``) then moves to
the day's date, so that an upgrade installs the new files. ``--in-place`` rewrites archive files into the decode-only
form (an uncompressed one is replaced by its ``.xz``, once that reads back under the same id).
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import shutil
from pathlib import Path

from gencodec.models import modelfile, zoo

PACKAGE = Path(__file__).resolve().parent.parent / "archive" / "gencodec_archive" / "weights"
PYPROJECT = PACKAGE.parent.parent / "pyproject.toml"


def next_version(current: str, today: datetime.date) -> str:
    """gencodec-archive's version after a change of its files: the date (2026.12.6), with a serial
    after it when the version already has that date (2026.12.6.1, 2026.12.6.2, ...)."""
    day = f"{today.year}.{today.month}.{today.day}"
    if current == day:
        return f"{day}.1"
    if current.startswith(day + ".") and current[len(day) + 1:].isdigit():
        return f"{day}.{int(current[len(day) + 1:]) + 1}"
    return day


def bump_version(pyproject: Path = PYPROJECT, today: datetime.date | None = None) -> str:
    """Set the archive package's version to :func:`next_version` of the one it has; returns it."""
    text = pyproject.read_text()
    m = re.search(r'^version = "([^"]+)"$', text, flags=re.M)
    if m is None:
        raise SystemExit(f"{pyproject}: no version line")
    new = next_version(m.group(1), today or datetime.date.today())
    tmp = pyproject.with_suffix(".tmp")
    tmp.write_text(text[:m.start(1)] + new + text[m.end(1):])
    tmp.replace(pyproject)
    return new


def to_package(arch: str, keep: bytes) -> list[Path]:
    """Move every archived ``arch`` model but ``keep`` from the package's archive to gencodec-archive,
    and list their ids in gencodec's index of it. Returns the moved model files."""
    moved = []
    index = json.loads(zoo.ARCHIVE_INDEX.read_text())
    ids = set(index["models"].get(arch, []))
    for path in sorted(zoo.ARCHIVE.glob(f"{arch}-*.safetensors.xz")):
        model_id = bytes.fromhex(path.name.removesuffix(".safetensors.xz").rsplit("-", 1)[1])
        if model_id == keep:
            continue
        for src in (path, zoo.archive_path(arch, model_id, ".json")):
            if src.is_file():
                shutil.move(src, PACKAGE / src.name)
        ids.add(model_id.hex())
        moved.append(PACKAGE / path.name)
    if moved:
        index["models"][arch] = sorted(ids)
        tmp = zoo.ARCHIVE_INDEX.with_suffix(".tmp")
        tmp.write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
        tmp.replace(zoo.ARCHIVE_INDEX)
        bump_version()
    return moved


def archive(path: Path, in_place: bool = False) -> Path:
    model = zoo.load(path)
    _, _, _, meta = modelfile.read(path)
    card = json.loads(meta["card"]) if "card" in meta else None
    out = zoo.archive_path(model.arch, model.model_id)
    if in_place:
        out = path.parent / out.name
    if not in_place and zoo.archived(model.arch, model.model_id) is not None:
        raise SystemExit(f"{model.arch} model {model.model_id.hex()} is archived already")
    kept = model.decoder() if hasattr(model, "decoder") and not getattr(model, "decode_only", False) else model
    kept.save(out, card=card)
    again = zoo.load(out)
    assert again.model_id == model.model_id, "the archived file must keep the model's id"
    side = path.with_suffix(".json")
    if not in_place and side.is_file():
        shutil.copy(side, zoo.archive_path(model.arch, model.model_id, ".json"))
    if in_place and path != out:
        path.unlink()
    if not in_place:
        to_package(model.arch, keep=model.model_id)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--in-place", action="store_true", help="rewrite archive files into their decode-only form")
    args = ap.parse_args()
    for path in args.models:
        before = path.stat().st_size
        out = archive(path, args.in_place)
        print(f"{path} ({before:,} bytes) -> {out} ({out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
