"""Verifiable toy tasks: seeded generators whose problems feed pretraining text, SFT, RL and evaluation.

Each task bundles its generator, its prompt/solution formats and its reference for the rule-based graders in
:mod:`mimo.rewards`.  Train and held-out problems are disjoint by construction (the split is a hash of the
problem's canonical form, so no seed can leak a held-out problem into training).  :class:`ToyTaskSpec` holds the
difficulty knobs every stage shares.
"""

from mimo.tasks.code import CodeProblem, CodeTaskGenerator
from mimo.tasks.math import MathProblem, MathTaskGenerator
from mimo.tasks.spec import HELDOUT_SEED, ToyTaskSpec

__all__ = ["CodeProblem", "CodeTaskGenerator", "HELDOUT_SEED", "MathProblem", "MathTaskGenerator", "ToyTaskSpec"]
