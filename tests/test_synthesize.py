"""Synthetic reasoning data from an OpenAI-compatible endpoint (a real loopback server) and from toy tasks."""

from __future__ import annotations

import pytest

from mimo.cli import main as mimo_main
from mimo.data.synthesize import SynthesizeConfig, synthesize_endpoint, synthesize_toy
from mimo.errors import MimoError
from mimo.infer.client import ChatClient
from mimo.utils.io import read_jsonl, write_jsonl
from openai_stub import OpenAIStub


def test_endpoint_responses_selection_and_rejection(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [
        {"id": "p1", "problem": "What is 6 * 7?"},
        {"id": "d1", "text": "Kinetic energy is one half m v squared.", "domain": "science", "quality": 0.9},
        {"id": "d2", "text": "Huge sale on shoes today only!", "domain": "ads", "quality": 0.1},
        {"id": "d3", "text": "A sloppy proof sketch.", "domain": "math", "quality": 0.2},
        {"id": "p2", "question": "Say something without an answer."},
    ])
    seen = []

    def reply(messages):
        prompt = messages[0]["content"]
        seen.append(prompt)
        if "without an answer" in prompt:
            return "I refuse."  # no \\boxed{}: rejected as off-task/truncated
        return "<think>\nstep one\nstep two\n</think>\nThe answer is \\boxed{42}."

    cfg = SynthesizeConfig(input=str(tmp_path / "in.jsonl"), output=str(tmp_path / "out.jsonl"), min_quality=0.5,
                           samples=2)
    with OpenAIStub(reply) as url:
        cfg.endpoint = url
        rc = mimo_main(["data", "synthesize", "--input", cfg.input, "--output", cfg.output, "--endpoint", url,
                        "--min_quality", "0.5", "--samples", "2", "--concurrency", "3"])
    assert rc == 0
    recs = read_jsonl(tmp_path / "out.jsonl")
    assert sorted({r["source_id"] for r in recs}) == ["d1", "p1"]  # ads and low-quality documents not selected
    assert len(recs) == 4 and len(seen) == 6  # 3 prompts x 2 samples sent, p2's replies rejected
    p1 = next(r for r in recs if r["source_id"] == "p1")
    assert p1["text"].startswith("What is 6 * 7?") and "<think>" in p1["text"] and p1["text"].endswith("\\boxed{42}.")
    assert "Read the text below" in next(r for r in recs if r["source_id"] == "d1")["prompt"]


def test_endpoint_failures_are_counted_not_fatal(tmp_path):
    write_jsonl(tmp_path / "in.jsonl", [{"problem": "1 + 1?"}, {"problem": "2 + 2?"}])
    calls = []

    def reply(messages):
        calls.append(1)
        return 503 if "1 + 1" in messages[0]["content"] else "\\boxed{4}"

    with OpenAIStub(reply) as url:
        client = ChatClient(url, "m", max_retries=2, backoff=0.01)
        recs, counts = synthesize_endpoint(SynthesizeConfig(input=str(tmp_path / "in.jsonl")), client)
    assert counts["failed"] == 1 and counts["kept"] == 1 and len(calls) == 4  # 1 + 2 retries, then 1
    with pytest.raises(MimoError, match="endpoint is required"):
        ChatClient("", "m")


def test_toy_responses_are_in_mimo_format():
    recs, counts = synthesize_toy(SynthesizeConfig(mode="toy", n=50, seed=3))
    assert counts["kept"] == 50 and len({r["text"] for r in recs}) == 50
    for r in recs:
        assert "<think>\n" in r["text"] and "</think>\n" in r["text"] and "\\boxed{" in r["text"]
    assert recs == synthesize_toy(SynthesizeConfig(mode="toy", n=50, seed=3))[0]  # deterministic
