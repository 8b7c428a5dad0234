"""Replay: saved completions graded through the real graders (Math-Verify pool, sandboxed judge).

HumanEval canonical solutions score 100% and `pass` bodies 0%; the MATH-500 / AIME gold answers replayed as
completions score 100%; LiveCodeBench and GPQA on small files in their public formats; the CLI's replay interface.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from eval_data import GPQA_ROWS, LCB_PROBLEMS, write_gpqa, write_lcb
from mimo.eval import EvalProtocol, LoadOptions, evaluate, load_benchmark
from mimo.eval.backends import ReplayBackend
from mimo.rewards.pool import RewardPool


@pytest.fixture(scope="module")
def pool():
    with RewardPool(workers=2) as p:
        yield p


def _write(path, records):
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return path


def _replay(tmp_path, name, records, pool, opts, tag="run"):
    path = _write(tmp_path / f"{name}-{tag}.jsonl", records)
    return evaluate(ReplayBackend(path), [name], EvalProtocol(), tmp_path / f"out-{tag}", load=opts, pool=pool,
                    show_progress=False)[name]


def test_humaneval_canonical_solutions_pass_and_pass_bodies_fail(shared_data, tmp_path, pool):
    import gzip

    with gzip.open(shared_data / "HumanEval.jsonl.gz", "rt") as f:
        problems = [json.loads(line) for line in f]
    opts = LoadOptions(data=str(shared_data))
    good = [{"problem_id": p["task_id"],
             "completion": f"<think>\neasy\n</think>\n```python\n{p['prompt']}{p['canonical_solution']}```"}
            for p in problems]
    body = [{"problem_id": p["task_id"], "completion": p["canonical_solution"]} for p in problems]  # base-model style
    empty = [{"problem_id": p["task_id"], "completion": f"```python\n{p['prompt']}    pass\n```"} for p in problems]
    r_good = _replay(tmp_path, "humaneval", good, pool, opts, "good")
    r_body = _replay(tmp_path, "humaneval", body[:30], pool, LoadOptions(data=str(shared_data), max_problems=30),
                     "body")
    r_empty = _replay(tmp_path, "humaneval", empty, pool, opts, "empty")
    assert (r_good["pass@1"], r_good["n_problems"]) == (1.0, 164), r_good["outcomes"]
    assert (r_body["pass@1"], r_body["n_problems"]) == (1.0, 30), r_body["outcomes"]
    assert (r_empty["pass@1"], r_empty["n_problems"]) == (0.0, 164)


def test_math500_and_aime_gold_answers_score_100(shared_data, tmp_path, pool):
    opts = LoadOptions(data=str(shared_data))
    for name in ("math500", "aime24", "aime25"):
        bench = load_benchmark(name, opts)
        gold = [{"problem_id": it.id, "completion": f"<think>\nworking\n</think>\nThe final answer is "
                 f"$\\boxed{{{it.reference}}}$."} for it in bench.items]
        r = _replay(tmp_path, name, gold, pool, opts)
        assert (r["pass@1"], r["n_problems"], r["stderr"]) == (1.0, len(bench), 0.0), (name, r["outcomes"])
    # and wrong answers score 0 (two samples per problem: pass@k is computed for k = 1, 2)
    bench = load_benchmark("aime24", opts)
    wrong = [{"problem_id": it.id, "completion": f"\\boxed{{{int(it.reference) + 1}}}"} for it in bench.items] * 2
    r = _replay(tmp_path, "aime24", wrong, pool, opts, "wrong")
    assert r["pass@1"] == 0.0 and r["pass@k"] == {"1": 0.0, "2": 0.0} and r["n_samples"] == 2


def test_livecodebench_replay_through_the_judge(tmp_path, pool):
    opts = LoadOptions(data=str(write_lcb(tmp_path / "lcb")))
    fence = "<think>\nplan\n</think>\n```python\n{}```"
    v5 = [(qid, good, bad) for qid, date, _, good, bad in LCB_PROBLEMS if "2024-08" <= date[:7] < "2025-02"]
    records = [{"problem_id": q, "completion": fence.format(good)} for q, good, _ in v5]
    records += [{"problem_id": q, "completion": fence.format(bad)} for q, _, bad in v5]
    r = _replay(tmp_path, "lcb_v5", records, pool, opts)
    # `List[int]` in the LeetCode signature needs LiveCodeBench's import header: it passes
    assert r["n_problems"] == 2 and r["n_samples"] == 2
    assert r["pass@1"] == 0.5 and r["pass@k"]["2"] == 1.0, r["outcomes"]
    r = _replay(tmp_path, "lcb_v5", [{"problem_id": q, "completion": "<think>\nno code yet"} for q, _, _ in v5],
                pool, opts, "unfinished")
    assert r["pass@1"] == 0.0 and r["outcomes"] == {"no_code": 2}


def test_gpqa_replay_letters(tmp_path, pool):
    path = write_gpqa(tmp_path / "gpqa_diamond.csv")
    opts = LoadOptions(data=str(path))
    bench = load_benchmark("gpqa_diamond", opts)
    right = [{"problem_id": it.id, "completion": f"<think>\nhmm\n</think>\nThe answer is \\boxed{{{it.reference}}}."}
             for it in bench.items]
    other = {"A": "B", "B": "C", "C": "D", "D": "A"}
    wrong = [{"problem_id": it.id, "completion": f"Answer: {other[it.reference]}"} for it in bench.items]
    assert _replay(tmp_path, "gpqa_diamond", right, pool, opts, "right")["pass@1"] == 1.0
    assert _replay(tmp_path, "gpqa_diamond", wrong, pool, opts, "wrong")["pass@1"] == 0.0
    assert len(GPQA_ROWS) == len(bench)


def test_cli_replay_interface(shared_data, tmp_path):
    """`mimo eval --backend replay --completions FILE --benchmarks NAME --data PATH --out DIR` -> DIR/results.json"""
    items = [json.loads(line) for line in open(shared_data / "aime24_test.jsonl")][:10]
    records = []
    for i, it in enumerate(items):  # 3 samples per problem, min(i % 4, 3) of them right
        right = min(i % 4, 3)
        for s in range(3):
            answer = it["answer"] if s < right else "-1"
            records.append({"problem_id": str(it["id"]), "completion": f"\\boxed{{{answer}}}"})
    comp = _write(tmp_path / "c.jsonl", records)
    out = tmp_path / "out"
    env = {**os.environ, "MIMO_LIGHT_IMPORT": "1", "MIMO_PROGRESS": "0"}
    proc = subprocess.run([sys.executable, "-m", "mimo.cli", "eval", "--backend", "replay", "--completions",
                           str(comp), "--benchmarks", "aime24", "--data", str(shared_data / "aime24_test.jsonl"),
                           "--out", str(out), "--max_problems", "10"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    m = res["aime24"]
    assert set(m) >= {"pass@1", "stderr", "n_problems", "pass@k"}
    assert isinstance(m["pass@1"], float) and isinstance(m["stderr"], float) and m["n_problems"] == 10
    assert list(m["pass@k"]) == ["1", "2", "3"]
    rights = [min(i % 4, 3) for i in range(10)]
    assert m["pass@1"] == pytest.approx(sum(rights) / 30)
    assert m["pass@k"]["3"] == pytest.approx(sum(r > 0 for r in rights) / 10)
    assert "| AIME 2024 | 10 | 3 |" in (out / "results.md").read_text()
    assert (out / "aime24" / "pass_at_k.png").stat().st_size > 1000
    saved = [json.loads(line) for line in open(out / "aime24" / "completions.jsonl")]
    assert len(saved) == 30 and {"problem_id", "completion", "sample"} <= set(saved[0])
