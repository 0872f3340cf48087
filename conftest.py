"""Repository-wide pytest setup: tests marked ``slow`` run only with GENCODEC_SLOW=1."""

import os

import pytest


def pytest_collection_modifyitems(config, items):
    if os.environ.get("GENCODEC_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow test: set GENCODEC_SLOW=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
