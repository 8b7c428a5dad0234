"""SFT: assistant-only masks, packing equals separate conversations, hygiene drops by reason, exact resume."""

from __future__ import annotations

import json

import pytest
import torch

from mimo.config import resolve_config
from mimo.data.decontam import NgramIndex
from mimo.data.sft import clean_sft, encode_conversation, messages_of, pack
from mimo.errors import MimoError
from mimo.tokenizer import IM_END, train_bpe
from mimo.train.sft import SFTConfig, window_batch
from mimo.train.sft import main as sft_main


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    texts = ["Compute 12 + 34. <think>\n12 + 34 = 46\n</think>\nThe answer is \\boxed{46}."] * 50
    return train_bpe(texts, 260, tmp_path_factory.mktemp("tok"))


def _conv(q, a):
    return [{"role": "user", "content": q}, {"role": "assistant", "content": a}]


def test_mask_covers_assistant_content_and_im_end(tok):
    msgs = _conv("What is 2 + 3?", "<think>\n2 + 3 = 5\n</think>\n\\boxed{5}")
    ids, mask = encode_conversation(tok, msgs)
    assert tok.decode(ids) == tok.decode(tok.encode("")) + \
        "<|im_start|>system\n<|im_end|>\n<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n" \
        "<think>\n2 + 3 = 5\n</think>\n\\boxed{5}<|im_end|>\n"
    assert tok.decode([t for t, m in zip(ids, mask) if m]) == msgs[1]["content"] + IM_END
    # the prompt part equals what generation is prompted with
    assert ids[: mask.index(1)] == tok.chat_prompt("What is 2 + 3?")


def test_packed_loss_equals_separate_conversations(tok, tiny_model):
    model = tiny_model(vocab_size=tok.vocab_size)
    convs = [_conv("What is 1 + 1?", "<think>\n1 + 1 = 2\n</think>\n2"), _conv("Hi", "Hello there."),
             _conv("Compute 7 * 3.", "<think>\n7 * 3 = 21\n</think>\n\\boxed{21}")]
    examples = [encode_conversation(tok, c) for c in convs]
    windows, too_long = pack(examples, 256, tok.pad_id)
    assert len(windows) == 1 and too_long == 0
    batch = window_batch(windows, [0], "cpu")
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   position_ids=batch["position_ids"]).logits[0]
    at = 0
    for ids, _mask in examples:
        alone = model(input_ids=torch.tensor([ids])).logits[0]
        assert torch.allclose(logits[at:at + len(ids)], alone, atol=1e-5)
        at += len(ids)


def test_hygiene_drops_each_reason():
    recs = [
        {"messages": _conv("q1", "<think>\nnot closed")},
        {"messages": _conv("q2", "<think>\nx\n</think>\n   ")},
        {"messages": _conv("q3", "fine"), "finish_reason": "length"},
        {"messages": _conv("q4", "答案是 five because the number 五 is written 五五五五五五五五 here")},
        {"messages": _conv("one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
                           "fifteen sixteen", "ok")},
    ] + [{"messages": _conv("q5", f"answer {i}")} for i in range(11)] + [{"messages": _conv("q6", "clean")}]
    index = NgramIndex(n=16).add(["zero one two three four five six seven eight nine ten eleven twelve thirteen "
                                  "fourteen fifteen sixteen seventeen"], name="bench")
    kept, report = clean_sft(recs, index, max_per_query=8)
    assert report["dropped"] == {"unclosed_think": 1, "no_answer": 1, "truncated": 1, "mixed_language": 1,
                                 "contaminated": 1, "over_max_responses": 3}
    assert report["kept"] == 9 and {r["messages"][0]["content"] for r in kept} == {"q5", "q6"}


def test_bad_records_name_the_line(tmp_path):
    from mimo.data.sft import load_conversations

    p = tmp_path / "d.jsonl"
    bad = {"messages": [{"role": "user", "content": "x"}]}
    p.write_text(json.dumps({"prompt": "a", "response": "b"}) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(MimoError, match=r"d.jsonl:2: the last message must be the assistant's"):
        load_conversations(p)
    with pytest.raises(MimoError, match="expected 'messages'"):
        messages_of({"text": "x"}, "f:1")


def test_sft_resume_is_exact(tmp_path, tiny_model, tok):
    model = tiny_model(vocab_size=tok.vocab_size)
    init = tmp_path / "init"
    model.save_pretrained(str(init))
    tok.save(init)

    def cfg(out, **kw):
        base = {"init_from": str(init), "out_dir": str(out), "toy.problems": "120", "seq_len": "128",
                "batch_size": "4", "micro_batch_size": "2", "steps": "6", "lr": "0.003", "save_every": "3",
                "decontaminate": "[]", "decontaminate_toy_heldout": "0", "threads": "1"}
        base.update(kw)
        return resolve_config(SFTConfig, "sft", overrides=base)

    sft_main(cfg(tmp_path / "a"))
    sft_main(cfg(tmp_path / "b", max_steps="3"))
    sft_main(cfg(tmp_path / "b", resume="true"))

    def losses(d):
        rows = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
        return {r["step"]: r["loss"] for r in rows}

    a, b = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert sorted(a) == sorted(b) == list(range(1, 7))
    assert all(abs(a[s] - b[s]) < 1e-6 for s in a)
    report = json.loads((tmp_path / "a" / "sft_data_report.json").read_text())
    assert report["kept"] == 120
