"""16-gram decontamination: exactly 16 shared words flag, 15 do not; benchmarks load; the CLI filters."""

from __future__ import annotations

import json
import random

import pytest

from mimo.cli import main as mimo_main
from mimo.data.decontam import BENCHMARKS, NgramIndex, eval_data_dir, load_benchmark, words
from mimo.errors import MimoError
from mimo.utils.io import read_jsonl, write_jsonl

ITEM = ("A bag holds seven red marbles and five blue marbles. Two marbles are drawn without replacement; what is "
        "the probability that both are red?")


def _filler(n: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return " ".join(f"zz{rng.randint(0, 10**6)}" for _ in range(n))


def test_exactly_16_shared_words_flag_and_15_do_not():
    index = NgramIndex(n=16).add([ITEM], name="toy")
    w = ITEM.split()
    sixteen = _filler(50, 1) + " " + " ".join(w[3:19]) + " " + _filler(50, 2)
    fifteen = _filler(50, 1) + " " + " ".join(w[3:18]) + " " + _filler(50, 2)
    assert index.matches(sixteen) == ["toy:0"] and index.contaminated(sixteen)
    assert index.matches(fifteen) == [] and not index.contaminated(fifteen)


def test_normalisation_case_punctuation_and_latex():
    index = NgramIndex().add(["Let $f(x) = \\frac{x^2+1}{x-1}$ for all real x not equal to one; find the minimum "
                              "value of f on the interval where x exceeds one."])
    assert index.contaminated("LET F(X) = FRAC{X^2 + 1}{X - 1} FOR ALL REAL X, NOT EQUAL TO ONE. Find the minimum!")
    assert not index.contaminated("find the minimum value of f on the interval where x is below one")


def test_short_items_match_whole_and_template_ngrams_are_ignored():
    template = "You will be given a question and will generate a correct Python program that passes all tests."
    items = [f"{template} Question: {_filler(30, i)}" for i in range(10)]
    items += ["What is seven times eight plus nine minus three halves?", "Too short to index."]
    index = NgramIndex().add(items, name="b")
    assert not index.contaminated("intro: " + template + " outro")  # shared by 10 items: template, not content
    assert index.contaminated("intro: " + template + " Question: " + _filler(30, 3)[:60])  # the item's own words
    assert index.matches("so: what is seven times eight plus nine minus three halves? 63.5") == ["b:10"]  # 10 words
    assert not index.contaminated("what is seven times eight plus nine minus three")
    assert index.skipped == 1  # under min_words (8): reported, not indexed


def test_many_documents_fast_enough():
    index = NgramIndex().add([_filler(200, s) for s in range(500)])
    docs = [_filler(300, 1000 + s) for s in range(2000)]
    assert sum(index.contaminated(d) for d in docs) == 0


@pytest.mark.skipif(eval_data_dir() is None, reason="shared evaluation data (../shared/data) not found")
def test_real_benchmarks_and_cli(tmp_path):
    for name in BENCHMARKS:
        assert len(load_benchmark(name)) >= 30
    problem = next(p for p in load_benchmark("math500") if len(words(p)) > 40)
    aime = next(p for p in load_benchmark("aime24") if len(words(p)) > 40)
    recs = [{"id": "clean", "problem": "Compute 2 + 2 and explain each step of the addition to a child."},
            {"id": "leak-math500", "problem": "Here is a problem. " + problem},
            {"id": "leak-aime", "problem": " ".join(words(aime)[2:18]) + " and so on"}]
    write_jsonl(tmp_path / "in.jsonl", recs)
    rc = mimo_main(["data", "decontaminate", "--input", str(tmp_path / "in.jsonl"), "--output",
                    str(tmp_path / "out.jsonl"), "--field", "problem", "--report", str(tmp_path / "r.json")])
    assert rc == 0
    assert [r["id"] for r in read_jsonl(tmp_path / "out.jsonl")] == ["clean"]
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["dropped"] == 2 and report["per_benchmark"].keys() >= {"math500", "aime24"}
    assert {d["id"] for d in report["dropped_records"]} == {"leak-math500", "leak-aime"}


def test_custom_benchmark_file_and_errors(tmp_path):
    (tmp_path / "heldout.txt").write_text(ITEM + "\n")
    write_jsonl(tmp_path / "in.jsonl", [{"text": "quote: " + ITEM}, {"text": "nothing to see here at all"}])
    rc = mimo_main(["data", "decontaminate", "--input", str(tmp_path / "in.jsonl"), "--output",
                    str(tmp_path / "out.jsonl"), "--benchmarks", str(tmp_path / "heldout.txt")])
    assert rc == 0 and len(read_jsonl(tmp_path / "out.jsonl")) == 1
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"text": oops}\n')
    rc = mimo_main(["data", "decontaminate", "--input", str(tmp_path / "bad.jsonl"), "--output",
                    str(tmp_path / "o.jsonl"), "--benchmarks", str(tmp_path / "heldout.txt")])
    assert rc == 2 and not (tmp_path / "o.jsonl").exists()
    with pytest.raises(MimoError, match="not a known benchmark"):
        load_benchmark("nope")
