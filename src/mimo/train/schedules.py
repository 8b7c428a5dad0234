"""Learning-rate and batch-size schedules, as pure functions of the optimizer step (so resume is exact).

MiMo pretraining: linear warmup -> constant LR per stage (later stages lower) -> a final cosine decay; batch-size
warmup at the start.  SFT: constant LR.  RL: constant LR.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def stage_of(step: int, stage_steps: Sequence[int]) -> int:
    """Index of the stage that optimizer step ``step`` (0-based) belongs to.

    >>> [stage_of(s, [3, 2]) for s in range(5)]
    [0, 0, 0, 1, 1]
    """
    total = 0
    for i, n in enumerate(stage_steps):
        total += n
        if step < total:
            return i
    return len(stage_steps) - 1


def wsd_lr(step: int, stage_steps: Sequence[int], stage_lrs: Sequence[float], warmup_steps: int,
           decay_steps: int, min_lr_ratio: float = 0.1) -> float:
    """Warmup-stable-decay over stages: linear warmup to the first stage's LR, each stage's constant LR, and a cosine
    from the last stage's LR down to ``min_lr_ratio`` of it over the final ``decay_steps``.

    >>> [round(wsd_lr(s, [4, 4], [1.0, 0.5], warmup_steps=2, decay_steps=2), 3) for s in range(8)]
    [0.5, 1.0, 1.0, 1.0, 0.5, 0.5, 0.275, 0.05]
    """
    total = sum(stage_steps)
    i = stage_of(step, stage_steps)
    lr = stage_lrs[i]
    if step < warmup_steps:
        lr = stage_lrs[0] * (step + 1) / warmup_steps
    decay_start = total - decay_steps
    if decay_steps > 0 and step >= decay_start:
        progress = (step - decay_start + 1) / decay_steps  # in (0, 1]
        floor = stage_lrs[-1] * min_lr_ratio
        lr = floor + (stage_lrs[-1] - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    return lr


def batch_size_at(step: int, final: int, start: int, warmup_steps: int, multiple: int = 1) -> int:
    """Linear batch-size warmup from ``start`` to ``final`` sequences over ``warmup_steps``, rounded up to a
    multiple of ``multiple`` (micro-batch x world size).

    >>> [batch_size_at(s, 32, 8, 4, multiple=8) for s in range(6)]
    [8, 16, 24, 32, 32, 32]
    """
    if warmup_steps <= 0 or step >= warmup_steps - 1:
        bs = final
    else:
        bs = start + (final - start) * step / (warmup_steps - 1)
    bs = int(math.ceil(bs / multiple) * multiple)
    return max(multiple, min(bs, int(math.ceil(final / multiple) * multiple)))
