"""The reward pool's local backend: worker processes (:mod:`mimo.rewards.worker`) driven by one thread each.

Each driver thread enforces a wall clock per task.  A worker that runs past it (Math-Verify stuck in C code on
``5^(5^(5^(5^5)))``) is killed and replaced and the item scores 0 with reason ``"timeout"``; a worker that dies
mid-task (OOM killer, a crash, a ``kill``) is replaced and the task retried (``max_retries``), then scored 0 with
reason ``"worker_died"``.  The Ray backend (:mod:`mimo.rewards.actors`) runs one of these per actor.
"""

from __future__ import annotations

import dataclasses
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

from mimo.errors import MimoError
from mimo.rewards import LIGHT_IMPORT_ENV
from mimo.rewards.sandbox import JudgeLimits, make_limits

WORKER_START_TIMEOUT_S = 120.0  # importing sympy on a loaded machine


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


class ProcessBackend:
    """N worker processes, one driver thread each, fed from one queue."""

    def __init__(self, workers: int, warm_math: bool = True, math_timeout: float = 5.0, max_retries: int = 1,
                 limits: JudgeLimits | None = None):
        self.warm_math, self.math_timeout, self.max_retries = warm_math, math_timeout, max_retries
        self.limits = limits or JudgeLimits()
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
                    worker = _Worker(self.warm_math)
                    with self._lock:
                        self._pids[slot] = worker.pid
                try:
                    reply = worker.call(task, task_wall_s(task, self.math_timeout, self.limits))
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
                    if attempts > self.max_retries:
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
