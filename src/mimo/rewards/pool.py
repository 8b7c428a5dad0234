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

No silent zeros from the pool itself either: workers that cannot start (they cannot import mimo, a bad
interpreter) or a failure rate -- timeouts plus lost workers -- above ``max_failure_rate`` break the pool: the
pending and every later :meth:`RewardPool.submit` fail with :class:`PoolBroken`, a one-line error that stops
the run, rather than grading everything 0.  Workers get the parent's ``mimo`` on ``PYTHONPATH``, so a checkout
put on ``sys.path`` by hand grades with the same code as the parent.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from concurrent.futures import Future

from mimo.config import F
from mimo.errors import MimoError
from mimo.rewards import RewardResult
from mimo.rewards.actors import RayBackend
from mimo.rewards.local import PoolBroken, ProcessBackend, default_workers
from mimo.rewards.sandbox import JudgeLimits, make_limits
from mimo.rewards.server import HttpBackend

BACKENDS = ("local", "ray", "http")
FAILURE_RATE_MIN_TASKS = 20  # judge the failure rate only once it means something
FAILED_REASONS = ("timeout", "worker_died")  # the grader, not the completion, failed


@dataclasses.dataclass
class PoolConfig:
    """How rewards are computed: where, how many at once, and the limits per item."""

    workers: int = F(0, "worker processes / Ray actors / concurrent HTTP requests; 0 = one per CPU")
    backend: str = F("local", "local | ray | http")
    math_timeout: float = F(5.0, "wall-clock seconds per math item; past it the worker is killed, the item scores 0")
    math_inner_timeout: int = F(2, "Math-Verify's own signal.alarm timeout in workers, whole seconds (0: off)")
    max_retries: int = F(1, "retries of a task whose worker died under it")
    max_failure_rate: float = F(0.5, "stop (PoolBroken) once more than this fraction of the tasks so far timed out "
                                     f"or lost their worker (judged after {FAILURE_RATE_MIN_TASKS} tasks)")
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
        self.counts = {"done": 0, "failed": 0}
        self.broken: PoolBroken | None = None
        self._count_lock = threading.Lock()
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
        broken = self.broken or getattr(self.backend, "broken", None)
        if broken is not None:
            raise broken
        raw = self.backend.submit_task(task)
        result: Future = Future()
        raw.add_done_callback(lambda f: self._done(_finish(f, result)))
        return result

    def _done(self, result: Future) -> None:
        """Count failed tasks; past ``max_failure_rate`` the pool breaks (see the module docstring)."""
        exc = result.exception()
        failed = isinstance(exc, PoolBroken) or (exc is None and result.result().reason in FAILED_REASONS)
        with self._count_lock:
            self.counts["done"] += 1
            self.counts["failed"] += failed
            done, bad = self.counts["done"], self.counts["failed"]
            if self.broken is None and done >= FAILURE_RATE_MIN_TASKS and bad > self.cfg.max_failure_rate * done:
                stats = self.stats
                self.broken = PoolBroken(
                    f"reward pool: {bad} of {done} tasks failed to grade ({stats.get('timeouts', 0)} timeouts, "
                    f"{stats.get('restarts', 0)} worker deaths), more than max_failure_rate "
                    f"{self.cfg.max_failure_rate:g}")
            if isinstance(exc, PoolBroken) and self.broken is None:
                self.broken = exc

    def raise_if_broken(self) -> None:
        """Raise :class:`PoolBroken` if the pool broke (callers check between steps)."""
        if self.broken is not None:
            raise self.broken

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


def _finish(raw: Future, result: Future) -> Future:
    """Turn a backend's reply dict into a RewardResult (or the worker's error into an exception)."""
    try:
        reply = raw.result()
    except BaseException as e:  # noqa: BLE001
        result.set_exception(e)
        return result
    if "error" in reply:
        result.set_exception(MimoError(reply["error"]) if reply.get("user_error") else RuntimeError(reply["error"]))
    else:
        result.set_result(RewardResult.from_dict(reply))
    return result
