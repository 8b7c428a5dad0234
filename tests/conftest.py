"""Shared pytest setup: tests marked ``slow`` run only with ``MIMO_SLOW=1``."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config, items):
    if os.environ.get("MIMO_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: set MIMO_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
