"""Dynamic sampling filter, easy-data pool, pass-rate statistics and their exact resume."""

from __future__ import annotations

import doctest
import json

import pytest

import mimo.rl.sampling
from mimo.errors import MimoError
from mimo.rl.sampling import InformativeRate, ProblemSampler, is_informative


def test_doctests():
    assert doctest.testmod(mimo.rl.sampling).failed == 0


def test_filter_drops_all_pass_and_all_fail_groups():
    assert not is_informative([1.0] * 16)
    assert not is_informative([0.0] * 16)
    assert is_informative([1.0] + [0.0] * 15)
    assert not is_informative([0.5, 0.5, 0.5])  # soft rewards, all equal: zero advantage
    assert is_informative([0.5, 0.25, 0.0])  # soft rewards that differ: kept although none fully passes
    assert not is_informative([])


def test_main_pool_is_drawn_without_replacement_per_epoch():
    s = ProblemSampler(list(range(50)), alpha=0.1, seed=3)
    first = [s.draw() for _ in range(50)]
    assert sorted(first) == list(range(50))
    second = [s.draw() for _ in range(50)]
    assert sorted(second) == list(range(50)) and second != first
    assert s.epoch == 1


def test_same_seed_same_draws_different_seed_different_draws():
    a = ProblemSampler(list(range(100)), seed=1)
    b = ProblemSampler(list(range(100)), seed=1)
    c = ProblemSampler(list(range(100)), seed=2)
    da, db, dc = ([x.draw() for _ in range(30)] for x in (a, b, c))
    assert da == db and da != dc


def test_all_pass_problems_move_to_the_easy_pool_and_are_drawn_with_probability_alpha():
    s = ProblemSampler(list(range(1000)), alpha=0.1, seed=0)
    easy = set(range(10))
    for pid in easy:
        s.record(pid, [1.0] * 16)
        assert s.in_easy_pool(pid)
    s.record(20, [1.0] * 15 + [0.0])  # pass rate 15/16: stays in the main pool
    assert not s.in_easy_pool(20)
    draws = [s.draw() for _ in range(4000)]
    from_easy = sum(1 for d in draws if d in easy)
    # each draw comes from the easy pool with probability 0.1 -> 400 +- 3 sigma (sigma = 19)
    assert 340 <= from_easy <= 460
    assert s.easy_draws == from_easy
    # easy problems never come out of the main pool: within one epoch of the 990 others, none repeats
    main = [d for d in draws if d not in easy]
    assert len(set(main[:990])) == 990


def test_an_easy_problem_that_fails_returns_to_the_main_pool():
    s = ProblemSampler(list(range(5)), seed=0)
    s.record(2, [1.0, 1.0])
    s.record(4, [1.0, 1.0])
    assert s.easy == [2, 4]
    s.record(2, [1.0, 0.0])
    assert not s.in_easy_pool(2) and s.in_easy_pool(4) and s.easy == [4]
    st = s.problem_stats(2)
    assert (st.groups, st.samples, st.passes, st.last_pass_rate) == (2, 4, 3, 0.5)
    assert st.pass_rate == 0.75


def test_when_every_problem_is_easy_draws_come_from_the_easy_pool():
    s = ProblemSampler(["a", "b"], seed=0)
    s.record("a", [1.0])
    s.record("b", [1.0])
    assert {s.draw() for _ in range(20)} <= {"a", "b"}


def test_summary_statistics():
    s = ProblemSampler(list(range(4)), seed=0)
    s.record(0, [1.0, 1.0])
    s.record(1, [0.0, 0.0])
    s.record(2, [1.0, 0.0])
    summ = s.summary()
    assert summ["problems_seen"] == 3 and summ["easy_pool"] == 1
    assert summ["mean_pass_rate"] == pytest.approx(0.5)
    assert summ["all_pass"] == 1 and summ["all_fail"] == 1


def test_state_dict_resumes_exactly_through_json():
    def run(s, k):
        out = []
        for j in range(k):
            pid = s.draw()
            out.append(pid)
            s.record(pid, [1.0] * 4 if pid % 3 == 0 else [float(j % 2), 0.0, 1.0, 0.0])
        return out

    ref = ProblemSampler(list(range(40)), alpha=0.2, seed=7)
    head = run(ref, 60)
    tail = run(ref, 80)

    a = ProblemSampler(list(range(40)), alpha=0.2, seed=7)
    assert run(a, 60) == head
    state = json.loads(json.dumps(a.state_dict()))
    b = ProblemSampler(list(range(40)), alpha=0.5, seed=999)  # overwritten by the checkpoint
    b.load_state_dict(state)
    assert run(b, 80) == tail
    assert b.state_dict() == ref.state_dict()


def test_bad_inputs():
    with pytest.raises(MimoError):
        ProblemSampler([])
    with pytest.raises(MimoError):
        ProblemSampler([1, 1])
    with pytest.raises(MimoError):
        ProblemSampler([1], alpha=1.5)
    s = ProblemSampler([1, 2])
    with pytest.raises(MimoError):
        s.record(3, [1.0])
    with pytest.raises(MimoError):
        ProblemSampler([1, 2, 3]).load_state_dict(s.state_dict())


def test_valid_rate_prior_update_and_state():
    v = InformativeRate(prior=0.5, prior_weight=4.0, horizon=1e9)
    assert v.value == 0.5
    for ok in (True, False, False, False):
        v.update(ok)
    assert v.value == pytest.approx((1 + 2) / (4 + 4))
    w = InformativeRate(prior=0.5, prior_weight=4.0, horizon=1e9)
    w.load_state_dict(json.loads(json.dumps(v.state_dict())))
    assert w.value == v.value
    fast = InformativeRate(prior=0.5, prior_weight=1.0, horizon=10)
    for _ in range(200):
        fast.update(True)
    assert fast.value > 0.9  # follows drift
