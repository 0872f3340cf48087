"""The shipped corpora are exactly what their manifests say (nothing re-encoded, nothing missing)."""

import hashlib
import json
from pathlib import Path

import pytest

CORPORA = Path(__file__).resolve().parent.parent / "corpora"


@pytest.mark.parametrize("corpus", ["kodak", "canterbury"])
def test_manifest_matches_files(corpus):
    manifest = json.loads((CORPORA / corpus / "manifest.json").read_text())
    files = manifest["files"]
    assert len(files) == {"kodak": 24, "canterbury": 11}[corpus]
    for entry in files:
        data = (CORPORA / entry["file"]).read_bytes()
        assert len(data) == entry["bytes"], entry["file"]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["file"]
