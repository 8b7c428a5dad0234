"""The Ray backend of :class:`mimo.rewards.pool.RewardPool`: reward workers as Ray actors.

At cluster scale the paper runs rewards on separate workers (Ray) and code rewards on dedicated machines.  Here each
actor owns one local reward worker process (:class:`mimo.rewards.local.ProcessBackend` with one slot), so the
wall-clock kill and the sandbox work exactly as on one machine, while Ray places the actors (one CPU each) across
the cluster.  Fault tolerance is Ray's: an actor that dies is restarted (``max_restarts=-1``) and the tasks it
held are retried (``max_task_retries``), so a killed actor costs time, never a result.

Actors start with ``MIMO_LIGHT_IMPORT=1`` in their runtime environment (see :mod:`mimo.rewards`).  We start a
local Ray (``ray.init``) only when none is running and no address is given; then :meth:`RayBackend.close` shuts
it down again.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from concurrent.futures import Future

from mimo.rewards import LIGHT_IMPORT_ENV
from mimo.rewards.local import ProcessBackend
from mimo.rewards.sandbox import make_limits
from mimo.utils.raycluster import ensure_ray


class RewardActor:
    """A Ray actor holding one reward worker process; ``score(task) -> reply dict``."""

    def __init__(self, cfg_dict: dict):
        self._local = ProcessBackend(1, cfg_dict["warm_math"], cfg_dict["math_timeout"], cfg_dict["max_retries"],
                                     make_limits(**cfg_dict["limits"]))

    def score(self, task: dict) -> dict:
        return self._local.submit_task(task).result()

    def pids(self) -> dict:
        """This actor's process id and its worker's (tests kill them to check recovery)."""
        return {"actor": os.getpid(), "workers": self._local.worker_pids()}

    def stats(self) -> dict:
        return dict(self._local.stats)


class RayBackend:
    """``workers`` RewardActors; each task goes to the actor with the fewest tasks in flight."""

    def __init__(self, workers: int, cfg):
        env = {"env_vars": {LIGHT_IMPORT_ENV: "1"}}
        ray, self._owns_ray = ensure_ray("the ray backend", cfg.ray_address, workers, env)
        self._ray = ray
        actor_cls = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=max(1, cfg.max_retries))(RewardActor)
        cfg_dict = dataclasses.asdict(cfg)
        self.actors = [actor_cls.options(runtime_env=env).remote(cfg_dict) for _ in range(workers)]
        self._in_flight = [0] * workers
        self._lock = threading.Lock()

    def submit_task(self, task: dict) -> Future:
        with self._lock:
            index = min(range(len(self.actors)), key=self._in_flight.__getitem__)
            self._in_flight[index] += 1
        future = self.actors[index].score.remote(task).future()

        def done(_):
            with self._lock:
                self._in_flight[index] -= 1

        future.add_done_callback(done)
        return future

    @property
    def stats(self) -> dict:
        totals: dict = {}
        for s in self._ray.get([a.stats.remote() for a in self.actors]):
            for k, v in s.items():
                totals[k] = totals.get(k, 0) + v
        return totals

    def close(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor)
        self.actors = []
        if self._owns_ray:
            self._ray.shutdown()
