"""The rollout scheduler's decisions, driven by hand: modes, slots, FIFO early termination, carry-over, resume."""

from __future__ import annotations

import json

import pytest

from mimo.errors import ConfigError, MimoError
from mimo.rl.sampling import ProblemSampler
from mimo.rl.scheduler import (
    ABORTED,
    DROPPED,
    SELECTED,
    Abort,
    EvalDone,
    Launch,
    Scheduler,
    SchedulerConfig,
    Score,
    Train,
)

GOOD, BAD = [1.0, 0.0], [1.0, 1.0]  # an informative and an uninformative group of 2


def make(mode: str, B: int = 2, W: int = 100, **kw) -> Scheduler:
    kw.setdefault("launch_margin", 1.0)  # the hand-worked cases below use the paper's literal launch rule
    cfg = SchedulerConfig(mode=mode, batch_size=B, group_size=2, max_active_tasks=W, **kw)
    return Scheduler(cfg, ProblemSampler(list(range(1000)), seed=0))


def of(actions, kind):
    return [a for a in actions if isinstance(a, kind)]


def finish(s: Scheduler, tid: int, rewards) -> list:
    """Generation then reward for one task (the reward pool answers at once); the decisions, minus its Score."""
    out = s.on_rollout_done(tid)
    if any(isinstance(a, Score) and a.task_id == tid for a in out):
        out = [a for a in out if not (isinstance(a, Score) and a.task_id == tid)] + s.on_reward_done(tid, rewards)
    return out


def test_no_dynamic_sampling_trains_on_the_whole_round():
    s = make("no_dynamic_sampling", B=3)
    launches = of(s.begin_step(), Launch)
    assert [a.task_id for a in launches] == [0, 1, 2] and all(a.num_samples == 2 for a in launches)
    assert s.on_rollout_done(0) == [] and s.on_rollout_done(1) == []
    scores = s.on_rollout_done(2)  # barrier: the round is generated, now score it all on the reward pool
    assert scores == [Score(0, False), Score(1, False), Score(2, False)]
    assert s.on_reward_done(0, BAD) == [] and s.on_reward_done(2, GOOD) == []
    assert s.on_reward_done(1, BAD) == [Train(0, (0, 1, 2))]  # uninformative groups too
    s.end_step()
    assert s.step == 1 and s.tasks == {}


def test_naive_dynamic_sampling_repeats_rounds_and_takes_the_first_informative():
    s = make("naive_dynamic_sampling", B=2)
    assert len(of(s.begin_step(), Launch)) == 2
    for i in (0, 1):
        s.on_rollout_done(i)
    assert s.on_reward_done(0, GOOD) == []
    second = s.on_reward_done(1, BAD)  # 1 informative < 2: a new round of B prompts
    assert [a.task_id for a in of(second, Launch)] == [2, 3]
    s.on_rollout_done(3)
    assert of(s.on_rollout_done(2), Score) == [Score(2, False), Score(3, False)]
    s.on_reward_done(3, GOOD)
    assert s.on_reward_done(2, GOOD) == [Train(0, (0, 2))]  # FIFO: 3 is surplus
    assert s.tasks[3].state == DROPPED and s.tasks[1].state == DROPPED


def test_continuous_rollout_scores_inline_and_holds_the_slot():
    s = make("continuous_rollout", B=2, W=3)
    assert len(of(s.begin_step(), Launch)) == 3  # prior 0.5 would launch 4, the slot limit says 3
    assert s.free_slots == 0
    assert s.on_rollout_done(0) == [Score(0, True)]  # still holding its slot while scoring
    assert s.free_slots == 0
    out = s.on_reward_done(0, BAD)  # slot free; 0 informative + 0.47 * 2 in flight < 2 -> launch one more
    assert [a.task_id for a in of(out, Launch)] == [3]


def test_async_reward_frees_the_slot_when_generation_ends():
    s = make("async_reward", B=2, W=3)
    s.begin_step()
    out = s.on_rollout_done(0)
    assert out[0] == Score(0, False)
    assert [a.task_id for a in of(out, Launch)] == [3]  # the freed slot is used at once


def test_launches_only_while_predicted_not_to_fill():
    s = make("async_reward", B=4, W=100, informative_prior=0.5)
    assert len(of(s.begin_step(), Launch)) == 8  # 8 * 0.5 = 4 = B
    s2 = make("async_reward", B=4, W=100, informative_prior=0.5, launch_margin=1.5)
    assert len(of(s2.begin_step(), Launch)) == 12


def test_without_early_termination_the_step_waits_for_every_running_task():
    s = make("async_reward", B=1, W=100)
    s.begin_step()  # launches 2
    assert finish(s, 1, GOOD) == []  # batch full, but task 0 is still running: wait (it would come first)
    assert finish(s, 0, GOOD) == [Train(0, (0,))]
    assert s.tasks[1].state == DROPPED


def test_early_termination_aborts_later_tasks_and_carries_earlier_ones():
    s = make("early_termination", B=2, W=100)
    assert [a.task_id for a in of(s.begin_step(), Launch)] == [0, 1, 2, 3]
    assert finish(s, 1, GOOD) == []
    out = finish(s, 2, GOOD)  # B informative: 3 was launched after them -> abort; 0 was launched before -> carry
    assert out == [Abort(3), Train(0, (1, 2))]
    assert s.tasks[0].step == 1 and s.tasks[0].launch_step == 0
    # task 0 finishes while the trainer runs: recorded, scored on the pool, counted at the next step
    assert s.on_rollout_done(0) == [Score(0, False)]
    assert s.on_reward_done(0, GOOD) == []
    assert s.on_aborted(3) == [] and s.tasks[3].state == ABORTED
    s.end_step()
    out = s.begin_step()
    assert 0 in s.tasks and s.informative == [0]
    launched = [a.task_id for a in of(out, Launch)]
    assert launched == [4, 5]  # 1 informative + 0.5 * 2 in flight = 2
    finish(s, 4, GOOD)
    assert s.tasks[0].state == SELECTED and s.phase == "training"


def test_retired_carried_tasks_are_aborted_or_dropped_and_never_selected():
    s = make("early_termination", B=2, W=100)
    assert [a.task_id for a in of(s.begin_step(), Launch)] == [0, 1, 2, 3]
    finish(s, 2, GOOD)
    assert finish(s, 3, GOOD) == [Train(0, (2, 3))]  # 0 and 1 launched before the cut: carried, still running
    assert s.on_rollout_done(1) == [Score(1, False)] and s.on_reward_done(1, GOOD) == []  # scored while training
    s.end_step()
    assert s.retire([0, 1, 99]) == [Abort(0)]  # the one in flight is aborted, the scored one dropped
    assert s.tasks[1].state == DROPPED
    out = s.begin_step()
    assert s.informative == [] and s.flight == [a.task_id for a in of(out, Launch)]  # neither counts any more
    assert s.on_rollout_done(0) == [] and s.tasks[0].state == ABORTED  # the abort raced with completion
    trains = [a for i in [a.task_id for a in of(out, Launch)] for a in finish(s, i, GOOD) if isinstance(a, Train)]
    assert len(trains) == 1 and not {0, 1} & set(trains[0].task_ids)
    with pytest.raises(MimoError, match="retire in phase"):
        s.retire([0])


def test_early_termination_strictly_on_policy_waits_and_moves_the_cut():
    s = make("early_termination", B=2, W=100, carry_over=False)
    s.begin_step()  # 0, 1, 2, 3
    finish(s, 1, GOOD)
    assert finish(s, 2, GOOD) == [Abort(3)]  # 0 is still running and would come first: wait for it
    out = finish(s, 0, GOOD)  # informative: the first two by launch order are now 0 and 1
    assert out == [Train(0, (0, 1))]
    assert s.tasks[2].state == DROPPED


def test_an_abort_racing_with_completion_is_harmless():
    s = make("early_termination", B=1, W=100)
    s.begin_step()  # 0, 1
    assert finish(s, 0, GOOD) == [Abort(1), Train(0, (0,))]
    held = s.slots_held
    assert s.on_rollout_done(1) == []  # the worker finished before it saw the abort: taken as the acknowledgement
    assert s.slots_held == held - 1
    assert s.on_aborted(1) == []  # the late acknowledgement changes nothing
    assert s.slots_held == held - 1 and s.tasks[1].state == ABORTED


def test_validation_runs_every_prompt_once_and_streams_rewards():
    s = make("early_termination", B=2, W=3)
    out = s.begin_eval(["a", "b", "c", "d"], num_samples=4)
    assert [(a.problem_id, a.num_samples, a.kind) for a in of(out, Launch)] == [("a", 4, "eval"), ("b", 4, "eval"),
                                                                                 ("c", 4, "eval")]
    out = s.on_rollout_done(1)  # scored on the pool; its slot goes to the last prompt at once
    assert out[0] == Score(1, False) and [a.problem_id for a in of(out, Launch)] == ["d"]
    assert s.on_reward_done(1, [1, 1, 1, 1]) == []
    for tid in (0, 2, 3):
        s.on_rollout_done(tid)
    assert s.on_reward_done(3, [0, 1, 0, 1]) == [] and s.on_reward_done(0, [0, 0, 0, 0]) == []
    assert s.on_reward_done(2, [1, 0, 0, 0]) == [EvalDone((0, 1, 2, 3))]
    assert s.tasks[3].rewards == [0, 1, 0, 1] and s.phase == "idle"
    s2 = make("naive_dynamic_sampling", B=2, W=10)
    out = s2.begin_eval(["a", "b", "c"])
    assert [a.problem_id for a in of(out, Launch)] == ["a", "b"]  # synchronous rounds of B
    s2.on_rollout_done(0)
    s2.on_rollout_done(1)
    s2.on_reward_done(0, GOOD)
    assert [a.problem_id for a in of(s2.on_reward_done(1, GOOD), Launch)] == ["c"]
    s2.on_rollout_done(2)
    assert s2.on_reward_done(2, BAD) == [EvalDone((0, 1, 2))]
    assert s2.phase == "idle" and s2.sampler.stats == {}  # validation does not touch training statistics


def test_state_dict_round_trip_resumes_identically():
    def drive(s: Scheduler, steps: int) -> list:
        """A deterministic engine: tasks finish in launch order, every third group uninformative."""
        log = []
        for _ in range(steps):
            pending = list(s.begin_step())
            while s.phase == "rollout":
                log += pending
                launched = [a.task_id for a in pending if isinstance(a, Launch)]
                pending = []
                running = sorted(t.id for t in s.in_flight() if t.state == "running") or launched
                tid = running[0]
                pending += finish(s, tid, BAD if tid % 3 == 0 else GOOD)
            log += pending
            s.end_step()
        return log

    ref = make("early_termination", B=3, W=5, carry_over=False)
    full = drive(ref, 4)
    a = make("early_termination", B=3, W=5, carry_over=False)
    head = drive(a, 2)
    state = json.loads(json.dumps(a.state_dict()))
    b = make("early_termination", B=3, W=5, carry_over=False)
    b.load_state_dict(state)
    assert head + drive(b, 2) == full
    with pytest.raises(MimoError):
        make("async_reward", B=3, W=5).load_state_dict(state)


def test_abandon_in_flight_after_a_restart():
    s = make("early_termination", B=1, W=100)
    s.begin_step()  # 0, 1
    s.on_rollout_done(1)
    s.on_reward_done(1, GOOD)  # cut at 1: task 0 carried
    s.end_step()
    state = json.loads(json.dumps(s.state_dict()))
    r = make("early_termination", B=1, W=100)
    r.load_state_dict(state)
    assert r.abandon_in_flight() == [0] and r.slots_held == 0
    assert len(of(r.begin_step(), Launch)) == 2


def test_phase_and_input_errors():
    s = make("async_reward")
    with pytest.raises(MimoError):
        s.end_step()
    s.begin_step()
    with pytest.raises(MimoError):
        s.begin_step()
    with pytest.raises(MimoError):
        s.on_reward_done(0, GOOD)  # not generated yet
    s.on_rollout_done(0)
    with pytest.raises(MimoError):
        s.on_reward_done(0, [1.0])  # wrong number of rewards
    with pytest.raises(MimoError):
        s.on_rollout_done(999)
    for bad in ({"mode": "fastest"}, {"batch_size": 0}, {"mode": "async_reward", "group_size": 1},
                {"mode": "no_dynamic_sampling", "round_size": 7}, {"launch_margin": -1.0}):
        with pytest.raises(ConfigError):
            SchedulerConfig(**bad)


def test_gives_up_when_no_group_is_ever_informative():
    s = make("async_reward", B=2, W=100, max_tasks_per_step=20)
    s.begin_step()
    with pytest.raises(MimoError, match="informative"):
        for _ in range(100):
            tid = next(t.id for t in s.in_flight() if t.state == "running")
            finish(s, tid, BAD)


def test_default_launch_margin_is_per_mode():
    # auto (0): the paper's literal rule without early termination, 1.5 B with it (surplus is aborted FIFO)
    def launches(mode):
        return len(of(make(mode, B=4, W=100, informative_prior=0.5, launch_margin=0).begin_step(), Launch))

    assert launches("async_reward") == 8
    assert launches("early_termination") == 12
    s = make("early_termination", B=4, W=100, informative_prior=0.5, launch_margin=1.0)
    assert len(of(s.begin_step(), Launch)) == 8
