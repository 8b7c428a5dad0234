"""The test-difficulty-driven code reward: difficulty levels of a problem's tests, and the strict/soft schemes.

A problem's tests are grouped into levels by how often many rollouts (of several models) pass them -- a lower pass
rate is a harder test, and level 0 is the easiest.  Then, with one score per level (equal by default, ``weights``
to change it, normalised to sum 1):

* **strict**: a level's score counts only if all of its tests and all tests of easier levels pass;
* **soft**: each level's score is split evenly over its tests, the reward is the sum over the passed tests;
* **vanilla**: 1 if every test passes, else 0 (no partial credit -- the sparse reward MiMo improves on).

Departures from the paper (which does not publish its clustering): levels come from an exact 1-D clustering of
the tests' pass rates (the partition into ``n_levels`` contiguous groups with the least within-group squared
error; equal pass rates always share a level), and there are fewer levels when there are fewer distinct rates.
A problem without tests scores 0 in every scheme.
"""

from __future__ import annotations

from collections.abc import Sequence

from mimo.errors import MimoError

SCHEMES = ("strict", "soft", "vanilla")


def pass_rates(pass_matrix: Sequence[Sequence]) -> list[float]:
    """Per-test pass rate over the rollouts (rows of ``pass_matrix``: one rollout, one bool/0/1 per test).

    >>> pass_rates([[1, 0, 1], [1, 0, 0]])
    [1.0, 0.0, 0.5]
    """
    rows = [list(r) for r in pass_matrix]
    if not rows:
        raise MimoError("pass matrix: no rollouts")
    width = len(rows[0])
    if any(len(r) != width for r in rows):
        raise MimoError("pass matrix: rows (rollouts) have different numbers of tests")
    return [sum(bool(r[t]) for r in rows) / len(rows) for t in range(width)]


def verdict_matrix(verdict_rows: Sequence[Sequence[str]], n_tests: int) -> list[list[bool]]:
    """The rollouts x tests pass matrix from each rollout's per-test judge verdicts.  A rollout without a verdict
    for every test (no code block, a judge that gave up) failed every test.

    >>> verdict_matrix([("passed", "wrong_answer"), (), ("passed", "passed")], 2)
    [[True, False], [False, False], [True, True]]
    """
    return [[v == "passed" for v in row] if len(row) == n_tests else [False] * n_tests for row in verdict_rows]


def _partition(values: list[float], counts: list[int], k: int) -> list[int]:
    """Group index per value for the best split of sorted ``values`` (weighted by ``counts``) into ``k`` runs."""
    n = len(values)
    s1, s2, w = [0.0], [0.0], [0]
    for v, c in zip(values, counts):
        s1.append(s1[-1] + v * c)
        s2.append(s2[-1] + v * v * c)
        w.append(w[-1] + c)

    def sse(i: int, j: int) -> float:  # values[i:j] as one group
        total, weight = s1[j] - s1[i], w[j] - w[i]
        return s2[j] - s2[i] - total * total / weight

    inf = float("inf")
    cost = [[inf] * (n + 1) for _ in range(k + 1)]
    cut = [[0] * (n + 1) for _ in range(k + 1)]
    cost[0][0] = 0.0
    for g in range(1, k + 1):
        for j in range(g, n + 1):
            for i in range(g - 1, j):
                c = cost[g - 1][i] + sse(i, j)
                if c < cost[g][j] - 1e-12:
                    cost[g][j], cut[g][j] = c, i
    groups, j = [0] * n, n
    for g in range(k, 0, -1):
        i = cut[g][j]
        for t in range(i, j):
            groups[t] = g - 1
        j = i
    return groups


def assign_test_levels(pass_matrix: Sequence[Sequence], n_levels: int = 3) -> list[int]:
    """Difficulty level per test (0 = easiest = highest pass rate), from a rollouts x tests pass matrix.

    >>> m = [[1, 1, 1, 0, 0],   # four rollouts, five tests
    ...      [1, 1, 0, 0, 0],
    ...      [1, 1, 1, 1, 0],
    ...      [1, 0, 1, 0, 0]]
    >>> pass_rates(m)
    [1.0, 0.75, 0.75, 0.25, 0.0]
    >>> assign_test_levels(m)
    [0, 1, 1, 2, 2]
    >>> assign_test_levels(m, n_levels=2)
    [0, 0, 0, 1, 1]
    >>> assign_test_levels([[1, 1], [0, 0]])  # one distinct pass rate: one level
    [0, 0]
    """
    if n_levels < 1:
        raise MimoError(f"n_levels: expected at least 1, got {n_levels}")
    rates = pass_rates(pass_matrix)
    if not rates:
        return []
    distinct = sorted(set(rates), reverse=True)  # easiest first
    counts = [rates.count(r) for r in distinct]
    groups = _partition(distinct, counts, min(n_levels, len(distinct)))
    level_of = dict(zip(distinct, groups))
    return [level_of[r] for r in rates]


def as_passed(outcomes: Sequence) -> list[bool]:
    """Booleans (or 0/1) as they are; judge verdict strings as ``verdict == "passed"``.

    >>> as_passed([True, 0, "passed", "wrong_answer"])
    [True, False, True, False]
    """
    return [o == "passed" if isinstance(o, str) else bool(o) for o in outcomes]


def _levels_and_weights(passed: Sequence[bool], levels: Sequence[int] | None,
                        weights: Sequence[float] | None) -> list[tuple[list[int], float]]:
    """[(test indices, normalised score)] per level present, easiest first."""
    if levels is None:
        levels = [0] * len(passed)
    if len(levels) != len(passed):
        raise MimoError(f"levels: {len(levels)} levels for {len(passed)} tests")
    if any(not isinstance(lv, int) or isinstance(lv, bool) or lv < 0 for lv in levels):
        raise MimoError(f"levels: expected non-negative integers, got {list(levels)}")
    present = sorted(set(levels))
    if not present:
        return []
    if weights is None:
        weights = [1.0] * len(present)
    if len(weights) != len(present) or any(x < 0 for x in weights) or sum(weights) <= 0:
        raise MimoError(f"level weights: expected {len(present)} non-negative numbers with a positive sum, "
                        f"got {list(weights)}")
    total = float(sum(weights))
    return [([t for t, lv in enumerate(levels) if lv == level], w / total) for level, w in zip(present, weights)]


def strict_reward(passed: Sequence[bool], levels: Sequence[int] | None,
                  weights: Sequence[float] | None = None) -> float:
    """Sum of the scores of the levels that pass entirely, together with every easier level.

    Three levels with unequal test counts (2, 3 and 1 tests), equal level scores 1/3:

    >>> levels = [0, 0, 1, 1, 1, 2]
    >>> strict_reward([1, 1, 1, 1, 1, 1], levels)
    1.0
    >>> round(strict_reward([1, 1, 1, 0, 1, 1], levels), 4)   # level 1 fails: level 2 is not counted either
    0.3333
    >>> strict_reward([1, 0, 1, 1, 1, 1], levels)             # the easiest level fails: nothing counts
    0.0
    >>> strict_reward(["passed"] * 5 + ["time_limit"], levels) == 2 / 3   # judge verdicts work too
    True
    >>> round(strict_reward([1, 1, 1, 1, 1, 0], levels, weights=[0.2, 0.3, 0.5]), 4)
    0.5
    """
    passed = as_passed(passed)
    groups = _levels_and_weights(passed, levels, weights)
    if not passed:
        return 0.0
    score = 0.0
    for tests, w in groups:
        if not all(passed[t] for t in tests):
            break
        score += w
    return min(1.0, score)


def soft_reward(passed: Sequence[bool], levels: Sequence[int] | None,
                weights: Sequence[float] | None = None) -> float:
    """Each level's score split evenly over its tests; the sum over the passed tests.

    Same levels (2, 3 and 1 tests): a level-0 test is worth 1/6, a level-1 test 1/9, the level-2 test 1/3.

    >>> levels = [0, 0, 1, 1, 1, 2]
    >>> round(soft_reward([1, 1, 1, 0, 1, 1], levels), 4)     # 1/3 + 2/9 + 1/3 = 8/9
    0.8889
    >>> round(soft_reward([1, 0, 1, 1, 1, 1], levels), 4)     # 1/6 + 1/3 + 1/3 = 5/6
    0.8333
    >>> round(soft_reward([0, 0, 0, 0, 0, 1], levels), 4)     # the hardest test alone still counts (not in strict)
    0.3333
    >>> round(soft_reward([1, 1, 0, 0, 0, 0], levels, weights=[0.2, 0.3, 0.5]), 4)
    0.2
    """
    passed = as_passed(passed)
    groups = _levels_and_weights(passed, levels, weights)
    if not passed:
        return 0.0
    return min(1.0, sum(w * sum(bool(passed[t]) for t in tests) / len(tests) for tests, w in groups))


def vanilla_reward(passed: Sequence[bool], levels: Sequence[int] | None = None,
                   weights: Sequence[float] | None = None) -> float:
    """1 if every test passes, else 0 (``levels`` and ``weights`` are accepted and ignored).

    >>> vanilla_reward([True, True]), vanilla_reward([True, False]), vanilla_reward([])
    (1.0, 0.0, 0.0)
    """
    passed = as_passed(passed)
    return 1.0 if passed and all(passed) else 0.0


def scheme_reward(passed: Sequence[bool], levels: Sequence[int] | None = None, scheme: str | None = None,
                  weights: Sequence[float] | None = None) -> float:
    """Dispatch on ``scheme`` (default: strict when levels are known, else vanilla).

    >>> scheme_reward([True, False], None), scheme_reward([True, False], None, "soft")
    (0.0, 0.5)
    """
    scheme = scheme or ("strict" if levels is not None else "vanilla")
    if scheme not in SCHEMES:
        raise MimoError(f"scheme: expected one of {', '.join(SCHEMES)}, got {scheme!r}")
    fn = {"strict": strict_reward, "soft": soft_reward, "vanilla": vanilla_reward}[scheme]
    return fn(passed, levels, weights)
