"""Shared test set-up: tiny random MiMo models, the shared evaluation data, and the slow switch (MIMO_SLOW=1)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mimo.utils.paths import eval_data_dir

REPO = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    if os.environ.get("MIMO_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: set MIMO_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared evaluation data folder; tests that need it skip where it is absent."""
    path = eval_data_dir()
    if path is None:
        pytest.skip("../shared/data not found (set MIMO_EVAL_DATA)")
    return path


@pytest.fixture
def tiny_config():
    from mimo.model import ModelSpec

    def make(**kw):
        base = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, max_position_embeddings=256, num_nextn_predict_layers=1)
        base.update(kw)
        hf_overrides = {k: base.pop(k) for k in list(base) if k in ("eos_token_id",)}
        return ModelSpec(**base).to_hf(**hf_overrides)

    return make


@pytest.fixture
def tiny_model(tiny_config):
    import torch

    from mimo.model import MiMoForCausalLM

    def make(seed: int = 0, **kw):
        torch.manual_seed(seed)
        return MiMoForCausalLM(tiny_config(**kw)).eval()

    return make
