"""No silent zeros: a reward pool that cannot grade stops the run in one line; eval counts what it could not grade."""

from __future__ import annotations

import hashlib
import json

import pytest

import mimo.rewards.local as pool_mod
from mimo.cli import main as mimo_main
from mimo.eval.report import grading_table
from mimo.eval.runner import grading_counts
from mimo.rewards.pool import FAILURE_RATE_MIN_TASKS, PoolBroken, RewardPool


@pytest.fixture
def workers_cannot_import_mimo(tmp_path, monkeypatch):
    """Workers whose interpreter finds a ``mimo`` that fails to import, as in an environment where mimo is only
    on the parent's sys.path."""
    broken = tmp_path / "broken" / "mimo"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'mimo'\")\n")
    real = pool_mod._worker_env

    def env():
        return {**real(), "PYTHONPATH": str(broken.parent)}

    monkeypatch.setattr(pool_mod, "_worker_env", env)


def test_workers_that_cannot_start_break_the_pool(workers_cannot_import_mimo):
    with RewardPool(workers=2) as pool:
        fut = pool.submit("math", "$\\boxed{2}$", "2")
        with pytest.raises(PoolBroken) as e:
            fut.result(timeout=60)
        msg = str(e.value)
        assert msg.startswith("reward workers cannot start: ") and "\n" not in msg
        assert "exited with status 1" in msg and "No module named 'mimo'" in msg
        with pytest.raises(PoolBroken):  # and it stays broken: no later task is scored 0
            pool.submit("math", "$\\boxed{2}$", "2").result(timeout=60)


def test_eval_whose_graders_cannot_start_exits_2_with_one_line(workers_cannot_import_mimo, tmp_path, capsys):
    comp = tmp_path / "c.jsonl"
    data = tmp_path / "math.jsonl"
    data.write_text("".join(json.dumps({"problem": f"{i}+1?", "answer": str(i + 1), "id": f"p{i}"}) + "\n"
                            for i in range(3)))
    comp.write_text("".join(json.dumps({"problem_id": f"p{i}", "completion": f"\\boxed{{{i + 1}}}"}) + "\n"
                            for i in range(3)))
    before = hashlib.sha256(data.read_bytes() + comp.read_bytes()).hexdigest()
    rc = mimo_main(["eval", "--backend", "replay", "--completions", str(comp), "--benchmarks", "math500",
                    "--data", str(data), "--out", str(tmp_path / "out"), "--progress", "false",
                    "--grading.workers", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    errors = [line for line in err if "error" in line]
    assert errors == [errors[0]] and "reward workers cannot start" in errors[0], err
    assert not (tmp_path / "out" / "results.json").exists()  # no normal-looking report of zeros
    assert hashlib.sha256(data.read_bytes() + comp.read_bytes()).hexdigest() == before


def test_failure_rate_past_the_threshold_breaks_the_pool():
    # 0.02 s per item with Math-Verify imported on the first item: every item times out (the import alone takes
    # far longer, even on a fast machine: 0.3 s was not always enough), the worker is killed and replaced, and past
    # the threshold the pool refuses to go on
    with RewardPool(workers=2, math_timeout=0.02, warm_math=False, math_inner_timeout=0, max_failure_rate=0.5) as p:
        futures = [p.submit("math", "$\\boxed{5^(5^(5^(5^5)))}$", "1") for _ in range(FAILURE_RATE_MIN_TASKS)]
        reasons = [f.result(timeout=300).reason for f in futures]
        assert reasons.count("timeout") > FAILURE_RATE_MIN_TASKS // 2
        with pytest.raises(PoolBroken, match=r"tasks failed to grade .* more than max_failure_rate 0.5$"):
            p.submit("math", "$\\boxed{1}$", "1")


def test_a_healthy_pool_is_not_broken_by_wrong_answers():
    with RewardPool(workers=1, max_failure_rate=0.1) as pool:
        results = pool.map("math", ["$\\boxed{3}$"] * FAILURE_RATE_MIN_TASKS, ["2"] * FAILURE_RATE_MIN_TASKS)
        assert {r.reason for r in results} == {"wrong_answer"}
        assert pool.submit("math", "$\\boxed{2}$", "2").result().score == 1.0


def test_eval_counts_graded_failed_and_timed_out_apart():
    assert grading_counts([None, "wrong_answer", "timeout", "worker_died", "timeout"]) == {
        "graded": 2, "failed_to_grade": 1, "timed_out": 2}
    table = grading_table({"aime24": {"graded": 58, "failed_to_grade": 1, "timed_out": 2}, "math500": {}})
    assert table.splitlines()[2:] == ["| AIME 2024 | 58 | 1 | 2 |", "| MATH-500 | - | - | - |"]


def test_report_of_a_real_eval_has_the_counts(tmp_path):
    comp = tmp_path / "c.jsonl"
    data = tmp_path / "math.jsonl"
    data.write_text("".join(json.dumps({"problem": f"{i}+1?", "answer": str(i + 1), "id": f"p{i}"}) + "\n"
                            for i in range(4)))
    comp.write_text("".join(json.dumps({"problem_id": f"p{i}", "completion": f"\\boxed{{{i + i % 2}}}"}) + "\n"
                            for i in range(4)))
    rc = mimo_main(["eval", "--backend", "replay", "--completions", str(comp), "--benchmarks", "math500",
                    "--data", str(data), "--out", str(tmp_path / "out"), "--progress", "false",
                    "--grading.workers", "1"])
    assert rc == 0
    res = json.loads((tmp_path / "out" / "results.json").read_text())["math500"]
    assert (res["graded"], res["failed_to_grade"], res["timed_out"]) == (4, 0, 0)
    assert "| graded | failed to grade | timed out |" in (tmp_path / "out" / "results.md").read_text()


def test_rl_rewarder_turns_a_broken_pool_into_an_error_not_zeros(workers_cannot_import_mimo):
    import queue

    from mimo.rl.engine import GroupRewarder, RLProblem, _raise_if_error

    events: queue.Queue = queue.Queue()
    with RewardPool(workers=1) as pool:
        rewarder = GroupRewarder(pool, events)
        problem = RLProblem(id="p", kind="math", prompt_ids=(1, 2), reference="2")
        rewarder.submit(0, problem, ["\\boxed{2}", "\\boxed{3}"])
        with pytest.raises(PoolBroken, match="reward workers cannot start"):
            _raise_if_error(events.get(timeout=60))  # what the engine does with each event
        with pytest.raises(PoolBroken):  # the next group is refused at once, in the trainer's thread
            rewarder.submit(1, problem, ["\\boxed{2}"])
