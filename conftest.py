"""Repository-wide pytest setup: tests marked ``slow`` run only with GENCODEC_SLOW=1; the clone's
gencodec-archive (``archive/``) is found by the tests and their child processes even where it is
not installed, so the golden files of older models decode in every checkout."""

import importlib.util
import os
import sys
from pathlib import Path

import pytest

ARCHIVE_SOURCE = Path(__file__).resolve().parent / "archive"

if importlib.util.find_spec("gencodec_archive") is None and (ARCHIVE_SOURCE / "gencodec_archive").is_dir():
    sys.path.insert(0, str(ARCHIVE_SOURCE))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ARCHIVE_SOURCE), os.environ.get("PYTHONPATH")) if p)


def pytest_collection_modifyitems(config, items):
    if os.environ.get("GENCODEC_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow test: set GENCODEC_SLOW=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
