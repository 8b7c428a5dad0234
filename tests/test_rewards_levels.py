"""Test-difficulty-driven reward: hand-worked doctests, invariants, and `mimo rewards levels` end to end."""

from __future__ import annotations

import doctest
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mimo.rewards.levels as levels_mod
from mimo.cli import main
from mimo.errors import MimoError
from mimo.rewards.levels import (
    assign_test_levels,
    pass_rates,
    scheme_reward,
    soft_reward,
    strict_reward,
    vanilla_reward,
)
from mimo.utils.io import read_jsonl, write_jsonl


def test_doctests():
    result = doctest.testmod(levels_mod)
    assert result.failed == 0 and result.attempted >= 15


@st.composite
def outcomes(draw):
    n = draw(st.integers(1, 12))
    passed = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    levels = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    return passed, levels


@settings(max_examples=200, deadline=None)
@given(outcomes())
def test_reward_invariants(case):
    passed, levels = case
    strict, soft, vanilla = strict_reward(passed, levels), soft_reward(passed, levels), vanilla_reward(passed)
    assert 0.0 <= vanilla <= strict <= soft <= 1.0 + 1e-12
    assert (strict == 1.0) == all(passed) and (soft == 0.0) == (not any(passed))
    flat = [0] * len(passed)
    assert strict_reward(passed, flat) == vanilla
    assert soft_reward(passed, flat) == pytest.approx(sum(passed) / len(passed))


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 8), st.integers(1, 10), st.integers(1, 4), st.data())
def test_levels_follow_pass_rates(rollouts, tests, n_levels, data):
    matrix = data.draw(st.lists(st.lists(st.booleans(), min_size=tests, max_size=tests),
                                min_size=rollouts, max_size=rollouts))
    levels, rates = assign_test_levels(matrix, n_levels), pass_rates(matrix)
    assert sorted(set(levels)) == list(range(min(n_levels, len(set(rates)))))  # dense, 0 = easiest
    for a in range(tests):
        for b in range(tests):
            if rates[a] > rates[b]:
                assert levels[a] <= levels[b]
            if rates[a] == rates[b]:
                assert levels[a] == levels[b]


def test_user_errors():
    with pytest.raises(MimoError, match="3 levels for 2 tests"):
        strict_reward([True, False], [0, 1, 2])
    with pytest.raises(MimoError, match="level weights"):
        soft_reward([True, False], [0, 1], weights=[1.0])
    with pytest.raises(MimoError, match="scheme"):
        scheme_reward([True], [0], "lenient")
    with pytest.raises(MimoError, match="different numbers of tests"):
        pass_rates([[1, 0], [1]])
    assert strict_reward([], []) == soft_reward([], []) == vanilla_reward([]) == 0.0


def test_mimo_rewards_levels_cli(tmp_path, capsys):
    tests = [{"testtype": "stdin", "input": str(n), "output": str(n * n)} for n in (1, 2, 30, 400)]
    problems = tmp_path / "problems.jsonl"
    write_jsonl(problems, [{"id": "square", "tests": tests, "title": "kept"}, {"id": "unused", "tests": tests}])
    solutions = [
        "n = int(input())\nprint(n * n if n < 100 else 0)",          # all but the hardest
        "n = int(input())\nprint(n * n if n < 10 else 0)",           # the two easy ones
        "n = int(input())\nprint(n * n if n < 10 else -1)",          # the two easy ones
        "n = int(input())\nprint(n if n < 10 else 0)",               # only n = 1
    ]
    rollouts = tmp_path / "solutions.jsonl"
    write_jsonl(rollouts, [{"problem_id": "square", "code": c} for c in solutions]
                + [{"problem_id": "square", "completion": f"```python\n{solutions[0]}\n```"}])
    assert main(["rewards", "levels", "--problems", str(problems), "--solutions", str(rollouts),
                 "--workers", "2"]) == 0
    square, unused = read_jsonl(problems)
    assert square["test_pass_rates"] == [1.0, 0.8, 0.4, 0.0] and square["levels_rollouts"] == 5
    assert square["levels"] == [0, 0, 1, 2] and square["title"] == "kept"
    assert "levels" not in unused
    assert "1 problems had no rollouts" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["problems.jsonl", "solutions.jsonl"]  # atomic rewrite
    # the stored levels drive the reward
    assert strict_reward([True, True, False, True], square["levels"]) == pytest.approx(1 / 3)
    assert soft_reward([True, True, False, True], square["levels"]) == pytest.approx(2 / 3)

    write_jsonl(rollouts, [{"problem_id": "nope", "code": "print(1)"}])
    assert main(["rewards", "levels", "--problems", str(problems), "--solutions", str(rollouts)]) == 2
    assert "solutions.jsonl:1: unknown problem 'nope'" in capsys.readouterr().err
    assert json.loads(problems.read_text().splitlines()[0])["levels"] == [0, 0, 1, 2]  # untouched on error
