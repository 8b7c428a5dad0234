"""Tokenizer: BPE round trip, ChatML template equals the Jinja one, special tokens are single ids."""

from __future__ import annotations

import doctest

import mimo.tokenizer
from mimo.tokenizer import END_THINK, IM_END, IM_START, THINK, Tokenizer, format_chat, train_bpe


def test_doctests():
    assert doctest.testmod(mimo.tokenizer).failed == 0


def test_train_roundtrip_and_chat(tmp_path):
    texts = ["Compute 12 + 345. The answer is \\boxed{357}.", "def f(x):\n    return x * 2\n"] * 50
    tok = train_bpe(texts, 300, tmp_path)
    again = Tokenizer.load(tmp_path)
    s = "Compute 987 - 65.\n    indented  code\t<think>\nx\n</think>\n"
    assert again.decode(again.encode(s)) == s
    for special in (IM_START, IM_END, THINK, END_THINK):
        assert len(again.encode(special)) == 1
    # digits are split one by one
    assert len(again.encode("123456")) == 6
    msgs = [{"role": "user", "content": "What is 2+2?"}]
    assert again.hf.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) == format_chat(msgs)
    assert again.decode(again.chat_prompt("What is 2+2?")) == format_chat(msgs)
    assert set(again.stop_ids) == {tok.eos_id, tok.im_end_id}
    with_system = [{"role": "system", "content": "Be brief."}] + msgs
    assert again.hf.apply_chat_template(with_system, tokenize=False, add_generation_prompt=False) == \
        format_chat(with_system, add_generation_prompt=False)
