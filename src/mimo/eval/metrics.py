"""Evaluation metrics: the unbiased pass@k estimator, avg@n with its standard error, pass@k curves.

MiMo reports pass@1 as the mean over ``n`` samples per problem ("avg@n": AIME 32, LiveCodeBench and GPQA 8,
MATH-500 1) and draws pass@k curves with the unbiased estimator of Chen et al. (2021)::

    pass@k = E_problems[ 1 - C(n - c, k) / C(n, k) ]      (n samples of which c are correct)

computed here as the numerically stable product ``1 - prod_{i = n-c+1}^{n} (1 - k / i)`` (no huge binomials).

Standard error: the spread of per-problem mean scores across problems, ``std(ddof=1) / sqrt(P)`` -- the
uncertainty of the benchmark average due to the finite problem set *and* the finite samples per problem (as
lm-evaluation-harness reports it).  It is 0 for a single problem.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from mimo.rewards import passed


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of the probability that at least one of ``k`` samples is correct, given ``c`` correct
    out of ``n`` samples.

    >>> pass_at_k(10, 0, 1), pass_at_k(10, 10, 1), round(pass_at_k(10, 3, 1), 12)
    (0.0, 1.0, 0.3)
    >>> round(pass_at_k(5, 2, 2), 6)   # 1 - C(3,2)/C(5,2) = 1 - 3/10
    0.7
    >>> pass_at_k(4, 1, 4)
    1.0
    """
    if not (isinstance(n, int) and isinstance(c, int) and isinstance(k, int)):
        raise TypeError(f"pass_at_k expects integers, got n={n!r}, c={c!r}, k={k!r}")
    if n < 1 or not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs n >= 1, 0 <= c <= n and 1 <= k <= n (got n={n}, c={c}, k={k})")
    if n - c < k:  # every k-subset holds a correct sample
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def mean_stderr(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample std, ddof=1); stderr 0 for fewer than two values.

    >>> m, se = mean_stderr([1.0, 0.0, 1.0, 0.0]); m, round(se, 6)
    (0.5, 0.288675)
    >>> mean_stderr([])
    (0.0, 0.0)
    """
    p = len(values)
    if p == 0:
        return 0.0, 0.0
    mean = math.fsum(values) / p
    if p < 2:
        return mean, 0.0
    var = math.fsum((v - mean) ** 2 for v in values) / (p - 1)
    return mean, math.sqrt(var / p)


def benchmark_metrics(scores: Sequence[Sequence[float]]) -> dict:
    """The metrics of one benchmark from per-problem sample scores (``scores[p]``: the scores in [0, 1] of problem
    ``p``'s samples; a sample counts as correct for pass@k when its score is 1).

    Returns ``{"pass@1", "stderr", "n_problems", "n_samples", "pass@k"}``: ``pass@1`` is avg@n (the mean score over
    each problem's samples, averaged over problems), ``stderr`` its standard error over problems, ``n_samples`` the
    fewest samples any problem has, and ``pass@k`` (keys ``"1"`` ... ``str(n_samples)``) the unbiased estimator
    averaged over problems.  Problems without samples are left out.

    >>> m = benchmark_metrics([[1, 0, 0, 1], [0, 0, 0, 0]])
    >>> m["pass@1"], m["n_problems"], m["pass@k"]["4"]
    (0.25, 2, 0.5)
    """
    scored = [list(map(float, s)) for s in scores if len(s)]
    if not scored:
        return {"pass@1": 0.0, "stderr": 0.0, "n_problems": 0, "n_samples": 0, "pass@k": {}}
    for s in scored:
        if any(not 0.0 <= v <= 1.0 for v in s):
            raise ValueError(f"scores must lie in [0, 1], got {s}")
    mean, stderr = mean_stderr([math.fsum(s) / len(s) for s in scored])
    n_min = min(len(s) for s in scored)
    curve = {}
    for k in range(1, n_min + 1):
        curve[str(k)] = math.fsum(pass_at_k(len(s), sum(passed(v) for v in s), k) for s in scored) / len(scored)
    return {"pass@1": mean, "stderr": stderr, "n_problems": len(scored), "n_samples": n_min, "pass@k": curve}
