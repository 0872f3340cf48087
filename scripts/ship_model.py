"""Ship a trained model: archive the shipped one, put the new one in its place with its card.

    python scripts/ship_model.py /work/runs/hp192o.safetensors \
        --lineage "from 5fc7aa9e (...)" --selection "rule written before the run (...)"        # dry run
    python scripts/ship_model.py ... --write

The candidate is the file ``gencodec train`` exported, with its card (.json) beside it. The card gets
``lineage`` (what it was trained from and how) and ``selection`` (the rule that chose it, with the
numbers it met); the shipped model goes to the archive first (``archive_model.py``: decode-only,
xz-compressed; the one archived before it moves on to gencodec-archive), so the files it wrote keep
decoding. Then the new model is written to
``gencodec/weights/<its zoo file>`` with that card inside and beside it, and loaded back to check its
id. Without ``--write`` it only says what it would do.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from archive_model import PACKAGE, archive

from gencodec.models import modelfile, zoo
from gencodec.train.loop import write_card


def ship(candidate: Path, lineage: str, selection: str, write: bool) -> list[str]:
    model = zoo.load(candidate)
    if getattr(model, "decode_only", False):
        raise SystemExit(f"{candidate}: a decode-only model (the archive's form) cannot be shipped")
    card = json.loads((candidate.parent / (candidate.name.removesuffix(".xz").removesuffix(".safetensors")
                                           + ".json")).read_text())
    if card.get("model_id") != model.model_id.hex():
        raise SystemExit(f"{candidate}: its card names model {card.get('model_id')}, the file holds {model.model_id.hex()}")
    card.update(lineage=lineage, selection=selection)
    target = zoo.default_weights(model.arch)
    if target is None:
        raise SystemExit(f"{model.arch}: the zoo ships no weights file for it")
    shipped = modelfile.recorded_id(target) if target.is_file() else None  # archive() checks it against the tensors
    if shipped == model.model_id:
        raise SystemExit(f"{target} is {model.model_id.hex()[:8]} already")
    said = []
    if shipped is not None:
        said.append(f"archive {shipped.hex()[:8]} -> {zoo.archive_path(model.arch, shipped)}")
        for older in sorted(zoo.ARCHIVE.glob(f"{model.arch}-*.safetensors.xz")):  # the package keeps one
            said.append(f"move {older.name[len(model.arch) + 1:][:8]} -> {PACKAGE / older.name} (gencodec-archive)")
    said.append(f"ship {model.model_id.hex()[:8]} -> {target} (+ {target.with_suffix('.json').name})")
    if write:
        if shipped is not None and zoo.archived(model.arch, shipped) is None:
            archive(target)
        model.save(target, card=card)
        write_card(target, card)
        assert zoo.load(target).model_id == model.model_id, "the shipped file must keep the model's id"
    return said


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("candidate", type=Path, help="the exported model file (its card .json beside it)")
    ap.add_argument("--lineage", required=True, help="what it was trained from, and how")
    ap.add_argument("--selection", required=True, help="the rule that chose it and the numbers it met")
    ap.add_argument("--write", action="store_true", help="do it (default: only say what it would do)")
    args = ap.parse_args()
    for line in ship(args.candidate, args.lineage, args.selection, args.write):
        print(("" if args.write else "would ") + line)


if __name__ == "__main__":
    main()
