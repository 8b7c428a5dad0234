"""``benchmarks/peers.py``'s setup: the plain Qwen2 conversion and the widened 30M model give mimo's logits, and
TRL tokenises the ChatML prompt text to mimo's prompt ids (that part skips without TRL)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _peers():
    spec = importlib.util.spec_from_file_location("peers_script", ROOT / "benchmarks" / "peers.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


PROMPTS = [[1, 5, 9, 3, 7, 2], [4, 4, 8], [10, 11, 12, 13, 14, 15, 16, 17]]


def test_qwen2_conversion_logits_equal(tiny_model):
    peers = _peers()
    model = tiny_model()
    assert peers.max_logit_gap(model, peers.to_qwen2(model), PROMPTS) == 0.0


def test_widened_model_keeps_the_function(tiny_model):
    peers = _peers()
    model = tiny_model()  # hidden 32, 4 heads of 8, 2 key heads
    wide = peers.widen(model, hidden=64, intermediate=128, layers=3, heads=8, kv_heads=4)
    assert wide.config.num_hidden_layers == 3 and wide.config.hidden_size == 64
    assert peers.max_logit_gap(model, wide, PROMPTS) < 1e-5
    assert peers.max_logit_gap(wide, peers.to_qwen2(wide), PROMPTS) == 0.0


def test_trl_prompt_ids_equal_mimo(tmp_path):
    pytest.importorskip("trl", reason="TRL is not installed (benchmarks/peers.py installs it in its own venv)")
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from mimo.model import MiMoForCausalLM, ModelSpec
    from mimo.tasks import MathTaskGenerator
    from mimo.tokenizer import format_chat, train_bpe

    peers = _peers()
    probs = MathTaskGenerator(seed=0, max_steps=1, max_digits=1).sample(20)
    tok = train_bpe([p.chat_prompt() + p.chat_response() for p in probs], 300, tmp_path / "tok")
    model = MiMoForCausalLM(ModelSpec(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2).to_hf())
    qwen = peers.to_qwen2(model)
    texts = [p.prompt_text() for p in probs]
    chat = [format_chat([{"role": "user", "content": t}]) for t in texts]
    args = GRPOConfig(output_dir=str(tmp_path / "trl"), per_device_train_batch_size=4, num_generations=4,
                      max_completion_length=4, use_cpu=True, report_to="none", max_steps=1)
    trainer = GRPOTrainer(model=qwen, reward_funcs=lambda completions, **_: [0.0] * len(completions), args=args,
                          train_dataset=Dataset.from_list([{"prompt": c} for c in chat]),
                          processing_class=AutoTokenizer.from_pretrained(str(tmp_path / "tok")))
    got = trainer._tokenize_prompts(chat)[0]
    assert [list(x) for x in got] == [tok.chat_prompt(t) for t in texts]
