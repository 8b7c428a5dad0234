"""Step accounting, one definition for the real engine (:mod:`.engine`) and the simulator (:mod:`.simulator`).

Every group a step launches ends in one bucket, and its decoded tokens are counted there: ``selected`` (trained
on), ``surplus`` (informative but beyond the batch), ``filtered`` (dropped by dynamic sampling: all responses
right or all wrong) or ``aborted`` (cut by early termination; the tokens decoded before the cut).

* ``idle_ratio`` = 1 - busy worker-time / rollout time (training time excluded, as in the paper's Table 2).
* ``waste_ratio`` (ours; the paper gives no formula) = (surplus + aborted) / (surplus + aborted + selected): tokens
  that reached no trainer although dynamic sampling did not reject them.  Filtered groups are dynamic sampling's
  own cost, not the scheduler's, and are counted in neither.
"""

from __future__ import annotations

BUCKETS = ("selected", "surplus", "filtered", "aborted")


def token_counts(zero: float = 0) -> dict:
    """An empty ``bucket -> tokens`` table."""
    return dict.fromkeys(BUCKETS, zero)


def bucket(selected: bool, aborted: bool, informative: bool) -> str:
    """Where a finished group's tokens are counted.

    >>> bucket(True, False, True), bucket(False, True, True), bucket(False, False, True), bucket(False, False, False)
    ('selected', 'aborted', 'surplus', 'filtered')
    """
    if selected:
        return "selected"
    if aborted:
        return "aborted"
    return "surplus" if informative else "filtered"


def idle_ratio(busy_s: float, rollout_s: float) -> float:
    return 1.0 - busy_s / rollout_s if rollout_s > 0 else 0.0


def waste_ratio(tokens: dict) -> float:
    """Tokens no trainer saw although dynamic sampling kept them, over those plus the trained ones.

    >>> waste_ratio({"selected": 60, "surplus": 30, "filtered": 500, "aborted": 10})
    0.4
    """
    wasted = tokens["surplus"] + tokens["aborted"]
    return wasted / max(wasted + tokens["selected"], 1)
