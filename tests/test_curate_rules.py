"""Proof / multiple-choice / answer rules and the n-gram dedup of RL problems: positives, and the look-alikes that
must stay."""

from __future__ import annotations

import doctest

import pytest

import mimo.curate.dedup
import mimo.curate.rules
from mimo.curate.dedup import NearDuplicates
from mimo.curate.rules import answer_reason, multiple_choice_reason, option_letters, proof_reason


def test_doctests():
    for module in (mimo.curate.rules, mimo.curate.dedup):
        assert doctest.testmod(module).failed == 0


@pytest.mark.parametrize("problem, answer", [
    ("Prove that there are infinitely many primes.", ""),
    ("Show that for all positive reals $a, b$ we have $a/b + b/a \\ge 2$.", "\\text{proof}"),
    ("Let $ABC$ be a triangle. Demonstrate that its medians are concurrent.", "concurrent"),
    ("Prove or disprove: every even number greater than 2 is a sum of two primes.", "open"),
    ("Let $a, b > 0$. Establish that $a^2 + b^2 \\ge 2ab$.",
     "Since $(a-b)^2 \\ge 0$, expanding gives $a^2 - 2ab + b^2 \\ge 0$, hence the inequality holds, which "
     "completes the argument."),
    ("Verify that $\\sqrt{2}$ is irrational.", "QED"),
])
def test_proofs_are_caught(problem, answer):
    assert proof_reason(problem, answer)


@pytest.mark.parametrize("problem, answer", [
    ("What is the value of $x$ if $2x + 3 = 7$? Justify your answer.", "2"),
    ("Find all real $x$ with $x^2 = 4$, and show that there are no others.", "\\pm 2"),
    ("How many ways can 5 books be arranged on a shelf? Prove your count is right.", "120"),
    ("Improve the bound: compute the smallest $k$ with $2^k > 1000$.", "10"),
    ("Determine whether 91 is prime.", "\\text{No}"),
    ("The approximation is improper unless the integral converges; evaluate $\\int_1^2 x\\,dx$.", "3/2"),
])
def test_answerable_problems_are_not_proofs(problem, answer):
    assert proof_reason(problem, answer) is None


@pytest.mark.parametrize("problem, answer", [
    ("Which is prime? (A) 21 (B) 27 (C) 29 (D) 33 (E) 35", "C"),
    ("What is $3^2$?\nA. 6\nB. 9\nC. 12\nD. 27", "B"),
    ("Pick the largest:\nA) 0.3\nB) 1/3\nC) 0.33", "B) 1/3"),
    ("$\\textbf{(A)}\\ 5 \\qquad\\textbf{(B)}\\ 6 \\qquad\\textbf{(C)}\\ 7 \\qquad\\textbf{(D)}\\ 8$", "\\textbf{(C)}"),
    ("Options: A: 3  B: 4  C: 5. How many edges does a triangle have?", "3"),
    ("Is 7 prime?\n(A) yes\n(B) no", "A"),
])
def test_multiple_choice_is_caught(problem, answer):
    assert multiple_choice_reason(problem, answer)


@pytest.mark.parametrize("problem, answer", [
    ("Let $A$, $B$, $C$ be the vertices of a right triangle with legs 3 and 4. Find the area of $ABC$.", "6"),
    ("Events A, B, C have P(A) = 0.3, P(B) = 0.4 and P(C) = 0.1. Find P(A) + P(B).", "0.7"),
    ("(a) Find $x$ if $x + 1 = 3$. (b) Find $y$ if $2y = 8$. (c) Find $x + y$.", "6"),
    ("Sets A and B: A = {1, 2}, B = {2, 3}. How many elements does the union have?", "3"),
    ("Is 7 prime?\n(A) yes\n(B) no", "\\text{yes}"),  # two options, but the answer is not a letter
])
def test_look_alikes_are_not_multiple_choice(problem, answer):
    assert multiple_choice_reason(problem, answer) is None


def test_option_letters_in_order_of_appearance():
    assert option_letters("(B) 2 (A) 1 (C) 3") == ["B", "A", "C"]
    assert multiple_choice_reason("(B) 2 (A) 1 (C) 3", "A") is None  # out of order: not a list of options


@pytest.mark.parametrize("answer, bad", [
    ("\\frac{7}{8}", False), (391, False), (0.25, False), ("\\text{Sunday}", False), ("no solution", False),
    ("(-\\infty, 3]", False), ("x = 2 \\text{ or } x = 3", False),
    (None, True), ("", True), ("N/A", True), ("$\\boxed{None}$", True), (True, True), ([1, 2], True),
    ("\\text{the answer is in the figure}", True), ("see the attached diagram below", True),
])
def test_answer_reason(answer, bad):
    assert bool(answer_reason(answer)) is bad


def test_dedup_exact_after_normalisation_and_near_copies():
    d = NearDuplicates()
    base = ("A bag holds 4 red and 6 blue marbles. Two marbles are drawn at random without replacement. "
            "What is the probability that both are blue?")
    assert d.check_add("a", base) is None
    assert d.check_add("b", base.upper().replace(" ", "  ")) == ("a", 1.0)
    near = base + " Express your answer as a common fraction."
    hit = d.check_add("c", near)
    assert hit is not None and hit[0] == "a" and 0.7 <= hit[1] < 1.0
    assert d.check("a bag holds 4 red and 6 blue marbles") is None  # a fragment is not the problem


def test_dedup_keeps_templated_problems_with_other_numbers():
    d = NearDuplicates()
    template = ("A bag holds {r} red and {b} blue marbles. Two marbles are drawn at random without replacement. "
                "What is the probability that both are blue?")
    assert d.check_add("a", template.format(r=4, b=6)) is None
    assert d.check_add("b", template.format(r=5, b=6)) is None  # one number differs: a different problem
    assert d.check_add("c", "What is 23 + 45?") is None
    assert d.check_add("d", "What is 23 + 46?") is None
    assert d.check_add("e", "what is 23+45") == ("c", 1.0)  # short texts: exact match after normalisation


def test_dedup_boilerplate_does_not_make_duplicates_and_stays_bounded():
    d = NearDuplicates(max_postings=8)
    tail = " Put your final answer within \\boxed{} and simplify it as far as possible."
    for i in range(50):
        assert d.check_add(f"p{i}", f"Compute the sum of the first {i + 3} odd numbers." + tail) is None
    assert max(len(v) for v in d.postings.values()) == 8
    assert d.check_add("again", "Compute the sum of the first 20 odd numbers." + tail) == ("p17", 1.0)


def test_dedup_tells_operators_apart_and_finds_nothing_in_unique_toy_sets():
    from mimo.tasks import MathTaskGenerator
    from mimo.tasks.code import CodeTaskGenerator

    d = NearDuplicates()
    assert d.check_add("a", "Compute (1 + 2) * 8.") is None
    assert d.check_add("b", "Compute (1 * 2) + 8.") is None
    assert d.check_add("c", "Compute $(1+2) \\times 8$") is None  # \\times is a word, not "*"
    assert d.check_add("d", "compute (1 + 2) * 8") == ("a", 1.0)
    assert d.check_add("e", "Compute (1 + 2) × 8") == ("a", 1.0)
    d = NearDuplicates()
    problems = [p.prompt_text() for p in MathTaskGenerator(seed=3, max_steps=4).sample(1500)]
    problems += [p.prompt_text() for p in CodeTaskGenerator(seed=3).sample(300)]
    assert [t for i, t in enumerate(problems) if d.check_add(str(i), t)] == []
