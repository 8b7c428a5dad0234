"""`mimo data curate-rl` on a hand-made problem file: every kind of bad problem dropped with the right reason,
clean problems kept byte for byte, malformed lines reported, the LLM classifier through a real HTTP stub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mimo.data.cli import cli
from mimo.errors import MimoError
from openai_stub import OpenAIStub

BENCH = {"problem": "Let $a$ and $b$ be positive real numbers such that $a + b = 10$ and the product of the two "
                    "numbers is as large as possible under this constraint. Compute the maximum value of $ab$."}


def _code(pid, fn, tests, solution=None, **extra):
    rec = {"id": pid, "kind": "code", "problem": f"Write a Python function {fn}(x) as described. ({pid})",
           "fn_name": fn, "tests": [{"testtype": "functional", "input": json.dumps(i), "output": json.dumps(o)}
                                    for i, o in tests]}
    if solution is not None:
        rec["solution"] = solution
    return {**rec, **extra}


# (line as written, expected reason or None for kept).  Clean lines use odd formatting on purpose (no spaces,
# \u escapes, an int answer): kept records must come out byte for byte.
LINES: list[tuple[str, str | None]] = [
    ('{"id":"m-clean",  "kind":"math","problem":"What is $\\\\frac{3}{4} + \\\\frac{1}{8}$?",'
     '"answer":"\\\\frac{7}{8}","source":"caf\\u00e9"}', None),
    (json.dumps({"id": "m-int", "problem": "Compute $17 \\times 23$.", "answer": 391}), None),
    (json.dumps({"id": "m-templ", "problem": "Compute $17 \\times 24$.", "answer": 408}), None),  # not a duplicate
    (json.dumps({"id": "m-find-prove", "problem": "Find the least $n$ with $n^2 > 50$ and prove it is least.",
                 "answer": "8"}), None),
    (json.dumps({"id": "m-prob", "problem": "Events A and B are independent with P(A) = 0.5 and P(B) = 0.4. "
                 "Find P(A and B).", "answer": "0.2"}), None),
    (json.dumps({"id": "m-proof", "problem": "Prove that the sum of two odd integers is even.",
                 "answer": "proof"}), "proof"),
    (json.dumps({"id": "m-show", "problem": "Show that $n^3 - n$ is divisible by 6 for every integer $n$.",
                 "answer": "n^3-n=(n-1)n(n+1)"}), "proof"),
    (json.dumps({"id": "m-mc", "problem": "Which number is prime? (A) 21 (B) 27 (C) 29 (D) 33",
                 "answer": "C"}), "multiple_choice"),
    (json.dumps({"id": "m-mc-amc", "problem": "What is $2^5$?\n$\\textbf{(A)}\\ 10 \\qquad \\textbf{(B)}\\ 25 "
                 "\\qquad \\textbf{(C)}\\ 32 \\qquad \\textbf{(D)}\\ 64$", "answer": "\\textbf{(C)}"}),
     "multiple_choice"),
    (json.dumps({"id": "m-badtex", "problem": "Evaluate $\\int_0^1 x\\,dx$.", "answer": "\\frac{1}{"}),
     "unparsable_answer"),
    (json.dumps({"id": "m-na", "problem": "Evaluate $1+2+3$.", "answer": "N/A"}), "unparsable_answer"),
    (json.dumps({"id": "m-noanswer", "problem": "Evaluate $4+5+6$."}), "unparsable_answer"),
    (json.dumps({"id": "m-sentence", "problem": "Where is the centroid of the triangle in the figure?",
                 "answer": "\\text{the answer is in the figure}"}), "unparsable_answer"),
    (json.dumps({"id": "m-dup", "problem": "what is  $\\frac{3}{4}+\\frac{1}{8}$ ?", "answer": "7/8"}), "duplicate"),
    (json.dumps({"id": "m-contam", "problem": BENCH["problem"].replace("value of", "of"), "answer": "25"}),
     "contaminated"),
    ("this line is not JSON", "malformed"),
    (json.dumps(_code("c-clean", "add1", [(1, 2), (5, 6), (-1, 0)], "def add1(x):\n    return x + 1\n")), None),
    (json.dumps(_code("c-nosol", "twice", [(1, 2)])), None),  # no golden solution: kept, noted
    (json.dumps(_code("c-notests", "neg", [], "def neg(x):\n    return -x\n")), "no_tests"),
    (json.dumps({k: v for k, v in _code("c-missing", "inc", [], "def inc(x):\n    return x\n").items()
                 if k != "tests"} | {"kind": "code"}), "no_tests"),
    (json.dumps(_code("c-fails", "sq", [(2, 4), (3, 10), (4, 16)], "def sq(x):\n    return x * x\n")),
     "golden_fails"),
    (json.dumps(_code("c-badtests", "f", [(1, 1)], "def f(x):\n    return x\n")).replace('"functional"', '"weird"'),
     "bad_tests"),
    (json.dumps({"id": "m-int", "problem": "What is 2+2?", "answer": "4"}), "duplicate_id"),
    (json.dumps({"id": "x-noproblem", "answer": "4"}), "bad_record"),
]


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("curate")
    (tmp / "bench.jsonl").write_text(json.dumps(BENCH) + "\n")
    (tmp / "in.jsonl").write_text("\n".join(line for line, _ in LINES) + "\n")
    rc = cli(["curate-rl", "--input", str(tmp / "in.jsonl"), "--output", str(tmp / "out.jsonl"),
              "--report", str(tmp / "report.json"), "--benchmarks", f"[{tmp / 'bench.jsonl'}:problem]",
              "--pool.workers", "2"])
    assert rc == 0
    return tmp, json.loads((tmp / "report.json").read_text())


def test_every_bad_problem_is_dropped_with_its_reason(curated):
    _, report = curated
    expected: dict[str, list[str]] = {}
    for line, reason in LINES:
        if reason not in (None, "malformed"):
            expected.setdefault(reason, []).append(json.loads(line)["id"])
    got = {reason: sorted(ids) for reason, ids in report["dropped"].items() if ids}
    assert got == {reason: sorted(ids) for reason, ids in expected.items()}
    for reason in ("proof", "multiple_choice", "unparsable_answer", "duplicate", "contaminated", "no_tests",
                   "golden_fails"):
        assert reason in report["dropped"]
    assert report["kept"] == sum(reason is None for _, reason in LINES)
    assert report["records"] == len(LINES) - 1
    details = {d["id"]: d for d in report["dropped_records"]}
    assert "test 1" in details["c-fails"]["detail"] and "wrong_answer" in details["c-fails"]["detail"]
    assert details["c-fails"]["verdicts"] == ["passed", "wrong_answer", "passed"]  # the per-test results
    assert "m-clean" in details["m-dup"]["detail"]
    assert "bench:0" in details["m-contam"]["detail"]
    assert details["m-contam"]["line"] == 1 + [r for _, r in LINES].index("contaminated")


def test_clean_problems_are_kept_byte_for_byte(curated):
    tmp, _ = curated
    out = (tmp / "out.jsonl").read_text().splitlines()
    kept_in = [line for line, reason in LINES if reason is None]
    assert len(out) == len(kept_in)
    for got, want in zip(out, kept_in):
        if '"kind": "code"' in want and '"solution"' in want:
            # the only change: the golden solution's per-test verdicts, appended
            assert got.startswith(want[:-1]) and json.loads(got)["golden_verdicts"] == ["passed"] * 3
            assert {k: v for k, v in json.loads(got).items() if k != "golden_verdicts"} == json.loads(want)
        else:
            assert got == want


def test_malformed_lines_and_report_files(curated):
    tmp, report = curated
    bad_line = 1 + [r for _, r in LINES].index("malformed")
    assert [m["line"] for m in report["malformed_lines"]] == [bad_line]
    md = (tmp / "report.md").read_text()
    assert "golden_fails" in md and "`c-fails`" in md and str(bad_line) in md
    assert "code_without_solution" in report["notes"]


def test_output_is_what_mimo_rl_loads(curated):
    from mimo.rl.problems import load_problems

    class Tok:  # load_problems only builds prompts with it
        def chat_prompt(self, text):
            return [len(text)]

    tmp, report = curated
    problems = load_problems(tmp / "out.jsonl", Tok())
    assert len(problems) == report["kept"]
    assert {p.kind for p in problems} == {"math", "code"}


def test_strict_stops_at_the_first_malformed_line(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "a", "problem": "What is 1+1?", "answer": "2"}) + "\n{oops\n")
    with pytest.raises(MimoError, match=r"in\.jsonl:2"):
        cli(["curate-rl", "--input", str(src), "--output", str(tmp_path / "o.jsonl"), "--benchmarks", "[]",
             "--strict", "true"])
    src.write_text(json.dumps({"id": "a", "kind": "poem", "problem": "Roses"}) + "\n")
    with pytest.raises(MimoError, match=r"in\.jsonl:1: kind"):
        cli(["curate-rl", "--input", str(src), "--output", str(tmp_path / "o.jsonl"), "--benchmarks", "[]",
             "--strict", "true"])


def test_llm_classifier_drops_what_the_rules_miss(tmp_path):
    disguised_proof = "For every integer n, n squared plus n is even. Give a rigorous argument."
    disguised_mc = "Choose the prime among twenty-one, twenty-seven and twenty-nine."
    problems = [{"id": "p", "problem": disguised_proof, "answer": "n(n+1)"},
                {"id": "mc", "problem": disguised_mc, "answer": "29"},
                {"id": "ok", "problem": "Compute 6 times 7.", "answer": "42"},
                {"id": "garbled", "problem": "Compute 5 times 9.", "answer": "45"}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(p) + "\n" for p in problems))

    def reply(messages):
        text = messages[-1]["content"]
        if "rigorous" in text:
            return '{"proof": true, "multiple_choice": false}'
        if "Choose" in text:
            return 'Sure! {"proof": false, "multiple_choice": true}'
        if "5 times 9" in text:
            return "I cannot tell."
        return '{"proof": false, "multiple_choice": false}'

    stub = OpenAIStub(reply)
    with stub as url:
        report = cli_report(tmp_path, "--llm_endpoint", url, "--llm_model", "judge-7b")
    assert report["dropped"]["proof"] == ["p"] and report["dropped"]["multiple_choice"] == ["mc"]
    assert report["kept"] == 2 and report["notes"]["llm_unclassified"] == ["garbled"]
    assert len(stub.requests) == 4 and {r["model"] for r in stub.requests} == {"judge-7b"}
    kept = [json.loads(line)["id"] for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert kept == ["ok", "garbled"]


def cli_report(tmp: Path, *flags: str) -> dict:
    assert cli(["curate-rl", "--input", str(tmp / "in.jsonl"), "--output", str(tmp / "out.jsonl"),
                "--report", str(tmp / "report.json"), "--benchmarks", "[]", "--pool.workers", "1", *flags]) == 0
    return json.loads((tmp / "report.json").read_text())


def test_a_missing_sandbox_stops_the_run_rather_than_dropping_every_code_problem(tmp_path, monkeypatch):
    import sys

    rec = {"id": "c", "kind": "code", "problem": "Write f(x) returning x.", "fn_name": "f",
           "tests": [{"testtype": "functional", "input": "1", "output": "1"}], "solution": "def f(x):\n    return x\n"}
    (tmp_path / "in.jsonl").write_text(json.dumps(rec) + "\n")
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))  # the reward workers find no bwrap
    with pytest.raises(MimoError, match="verification of 'c': bubblewrap"):
        cli_report(tmp_path)
    assert not (tmp_path / "out.jsonl").exists()
