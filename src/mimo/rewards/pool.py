"""The asynchronous reward service: ``RewardPool.submit(kind, completion, reference) -> Future[RewardResult]``.

The Seamless Rollout Engine scores each rollout the moment it finishes, on workers separate from generation, so
rewards never stall the GPUs.  ``RewardPool`` is that service, with one interface over three backends:

* ``"local"`` (default): one worker process per CPU (:mod:`mimo.rewards.worker`), each driven by a thread here
  that enforces a wall clock per task.  A worker that runs past it (Math-Verify stuck in C code on
  ``5^(5^(5^(5^5)))``) is killed and replaced and the item scores 0 with reason ``"timeout"``; a worker that dies
  mid-task (OOM killer, a crash, a ``kill``) is replaced and the task retried (``max_retries``), then scored 0
  with reason ``"worker_died"``.  Code tasks run in each worker's own long-lived sandbox session.
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
import json
import os
import queue
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future

from mimo.config import F
from mimo.errors import MimoError
from mimo.rewards import LIGHT_IMPORT_ENV, RewardResult
from mimo.rewards.sandbox import JudgeLimits, make_limits

BACKENDS = ("local", "ray", "http")
WORKER_START_TIMEOUT_S = 120.0  # importing sympy on a loaded machine
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


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def task_wall_s(task: dict, math_timeout: float, limits: JudgeLimits) -> float:
    """The parent's wall clock for one task: the math limit, or the judge's own deadline plus slack."""
    if task["kind"] in ("math", "gold"):
        return math_timeout
    reference = task.get("reference") or {}
    lim = make_limits(**{**dataclasses.asdict(limits), **(reference.get("limits") or {})})
    return lim.deadline_s(len(reference.get("tests") or ())) + 5.0


class WorkerTimeout(Exception):
    pass


class WorkerDied(Exception):
    pass


class PoolBroken(MimoError):
    """The pool cannot grade: its workers do not start, or too many tasks fail.  Stops the run."""


def _worker_env() -> dict[str, str]:
    """The workers' environment: light imports, and this process's ``mimo`` first on ``PYTHONPATH``."""
    import mimo

    src = os.path.dirname(os.path.dirname(os.path.abspath(mimo.__file__)))
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, LIGHT_IMPORT_ENV: "1", "PYTHONPATH": src + (os.pathsep + path if path else "")}


class _Worker:
    """One ``python -m mimo.rewards.worker`` process and its line protocol."""

    def __init__(self, warm_math: bool):
        argv = [sys.executable, "-m", "mimo.rewards.worker"] + (["--warm-math"] if warm_math else [])
        # stderr to a file, not a pipe nobody reads (a chatty worker would block); read back if it fails to start
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                     env=_worker_env(), start_new_session=True)
        self._buf = bytearray()
        self._ready = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_line(self, deadline: float) -> dict:
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buf:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WorkerTimeout()
                if sel.select(remaining):
                    chunk = os.read(fd, 1 << 20)
                    if not chunk:
                        raise WorkerDied(f"worker {self.pid} exited with status {self.proc.poll()}")
                    self._buf += chunk
        line, _, rest = bytes(self._buf).partition(b"\n")
        self._buf[:] = rest
        return json.loads(line)

    def call(self, task: dict, wall_s: float) -> dict:
        if not self._ready:
            try:
                self._read_line(time.monotonic() + WORKER_START_TIMEOUT_S)
            except (WorkerDied, WorkerTimeout, ValueError) as e:
                raise PoolBroken(f"reward workers cannot start: `{sys.executable} -m mimo.rewards.worker` "
                                 f"{self._why_not_started(e)}") from None
            self._ready = True
        try:
            self.proc.stdin.write(json.dumps(task).encode() + b"\n")
            self.proc.stdin.flush()
        except OSError as e:
            raise WorkerDied(f"worker {self.pid}: {e}") from None
        return self._read_line(time.monotonic() + wall_s)

    def _why_not_started(self, e: Exception) -> str:
        if isinstance(e, WorkerTimeout):
            return f"sent no ready line within {WORKER_START_TIMEOUT_S:.0f} s"
        self.proc.wait()
        self._stderr.seek(0)
        lines = [ln for ln in self._stderr.read().decode(errors="replace").splitlines() if ln.strip()]
        return f"exited with status {self.proc.returncode}" + (f" ({lines[-1].strip()})" if lines else "")

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self._stderr):
            try:
                stream.close()
            except OSError:
                pass


class LocalBackend:
    """N worker processes, one driver thread each, fed from one queue."""

    def __init__(self, workers: int, cfg: PoolConfig):
        self.cfg = cfg
        self._tasks: queue.Queue = queue.Queue()
        self._pids: dict[int, int] = {}
        self.stats = {"timeouts": 0, "restarts": 0, "retries": 0}
        self.broken: PoolBroken | None = None
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._drive, args=(slot,), daemon=True, name=f"reward-slot-{slot}")
                         for slot in range(workers)]
        for t in self._threads:
            t.start()

    def worker_pids(self) -> list[int]:
        """Live worker process ids (for operators and for the tests that kill one)."""
        with self._lock:
            return list(self._pids.values())

    def submit_task(self, task: dict) -> Future:
        future: Future = Future()
        self._tasks.put((task, future))
        return future

    def _drive(self, slot: int) -> None:
        worker: _Worker | None = None
        while True:
            item = self._tasks.get()
            if item is None:
                break
            task, future = item
            if not future.set_running_or_notify_cancel():
                continue
            if self.broken is not None:
                future.set_exception(self.broken)
                continue
            attempts = 0
            while True:
                if worker is None:
                    worker = _Worker(self.cfg.warm_math)
                    with self._lock:
                        self._pids[slot] = worker.pid
                try:
                    reply = worker.call(task, task_wall_s(task, self.cfg.math_timeout, self.cfg.limits))
                except PoolBroken as e:
                    worker.kill()
                    worker = None
                    self.broken = e
                    future.set_exception(e)
                    break
                except WorkerTimeout:
                    worker.kill()
                    worker = None
                    self._count("timeouts")
                    future.set_result({"score": 0.0, "reason": "timeout", "verdicts": []})
                    break
                except WorkerDied:
                    worker.kill()
                    worker = None
                    self._count("restarts")
                    attempts += 1
                    if attempts > self.cfg.max_retries:
                        future.set_result({"score": 0.0, "reason": "worker_died", "verdicts": []})
                        break
                    self._count("retries")
                    continue
                except BaseException as e:  # noqa: BLE001 -- never leave a future pending
                    future.set_exception(e)
                    break
                future.set_result(reply)
                break
        if worker is not None:
            worker.kill()

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1

    def close(self) -> None:
        for _ in self._threads:
            self._tasks.put(None)
        for t in self._threads:
            t.join()


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
            self.backend = LocalBackend(self.workers, cfg)
        elif cfg.backend == "ray":
            from mimo.rewards.actors import RayBackend

            self.backend = RayBackend(self.workers, cfg)
        else:
            from mimo.rewards.server import HttpBackend

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

    def __enter__(self) -> "RewardPool":
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
