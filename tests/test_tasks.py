"""Toy math tasks: answers are right, splits are disjoint for every seed, knobs work, seeded."""

from __future__ import annotations

import re

import pytest

from mimo.tasks import MathTaskGenerator
from mimo.tasks.math import split_of


def _eval(expr: str) -> int:
    assert re.fullmatch(r"[0-9+\-*() ]+", expr)
    return eval(expr)  # noqa: S307 -- our own arithmetic strings, checked above


def test_answers_and_steps_are_correct():
    for p in MathTaskGenerator(seed=3, max_steps=4, max_digits=3).sample(300):
        assert _eval(p.expression) == int(p.answer)
        for step in p.steps:
            lhs, rhs = step.split(" = ")
            assert _eval(lhs) == int(rhs)
        assert p.steps[-1].endswith(f"= {p.answer}")
        assert f"\\boxed{{{p.answer}}}" in p.chat_response()
        assert p.chat_response().startswith("<think>\n") and "\n</think>\n" in p.chat_response()
        assert int(p.answer) >= 0


def test_splits_disjoint_across_seeds():
    train = {p.expression for s in range(3) for p in MathTaskGenerator(seed=s).sample(400, "train")}
    held = {p.expression for s in range(3) for p in MathTaskGenerator(seed=s + 10).sample(200, "heldout")}
    assert train and held and not train & held
    assert all(split_of(e, 0.2) == "heldout" for e in held)


def test_knobs_and_seeding():
    easy = MathTaskGenerator(seed=1, min_steps=1, max_steps=1, max_digits=1, ops="+", max_value=None).sample(50)
    assert all(p.difficulty == 1 and "+" in p.expression and int(p.answer) <= 18 for p in easy)
    bounded = MathTaskGenerator(seed=1, max_steps=4).sample(200)  # default: every value within 0..10
    assert all(0 <= int(s.split(" = ")[1]) <= 10 for p in bounded for s in p.steps)
    assert {op for p in bounded for op in "+-*" if op in p.expression} == set("+-*")
    hard = MathTaskGenerator(seed=1, min_steps=4, max_steps=4).sample(50)
    assert all(p.difficulty == 4 for p in hard)
    assert MathTaskGenerator(seed=5).sample(20) == MathTaskGenerator(seed=5).sample(20)
    assert MathTaskGenerator(seed=5).sample(20) != MathTaskGenerator(seed=6).sample(20)
    with pytest.raises(ValueError):
        MathTaskGenerator(ops="/")


def test_code_tasks_reference_passes_and_teacher_slips_fail_edge_cases():
    import random
    import shutil

    from mimo.rewards.code import extract_code, judge
    from mimo.tasks.code import CodeTaskGenerator

    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap not installed: the judge refuses to run")
    gen = CodeTaskGenerator(seed=0, max_pieces=3)
    problems = gen.sample(12)
    assert {p.family for p in problems} == {"piecewise", "string"}
    rng = random.Random(0)
    wrong = 0
    for p in problems:
        assert len(p.tests) == 10 and not all(p.hard)
        assert any(p.hard) or " if " not in p.spec  # edge cases exist wherever there is a threshold
        code = extract_code(p.chat_response())
        assert code == p.solution
        assert list(judge(code, list(p.tests)).verdicts) == ["passed"] * 10, p.spec
        noisy = gen.teacher_solution(p, rng, slip_rate=1.0)
        wrong += list(judge(noisy, list(p.tests)).verdicts).count("passed") < 10
        if p.family == "piecewise" and " > " in p.solution:  # the boundary bug fails exactly the threshold tests
            bug = gen.teacher_solution(p, rng, boundary_bias=1.0)
            failed = {i for i, v in enumerate(judge(bug, list(p.tests)).verdicts) if v != "passed"}
            assert failed and all(p.hard[i] for i in failed), (p.spec, bug)
    # a slip can be harmless (lower-casing twice); most are not
    assert wrong >= 9
    held = {p.spec for p in CodeTaskGenerator(seed=5).sample(50, "heldout")}
    train = {p.spec for p in CodeTaskGenerator(seed=6).sample(200, "train")}
    assert held and not held & train


def test_teacher_slips():
    import random

    from mimo.tasks import MathTaskGenerator

    probs = MathTaskGenerator(seed=2, min_steps=2, max_steps=3).sample(200)
    rng = random.Random(0)
    for p in probs:
        steps, answer = p.teacher_steps(rng)
        assert steps == p.steps and answer == p.answer  # a perfect teacher
        steps, answer = p.teacher_steps(rng, mul_bias=1.0)
        for mine, ref in zip(steps, p.steps):
            lhs = ref.split(" = ")[0]
            if " * " in lhs:  # always one multiplication too many, carried on from the (maybe wrong) left side
                a, _, b = mine.split(" = ")[0].split(" ")
                assert int(mine.split(" = ")[1]) == int(a) * (int(b) + 1)
        if not any(" * " in s for s in p.steps):
            assert answer == p.answer
        steps, answer = p.teacher_steps(rng, slip_rate=1.0)
        assert answer != p.answer or len(set(steps) - set(p.steps)) > 0
        steps, answer = p.teacher_steps(rng, skip_bias=1.0)  # one step short: the intermediate value
        assert steps == p.steps[:-1] and answer == p.steps[-2].split(" = ")[1]
