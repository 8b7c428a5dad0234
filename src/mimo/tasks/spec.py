"""The toy tasks' difficulty knobs, one type for every stage that generates them, and the held-out seed.

The corpus, SFT, RL and evaluation each nest a :class:`ToyTaskSpec` (RL and evaluation default to harder math
than the corpus and SFT, so RL has headroom).  Held-out problems are the ``"heldout"`` split of a generator seeded
with :data:`HELDOUT_SEED`: the split is a hash of the problem, so no training seed can produce one of them.
"""

from __future__ import annotations

import dataclasses

from mimo.config import F
from mimo.tasks.code import CodeTaskGenerator
from mimo.tasks.math import MathTaskGenerator

HELDOUT_SEED = 12345  # the held-out toy problems: evaluation, RL validation, SFT's decontamination index


@dataclasses.dataclass
class ToyTaskSpec:
    """How hard the toy math and code problems are."""

    min_steps: int = F(1, "fewest arithmetic steps per math problem")
    max_steps: int = F(3, "most arithmetic steps per math problem")
    max_digits: int = F(1, "operand digits")
    max_pieces: int = F(2, "most pieces / string operations per code problem")
    code_families: str = F("piecewise,string", "code task families")

    def math(self, seed: int, min_steps: int | None = None) -> MathTaskGenerator:
        """The math generator with these knobs (``min_steps`` overrides the spec's, e.g. to ask for multi-step)."""
        return MathTaskGenerator(seed=seed, min_steps=self.min_steps if min_steps is None else min_steps,
                                 max_steps=self.max_steps, max_digits=self.max_digits)

    def code(self, seed: int) -> CodeTaskGenerator:
        return CodeTaskGenerator(seed=seed, max_pieces=self.max_pieces, families=self.code_families)


def harder() -> ToyTaskSpec:
    """RL's and evaluation's default: math chains of up to 4 steps."""
    return ToyTaskSpec(max_steps=4)
