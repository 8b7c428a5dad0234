"""Shared test set-up: ``@pytest.mark.slow`` runs only with MIMO_SLOW=1; where the shared evaluation data lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    if os.environ.get("MIMO_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: set MIMO_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def find_shared_data() -> Path | None:
    """``../shared/data`` beside the repository (or $MIMO_SHARED_DATA); None when absent."""
    candidates = [os.environ.get("MIMO_SHARED_DATA"), REPO.parent / "shared" / "data",
                  REPO.parent.parent / "shared" / "data"]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared evaluation data folder; tests that need it skip where it is absent."""
    path = find_shared_data()
    if path is None:
        pytest.skip("../shared/data not found (set MIMO_SHARED_DATA)")
    return path
