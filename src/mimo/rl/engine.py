"""The Seamless Rollout Engine: the pure-logic :class:`~mimo.rl.scheduler.Scheduler` driving real workers.

One event loop in the trainer process executes the scheduler's decisions -- ``Launch`` on a rollout backend
(:mod:`mimo.rl.rollout`: local worker processes, an OpenAI-compatible endpoint, vLLM), ``Score`` on the reward
pool (:mod:`mimo.rewards.pool`: worker processes, Ray actors or the judge service), ``Abort`` on the backend -- and
feeds completions back as events, until the scheduler says ``Train`` (or ``EvalDone`` for validation).  The
simulator (:mod:`mimo.rl.simulator`) runs the very same scheduler on a virtual clock.

Determinism.  Real workers finish in an order that depends on timing, and the scheduler's decisions depend on that
order.  With ``deterministic=True`` (the default on CPU) the engine releases events to the scheduler in a canonical
order that depends only on what happened before: the oldest outstanding reward if any score is pending, else the
rollout result of the oldest launched task.  Every task's generation is a pure function of (weights, prompt, seed),
so a run is reproducible bit for bit; the price is a little head-of-line waiting, which
``deterministic=False`` removes (the throughput benchmark uses it).

Measured per step (definitions as in :mod:`mimo.rl.simulator`): rollout time (``begin_step`` to ``Train``),
worker utilisation -> ``idle_ratio``, tokens of selected / surplus / filtered / aborted groups -> ``waste_ratio``,
informative and wasted groups, reward time.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections import deque
from typing import Any

from mimo.infer.decoding import GenerationStats, SamplingParams
from mimo.rewards.pool import PoolBroken
from mimo.rl.accounting import bucket, idle_ratio, token_counts, waste_ratio
from mimo.rl.actor import Group, Sample
from mimo.rl.backend import Aborted, RolloutBackend, RolloutDone, RolloutRequest
from mimo.rl.scheduler import IN_FLIGHT, SCORED, Abort, EvalDone, Launch, Scheduler, Score, Train


@dataclasses.dataclass(frozen=True)
class RLProblem:
    """A verifiable problem: ``kind`` "math" (reference: gold answer) or "code" (reference: ``{"tests": [...],
    "levels": [...] | None}``)."""

    id: str
    kind: str
    prompt_ids: tuple[int, ...]
    reference: Any
    text: str = ""


def _raise_if_error(event):
    """Events are results, or the reward pool's :class:`PoolBroken` posted from a callback thread."""
    if isinstance(event, BaseException):
        raise event
    return event


@dataclasses.dataclass
class RewardDone:
    task_id: int
    rewards: list[float]
    reasons: list[str]
    seconds: float
    verdicts: list[tuple[str, ...]] = dataclasses.field(default_factory=list)  # code: per-test verdicts


class GroupRewarder:
    """Scores a group's responses on a reward pool (``pool.submit(kind, completion, reference) -> Future`` of a
    result with ``.score``/``.reason``) and posts one :class:`RewardDone` per group on ``events``."""

    def __init__(self, pool, events: queue.Queue, code_scheme: str = "strict"):
        self.pool, self.events, self.code_scheme = pool, events, code_scheme

    def reference(self, problem: RLProblem):
        if problem.kind == "code":
            return {**problem.reference, "scheme": problem.reference.get("scheme", self.code_scheme)}
        return problem.reference

    def submit(self, task_id: int, problem: RLProblem, texts: list[str]) -> None:
        start = time.perf_counter()
        ref = self.reference(problem)
        futures = [self.pool.submit(problem.kind, t, ref) for t in texts]
        results: list[Any] = [None] * len(futures)
        left = [len(futures)]
        lock = threading.Lock()

        def done(i, fut):
            try:
                res = fut.result()
                results[i] = (float(res.score), str(res.reason), tuple(getattr(res, "verdicts", ()) or ()))
            except PoolBroken as e:  # the pool itself cannot grade: stop the run (never a silent 0)
                self.events.put(e)
                return
            except Exception as e:  # a reward that cannot be computed scores 0, with the reason kept
                results[i] = (0.0, f"error: {type(e).__name__}: {e}", ())
            with lock:
                left[0] -= 1
                last = left[0] == 0
            if last:
                self.events.put(RewardDone(task_id, [r[0] for r in results], [r[1] for r in results],
                                           time.perf_counter() - start, [r[2] for r in results]))

        if not futures:
            self.events.put(RewardDone(task_id, [], [], 0.0))
        for i, f in enumerate(futures):
            f.add_done_callback(lambda fut, i=i: done(i, fut))


@dataclasses.dataclass
class StepStats:
    rollout_s: float = 0.0
    busy_s: float = 0.0  # worker-seconds generating inside the rollout window, / num_workers
    reward_s: float = 0.0
    tokens: dict[str, int] = dataclasses.field(default_factory=token_counts)
    launched: int = 0
    aborted: int = 0
    informative_groups: int = 0
    scored_groups: int = 0
    retired: int = 0  # carried tasks past the staleness bound, not trained on
    staleness: list[int] = dataclasses.field(default_factory=list)  # per trained sample: versions behind
    policy_version: int = 0  # the version the step's update starts from
    workers_seen: set = dataclasses.field(default_factory=set)  # workers / engines that finished a task
    drafts: GenerationStats = dataclasses.field(default_factory=GenerationStats)  # speculative rollouts' drafts

    @property
    def idle_ratio(self) -> float:
        return idle_ratio(self.busy_s, self.rollout_s)

    @property
    def waste_ratio(self) -> float:
        return waste_ratio(self.tokens)

    def as_metrics(self) -> dict[str, float]:
        return {"rollout_s": self.rollout_s, "reward_s": self.reward_s, "idle_ratio": self.idle_ratio,
                "waste_ratio": self.waste_ratio, "launched_groups": self.launched, "aborted_groups": self.aborted,
                "informative_groups": self.informative_groups, "scored_groups": self.scored_groups,
                "policy_version": self.policy_version, "stale_retired_groups": self.retired,
                "staleness_max": max(self.staleness, default=0),
                "staleness_mean": sum(self.staleness) / max(len(self.staleness), 1),
                "workers_active": len(self.workers_seen),
                **{f"tokens_{k}": v for k, v in self.tokens.items()}, **self._draft_metrics()}

    def _draft_metrics(self) -> dict[str, float]:
        """Speculative rollouts: each MTP layer's acceptance (given the layers before it were accepted) and the
        tokens per main-model verification over the step's finished tasks."""
        if not self.drafts.drafted:
            return {}
        out = {f"draft_accept_mtp{i + 1}": a for i, a in enumerate(self.drafts.acceptance())}
        out["draft_tokens_per_verify"] = self.drafts.mean_accepted_length()
        return out


class RolloutEngine:
    """Runs training steps and validations through the scheduler (see the module docstring)."""

    def __init__(self, scheduler: Scheduler, backend: RolloutBackend, reward_pool, problems: dict[str, RLProblem],
                 decode, params: SamplingParams, seed: int = 0, deterministic: bool = True,
                 code_scheme: str = "strict", version: int = 0, max_staleness: int = 0):
        self.sched, self.backend = scheduler, backend
        # Policy versions (updates applied).  ``version``: the one the backend generates with now; the backend
        # counts its own syncs (vLLM's include the one at start), so ``base`` maps them to versions; a launched
        # task is as old as the version at its launch.
        self.version = version
        self.base = version - backend.syncs()
        self.max_staleness = max_staleness  # 0: no bound
        self.last_sync_s = 0.0  # seconds of the newest weight sync
        self.launch_version: dict[int, int] = {}
        self.problems, self.decode, self.params = problems, decode, params
        self.seed, self.deterministic = seed, deterministic
        self.events = backend.events
        self.rewarder = GroupRewarder(reward_pool, self.events, code_scheme)
        self.samples: dict[int, list[Sample]] = {}
        self.intervals: dict[int, tuple[float, float, int]] = {}  # task -> (start, end, tokens) of generation
        self.reward_info: dict[int, RewardDone] = {}
        self.launched: deque[int] = deque()  # launched tasks whose rollout event is not yet released
        self.score_order: deque[int] = deque()  # submitted scores not yet released
        self.arrived: dict[tuple[str, int], Any] = {}
        self.eval_params: SamplingParams | None = None

    # ------------------------------------------------------------------------------------------------ events

    def _next_event(self):
        """Block for the next event to hand to the scheduler (canonical order when deterministic)."""
        while True:
            if not self.deterministic:
                return _raise_if_error(self.events.get())
            if self.score_order:
                key = ("reward", self.score_order[0])
            elif self.launched:
                key = ("rollout", self.launched[0])
            else:
                raise RuntimeError("rollout engine: waiting with nothing in flight (scheduler contract broken)")
            if key in self.arrived:
                (self.score_order if key[0] == "reward" else self.launched).popleft()
                return self.arrived.pop(key)
            ev = _raise_if_error(self.events.get())
            self.arrived[("reward" if isinstance(ev, RewardDone) else "rollout", ev.task_id)] = ev

    def _execute(self, actions: list, stats: StepStats, params: SamplingParams):
        """Carry out actions until Train/EvalDone; returns that final action."""
        todo = deque(actions)
        while True:
            while todo:
                a = todo.popleft()
                if isinstance(a, Launch):
                    p = self.problems[a.problem_id]
                    self.backend.launch(RolloutRequest(a.task_id, p.prompt_ids, a.num_samples,
                                                       seed=self.seed * 1_000_003 + a.task_id, params=params))
                    self.launched.append(a.task_id)
                    self.launch_version[a.task_id] = self.version
                    stats.launched += 1
                elif isinstance(a, Score):
                    task = self.sched.tasks[a.task_id]
                    texts = [self.decode(s.response_ids) for s in self.samples[a.task_id]]
                    for s, t in zip(self.samples[a.task_id], texts):
                        s.text = t
                    self.rewarder.submit(a.task_id, self.problems[task.problem_id], texts)
                    self.score_order.append(a.task_id)
                elif isinstance(a, Abort):
                    self.backend.abort(a.task_id)
                    stats.aborted += 1
                elif isinstance(a, (Train, EvalDone)):
                    return a
            ev = self._next_event()
            if isinstance(ev, RolloutDone):
                p = self.problems[self.sched.tasks[ev.task_id].problem_id]
                self.samples[ev.task_id] = [
                    Sample(list(p.prompt_ids), r, lp, truncated=len(r) >= params.max_new_tokens
                           and (not r or r[-1] not in params.stop_ids), version=self.base + ev.version)
                    for r, lp in zip(ev.responses, ev.logprobs)]
                self.intervals[ev.task_id] = (ev.started, ev.finished, sum(len(r) for r in ev.responses))
                stats.workers_seen.add(ev.worker)
                if ev.drafted:
                    stats.drafts.add_drafts(ev.accepted, ev.drafted)
                todo.extend(self.sched.on_rollout_done(ev.task_id))
            elif isinstance(ev, Aborted):
                stats.tokens["aborted"] += ev.tokens
                self.samples.pop(ev.task_id, None)
                todo.extend(self.sched.on_aborted(ev.task_id))
            elif isinstance(ev, RewardDone):
                self.reward_info[ev.task_id] = ev
                for s, r, why, v in zip(self.samples.get(ev.task_id, []), ev.rewards, ev.reasons,
                                        ev.verdicts or [()] * len(ev.rewards)):
                    s.reward, s.reason, s.verdicts = r, why, v
                stats.reward_s += ev.seconds
                task = self.sched.tasks.get(ev.task_id)
                if task is not None and task.state not in ("aborting", "aborted"):
                    stats.scored_groups += 1
                todo.extend(self.sched.on_reward_done(ev.task_id, ev.rewards))

    # ------------------------------------------------------------------------------------------------- steps

    def _busy(self, t0: float, t1: float, task_ids) -> float:
        if hasattr(self.backend, "busy_between"):  # one batched engine (vLLM): busy while it steps
            return self.backend.busy_between(t0, t1)
        total = 0.0
        for i in task_ids:
            if i in self.intervals:
                s, e, _ = self.intervals[i]
                total += max(0.0, min(e, t1) - max(s, t0))
        return total / max(self.backend.num_workers, 1)

    def run_step(self, train_version: int | None = None) -> tuple[list[Group], StepStats]:
        """Roll out until the scheduler selects a batch; returns the selected groups (launch order).

        ``train_version``: the policy version the step's update will start from (default: the version rolling out
        now, i.e. on-policy; one more while the previous update still runs).  With ``max_staleness`` set, tasks
        carried into the step that were launched more than that many versions before it are retired first, and
        every selected sample is checked against the bound."""
        stats = StepStats()
        train_version = self.version if train_version is None else train_version
        stats.policy_version = train_version
        t0 = time.perf_counter()
        actions = []
        if self.max_staleness:
            carried = {t.id for t in self.sched.tasks.values()
                       if t.kind == "train" and t.step == self.sched.step and t.state in (*IN_FLIGHT, SCORED)}
            too_old = train_version - self.max_staleness  # launched before this version: retired (unknown: too)
            old = [i for i in sorted(carried) if self.launch_version.get(i, -1) < too_old]
            actions = self.sched.retire(old)
            stats.retired = len(old)
        final = self._execute(actions + self.sched.begin_step(), stats, self.params)
        t1 = time.perf_counter()
        assert isinstance(final, Train)
        stats.rollout_s = t1 - t0
        step_tasks = [t for t in self.sched.step_tasks()]
        stats.busy_s = self._busy(t0, t1, list(self.intervals))
        selected = set(final.task_ids)
        groups = []
        for t in step_tasks:
            tokens = self.intervals.get(t.id, (0, 0, 0))[2]
            if t.id in selected or t.state == "dropped":  # aborted tokens are counted as the aborts arrive
                stats.tokens[bucket(t.id in selected, False, t.informative)] += tokens
            if t.informative:
                stats.informative_groups += 1
        for i in final.task_ids:
            t = self.sched.tasks[i]
            groups.append(Group(str(t.problem_id), self.samples[i], kind=self.problems[t.problem_id].kind))
        stats.staleness = [train_version - s.version for g in groups for s in g.samples]
        if self.max_staleness and max(stats.staleness, default=0) > self.max_staleness:  # a bug, not a user error
            raise AssertionError(f"a selected sample is {max(stats.staleness)} policy versions old, "
                                 f"the bound is {self.max_staleness}")
        self._forget((set(self.intervals) | set(self.launch_version)) - {t.id for t in self.sched.in_flight()})
        return groups, stats

    def end_step(self, model=None) -> None:
        """After the policy update: sync weights to the workers, let the scheduler move on."""
        if model is not None:
            self.sync_weights(model)
        self.sched.end_step()

    def sync_weights(self, model) -> None:
        """The backend generates with ``model``'s weights from now on: one policy version more.  ``last_sync_s``:
        the seconds it took (a copy into shared memory for local workers, a load between two engine steps for
        vLLM), logged per step as ``sync_s``."""
        t0 = time.perf_counter()
        self.backend.sync_weights(model)
        self.last_sync_s = time.perf_counter() - t0
        self.version += 1

    def validate(self, problem_ids: list[str], num_samples: int, params: SamplingParams) -> tuple[dict, StepStats]:
        """Every prompt rolled out ``num_samples`` times through the same engine; returns ``{problem id: [samples
        with rewards]}`` and the timing stats (Table 3)."""
        stats = StepStats()
        t0 = time.perf_counter()
        final = self._execute(self.sched.begin_eval(problem_ids, num_samples), stats, params)
        t1 = time.perf_counter()
        assert isinstance(final, EvalDone)
        stats.rollout_s = t1 - t0
        stats.busy_s = self._busy(t0, t1, final.task_ids)
        out: dict[str, list[Sample]] = {}
        for i in final.task_ids:
            out.setdefault(str(self.sched.tasks[i].problem_id), []).extend(self.samples[i])
        self._forget(set(final.task_ids))
        return out, stats

    def _forget(self, ids) -> None:
        for i in ids:
            self.samples.pop(i, None)
            self.intervals.pop(i, None)
            self.reward_info.pop(i, None)
            self.launch_version.pop(i, None)
