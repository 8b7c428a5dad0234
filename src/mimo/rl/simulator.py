"""Trace-driven simulator of the Seamless Rollout Engine: the real scheduler against a virtual clock.

The simulator is an *engine* in the sense of ``mimo.rl.scheduler``'s contract: it executes the scheduler's
decisions on simulated workers and reports completions back, in virtual time (an event queue; nothing sleeps).
It exists to reproduce the paper's Table 2 (training steps) and Table 3 (validation) and to property-test the
scheduler.

**Trace model** (every draw is a pure function of ``(seed, problem id)`` or ``(seed, task id)``, so a run is
reproducible and resumable). Per problem: a pass probability ``p ~ Beta(mean 0.41, concentration 0.4)`` -- U-shaped,
so many problems are (almost) always or never solved; with 16 responses that makes about 45% of groups informative
(~42% once the easy pool feeds back), i.e. naive dynamic sampling needs ~3 rounds, which is what Table 2's 2.82x
rollout time of naive vs no dynamic sampling implies -- a log-length offset ``~ N(0, problem_sigma)`` and a domain
(code with probability ``code_fraction``, else math). Per response: pass ``~ Bernoulli(p)``; length lognormal around
``median_tokens`` times the problem offset, ``sample_sigma`` wide, ``fail_length_factor`` longer when wrong (wrong
answers ramble); capped at ``max_tokens``, and a capped response fails (no final answer). The length scale is set so
that one synchronous round idles ~70% as in the paper's no-dynamic-sampling row; that pins mean/max length ~ 0.3,
i.e. ~10K-token responses under the 32K budget. Reward latency per group: lognormal around 3 s (math, Math-Verify)
or 20 s (code, a judge running the tests in parallel).

**System model.**  Decoding is memory-bound with continuous batching: up to ``saturation_seqs`` concurrent
responses each decode at ``decode_tokens_per_s``; beyond that the aggregate throughput is fixed and shared
(processor sharing), so all running responses slow down equally.  Responses are pooled over the GPUs (a router
sends each to the least-loaded engine), so one virtual "work clock" advances all of them.  The scheduler's
``max_active_tasks`` caps the groups in flight (KV memory: ~1K groups of ~10K-token responses for a 7B model on
256 x 80 GB).  Rewards run on ``reward_workers`` (FIFO queue) or, for inline scoring, on the rollout slot itself.
Training and rollout share the GPUs: decoding pauses for ``train_s`` (tasks carried over resume afterwards; reward
workers, on CPUs, go on).  Ignored: prefill, weight sync, stragglers among GPUs, per-engine placement of a group,
and the faster per-token speed of an engine running only a few responses (it would shorten every long tail, the
round-based modes' most).

**Metrics** (the paper names them; where it does not define them, our choice is marked *ours*).  Per training step
the *rollout time* runs from ``begin_step`` to the ``Train`` decision (generation + rewards + filtering); the
*step time* adds ``train_s``.  *Utilisation* at a moment is ``min(1, running responses / saturation_seqs)``, the
share of decode throughput in use.

* ``overall_speedup`` = naive's mean step time / this mode's; ``rollout_speedup`` likewise for rollout time.
* ``idle_ratio`` = 1 - (integral of utilisation over rollout time) / rollout time.  Training time is excluded --
  this is what makes the paper's own columns consistent: its normalised idle time equals idle ratio / rollout
  speedup relative to naive (0.708 / 2.82 / 0.693 = 0.36, 0.277 / 2.61 / 0.693 = 0.15).
* ``normalized_idle_time`` = idle capacity-seconds per step / naive's (the same identity).
* ``waste_ratio`` (*ours*; the paper gives no formula) = decoded tokens that reached no trainer although they
  were not filtered -- informative groups beyond the batch, and the partial tokens of aborted tasks -- over those
  plus the tokens of the selected groups.  The groups dynamic sampling filters out are its inherent cost, not
  scheduler waste, and are counted in neither.  ``None`` without dynamic sampling (nothing is filtered or cut).
* A task carried over to the next step is accounted in the step it ends in.
* Validation (Table 3): wall time to roll out and score every prompt; ``idle_ratio`` over that time.

Why the full engine idles more than the paper's 27.7% here: a group ends with its slowest response (a group's
longest response is on average 0.67 of the budget, its mean 0.3), and the paper's launch rule stops launching once
the groups in flight are expected to fill the batch -- so late in a step most of those groups wait on one or two
long responses while the GPUs have room.  ``benchmarks/rollout.py --sensitivity`` shows the trade-off.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from mimo.config import F
from mimo.rl.accounting import BUCKETS, bucket, idle_ratio, token_counts, waste_ratio
from mimo.rl.sampling import ProblemSampler
from mimo.rl.scheduler import (
    ABORTED,
    ABORTING,
    DROPPED,
    MODES,
    SELECTED,
    Abort,
    EvalDone,
    Launch,
    Scheduler,
    SchedulerConfig,
    Score,
    Train,
)


@dataclass
class TraceConfig:
    """The synthetic workload (see the module docstring for why each value)."""

    seed: int = F(0, "seed of every draw in the trace")
    num_problems: int = F(130_000, "training problems (MiMo's RL set has 130K)")
    mean_pass_rate: float = F(0.41, "mean per-response pass probability (the paper's trace: 41%)")
    pass_concentration: float = F(0.4, "Beta concentration a+b of per-problem pass probability (<1: U-shaped)")
    median_tokens: float = F(6500.0, "median response length of a passing response to a typical problem")
    problem_sigma: float = F(0.5, "std of a problem's log-length offset (some problems need long answers)")
    sample_sigma: float = F(0.6, "std of a response's log-length around its problem's")
    fail_length_factor: float = F(1.3, "wrong responses are this much longer")
    max_tokens: int = F(32768, "generation budget; longer responses are cut and fail")
    code_fraction: float = F(0.5, "share of code problems (slower rewards)")
    math_reward_s: float = F(3.0, "median reward latency of a math group (Math-Verify on n responses)")
    code_reward_s: float = F(20.0, "median reward latency of a code group (tests run in parallel on a judge)")
    reward_sigma: float = F(0.5, "log-std of reward latency")


@dataclass
class SystemConfig:
    """The simulated cluster."""

    decode_tokens_per_s: float = F(40.0, "decode speed of one response at or below saturation")
    saturation_seqs: int = F(8192, "concurrent responses at which decode throughput saturates (256 GPUs x 32)")
    reward_workers: int = F(256, "reward workers (one group at a time each)")
    train_s: float = F(0.0, "training time per step, seconds (rollout never overlaps it)")


@dataclass
class SimTask:
    """A task as the simulated workers see it."""

    lengths: np.ndarray  # (n,) tokens per response
    rewards: list[float]
    reward_s: float
    v_start: float = 0.0
    running: int = 0  # responses still decoding
    aborted: bool = False
    tokens: float = 0.0  # decoded so far (final once generation ends or the task is aborted)


@dataclass
class StepRecord:
    """One training step (or one validation) as measured on the virtual clock."""

    rollout_s: float
    busy_s: float  # integral of utilisation over the rollout time
    tokens: dict[str, float]  # selected / surplus / filtered / aborted
    outcome: dict[int, str]  # task id -> final state
    informative: dict[int, bool]
    train_ids: tuple[int, ...] = ()


class Trace:
    """Deterministic draws of the workload: per problem and per task, each from its own seeded generator."""

    def __init__(self, cfg: TraceConfig):
        self.cfg = cfg
        a = cfg.mean_pass_rate * cfg.pass_concentration
        self.beta = (a, cfg.pass_concentration - a)
        self._problems: dict[object, tuple[float, float, bool]] = {}

    def problem(self, pid) -> tuple[float, float, bool]:
        """(pass probability, log-length offset, is_code) of a problem."""
        if pid not in self._problems:
            key = pid if isinstance(pid, int) else abs(hash(pid)) % 2**63
            rng = np.random.default_rng([self.cfg.seed, 0, key])
            self._problems[pid] = (float(rng.beta(*self.beta)), float(rng.normal(0.0, self.cfg.problem_sigma)),
                                   bool(rng.random() < self.cfg.code_fraction))
        return self._problems[pid]

    def task(self, task_id: int, pid, n: int) -> SimTask:
        c = self.cfg
        p, offset, is_code = self.problem(pid)
        rng = np.random.default_rng([c.seed, 1, task_id])
        passed = rng.random(n) < p  # (n,)
        log_len = math.log(c.median_tokens) + offset + rng.normal(0.0, c.sample_sigma, n)  # (n,)
        lengths = np.exp(log_len) * np.where(passed, 1.0, c.fail_length_factor)  # (n,)
        capped = lengths >= c.max_tokens
        lengths = np.minimum(np.maximum(lengths, 1.0), c.max_tokens)
        rewards = [1.0 if ok else 0.0 for ok in (passed & ~capped)]
        median_s = c.code_reward_s if is_code else c.math_reward_s
        return SimTask(lengths, rewards, float(median_s * math.exp(rng.normal(0.0, c.reward_sigma))))


class Simulator:
    """Runs a :class:`~mimo.rl.scheduler.Scheduler` on simulated workers.  ``check=True`` asserts the scheduler's
    guarantees at every decision (concurrency, batch size, FIFO, conservation) -- the property tests use it."""

    def __init__(self, sched_cfg: SchedulerConfig, trace: TraceConfig | None = None,
                 system: SystemConfig | None = None, *, scheduler: Scheduler | None = None,
                 alpha: float = 0.1, check: bool = False):
        self.trace_cfg = trace or TraceConfig()
        self.system = system or SystemConfig()
        self.trace = Trace(self.trace_cfg)
        self.sched = scheduler or Scheduler(
            sched_cfg, ProblemSampler(range(self.trace_cfg.num_problems), alpha=alpha, seed=self.trace_cfg.seed))
        self.cfg = self.sched.cfg
        self.check = check
        self.t = 0.0  # virtual seconds
        self.work = 0.0  # virtual tokens decoded by every running response since the start
        self.running = 0  # responses decoding now
        self.heap: list[tuple[float, int, int]] = []  # (work clock at which a response ends, task id, index)
        self.timers: list[tuple[float, int, str, int]] = []  # (time, seq, kind, task id)
        self._seq = 0
        self.tasks: dict[int, SimTask] = {}
        self.reward_busy = 0
        self.reward_queue: deque[int] = deque()
        self.in_pool: set[int] = set()
        self.busy = 0.0  # utilisation integral of the current phase
        self.phase_start = 0.0
        self.records: list[StepRecord] = []
        self.eval_record: StepRecord | None = None
        self.max_slots_held = 0
        self._steps_left = 0
        self.training = False  # rollout and training share the GPUs: decoding pauses while training

    # ----------------------------------------------------------------------------------------------- running

    def run_steps(self, steps: int) -> list[StepRecord]:
        """Simulate ``steps`` training steps; returns their records."""
        start = len(self.records)
        self._steps_left = steps
        self._begin_step()
        self._loop(lambda: self._steps_left == 0)
        return self.records[start:]

    def run_eval(self, problem_ids, num_samples: int | None = None) -> StepRecord:
        """Simulate one validation pass over ``problem_ids`` (all prompts at once in the continuous modes)."""
        self.eval_record = None
        self._mark_phase()
        self._apply(self.sched.begin_eval(problem_ids, num_samples))
        self._loop(lambda: self.eval_record is not None)
        return self.eval_record

    def _begin_step(self) -> None:
        self._mark_phase()
        self._apply(self.sched.begin_step())

    def _mark_phase(self) -> None:
        self.phase_start, self.busy = self.t, 0.0

    def _rate(self) -> float:
        """Tokens/s of each running response: full speed up to saturation, then an equal share."""
        s = self.system
        return s.decode_tokens_per_s * min(1.0, s.saturation_seqs / max(self.running, 1))

    def _advance(self, t: float) -> None:
        dt = t - self.t
        if dt > 0 and not self.training:
            self.work += self._rate() * dt if self.running else 0.0
            self.busy += min(1.0, self.running / self.system.saturation_seqs) * dt
        self.t = max(self.t, t)

    def _loop(self, done) -> None:
        while not done():
            while self.heap and self.tasks[self.heap[0][1]].aborted:
                heapq.heappop(self.heap)
            paused = self.training or not self.heap
            t_resp = math.inf if paused else self.t + (self.heap[0][0] - self.work) / self._rate()
            t_timer = self.timers[0][0] if self.timers else math.inf
            if t_resp == math.inf and t_timer == math.inf:
                raise RuntimeError(f"simulator deadlock at t={self.t:.1f} (scheduler phase {self.sched.phase})")
            if t_resp <= t_timer:
                self._advance(max(t_resp, self.t))
                end, tid, _ = heapq.heappop(self.heap)
                self.work = max(self.work, end)
                self.running -= 1
                task = self.tasks[tid]
                task.running -= 1
                if task.running == 0:
                    task.tokens = float(task.lengths.sum())
                    self._apply(self.sched.on_rollout_done(tid))
            else:
                t, _, kind, tid = heapq.heappop(self.timers)
                self._advance(t)
                self._on_timer(kind, tid)

    def _timer(self, delay: float, kind: str, tid: int = -1) -> None:
        self._seq += 1
        heapq.heappush(self.timers, (self.t + delay, self._seq, kind, tid))

    def _on_timer(self, kind: str, tid: int) -> None:
        if kind == "train_done":
            self.training = False
            self.sched.end_step()
            self._steps_left -= 1
            if self._steps_left > 0:
                self._begin_step()
            return
        task = self.tasks[tid]
        if task.aborted:
            return  # its reward job was cancelled with the abort
        if kind == "pool_reward":
            self.in_pool.discard(tid)
            self.reward_busy -= 1
            self._start_pool_rewards()
        self._apply(self.sched.on_reward_done(tid, task.rewards))

    def _start_pool_rewards(self) -> None:
        while self.reward_queue and self.reward_busy < self.system.reward_workers:
            tid = self.reward_queue.popleft()
            if self.tasks[tid].aborted:
                continue
            self.reward_busy += 1
            self.in_pool.add(tid)
            self._timer(self.tasks[tid].reward_s, "pool_reward", tid)

    # ------------------------------------------------------------------------------------------ decisions

    def _apply(self, actions) -> None:
        pending = deque(actions)
        while pending:
            a = pending.popleft()
            if isinstance(a, Launch):
                task = self.trace.task(a.task_id, a.problem_id, a.num_samples)
                task.v_start, task.running = self.work, a.num_samples
                self.tasks[a.task_id] = task
                for k, length in enumerate(task.lengths):
                    heapq.heappush(self.heap, (self.work + float(length), a.task_id, k))
                self.running += a.num_samples
            elif isinstance(a, Score):
                if a.inline:
                    self._timer(self.tasks[a.task_id].reward_s, "inline_reward", a.task_id)
                else:
                    self.reward_queue.append(a.task_id)
                    self._start_pool_rewards()
            elif isinstance(a, Abort):
                pending.extend(self._abort(a.task_id))
            elif isinstance(a, Train):
                self._on_train(a)
            elif isinstance(a, EvalDone):
                self.eval_record = self._record(self.sched.step_tasks())
            if self.check:
                self._check_concurrency()

    def _abort(self, tid: int) -> list:
        task = self.tasks[tid]
        if task.running:  # stop decoding; keep the tokens it already produced
            done = self.work - task.v_start
            task.tokens = float(np.minimum(task.lengths, done).sum())
            self.running -= task.running
            task.running = 0
        if tid in self.in_pool:  # cancel its reward job, freeing the worker
            self.in_pool.discard(tid)
            self.reward_busy -= 1
        task.aborted = True
        self._start_pool_rewards()
        return self.sched.on_aborted(tid)

    def _on_train(self, a: Train) -> None:
        rec = self._record(self.sched.step_tasks(), a.task_ids)
        self.records.append(rec)
        if self.check:
            self._check_batch(rec, a)
        self.training = True
        self._timer(self.system.train_s, "train_done")

    def _record(self, tasks, train_ids: tuple[int, ...] = ()) -> StepRecord:
        tokens = token_counts(0.0)
        outcome, informative = {}, {}
        for t in tasks:
            if t.step != self.sched.step:  # carried over: recorded with the step it ends in
                continue
            sim = self.tasks[t.id]
            state = ABORTED if t.state == ABORTING else t.state
            outcome[t.id], informative[t.id] = state, bool(t.informative)
            tokens[bucket(state == SELECTED, state == ABORTED, bool(t.informative))] += sim.tokens
        return StepRecord(self.t - self.phase_start, self.busy, tokens, outcome, informative, tuple(train_ids))

    # ------------------------------------------------------------------------------------------ invariants

    def _check_concurrency(self) -> None:
        held = self.sched.slots_held
        self.max_slots_held = max(self.max_slots_held, held)
        assert 0 <= held <= self.cfg.max_active_tasks, f"{held} slots held, limit {self.cfg.max_active_tasks}"

    def _check_batch(self, rec: StepRecord, a: Train) -> None:
        assert len(a.task_ids) == len(set(a.task_ids)) == self.cfg.batch_size, "batch size"
        assert all(rec.outcome[i] == SELECTED for i in a.task_ids), "selected tasks"
        aborted = [i for i, s in rec.outcome.items() if s == ABORTED]
        if aborted:
            assert max(a.task_ids) < min(aborted), "FIFO: a selected task was launched after an aborted one"
        assert all(s in (SELECTED, DROPPED, ABORTED) for s in rec.outcome.values()), "task left unfinished"
        if self.cfg.dynamic:
            assert all(rec.informative[i] for i in a.task_ids), "an uninformative group was selected"


def trace_stats(cfg: TraceConfig, num_tasks: int = 2000, group_size: int = 16) -> dict:
    """What the trace looks like (for the README): lengths, truncation, pass rate, informative groups."""
    trace = Trace(cfg)
    tasks = [trace.task(i, i, group_size) for i in range(num_tasks)]
    lengths = np.concatenate([t.lengths for t in tasks])  # (num_tasks * n,)
    rewards = np.array([t.rewards for t in tasks])  # (num_tasks, n)
    passes = rewards.sum(1)
    return {
        "mean_tokens": float(lengths.mean()),
        "median_tokens": float(np.median(lengths)),
        "mean_over_max": float(lengths.mean() / cfg.max_tokens),
        "truncated": float((lengths >= cfg.max_tokens).mean()),
        "groups_with_truncation": float(np.mean([(t.lengths >= cfg.max_tokens).any() for t in tasks])),
        "group_max_over_max": float(np.mean([t.lengths.max() for t in tasks]) / cfg.max_tokens),
        "pass_rate": float(rewards.mean()),
        "informative": float(((passes > 0) & (passes < group_size)).mean()),
        "all_pass": float((passes == group_size).mean()),
        "all_fail": float((passes == 0).mean()),
        "reward_s": float(np.mean([t.reward_s for t in tasks])),
    }


# ------------------------------------------------------------------------------------------------- metrics


@dataclass
class ModeMetrics:
    """Aggregate of a run's steps (see the module docstring for the definitions)."""

    mode: str
    steps: int
    rollout_s: float  # mean per step
    step_s: float
    idle_ratio: float
    idle_s: float  # idle capacity-seconds per step (in units of saturated decode throughput)
    waste_ratio: float | None
    waste_all_tokens: float  # wasted tokens over all decoded tokens, filtered groups included
    tasks_per_step: float
    extra: dict = field(default_factory=dict)


def summarize(mode: str, records: list[StepRecord], train_s: float, dynamic: bool) -> ModeMetrics:
    n = len(records)
    rollout = sum(r.rollout_s for r in records)
    busy = sum(r.busy_s for r in records)
    tok = {k: sum(r.tokens[k] for r in records) for k in BUCKETS}
    wasted = tok["surplus"] + tok["aborted"]
    outcomes = [s for r in records for s in r.outcome.values()]
    informative = [v for r in records for i, v in r.informative.items() if r.outcome[i] != ABORTED]
    return ModeMetrics(
        mode=mode,
        steps=n,
        rollout_s=rollout / n,
        step_s=rollout / n + train_s,
        idle_ratio=idle_ratio(busy, rollout),
        idle_s=(rollout - busy) / n,
        waste_ratio=waste_ratio(tok) if dynamic else None,
        waste_all_tokens=wasted / sum(tok.values()),
        tasks_per_step=len(outcomes) / n,
        extra={"aborted_per_step": outcomes.count(ABORTED) / n,
               "informative_frac": sum(informative) / max(len(informative), 1)},
    )


def simulate_mode(mode: str, steps: int, sched: SchedulerConfig, trace: TraceConfig, system: SystemConfig,
                  warmup: int = 2) -> ModeMetrics:
    """Run ``warmup + steps`` steps of one mode and summarise the last ``steps`` (the warm-up fills the easy pool,
    the informative-rate estimate and, with carry-over, the tasks a step inherits)."""
    sim = Simulator(dataclasses.replace(sched, mode=mode), trace, system)
    records = sim.run_steps(warmup + steps)[warmup:]
    return summarize(mode, records, system.train_s, sim.cfg.dynamic)


def simulate_validation(mode: str, num_prompts: int, sched: SchedulerConfig, trace: TraceConfig,
                        system: SystemConfig) -> StepRecord:
    """One validation pass over ``num_prompts`` fresh problems (ids beyond the training set)."""
    sim = Simulator(dataclasses.replace(sched, mode=mode), trace, system)
    ids = list(range(trace.num_problems, trace.num_problems + num_prompts))
    return sim.run_eval(ids)


# Training time as a share of a naive-dynamic-sampling step, implied by Table 2 itself: for every row,
# 1 / overall = share_rollout / rollout_speedup + (1 - share_rollout) gives share_rollout = 0.912 +- 0.003.
PAPER_TRAIN_SHARE = 0.088


def table2(sched: SchedulerConfig, trace: TraceConfig, system: SystemConfig, steps: int = 12, warmup: int = 2,
           train_share: float = PAPER_TRAIN_SHARE) -> dict:
    """Table 2: the five modes normalised to naive dynamic sampling.  Training time per step is set to
    ``train_share`` of a naive step (we do not model the trainer); it only enters the overall speedup."""
    base = simulate_mode("naive_dynamic_sampling", steps, sched, trace, dataclasses.replace(system, train_s=0.0),
                         warmup)
    train_s = train_share / (1.0 - train_share) * base.rollout_s
    system = dataclasses.replace(system, train_s=train_s)
    metrics = {m: simulate_mode(m, steps, sched, trace, system, warmup) for m in MODES if m != base.mode}
    metrics[base.mode] = dataclasses.replace(base, step_s=base.rollout_s + train_s)
    metrics = {m: metrics[m] for m in MODES}
    naive = metrics["naive_dynamic_sampling"]
    rows = [{
        "method": m,
        "overall_speedup": naive.step_s / r.step_s,
        "rollout_speedup": naive.rollout_s / r.rollout_s,
        "normalized_idle_time": r.idle_s / naive.idle_s,
        "idle_ratio": r.idle_ratio,
        "waste_ratio": r.waste_ratio,
    } for m, r in metrics.items()]
    return {"rows": rows, "train_s": train_s, "metrics": metrics}


def table3(num_prompts: int, sched: SchedulerConfig, trace: TraceConfig, system: SystemConfig) -> dict:
    """Table 3: one validation pass, synchronous rounds (naive) vs the engine (all prompts at once, rewards
    streamed)."""
    naive = simulate_validation("naive_dynamic_sampling", num_prompts, sched, trace, system)
    engine = simulate_validation("early_termination", num_prompts, sched, trace, system)
    return {
        "speedup": naive.rollout_s / engine.rollout_s,
        "idle_ratio_naive": 1.0 - naive.busy_s / naive.rollout_s,
        "idle_ratio_engine": 1.0 - engine.busy_s / engine.rollout_s,
        "seconds": {"naive": naive.rollout_s, "engine": engine.rollout_s},
    }
