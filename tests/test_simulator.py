"""The scheduler on the trace-driven simulator: property tests of its guarantees, exact resume, Table 2/3."""

from __future__ import annotations

import doctest
import importlib.util
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mimo.rl import accounting
from mimo.rl.sampling import ProblemSampler
from mimo.rl.scheduler import ABORTED, DROPPED, MODES, SELECTED, Scheduler, SchedulerConfig
from mimo.rl.simulator import Simulator, SystemConfig, Trace, TraceConfig, table2, table3, trace_stats

ROOT = Path(__file__).resolve().parents[1]


@st.composite
def setups(draw):
    mode = draw(st.sampled_from(MODES))
    B = draw(st.integers(1, 12))
    sched = SchedulerConfig(
        mode=mode,
        batch_size=B,
        group_size=draw(st.integers(2, 6)),
        max_active_tasks=draw(st.integers(1, 3 * B + 2)),
        round_size=0 if mode == "no_dynamic_sampling" else draw(st.sampled_from([0, 1, B + 3])),
        launch_margin=draw(st.sampled_from([1.0, 1.5])),
        carry_over=draw(st.booleans()),
        informative_prior=draw(st.sampled_from([0.1, 0.5, 0.9])),
    )
    trace = TraceConfig(seed=draw(st.integers(0, 10_000)), num_problems=200,
                        mean_pass_rate=draw(st.floats(0.2, 0.8)), pass_concentration=draw(st.floats(0.3, 3.0)))
    system = SystemConfig(saturation_seqs=draw(st.integers(1, 64)), reward_workers=draw(st.integers(1, 6)),
                          train_s=draw(st.sampled_from([0.0, 100.0])))
    return sched, trace, system, draw(st.integers(1, 4))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(setups())
def test_scheduler_guarantees_hold_on_random_workloads(setup):
    sched, trace, system, steps = setup
    sim = Simulator(sched, trace, system, check=True)  # asserts concurrency, batch size and FIFO at every decision
    records = sim.run_steps(steps)
    assert len(records) == steps
    assert sim.max_slots_held <= sched.max_active_tasks  # concurrency never exceeds its limit
    seen: dict[int, str] = {}
    for rec in records:
        assert len(rec.train_ids) == sched.batch_size  # every batch has exactly the batch size
        aborted = [i for i, s in rec.outcome.items() if s == ABORTED]
        if aborted:  # FIFO: nothing selected was launched after an aborted task
            assert max(rec.train_ids) < min(aborted)
        for i, state in rec.outcome.items():
            assert i not in seen, f"task {i} counted twice"  # no sample counted twice
            assert state in (SELECTED, DROPPED, ABORTED)
            seen[i] = state
    # no sample lost: every launched task ended in exactly one step, or is still carried over to the next
    carried = {t.id for t in sim.sched.tasks.values() if t.kind == "train" and t.state not in (SELECTED, DROPPED,
                                                                                              ABORTED)}
    assert set(seen) | carried == set(sim.tasks) and not set(seen) & carried
    assert sum(s == SELECTED for s in seen.values()) == steps * sched.batch_size
    if carried:
        assert sched.mode == "early_termination" and sched.carry_over


@settings(max_examples=25, deadline=None)
@given(setups(), st.integers(1, 30))
def test_validation_scores_every_prompt_exactly_once(setup, num_prompts):
    sched, trace, system, _ = setup
    sim = Simulator(sched, trace, system, check=True)
    ids = [f"val-{i}" for i in range(num_prompts)]
    rec = sim.run_eval(ids, num_samples=3)
    tasks = [sim.sched.tasks[i] for i in rec.outcome]
    assert sorted(t.problem_id for t in tasks) == sorted(ids)
    assert all(t.rewards is not None and len(t.rewards) == 3 for t in tasks)
    assert sim.max_slots_held <= sched.max_active_tasks


def test_accounting_doctests():
    """The buckets and ratios the engine and the simulator share (hand-computed examples in the docstrings)."""
    assert doctest.testmod(accounting).failed == 0


def _trains(records):
    return [r.train_ids for r in records]


@pytest.mark.parametrize("mode", MODES)
def test_same_seed_same_run_and_exact_resume_between_steps(mode):
    sched = SchedulerConfig(mode=mode, batch_size=8, group_size=4, max_active_tasks=12, carry_over=False)
    trace = TraceConfig(seed=3, num_problems=500)
    system = SystemConfig(saturation_seqs=24, reward_workers=3, train_s=50.0)
    full = Simulator(sched, trace, system).run_steps(5)
    again = Simulator(sched, trace, system).run_steps(5)
    assert _trains(full) == _trains(again) and [r.rollout_s for r in full] == [r.rollout_s for r in again]

    first = Simulator(sched, trace, system)
    head = first.run_steps(2)
    state = json.loads(json.dumps(first.sched.state_dict()))
    restored = Scheduler(sched, ProblemSampler(range(trace.num_problems), seed=123))
    restored.load_state_dict(state)
    tail = Simulator(sched, trace, system, scheduler=restored).run_steps(3)
    assert _trains(head) + _trains(tail) == _trains(full)
    assert [r.outcome for r in head + tail] == [r.outcome for r in full]


def test_resume_with_carried_tasks_abandons_them_and_goes_on():
    sched = SchedulerConfig(mode="early_termination", batch_size=8, group_size=4, max_active_tasks=40)
    trace, system = TraceConfig(seed=1, num_problems=500), SystemConfig(saturation_seqs=16)
    first = Simulator(sched, trace, system, check=True)
    first.run_steps(3)
    restored = Scheduler(sched, ProblemSampler(range(trace.num_problems)))
    restored.load_state_dict(json.loads(json.dumps(first.sched.state_dict())))
    restored.abandon_in_flight()
    recs = Simulator(sched, trace, system, scheduler=restored, check=True).run_steps(2)
    assert [len(r.train_ids) for r in recs] == [8, 8]


def test_trace_matches_its_documented_statistics():
    s = trace_stats(TraceConfig(), num_tasks=3000)
    assert 0.39 <= s["pass_rate"] <= 0.43  # the paper's trace: 41%
    assert 0.27 <= s["mean_over_max"] <= 0.33  # one synchronous round idles ~70%
    assert 0.01 <= s["truncated"] <= 0.05 and s["all_pass"] > 0.1 and s["all_fail"] > 0.2
    assert 0.38 <= s["informative"] <= 0.52  # ~3 naive rounds per batch
    t = Trace(TraceConfig())
    assert t.task(7, 42, 16).lengths.tolist() == Trace(TraceConfig()).task(7, 42, 16).lengths.tolist()
    assert t.problem(42) == t.problem(42)


def test_table2_and_table3_small_scale_shape_and_ordering():
    B = 64
    sched = SchedulerConfig(batch_size=B, group_size=16, max_active_tasks=2 * B)
    system = SystemConfig(saturation_seqs=16 * B)
    t2 = table2(sched, TraceConfig(), system, steps=4, warmup=2)
    rows = {r["method"]: r for r in t2["rows"]}
    assert list(rows) == list(MODES)
    naive, et = rows["naive_dynamic_sampling"], rows["early_termination"]
    assert naive["overall_speedup"] == naive["rollout_speedup"] == naive["normalized_idle_time"] == 1.0
    assert rows["no_dynamic_sampling"]["rollout_speedup"] > 2.0 and rows["no_dynamic_sampling"]["waste_ratio"] is None
    assert et["rollout_speedup"] > max(rows["continuous_rollout"]["rollout_speedup"],
                                       rows["async_reward"]["rollout_speedup"]) > 1.2
    assert et["idle_ratio"] < naive["idle_ratio"] and et["waste_ratio"] < naive["waste_ratio"]
    assert 1.0 < et["overall_speedup"] < et["rollout_speedup"]
    t3 = table3(4 * B, sched, TraceConfig(), system)
    assert t3["speedup"] > 1.3 and t3["idle_ratio_engine"] < t3["idle_ratio_naive"]


def test_benchmark_json_schema(tmp_path):
    spec = importlib.util.spec_from_file_location("rollout_bench", ROOT / "benchmarks" / "rollout.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "t.json"
    assert bench.main(["--simulate", "--json", str(out), "--steps", "2", "--batch-size", "16",
                       "--val-prompts", "32"]) == 0
    data = json.loads(out.read_text())
    assert set(data) == {"rows", "validation"}
    assert [r["method"] for r in data["rows"]] == list(MODES)
    for r in data["rows"]:
        assert set(r) == {"method", "overall_speedup", "rollout_speedup", "normalized_idle_time", "idle_ratio",
                          "waste_ratio"}
        assert all(isinstance(r[k], float) for k in ("overall_speedup", "rollout_speedup", "normalized_idle_time",
                                                     "idle_ratio"))
        assert r["waste_ratio"] is None if r["method"] == "no_dynamic_sampling" else isinstance(r["waste_ratio"],
                                                                                                  float)
    assert set(data["validation"]) == {"speedup", "idle_ratio_naive", "idle_ratio_engine"}


@pytest.mark.slow
def test_table2_at_paper_scale():
    """B = 512 x 16 as in the paper (about a minute): what the engine reaches with the paper's rules."""
    sched = SchedulerConfig(batch_size=512, group_size=16, max_active_tasks=1024)
    t2 = table2(sched, TraceConfig(), SystemConfig(), steps=6)
    rows = {r["method"]: r for r in t2["rows"]}
    et = rows["early_termination"]
    assert et["rollout_speedup"] >= 2.4 and et["overall_speedup"] >= 2.1
    assert et["waste_ratio"] <= 0.129
    assert et["idle_ratio"] < rows["async_reward"]["idle_ratio"] < rows["naive_dynamic_sampling"]["idle_ratio"]
