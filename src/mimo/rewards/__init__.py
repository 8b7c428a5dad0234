"""Rule-based rewards: Math-Verify for math, a sandboxed judge with the test-difficulty-driven reward for code.

* :mod:`mimo.rewards.math` -- ``math_reward(completion, gold)`` on Math-Verify;
* :mod:`mimo.rewards.code` -- ``judge(code, tests, **limits)`` (verdict per test) and ``code_reward``; the sandbox
  in :mod:`mimo.rewards.sandbox` (bubblewrap sessions), what runs inside in :mod:`mimo.rewards.runner` and
  :mod:`mimo.rewards.checker` (value codec, assert-test checker);
* :mod:`mimo.rewards.levels` -- test difficulty levels and the strict / soft / vanilla code rewards;
* :mod:`mimo.rewards.pool` -- ``RewardPool``: asynchronous scoring on worker processes
  (:mod:`mimo.rewards.worker`), Ray actors (:mod:`mimo.rewards.actors`) or a ``mimo judge serve`` HTTP server
  (:mod:`mimo.rewards.server`); commands in :mod:`mimo.rewards.cli`.

``MIMO_LIGHT_IMPORT=1``: reward worker processes (and Ray reward actors) set this variable before importing
``mimo``, so that ``mimo/__init__.py`` skips its heavy work (registering the model with transformers costs
seconds); the reward code itself imports neither torch nor transformers.

Importing this package is cheap: Math-Verify (sympy) is imported on first use.
"""

from __future__ import annotations

import dataclasses

LIGHT_IMPORT_ENV = "MIMO_LIGHT_IMPORT"
PASS_REWARD = 1.0  # a response passes when its reward reaches this: a correct math answer, every code test passed


def passed(reward: float) -> bool:
    """Whether a reward counts as a pass (pass rates, pass@k, the easy pool, difficulty filtering).

    >>> passed(1.0), passed(0.75)
    (True, False)
    """
    return reward >= PASS_REWARD


@dataclasses.dataclass(frozen=True)
class RewardResult:
    """A reward: ``score`` in [0, 1], a short ``reason`` when it is not 1 ("timeout", "no_answer", "wrong_answer on
    test 3 ..."), and for code the per-test ``verdicts``."""

    score: float
    reason: str = ""
    verdicts: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"score": self.score, "reason": self.reason, "verdicts": list(self.verdicts)}

    @classmethod
    def from_dict(cls, d: dict) -> RewardResult:
        return cls(float(d["score"]), str(d.get("reason", "")), tuple(d.get("verdicts") or ()))


__all__ = ["RewardResult", "LIGHT_IMPORT_ENV", "PASS_REWARD", "passed"]
