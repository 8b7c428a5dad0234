"""Rollouts on vLLM's engine: every in-flight task shares one continuously batched engine.

:class:`VLLMRolloutBackend` drives ``vllm.v1.engine.llm_engine.LLMEngine`` step by step from one thread of its own.  A
launched task's ``n`` samples become ``n`` engine requests (ids ``"{task}:{i}"``, seeds ``seed + i``) that vLLM's
scheduler batches with whatever else is running, so tasks launched at different times decode in the same forward
passes (``step_log`` records, per engine step, which tasks got a token).  ``abort(task_id)`` removes the task's
unfinished requests from the engine (``abort_request``) between two steps -- mid-decode -- and the tokens they
had decoded are reported as waste.  Sampled tokens come back with their log-probs under the distribution they were
drawn from (``logprobs_mode="processed_logprobs"``: after temperature, and after top-p when ``top_p < 1``; mimo's
local engine reports them before top-p -- identical at MiMo's RL setting ``top_p = 1``).  Events go on
``backend.events`` exactly like :class:`~mimo.rl.rollout.LocalRolloutBackend`'s: one :class:`RolloutDone` or
:class:`Aborted` per task.

Process layout, and why.  The engine core (scheduler, KV-cache manager, detokenizer) runs in the trainer's process
(``multiprocess_mode=False``), so launch/abort/step are plain calls with no extra hop and no second event loop.
The model runs in vLLM's worker process (its multiproc executor).  In-process workers were the alternative; we do
not use them because vLLM's CPU worker binds OpenMP threads and replaces ``torch.set_num_threads`` with a no-op
in its process, which would silently change the trainer's own threading.  ``sync_weights(model)`` sends the
trainer's state dict to the worker through ``collective_rpc`` and loads it with the vLLM model's own
``load_weights`` (same names as the checkpoint: q/k/v and gate/up are stacked there), in place: no restart, no
disk.  On one CPU box that is a memory copy; across GPUs one would broadcast over NCCL instead.

Where this departs from a worker-per-task backend.  A weight sync lands between two engine steps, so a task still
decoding during the trainer's update finishes under the new weights (its KV cache of earlier tokens is kept).
Its recorded log-probs are those it was actually sampled with, which is what the rollout/trainer mismatch
correction in :mod:`mimo.rl.loss` needs; ``RolloutDone.version`` is the policy version at launch.  Prefix caching
is off: a cached prompt block computed under old weights would otherwise be reused after a sync.  MTP drafting
is not used for rollouts here (the in-place reload covers the main model only; eval and serving use it).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from typing import Any

import torch

from mimo.rl.backend import Aborted, RolloutBackend, RolloutDone, RolloutRequest


def load_weights_in_worker(worker, weights: list[tuple[str, torch.Tensor]]) -> int:
    """Runs inside vLLM's worker: load checkpoint-named ``weights`` into the running model in place.

    ``model_runner.reload_weights`` (not the model's ``load_weights``): on CPU vLLM repacks linear weights after
    loading, and the in-place reload re-applies that processing.  Returns the number of tensors (an ack)."""
    worker.model_runner.reload_weights(weights_iterator=iter(weights))
    return len(weights)


def state_list(model: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    """``model``'s state dict as the (name, fp32 CPU tensor) pairs vLLM's weight loader takes."""
    return [(k, v.detach().to("cpu", torch.float32)) for k, v in model.state_dict().items()]


class _Task:
    __slots__ = ("req", "responses", "logprobs", "open", "started", "version")

    def __init__(self, req: RolloutRequest, version: int):
        self.req = req
        self.responses: list[list[int]] = [[] for _ in range(req.num_samples)]
        self.logprobs: list[list[float]] = [[] for _ in range(req.num_samples)]
        self.open = set(range(req.num_samples))  # samples still decoding
        self.started = time.perf_counter()
        self.version = version

    def tokens(self) -> int:
        return sum(len(r) for r in self.responses)


class VLLMRolloutBackend(RolloutBackend):
    """One vLLM engine for all rollouts (see the module docstring).

    ``model_dir`` is a checkpoint mimo wrote (vLLM loads it through its native MiMo architecture).  The engine is
    one worker: its idle ratio is the share of the rollout window in which no engine step ran (``busy_between``).
    """

    num_workers = 1

    def __init__(self, model_dir: str, max_model_len: int | None = None,
                 max_num_seqs: int = 256, kv_cache_gib: int = 1, dtype: str = "float32", seed: int = 0,
                 step_log_size: int = 4096, **engine_kwargs: Any):
        super().__init__()
        # vLLM reads the CPU KV-cache size from the environment when the engine starts (its default is 4 GiB+)
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib))
        from vllm.engine.arg_utils import EngineArgs
        from vllm.v1.engine.llm_engine import LLMEngine
        from vllm.v1.executor import Executor

        args = EngineArgs(model=str(model_dir), dtype=dtype, trust_remote_code=True, seed=seed,
                          max_model_len=max_model_len, max_num_seqs=max_num_seqs, enforce_eager=True,
                          enable_prefix_caching=False, logprobs_mode="processed_logprobs",
                          **engine_kwargs)
        config = args.create_engine_config()
        self.engine = LLMEngine(vllm_config=config, executor_class=Executor.get_class(config), log_stats=False,
                                multiprocess_mode=False)
        self.busy: deque[tuple[float, float]] = deque(maxlen=1 << 16)  # perf_counter spans of engine steps
        self.version = 0
        self.tasks: dict[int, _Task] = {}
        self.step_log: deque[tuple[int, frozenset[int]]] = deque(maxlen=step_log_size)  # (step, tasks decoded)
        self.steps = 0
        self.commands: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self._closed = False
        self.thread = threading.Thread(target=self._loop, daemon=True, name="mimo-vllm-engine")
        self.thread.start()

    # ------------------------------------------------------------------------------------ interface (any thread)

    def launch(self, req: RolloutRequest) -> None:
        self.commands.put(("launch", req))

    def abort(self, task_id: int) -> None:
        self.commands.put(("abort", task_id))

    def sync_weights(self, model: torch.nn.Module) -> None:
        """Load ``model``'s weights into the running engine; returns once they are in (between two steps)."""
        self.load_weights(state_list(model))

    def load_weights(self, weights: list[tuple[str, torch.Tensor]]) -> None:
        """:meth:`sync_weights` from checkpoint-named tensors (what a remote engine receives)."""
        done = threading.Event()
        self.commands.put(("sync", weights, done))
        while not done.wait(0.5):
            self._check()
        self._check()

    def syncs(self) -> int:
        return self.version

    def busy_between(self, t0: float, t1: float) -> float:
        """Seconds within ``[t0, t1]`` during which the engine was stepping."""
        return sum(max(0.0, min(e, t1) - max(s, t0)) for s, e in list(self.busy))

    def running_requests(self) -> int:
        """Requests inside the engine now (waiting or decoding)."""
        return self.engine.get_num_unfinished_requests()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.commands.put(("close",))
        self.thread.join(timeout=30)
        shutdown = getattr(self.engine.engine_core, "shutdown", None)
        if shutdown is not None:
            shutdown()

    def _check(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"vLLM rollout engine failed: {self.error!r}") from self.error

    # -------------------------------------------------------------------------------------- the engine thread

    def _loop(self) -> None:
        try:
            while True:
                if self.engine.has_unfinished_requests():
                    try:
                        cmd = self.commands.get_nowait()
                    except queue.Empty:
                        cmd = None
                else:  # nothing to decode: block for work
                    cmd = self.commands.get()
                while cmd is not None:
                    if cmd[0] == "close":
                        return
                    self._command(cmd)
                    try:
                        cmd = self.commands.get_nowait()
                    except queue.Empty:
                        cmd = None
                if self.engine.has_unfinished_requests():
                    self._step()
        except BaseException as e:  # surfaced to the trainer by sync_weights and by the events below
            self.error = e
            for task_id in list(self.tasks):
                self.events.put(Aborted(task_id, 0, self.tasks.pop(task_id).tokens()))

    def _command(self, cmd) -> None:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        kind = cmd[0]
        if kind == "launch":
            req: RolloutRequest = cmd[1]
            p = req.params
            self.tasks[req.task_id] = _Task(req, self.version)
            for i in range(req.num_samples):
                # ignore_eos: only the task's stop ids end a sample, as in mimo's engine
                sp = SamplingParams(n=1, max_tokens=p.max_new_tokens, temperature=p.temperature, top_p=p.top_p,
                                    seed=req.seed + i, logprobs=0, stop_token_ids=list(p.stop_ids),
                                    ignore_eos=True, output_kind=RequestOutputKind.DELTA,
                                    detokenize=False)
                self.engine.add_request(f"{req.task_id}:{i}", {"prompt_token_ids": list(req.prompt_ids)}, sp)
        elif kind == "abort":
            task = self.tasks.pop(cmd[1], None)
            if task is None:  # finished already (its RolloutDone is on the queue) or never launched
                return
            self.engine.abort_request([f"{task.req.task_id}:{i}" for i in sorted(task.open)])
            self.events.put(Aborted(task.req.task_id, 0, tokens=task.tokens()))
        elif kind == "sync":
            _, weights, done = cmd
            self.engine.collective_rpc(load_weights_in_worker, args=(weights,))
            self.version += 1
            done.set()

    def _step(self) -> None:
        t0 = time.perf_counter()
        outputs = self.engine.step()
        self.busy.append((t0, time.perf_counter()))
        self.steps += 1
        decoded: set[int] = set()
        for out in outputs:
            task_id, i = (int(x) for x in out.request_id.split(":"))
            task = self.tasks.get(task_id)
            if task is None:  # aborted between this step's scheduling and now
                continue
            comp = out.outputs[0]
            if comp.token_ids:
                decoded.add(task_id)
            task.responses[i].extend(comp.token_ids)
            # logprobs=0: each position's dict holds exactly the sampled token
            task.logprobs[i].extend(d[t].logprob for t, d in zip(comp.token_ids, comp.logprobs or []))
            if out.finished:
                task.open.discard(i)
                if not task.open:
                    del self.tasks[task_id]
                    self.events.put(RolloutDone(task_id, task.responses, task.logprobs, 0, task.started,
                                                time.perf_counter(), task.version))
        if decoded:
            self.step_log.append((self.steps, frozenset(decoded)))


# ---------------------------------------------------------------------------------- several engines, on Ray


class VLLMEngineActor:
    """A Ray actor holding one :class:`VLLMRolloutBackend` (engine core in the actor, model in its vLLM worker).

    Threaded (``max_concurrency``): :meth:`poll` blocks for events while launches, aborts and syncs come in."""

    def __init__(self, model_dir: str, engine_kwargs: dict):
        self.backend = VLLMRolloutBackend(model_dir, **engine_kwargs)

    def launch(self, req: RolloutRequest) -> None:
        self.backend.launch(req)

    def abort(self, task_id: int) -> None:
        self.backend.abort(task_id)

    def load_weights(self, weights: list[tuple[str, torch.Tensor]]) -> float:
        t0 = time.perf_counter()
        self.backend.load_weights(weights)
        return time.perf_counter() - t0

    def poll(self, timeout: float) -> list:
        """The events finished since the last poll; waits up to ``timeout`` s for the first."""
        try:
            out = [self.backend.events.get(timeout=timeout)]
        except queue.Empty:
            self.backend._check()
            return []
        while True:
            try:
                out.append(self.backend.events.get_nowait())
            except queue.Empty:
                return out

    def busy_between(self, t0: float, t1: float) -> float:
        return self.backend.busy_between(t0, t1)

    def close(self) -> None:
        self.backend.close()


class RayVLLMRolloutBackend(RolloutBackend):
    """``engines`` vLLM engines as Ray actors behind one backend interface.

    A task goes to the engine with the fewest samples in flight (ties: the lowest index) and stays there, so an
    abort reaches the engine that holds it; events carry their engine's index as ``worker``.  One pump thread per
    engine long-polls it (:meth:`VLLMEngineActor.poll`) and forwards its events.  ``sync_weights`` puts the state
    dict in Ray's object store once and every engine loads it from there (on one host a shared-memory read; across
    hosts Ray moves it); ``last_sync`` holds the put and each engine's load time.  ``busy_between`` is the mean
    over engines, so the engine's idle ratio counts all of them (spans are ``perf_counter`` on one host; across
    hosts the idle ratio would need a shared clock).

    A local Ray is started (``num_cpus`` = engines + ``extra_cpus``: the reward actors, when they are on Ray too)
    unless one is running or ``ray_address`` is given; :meth:`close` stops what it started.  ``gpus_per_engine``:
    Ray GPUs per engine actor (1 on a GPU cluster; that path has not run here)."""

    def __init__(self, model_dir: str, engines: int, ray_address: str | None = None, extra_cpus: int = 0,
                 gpus_per_engine: int = 0, **engine_kwargs: Any):
        super().__init__()
        from mimo.utils.raycluster import ensure_ray

        ray, self._owns_ray = ensure_ray("rollout.engines > 1 (vLLM engines on Ray)", ray_address,
                                         engines + extra_cpus)
        self._ray = ray
        actor = ray.remote(num_cpus=1, num_gpus=gpus_per_engine, max_concurrency=4)(VLLMEngineActor)
        self.actors = [actor.remote(str(model_dir), dict(engine_kwargs, seed=engine_kwargs.get("seed", 0) + i))
                       for i in range(engines)]
        self.num_workers = engines
        self.version = 0  # weight syncs so far (every engine counts the same)
        self.where: dict[int, int] = {}  # task id -> engine
        self.load = [0] * engines  # samples in flight per engine
        self.samples: dict[int, int] = {}  # task id -> its samples
        self.last_sync: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._closed = False
        self.error: BaseException | None = None
        ray.get([a.busy_between.remote(0.0, 0.0) for a in self.actors])  # every engine is up (or this raises)
        self.pumps = [threading.Thread(target=self._pump, args=(i,), daemon=True, name=f"mimo-vllm-pump-{i}")
                      for i in range(engines)]
        for t in self.pumps:
            t.start()

    def launch(self, req: RolloutRequest) -> None:
        self._check()
        with self._lock:
            engine = min(range(len(self.actors)), key=self.load.__getitem__)
            self.where[req.task_id] = engine
            self.load[engine] += req.num_samples
            self.samples[req.task_id] = req.num_samples
        self.actors[engine].launch.remote(req)

    def abort(self, task_id: int) -> None:
        with self._lock:
            engine = self.where.get(task_id)
        if engine is not None:
            self.actors[engine].abort.remote(task_id)

    def sync_weights(self, model: torch.nn.Module) -> None:
        self._check()
        t0 = time.perf_counter()
        ref = self._ray.put(state_list(model))
        put_s = time.perf_counter() - t0
        loads = self._ray.get([a.load_weights.remote(ref) for a in self.actors])
        self.last_sync = {"put_s": put_s, "load_s": loads, "total_s": time.perf_counter() - t0}
        self.version += 1

    def syncs(self) -> int:
        return self.version

    def busy_between(self, t0: float, t1: float) -> float:
        return sum(self._ray.get([a.busy_between.remote(t0, t1) for a in self.actors])) / len(self.actors)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._ray.get([a.close.remote() for a in self.actors], timeout=60)
        except Exception:  # an engine that died is killed below all the same
            pass
        for a in self.actors:
            self._ray.kill(a)
        for t in self.pumps:
            t.join(timeout=5)
        if self._owns_ray:
            self._ray.shutdown()

    def _check(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"vLLM rollout engine on Ray failed: {self.error!r}") from self.error

    def _pump(self, engine: int) -> None:
        import dataclasses

        while not self._closed:
            try:
                events = self._ray.get(self.actors[engine].poll.remote(0.2))
            except BaseException as e:  # the actor died: its tasks will never report
                if self._closed:
                    return
                self.error = e
                with self._lock:
                    lost = [t for t, where in self.where.items() if where == engine]
                for task_id in lost:
                    self._settle(task_id)
                    self.events.put(Aborted(task_id, engine, 0))
                return
            for ev in events:
                self._settle(ev.task_id)
                self.events.put(dataclasses.replace(ev, worker=engine))

    def _settle(self, task_id: int) -> None:
        with self._lock:
            engine = self.where.pop(task_id, None)
            if engine is not None:
                self.load[engine] -= self.samples.pop(task_id, 0)
