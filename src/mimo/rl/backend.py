"""The rollout backends' interface: what the engine (:mod:`mimo.rl.engine`) launches and the events it receives.

A backend takes :class:`RolloutRequest` s (one prompt, ``n`` samples) and later puts exactly one event per task on
``backend.events``: :class:`RolloutDone` (token ids and the rollout policy's log-probs) or :class:`Aborted`.
The implementations are in :mod:`mimo.rl.rollout` (local processes, endpoint) and :mod:`mimo.rl.vllm_rollout`.
"""

from __future__ import annotations

import dataclasses
import queue

import torch

from mimo.infer.decoding import SamplingParams


@dataclasses.dataclass(frozen=True)
class RolloutRequest:
    task_id: int
    prompt_ids: tuple[int, ...]
    num_samples: int
    seed: int
    params: SamplingParams


@dataclasses.dataclass
class RolloutDone:
    task_id: int
    responses: list[list[int]]
    logprobs: list[list[float]]
    worker: int
    started: float  # perf_counter of the engine's clock when generation began / ended
    finished: float
    version: int = 0  # policy version that generated it
    accepted: list[int] = dataclasses.field(default_factory=list)  # speculative: drafts accepted per MTP layer
    drafted: list[int] = dataclasses.field(default_factory=list)  # ... and proposed


@dataclasses.dataclass
class Aborted:
    task_id: int
    worker: int
    tokens: int = 0  # tokens decoded before the abort took effect (wasted work)


class RolloutBackend:
    """Interface: ``launch(req)``, ``abort(task_id)``, ``sync_weights(model)``, ``events``, ``close()``."""

    num_workers: int = 1

    def __init__(self):
        self.events: queue.Queue = queue.Queue()

    def launch(self, req: RolloutRequest) -> None:
        raise NotImplementedError

    def abort(self, task_id: int) -> None:
        raise NotImplementedError

    def sync_weights(self, model: torch.nn.Module) -> None:
        """Make the next launched tasks use ``model``'s current weights."""

    def syncs(self) -> int:
        """Weight syncs so far: what ``RolloutDone.version`` counts (an initial sync at start counts too)."""
        return 0

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
