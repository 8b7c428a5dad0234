"""Dedup on datatrove's stages: near-duplicates go, math pages that differ only in numbers stay, URL dups go."""

from __future__ import annotations

import json
import random

import pytest

from mimo.data.dedup import DedupConfig, main, normalize_url
from mimo.data.toy_web import near_duplicate
from mimo.errors import MimoError
from mimo.utils.io import read_jsonl, write_jsonl


def _kept(out) -> list[dict]:
    return [r for f in sorted(out.glob("0*.jsonl")) for r in read_jsonl(f)]


def _math_page(rng: random.Random, abc: tuple[int, int, int] | None = None) -> str:
    """One template, new numbers: distinct problems whose words are otherwise identical."""
    a, b, c = abc or (rng.randint(11, 99), rng.randint(11, 99), rng.randint(3, 9))
    d = rng.randint(101, 999)
    return (f"Problem {d}. A train leaves the station at {c} am and travels {a} km per hour for {c} hours, then "
            f"{b} km per hour for {c + 1} hours. How far does it travel in total? Solution. In the first part it "
            f"covers {a} times {c} = {a * c} km and in the second part {b} times {c + 1} = {b * (c + 1)} km. The "
            f"total is {a * c} + {b * (c + 1)} = {a * c + b * (c + 1)} km, so the answer is "
            f"{a * c + b * (c + 1)}. Check: {a * c + b * (c + 1)} minus {b * (c + 1)} gives back {a * c}.")


def test_near_duplicates_removed_and_math_pages_differing_in_numbers_kept(tmp_path):
    rng = random.Random(0)
    vocab = [f"word{i}" for i in range(20000)]
    originals = [" ".join(rng.choice(vocab) for _ in range(300)) for _ in range(300)]
    recs = [{"id": f"o{i}", "url": f"https://a.org/{i}", "text": t} for i, t in enumerate(originals)]
    recs += [{"id": f"n{i}", "url": f"https://mirror.org/{i}", "text": near_duplicate(rng, t, 0.01)}
             for i, t in enumerate(originals)]
    problems = {(rng.randint(11, 99), rng.randint(11, 99), rng.randint(3, 9)) for _ in range(300)}  # distinct
    math_pages = {_math_page(rng, abc) for abc in sorted(problems)}
    recs += [{"id": f"m{i}", "url": f"https://math.org/{i}", "text": t} for i, t in enumerate(sorted(math_pages))]
    rng.shuffle(recs)
    write_jsonl(tmp_path / "in.jsonl", recs)
    report = main(DedupConfig(input=str(tmp_path / "in.jsonl"), output=str(tmp_path / "out")))
    kept = {r["id"] for r in _kept(tmp_path / "out")}
    pairs_collapsed = sum((f"o{i}" in kept) + (f"n{i}" in kept) == 1 for i in range(len(originals)))
    assert pairs_collapsed / len(originals) >= 0.99
    assert all((f"o{i}" in kept) or (f"n{i}" in kept) for i in range(len(originals)))  # one copy always survives
    assert sum(r.startswith("m") for r in kept) == len(math_pages)  # 0 removals among the math pages
    assert report["output_docs"] == len(kept) and json.loads((tmp_path / "out/dedup_report.json").read_text())


def test_digit_normalisation_would_have_merged_the_math_pages():
    """The pitfall the config avoids: datatrove's default text normalisation maps every number to 0."""
    from datatrove.utils.text import TextNormConfig, simplify_text

    rng = random.Random(1)
    a, b = _math_page(rng), _math_page(rng)
    assert a != b
    assert simplify_text(a, TextNormConfig()) == simplify_text(b, TextNormConfig())
    assert simplify_text(a, TextNormConfig(norm_numbers=False)) != simplify_text(b, TextNormConfig(norm_numbers=False))


def test_url_duplicates_removed_keeping_the_longest(tmp_path):
    recs = [
        {"id": "a", "url": "https://www.site.org/page/?utm_source=x", "text": "short crawl of the page"},
        {"id": "b", "url": "http://site.org/page", "text": "a longer crawl of the same page with more of its text"},
        {"id": "c", "url": "https://site.org/page#comments", "text": "another crawl"},
        {"id": "d", "url": "https://site.org/other", "text": "a different page about different things entirely"},
        {"id": "e", "text": "no url at all, never a URL duplicate"},
        {"id": "f", "text": "no url either, also kept"},
    ]
    write_jsonl(tmp_path / "in.jsonl", recs)
    main(DedupConfig(input=str(tmp_path / "in.jsonl"), output=str(tmp_path / "out"), minhash=False))
    assert sorted(r["id"] for r in _kept(tmp_path / "out")) == ["b", "d", "e", "f"]


def test_normalize_url():
    assert normalize_url("HTTPS://WWW.a.org:443/x/?b=2&a=1&utm_medium=y#f") == "a.org/x?a=1&b=2"
    assert normalize_url("a.org/x") == normalize_url("http://a.org/x/")
    assert normalize_url("https://a.org:8080/") == "a.org:8080"


def test_malformed_line_names_file_and_line(tmp_path):
    (tmp_path / "in.jsonl").write_text('{"id": "a", "text": "x", "url": "u"}\n{not json\n')
    with pytest.raises(MimoError, match=r"in\.jsonl:2"):
        main(DedupConfig(input=str(tmp_path / "in.jsonl"), output=str(tmp_path / "out")))
