"""The asynchronous reward service: ``RewardPool.submit(kind, completion, reference) -> Future[RewardResult]``.

The Seamless Rollout Engine scores each rollout the moment it finishes, on workers separate from generation, so
rewards never stall the GPUs.  ``RewardPool`` is that service, with one interface over three backends:

* ``"local"`` (default): one worker process per CPU (:mod:`mimo.rewards.local`), each driven by a thread that
  enforces a wall clock per task (a stuck worker is killed and the item scores 0 with reason ``"timeout"``; a
  dead one is replaced and its task retried).  Code tasks run in each worker's own long-lived sandbox session.
* ``"ray"``: the same workers inside Ray actors (:mod:`mimo.rewards.actors`), for a cluster; Ray restarts a dead
  actor and retries its tasks.
* ``"http"``: a client of ``mimo judge serve`` (:mod:`mimo.rewards.server`), e.g. a dedicated code-judge machine.

References: for ``"math"`` the gold answer; for ``"code"`` a dict ``{"tests": [...], "levels": [...] | None,
"scheme": "strict" | "soft" | "vanilla", "level_weights": [...] | None, "fn_name": str | None, "limits": {...}}``
(see :func:`mimo.rewards.code.code_reward`); ``"judge"`` takes the same dict with the code itself as completion;
``"gold"`` checks a gold answer (the reference) parses, for data curation (:func:`mimo.rewards.math.gold_check`).
Malformed references fail the future with :class:`~mimo.errors.MimoError` (never a silent 0).
"""

from __future__ import annotations

import dataclasses
import itertools
from concurrent.futures import Future

from mimo.config import F
from mimo.errors import MimoError
from mimo.rewards import RewardResult
from mimo.rewards.actors import RayBackend
from mimo.rewards.local import ProcessBackend, default_workers
from mimo.rewards.sandbox import JudgeLimits, make_limits
from mimo.rewards.server import HttpBackend

BACKENDS = ("local", "ray", "http")
@dataclasses.dataclass
class PoolConfig:
    """How rewards are computed: where, how many at once, and the limits per item."""

    workers: int = F(0, "worker processes / Ray actors / concurrent HTTP requests; 0 = one per CPU")
    backend: str = F("local", "local | ray | http")
    math_timeout: float = F(5.0, "wall-clock seconds per math item; past it the worker is killed, the item scores 0")
    math_inner_timeout: int = F(2, "Math-Verify's own signal.alarm timeout in workers, whole seconds (0: off)")
    max_retries: int = F(1, "retries of a task whose worker died under it")
    url: str = F("http://127.0.0.1:8321", "server of the http backend (`mimo judge serve`)")
    ray_address: str | None = F(None, "Ray cluster to join (None: the running one, or a local one)")
    warm_math: bool = F(True, "import Math-Verify when a worker starts rather than on its first math item")
    limits: JudgeLimits = F(factory=JudgeLimits, help="code judge limits per test")


class RewardPool:
    """Asynchronous rewards; see the module docstring.  Use as a context manager or call :meth:`close`."""

    def __init__(self, cfg: PoolConfig | None = None, **overrides):
        cfg = cfg or PoolConfig()
        if overrides:
            if isinstance(overrides.get("limits"), dict):
                overrides["limits"] = make_limits(**overrides["limits"])
            cfg = dataclasses.replace(cfg, **overrides)
        if cfg.backend not in BACKENDS:
            raise MimoError(f"reward backend: expected one of {', '.join(BACKENDS)}, got {cfg.backend!r}")
        self.cfg = cfg
        self.workers = cfg.workers or default_workers()
        self._ids = itertools.count()
        if cfg.backend == "local":
            self.backend = ProcessBackend(self.workers, cfg.warm_math, cfg.math_timeout, cfg.max_retries, cfg.limits)
        elif cfg.backend == "ray":
            self.backend = RayBackend(self.workers, cfg)
        else:
            self.backend = HttpBackend(cfg.url, self.workers)

    def submit(self, kind: str, completion: str, reference) -> Future:
        """Score one item in the background; the future's result is a :class:`~mimo.rewards.RewardResult`."""
        task = {"id": next(self._ids), "kind": kind, "completion": completion, "reference": reference,
                "limits": dataclasses.asdict(self.cfg.limits),
                "math_timeout_s": self.cfg.math_inner_timeout or None}
        if kind not in ("math", "code", "judge", "gold"):
            raise MimoError(f"reward kind: expected math, code, judge or gold, got {kind!r}")
        raw = self.backend.submit_task(task)
        result: Future = Future()
        raw.add_done_callback(lambda f: _finish(f, result))
        return result

    def map(self, kind: str, completions, references) -> list[RewardResult]:
        """Score many items of one kind in parallel; results in input order."""
        futures = [self.submit(kind, c, r) for c, r in zip(completions, references, strict=True)]
        return [f.result() for f in futures]

    def score_batch(self, items) -> list[RewardResult]:
        """Score ``(kind, completion, reference)`` triples of mixed kinds in parallel; results in input order."""
        futures = [self.submit(k, c, r) for k, c, r in items]
        return [f.result() for f in futures]

    @property
    def stats(self) -> dict:
        return dict(getattr(self.backend, "stats", {}))

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> RewardPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _finish(raw: Future, result: Future) -> None:
    """Turn a backend's reply dict into a RewardResult (or the worker's error into an exception)."""
    try:
        reply = raw.result()
    except BaseException as e:  # noqa: BLE001
        result.set_exception(e)
        return
    if "error" in reply:
        result.set_exception(MimoError(reply["error"]) if reply.get("user_error") else RuntimeError(reply["error"]))
    else:
        result.set_result(RewardResult.from_dict(reply))
