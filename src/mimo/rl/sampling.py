"""What to roll out and what to keep: dynamic sampling, the easy-data pool and per-problem pass-rate statistics.

MiMo's RL (docs/design.md §1.5, paper §4.2-4.3) adds two data mechanisms to GRPO:

* **Dynamic sampling** (DAPO): a group whose responses all pass or all fail has zero advantage everywhere, so it
  adds nothing but noise to the token count; such groups are dropped and more prompts are rolled out so that the
  training batch keeps its size.  :func:`is_informative` is the filter.  The over-sampling itself -- *when* to
  launch more prompts -- is the rollout scheduler's job (``mimo.rl.scheduler``); it predicts from
  :class:`InformativeRate`, the running fraction of informative groups.
* **Easy-data re-sampling**: late in training many problems reach pass rate 1 and dynamic sampling would drop
  them all the time; MiMo moves them into an *easy pool* and draws each prompt from that pool with probability
  ``alpha = 0.1``, which stabilises the policy on what it already solves.  :class:`ProblemSampler` does both the
  ordinary epoch-shuffled draws and the easy-pool draws, and keeps the per-problem statistics.

Choices the paper leaves open, and ours:

* "Pass rate 0 or 1" is generalised to "all rewards equal" (``max - min <= tol``).  For the binary math reward
  the two are identical; for the soft test-difficulty code reward, a group with equal partial scores also has zero
  advantage, so it is dropped too, and a group with different partial scores is kept even if none fully passes.
* A response *passes* when its reward is ``>= pass_threshold`` (default :data:`mimo.rewards.PASS_REWARD`).
* An easy-pool problem that fails at least once when drawn again **returns to the main pool** (it is informative
  again); the paper only says how problems enter the pool.
* The main pool is drawn without replacement in seeded epochs (a fresh permutation per epoch, from the seed and
  the epoch number, so the state to checkpoint is small); problems currently in the easy pool are skipped.

All state is plain data (``state_dict``/``load_state_dict``, JSON-serialisable) and all randomness comes from one
seeded NumPy generator whose state is saved, so a resumed run draws exactly the prompts the uninterrupted one
would have.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from mimo.errors import MimoError
from mimo.rewards import PASS_REWARD


def is_informative(rewards: Sequence[float], tol: float = 1e-9) -> bool:
    """The dynamic-sampling filter: keep a group only if its rewards are not all equal.

    >>> is_informative([1, 0, 1, 1]), is_informative([1, 1, 1, 1]), is_informative([0.0, 0.0])
    (True, False, False)
    """
    if len(rewards) == 0:
        return False
    return max(rewards) - min(rewards) > tol


class InformativeRate:
    """Running estimate of the fraction of informative groups, for predicting how many running tasks will count.

    An exponentially decayed count (``horizon`` groups) plus ``prior_weight`` pseudo-observations at ``prior``, so
    the first prediction of a run is sane and the estimate follows the drift of pass rates during training.
    """

    def __init__(self, prior: float = 0.5, prior_weight: float = 8.0, horizon: float = 1024.0):
        if not 0.0 <= prior <= 1.0 or prior_weight < 0 or horizon < 1:
            raise ValueError(f"bad InformativeRate(prior={prior}, prior_weight={prior_weight}, horizon={horizon})")
        self.prior, self.prior_weight, self.decay = prior, prior_weight, 1.0 - 1.0 / horizon
        self.informative = 0.0
        self.total = 0.0

    def update(self, informative: bool) -> None:
        self.informative = self.informative * self.decay + float(informative)
        self.total = self.total * self.decay + 1.0

    @property
    def value(self) -> float:
        return (self.informative + self.prior * self.prior_weight) / (self.total + self.prior_weight)

    def state_dict(self) -> dict:
        return {"informative": self.informative, "total": self.total}

    def load_state_dict(self, state: dict) -> None:
        self.informative, self.total = float(state["informative"]), float(state["total"])


@dataclass
class ProblemStats:
    """What we know about one problem: groups rolled out, responses, passes, and the last group's pass rate."""

    groups: int = 0
    samples: int = 0
    passes: int = 0
    last_pass_rate: float = 0.0

    @property
    def pass_rate(self) -> float:
        return self.passes / self.samples if self.samples else 0.0


class ProblemSampler:
    """Draws problem ids for rollout: the main pool in seeded epochs, the easy pool with probability ``alpha``.

    ``record(problem_id, rewards)`` after each scored group updates the statistics and moves the problem into the
    easy pool when every response passed (and back out when a drawn easy problem fails).
    """

    def __init__(self, problem_ids: Sequence[Hashable], *, alpha: float = 0.1, seed: int = 0,
                 pass_threshold: float = PASS_REWARD):
        if len(problem_ids) == 0:
            raise MimoError("ProblemSampler: no problems to sample from")
        if len(set(problem_ids)) != len(problem_ids):
            raise MimoError("ProblemSampler: problem ids must be unique")
        if not 0.0 <= alpha <= 1.0:
            raise MimoError(f"ProblemSampler: alpha must be in [0, 1], got {alpha}")
        self.ids = list(problem_ids)
        self.index = {pid: i for i, pid in enumerate(self.ids)}
        self.alpha, self.seed, self.pass_threshold = alpha, seed, pass_threshold
        self.rng = np.random.default_rng(seed)
        self.epoch = 0
        self.cursor = 0
        self._order = self._permutation(0)
        self.easy: list[int] = []  # indices into self.ids, in insertion order (deterministic choice)
        self._easy_pos: dict[int, int] = {}
        self.stats: dict[int, ProblemStats] = {}
        self.draws = 0
        self.easy_draws = 0

    # ------------------------------------------------------------------------------------------------ drawing

    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.ids))

    def draw(self) -> Hashable:
        """The next problem id (easy pool with probability ``alpha`` when it is not empty)."""
        self.draws += 1
        main_left = len(self.ids) - len(self.easy)
        if self.easy and (main_left == 0 or self.rng.random() < self.alpha):
            self.easy_draws += 1
            return self.ids[self.easy[int(self.rng.integers(len(self.easy)))]]
        while True:
            if self.cursor >= len(self._order):
                self.epoch += 1
                self.cursor = 0
                self._order = self._permutation(self.epoch)
            i = int(self._order[self.cursor])
            self.cursor += 1
            if i not in self._easy_pos:
                return self.ids[i]

    # --------------------------------------------------------------------------------------------- statistics

    def record(self, problem_id: Hashable, rewards: Sequence[float]) -> ProblemStats:
        """Update a problem's statistics with one scored group; move it into/out of the easy pool."""
        i = self.index.get(problem_id)
        if i is None:
            raise MimoError(f"ProblemSampler.record: unknown problem id {problem_id!r}")
        st = self.stats.setdefault(i, ProblemStats())
        passed = sum(1 for r in rewards if r >= self.pass_threshold)
        st.groups += 1
        st.samples += len(rewards)
        st.passes += passed
        st.last_pass_rate = passed / len(rewards) if len(rewards) else 0.0
        if len(rewards) and passed == len(rewards):
            self._add_easy(i)
        elif i in self._easy_pos:
            self._remove_easy(i)
        return st

    def _add_easy(self, i: int) -> None:
        if i not in self._easy_pos:
            self._easy_pos[i] = len(self.easy)
            self.easy.append(i)

    def _remove_easy(self, i: int) -> None:
        pos = self._easy_pos.pop(i)
        last = self.easy.pop()
        if last != i:  # swap-remove keeps both structures O(1) and deterministic
            self.easy[pos] = last
            self._easy_pos[last] = pos

    def in_easy_pool(self, problem_id: Hashable) -> bool:
        return self.index[problem_id] in self._easy_pos

    def problem_stats(self, problem_id: Hashable) -> ProblemStats:
        return self.stats.get(self.index[problem_id], ProblemStats())

    def summary(self) -> dict:
        """Aggregate statistics for logging."""
        seen = list(self.stats.values())
        samples = sum(s.samples for s in seen)
        return {
            "problems_seen": len(seen),
            "easy_pool": len(self.easy),
            "mean_pass_rate": sum(s.passes for s in seen) / samples if samples else 0.0,
            "all_pass": sum(1 for s in seen if s.samples and s.last_pass_rate == 1.0),
            "all_fail": sum(1 for s in seen if s.samples and s.last_pass_rate == 0.0),
            "easy_draw_frac": self.easy_draws / self.draws if self.draws else 0.0,
            "epoch": self.epoch,
        }

    # -------------------------------------------------------------------------------------------- checkpoints

    def state_dict(self) -> dict:
        """JSON-serialisable state (ids are stored by index, so the dataset order must not change on resume)."""
        return {
            "num_problems": len(self.ids),
            "alpha": self.alpha,
            "seed": self.seed,
            "rng": self.rng.bit_generator.state,
            "epoch": self.epoch,
            "cursor": self.cursor,
            "easy": list(self.easy),
            "stats": [[i, s.groups, s.samples, s.passes, s.last_pass_rate] for i, s in sorted(self.stats.items())],
            "draws": self.draws,
            "easy_draws": self.easy_draws,
        }

    def load_state_dict(self, state: dict) -> None:
        if state["num_problems"] != len(self.ids):
            raise MimoError(f"ProblemSampler: checkpoint has {state['num_problems']} problems, the dataset has "
                            f"{len(self.ids)}")
        self.alpha, self.seed = float(state["alpha"]), int(state["seed"])
        self.rng.bit_generator.state = state["rng"]
        self.epoch, self.cursor = int(state["epoch"]), int(state["cursor"])
        self._order = self._permutation(self.epoch)
        self.easy = [int(i) for i in state["easy"]]
        self._easy_pos = {i: p for p, i in enumerate(self.easy)}
        self.stats = {int(r[0]): ProblemStats(int(r[1]), int(r[2]), int(r[3]), float(r[4])) for r in state["stats"]}
        self.draws, self.easy_draws = int(state["draws"]), int(state["easy_draws"])
