"""Shared fixtures: tiny random MiMo models, and the slow-test switch (MIMO_SLOW=1)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    if os.environ.get("MIMO_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: set MIMO_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


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
