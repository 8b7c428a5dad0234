"""Taggers: the small model learns the seed labels; the LLM tagger talks to a real (loopback) endpoint."""

from __future__ import annotations

import json
import random

from mimo.cli import main as mimo_main
from mimo.data.tag import LLMTagger, SmallTagger, parse_llm_tags
from mimo.data.toy_web import DOMAINS, document, seed_documents
from mimo.infer.client import ChatClient
from mimo.utils.io import read_jsonl, write_jsonl
from openai_stub import OpenAIStub


def test_small_tagger_learns_domains_quality_and_reasoning(tmp_path):
    tagger = SmallTagger().fit(seed_documents(350, seed=1))
    rng = random.Random(99)  # unseen pages
    pages = [document(rng, DOMAINS[i % len(DOMAINS)]) for i in range(140)]
    tags = tagger.tag_batch([p["text"] for p in pages])
    accuracy = sum(t["domain"] == p["domain"] for t, p in zip(tags, pages)) / len(pages)
    assert accuracy >= 0.95
    for t, p in zip(tags, pages):
        assert 0 <= t["quality"] <= 1 and abs(t["reasoning"] - p["reasoning"]) < 0.25
    math_q = [t["quality"] for t, p in zip(tags, pages) if p["domain"] == "math"]
    ads_q = [t["quality"] for t, p in zip(tags, pages) if p["domain"] == "ads"]
    assert min(math_q) > max(ads_q)  # a math page is never scored below an ad
    tagger.save(tmp_path / "t.pkl")
    assert SmallTagger.load(tmp_path / "t.pkl").tag_batch([pages[0]["text"]]) == tags[:1]


def test_tag_cli_trains_on_seed_file_and_tags_documents(tmp_path):
    write_jsonl(tmp_path / "seeds.jsonl", seed_documents(140, seed=3))
    rng = random.Random(5)
    write_jsonl(tmp_path / "docs.jsonl", [{"id": str(i), "text": document(rng, d)["text"]}
                                          for i, d in enumerate(["math", "code", "ads", "jobs"] * 5)])
    rc = mimo_main(["data", "tag", "--input", str(tmp_path / "docs.jsonl"), "--output", str(tmp_path / "out"),
                    "--train", str(tmp_path / "seeds.jsonl"), "--save_model", str(tmp_path / "m.pkl")])
    assert rc == 0 and (tmp_path / "m.pkl").is_file()
    recs = [r for f in sorted((tmp_path / "out").glob("0*.jsonl")) for r in read_jsonl(f)]
    assert sorted(int(r["id"]) for r in recs) == list(range(20))
    assert {r["domain"] for r in recs} == {"math", "code", "ads", "jobs"}


def test_llm_tagger_through_an_openai_compatible_endpoint():
    def reply(messages):
        text = messages[0]["content"]
        if "boxed" in text:
            return 'Here you go: {"domain": "math", "quality": 0.9, "reasoning": 0.8}'
        if "hiring" in text:
            return "I cannot classify this."
        return '{"domain": "ads", "quality": -3, "reasoning": 0}'

    with OpenAIStub(reply) as url:
        tagger = LLMTagger(ChatClient(url, "tagger-model"), concurrency=4)
        tags = tagger.tag_batch(["Solve it: \\boxed{3}", "We are hiring a nurse", "BUY NOW 50% off"])
    assert tags[0]["domain"] == "math" and tags[0]["quality"] == 0.9
    assert tags[1]["domain"] == "unknown"  # an unparseable reply is marked, not guessed
    assert tags[2] == {"domain": "ads", "domain_scores": {"ads": 1.0}, "quality": 0.0, "reasoning": 0.0}


def test_parse_llm_tags_rejects_unknown_domains_and_garbage():
    assert parse_llm_tags('{"domain": "poetry", "quality": 1, "reasoning": 1}') is None
    assert parse_llm_tags('{"domain": "math"}') is None
    assert parse_llm_tags("") is None
    assert json.dumps(parse_llm_tags('{"domain": "Code", "quality": "0.5", "reasoning": 0.2}'))
