"""Toy math tasks: answers are right, splits are disjoint for every seed, knobs work, seeded."""

from __future__ import annotations

import re

import pytest

from mimo.data.tasks import MathTaskGenerator
from mimo.data.tasks.math import split_of


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
    easy = MathTaskGenerator(seed=1, min_steps=1, max_steps=1, max_digits=1, ops="+").sample(50)
    assert all(p.difficulty == 1 and "+" in p.expression and int(p.answer) <= 18 for p in easy)
    hard = MathTaskGenerator(seed=1, min_steps=4, max_steps=4).sample(50)
    assert all(p.difficulty == 4 for p in hard)
    assert MathTaskGenerator(seed=5).sample(20) == MathTaskGenerator(seed=5).sample(20)
    assert MathTaskGenerator(seed=5).sample(20) != MathTaskGenerator(seed=6).sample(20)
    with pytest.raises(ValueError):
        MathTaskGenerator(ops="/")
