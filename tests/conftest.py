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


def train_tiny_sft(root, heads: int = 4, kv_heads: int = 2):
    """A tiny model taught the answer format on one-step, one-digit problems: it gets some right (informative
    groups) without being good.  Returns its final SFT directory under ``root``."""
    import torch

    from mimo.config import resolve_config
    from mimo.model import MiMoForCausalLM, ModelSpec
    from mimo.tasks import MathTaskGenerator
    from mimo.tokenizer import train_bpe
    from mimo.train.sft import SFTConfig
    from mimo.train.sft import main as sft_main

    probs = MathTaskGenerator(seed=0, max_steps=1, max_digits=1).sample(80)  # ~85 one-step train problems exist
    tok = train_bpe([p.chat_prompt() + p.chat_response() for p in probs], 300, root / "init")
    torch.manual_seed(0)
    model = MiMoForCausalLM(ModelSpec(vocab_size=tok.vocab_size, hidden_size=64, intermediate_size=128,
                                      num_hidden_layers=2, num_attention_heads=heads,
                                      num_key_value_heads=kv_heads).to_hf(eos_token_id=tok.stop_ids))
    model.save_pretrained(str(root / "init"))
    cfg = resolve_config(SFTConfig, "sft", overrides={
        "init_from": str(root / "init"), "out_dir": str(root / "sft"), "toy.problems": "80",
        "toy.tasks.max_steps": "1", "toy.tasks.max_digits": "1", "toy.teacher_slip_rate": "0.0",
        "toy.teacher_mul_bias": "0.0", "seq_len": "128",
        "batch_size": "16", "micro_batch_size": "16", "steps": "60", "lr": "0.01", "decontaminate": "[]",
        "decontaminate_toy_heldout": "0", "log_every": "1000", "threads": "1"})
    sft_main(cfg)
    return root / "sft" / "final"


@pytest.fixture(scope="session")
def rl_sft_model(tmp_path_factory):
    """:func:`train_tiny_sft`, shared by the RL tests (tests/test_rl_engine.py, tests/test_rl_dist.py)."""
    return train_tiny_sft(tmp_path_factory.mktemp("rlmodel"))


@pytest.fixture(scope="session")
def tiny_sft():
    """:func:`train_tiny_sft` for tests that need their own shape of it."""
    return train_tiny_sft
