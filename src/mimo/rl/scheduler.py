"""The Seamless Rollout Engine's scheduler, as pure logic: events in, decisions out.

MiMo's rollout engine (docs/design.md §1.6, paper §4.4) removes the GPU idle time that
synchronous GRPO with dynamic sampling wastes: long-tail responses hold a whole round back, rewards wait for the
last response, and extra rounds repeat both.  This module decides *what* happens; it never waits, sleeps, reads a
clock or touches a worker.  The same object drives the trace-driven simulator (``mimo.rl.simulator``, virtual
clock) and the real engine (local processes with a tiny torch model, Ray actors, an OpenAI-compatible endpoint).

Modes -- Table 2's rows, each adding to the one before::

    no_dynamic_sampling     one synchronous round of B prompts: generate all, score all, train on all B groups
    naive_dynamic_sampling  synchronous rounds (generate all, score all, filter) until B informative groups
    continuous_rollout      no round barrier; a finished group is scored at once -- inline, on its rollout slot --
                            and new tasks launch only while the running ones are predicted not to fill the batch
    async_reward            as above, but scoring runs on the reward workers, concurrent with rollout: the slot
                            is free as soon as generation ends
    early_termination       as above, and once B informative groups are in, tasks launched after them are aborted
                            (first-in-first-out); earlier ones still running are not aborted -- they continue
                            into the next step and come first there -- so long responses are not biased out

A *task* is one prompt's group of ``n`` responses: the unit of launch, scoring, filtering, abort and selection.
Task ids are issued in launch order and are the FIFO key.  A task *holds a rollout slot* from ``Launch`` until its
generation ends (or, with inline scoring, until its reward is in, or until its abort is acknowledged); at most
``max_active_tasks`` slots are held at once.

**The contract for an engine** (the simulator follows it; a real engine must too)::

    sched = Scheduler(cfg, ProblemSampler(problem_ids))
    actions = sched.begin_step()                 # phase idle -> rollout
    loop:
        for a in actions, in order:
            Launch(task_id, problem_id, num_samples)  start generating num_samples responses to the problem
            Score(task_id, inline)                    score the finished group; inline=True: on the rollout worker
                                                      that generated it (its slot stays held), else on the reward pool
            Abort(task_id)                            stop generation/scoring; call on_aborted(task_id) once stopped
            Train(step, task_ids)                     train on these groups (exactly batch_size, in launch order),
                                                      then call end_step(); checkpoint with state_dict() here
            EvalDone(task_ids)                        validation finished; results are in sched.tasks
        actions = the next completion, reported as exactly one of
            sched.on_rollout_done(task_id)            all num_samples responses generated
            sched.on_reward_done(task_id, rewards)    the group's rewards (num_samples floats)
            sched.on_aborted(task_id)                 an aborted task has released its slot
    sched.end_step()                             after training: phase training -> idle; then begin_step() again

Events may arrive in any order the workers produce; an event for a task that was aborted is accepted and ignored
(the abort raced with completion), so engines need no extra locking.  Events for carried-over tasks may also arrive
while training or between steps (an engine whose rollout workers keep decoding during training): they are recorded,
may return a ``Score``, and count when the next step begins.  A carried task's ``launch_step`` tells the trainer
how stale it is; its rollout log-probs make the importance ratio correct.  After a restart from a checkpoint an
engine that did not persist partial responses calls ``abandon_in_flight()``.  Validation uses the same path:
``begin_eval(problem_ids, num_samples)`` launches every prompt (all at once up to the slot limit, rewards streamed;
the round-based modes keep their rounds) and ends with ``EvalDone``.

Guarantees (tested on the simulator): held slots never exceed ``max_active_tasks``; every ``Train`` lists exactly
``batch_size`` scored tasks of the current step; no selected task was launched after an aborted one (FIFO); every
launched task ends in exactly one of selected / dropped (scored, not selected) / aborted, in one step only
(carried tasks end in a later step).

Choices the paper leaves open, and ours:

* The launch test is ``informative_so_far + rate * in_flight < margin * B`` with ``rate`` the running
  informative-group fraction (:class:`~mimo.rl.sampling.InformativeRate`).  ``margin = 1`` is the paper's "predicted not
  to fill", in expectation; it is the default of the rows without early termination, where every launched task
  must finish.  With early termination surplus tasks are aborted (FIFO), so over-launching costs only their partial
  tokens while it keeps the GPUs busy through the long tail: the default there is ``margin = 1.5``.  The paper's own
  waste (12.9%, far above the 2% its literal rule gives on our trace) says it launches beyond the expected need
  too; ``benchmarks/rollout.py --sensitivity`` shows margins 1.0-1.5.
* Selection is FIFO in every mode (the first B informative groups by launch order), so no mode favours short
  responses.
* Without early termination, tasks still running when the batch is complete are waited for (nothing crosses a
  step) and their groups dropped -- the sample waste of those rows.
* Early termination: the paper says which tasks are aborted, not what happens to the earlier ones still running.
  We carry them into the next step (``carry_over=True``): waiting for them would add a long-tail barrier the paper
  set out to remove, and MiMo-7B-RL was not strictly on-policy (a later variant is).  ``carry_over=False`` waits
  instead, strictly on-policy; ``benchmarks/rollout.py`` reports both.
* The round-based modes use rounds of ``round_size`` prompts (default: the batch size, i.e. DAPO's recipe without
  over-sampled rounds).
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from mimo.config import F
from mimo.errors import ConfigError, MimoError
from mimo.rl.sampling import InformativeRate, ProblemSampler, is_informative

MODES = ("no_dynamic_sampling", "naive_dynamic_sampling", "continuous_rollout", "async_reward", "early_termination")


@dataclass
class SchedulerConfig:
    """The rollout scheduler: Table 2's mode, batch geometry and the concurrency limit."""

    mode: str = F("early_termination", "one of " + ", ".join(MODES) + " (each row adds to the one before)")
    batch_size: int = F(512, "groups (prompts) per training batch, B")
    group_size: int = F(16, "responses per prompt, n")
    max_active_tasks: int = F(1024, "rollout concurrency limit: tasks (groups) holding a rollout slot at once")
    round_size: int = F(0, "prompts per synchronous round in the round-based modes (0: batch_size)")
    informative_prior: float = F(0.5, "prior of the informative-group fraction used to predict before any reward")
    informative_horizon: float = F(2048.0, "groups over which the running informative fraction decays")
    launch_margin: float = F(0.0, "continuous modes launch while predicted informative groups < launch_margin * B; "
                                   "0 = auto: 1.5 with early termination (surplus tasks are aborted, FIFO), 1.0 "
                                   "without (the paper's literal rule: every launched task must finish)")
    max_tasks_per_step: int = F(0, "error out after launching this many tasks in one step without filling the "
                                   "batch, e.g. when no group is informative (0: 100 x batch_size)")
    carry_over: bool = F(True, "early termination: tasks launched before the selected ones that are still running "
                               "continue into the next step (False: the step waits for them, strictly on-policy)")

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"scheduler.mode: expected one of {', '.join(MODES)}, got {self.mode!r}")
        for name in ("batch_size", "group_size", "max_active_tasks"):
            if getattr(self, name) < 1:
                raise ConfigError(f"scheduler.{name}: must be >= 1, got {getattr(self, name)}")
        if self.mode != "no_dynamic_sampling" and self.group_size < 2:
            raise ConfigError("scheduler.group_size: dynamic sampling needs >= 2 responses per prompt (a single "
                              "response is never informative)")
        if self.launch_margin < 0:
            raise ConfigError(f"scheduler.launch_margin: must be > 0 (or 0 for auto), got {self.launch_margin}")
        if self.round_size < 0 or (self.mode == "no_dynamic_sampling" and self.round_size not in (0, self.batch_size)):
            raise ConfigError(f"scheduler.round_size: must be 0 or batch_size without dynamic sampling, "
                              f"got {self.round_size}")

    @property
    def margin(self) -> float:
        """The launch margin in effect (``launch_margin``, or its per-mode default when 0)."""
        if self.launch_margin > 0:
            return self.launch_margin
        return 1.5 if self.mode == "early_termination" else 1.0

    # Feature flags of the mode (Table 2's rows are cumulative).
    @property
    def dynamic(self) -> bool:
        return self.mode != "no_dynamic_sampling"

    @property
    def continuous(self) -> bool:
        return MODES.index(self.mode) >= 2

    @property
    def async_reward(self) -> bool:
        return MODES.index(self.mode) >= 3

    @property
    def early_termination(self) -> bool:
        return self.mode == "early_termination"

    @property
    def prompts_per_round(self) -> int:
        """Prompts launched per round of the round-based modes."""
        return self.round_size or self.batch_size


# --------------------------------------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class Launch:
    task_id: int
    problem_id: Any
    num_samples: int
    step: int
    kind: str = "train"  # "train" | "eval"


@dataclass(frozen=True)
class Score:
    task_id: int
    inline: bool  # True: on the rollout worker that generated it, holding its slot; False: on the reward pool


@dataclass(frozen=True)
class Abort:
    task_id: int


@dataclass(frozen=True)
class Train:
    step: int
    task_ids: tuple[int, ...]


@dataclass(frozen=True)
class EvalDone:
    task_ids: tuple[int, ...]


Action = Launch | Score | Abort | Train | EvalDone

# Task states.  Terminal: selected, dropped (scored but not trained on), aborted.
RUNNING, GENERATED, SCORING, SCORED, ABORTING = "running", "generated", "scoring", "scored", "aborting"
SELECTED, DROPPED, ABORTED = "selected", "dropped", "aborted"
IN_FLIGHT = (RUNNING, GENERATED, SCORING)


@dataclass
class Task:
    """One prompt's group as the scheduler sees it."""

    id: int
    problem_id: Any
    step: int
    kind: str
    round: int
    num_samples: int
    launch_step: int = -1  # the step it was launched in (differs from ``step`` once carried over)
    state: str = RUNNING
    holds_slot: bool = True
    informative: bool | None = None
    rewards: list[float] | None = None


class Scheduler:
    """Pure-logic scheduler of the Seamless Rollout Engine (see the module docstring for the engine contract)."""

    def __init__(self, cfg: SchedulerConfig, sampler: ProblemSampler):
        self.cfg = cfg
        self.sampler = sampler
        self.rate = InformativeRate(prior=cfg.informative_prior, horizon=cfg.informative_horizon)
        self.step = 0
        self.phase = "idle"  # idle | rollout | training | eval
        self.next_id = 0
        self.tasks: dict[int, Task] = {}
        self.slots_held = 0
        self.round = 0
        self.round_left = 0  # prompts of the current round not launched yet
        self.eval_queue: list[Hashable] = []  # reversed: pop() gives the next prompt
        self.eval_samples = 0
        self.filled = False  # modes without early termination: B informative groups are in, launch no more
        self.cut: int | None = None  # early termination: id of the B-th informative task in launch order
        self._reset_indexes()

    # Derived indexes over the current step's (or validation's) tasks, kept incrementally so each event costs
    # O(log n) + O(moved items) instead of a scan; rebuilt from ``tasks`` on load.
    def _reset_indexes(self) -> None:
        self.current: list[int] = []  # ids, launch order
        self.flight: list[int] = []  # ids in flight (running, generated, scoring), sorted
        self.informative: list[int] = []  # ids scored informative, sorted
        self.round_ids: list[int] = []  # ids of the current round (round-based modes)

    def _rebuild_indexes(self) -> None:
        self._reset_indexes()
        kind = self._kind
        for t in sorted(self.tasks.values(), key=lambda t: t.id):
            if t.step != self.step or t.kind != kind or self.phase in ("idle", "training"):
                continue
            self.current.append(t.id)
            if t.state in IN_FLIGHT:
                self.flight.append(t.id)
            if t.state == SCORED and t.informative and kind == "train" and self.cfg.dynamic:
                self.informative.append(t.id)
            if t.round == self.round:
                self.round_ids.append(t.id)

    # ------------------------------------------------------------------------------------------------- queries

    def step_tasks(self) -> list[Task]:
        """The current step's (or validation's) tasks, in launch order."""
        return [self.tasks[i] for i in self.current]

    def in_flight(self) -> list[Task]:
        return [self.tasks[i] for i in self.flight]

    @property
    def free_slots(self) -> int:
        return self.cfg.max_active_tasks - self.slots_held

    @property
    def _kind(self) -> str:
        return "eval" if self.phase == "eval" else "train"

    # -------------------------------------------------------------------------------------------- step control

    def begin_step(self) -> list[Action]:
        """Start the rollout of step ``self.step``."""
        self._expect_phase("idle", "begin_step")
        self._prune()
        self.phase = "rollout"
        self.filled, self.cut, self.round = False, None, 0
        self.round_left = 0 if self.cfg.continuous else self.cfg.prompts_per_round
        self._rebuild_indexes()  # tasks carried over from the last step are this step's oldest
        return self._after_continuous_reward() if self.cfg.continuous else self._launch_more()

    def end_step(self) -> None:
        """Training of the current step is done: forget its finished tasks and move to the next step."""
        self._expect_phase("training", "end_step")
        self._prune()
        self.step += 1
        self.phase = "idle"

    def retire(self, task_ids: Sequence[int]) -> list[Action]:
        """Between steps: the listed tasks carried into this step will not be trained on (the engine's staleness
        bound, in policy versions): those in flight are aborted (``Abort`` actions returned; the acknowledgements
        arrive as usual), those already scored are dropped.  Other ids are ignored."""
        self._expect_phase("idle", "retire")
        out: list[Action] = []
        for i in task_ids:
            t = self.tasks.get(i)
            if t is None or t.kind != "train" or t.step != self.step:
                continue
            if t.state in IN_FLIGHT:
                t.state = ABORTING
                out.append(Abort(t.id))
            elif t.state == SCORED:
                t.state = DROPPED
        return out

    def begin_eval(self, problem_ids: Sequence[Hashable], num_samples: int | None = None) -> list[Action]:
        """Roll out and score every prompt once (validation); ends with ``EvalDone``.  Between steps only."""
        self._expect_phase("idle", "begin_eval")
        if not problem_ids:
            raise MimoError("begin_eval: no problems")
        self._prune()
        self.phase = "eval"
        self.eval_queue = list(reversed(problem_ids))
        self.eval_samples = num_samples or self.cfg.group_size
        self.round = 0
        self.round_left = 0 if self.cfg.continuous else min(self.cfg.prompts_per_round, len(self.eval_queue))
        return self._launch_more()

    def _expect_phase(self, phase: str, what: str) -> None:
        if self.phase != phase:
            raise MimoError(f"scheduler: {what} in phase {self.phase!r} (expected {phase!r})")

    # ------------------------------------------------------------------------------------------------- events

    def on_rollout_done(self, task_id: int) -> list[Action]:
        """All responses of ``task_id`` are generated."""
        t = self._task(task_id)
        if t.state in (ABORTING, ABORTED):
            return self._finish_abort(t)
        self._expect_state(t, RUNNING, "on_rollout_done")
        if t.step != self.step or self.phase in ("idle", "training"):  # a carried task, between steps
            t.state = SCORING
            self._release(t)
            return [Score(t.id, inline=False)]
        if not self.cfg.continuous:  # round barrier: score the round once all of it is generated
            t.state = GENERATED
            self._release(t)
            return self._launch_more() + self._score_round_if_generated()
        inline = not self.cfg.async_reward
        if not inline:
            self._release(t)
        t.state = SCORING
        return [Score(t.id, inline)] + self._launch_more()

    def on_reward_done(self, task_id: int, rewards: Sequence[float]) -> list[Action]:
        """The group's rewards are in (one float per response)."""
        t = self._task(task_id)
        if t.state in (ABORTING, ABORTED):
            return self._finish_abort(t)
        self._expect_state(t, SCORING, "on_reward_done")
        if len(rewards) != t.num_samples:
            raise MimoError(f"task {task_id}: expected {t.num_samples} rewards, got {len(rewards)}")
        t.rewards = [float(r) for r in rewards]
        t.informative = is_informative(t.rewards)
        t.state = SCORED
        self._release(t)
        if t.kind == "eval":
            self._leave_flight(t)
            return self._after_eval_reward()
        self.sampler.record(t.problem_id, t.rewards)
        if self.cfg.dynamic:
            self.rate.update(t.informative)
        if t.step != self.step or self.phase != "rollout":  # a carried task, between steps: counted at begin_step
            return []
        self._leave_flight(t)
        if self.cfg.dynamic and t.informative:
            bisect.insort(self.informative, t.id)
        if not self.cfg.continuous:
            return self._after_round_reward()
        return self._after_continuous_reward()

    def on_aborted(self, task_id: int) -> list[Action]:
        """An aborted task has stopped and released its slot (a repeated acknowledgement is ignored)."""
        return self._finish_abort(self._task(task_id))

    def _task(self, task_id: int) -> Task:
        t = self.tasks.get(task_id)
        if t is None:
            raise MimoError(f"scheduler: unknown task {task_id}")
        return t

    def _expect_state(self, t: Task, state: str, what: str) -> None:
        if t.state != state:
            raise MimoError(f"scheduler: {what} for task {t.id} in state {t.state!r} (expected {state!r})")

    def _finish_abort(self, t: Task) -> list[Action]:
        if t.state == ABORTED:
            return []
        t.state = ABORTED
        self._release(t)
        return self._launch_more()

    def _release(self, t: Task) -> None:
        if t.holds_slot:
            t.holds_slot = False
            self.slots_held -= 1

    def _leave_flight(self, t: Task) -> None:
        i = bisect.bisect_left(self.flight, t.id)
        if i < len(self.flight) and self.flight[i] == t.id:
            del self.flight[i]

    # ---------------------------------------------------------------------------------------------- launching

    def _launch(self, problem_id: Hashable, num_samples: int) -> Launch:
        kind = self._kind
        limit = self.cfg.max_tasks_per_step or 100 * self.cfg.batch_size
        if kind == "train" and len(self.current) >= limit:
            raise MimoError(f"scheduler: step {self.step} launched {limit} tasks without {self.cfg.batch_size} "
                            f"informative groups ({len(self.informative)} so far): are all rewards equal?")
        t = Task(self.next_id, problem_id, self.step, kind, self.round, num_samples, launch_step=self.step)
        self.tasks[t.id] = t
        self.next_id += 1
        self.slots_held += 1
        self.current.append(t.id)
        self.flight.append(t.id)  # ids only grow: stays sorted
        self.round_ids.append(t.id)
        return Launch(t.id, problem_id, num_samples, self.step, kind)

    def _launch_more(self) -> list[Action]:
        """Launch whatever the mode allows into the free slots."""
        out: list[Action] = []
        if self.phase == "eval":
            while self.free_slots > 0 and self.eval_queue and (self.cfg.continuous or self.round_left > 0):
                if not self.cfg.continuous:
                    self.round_left -= 1
                out.append(self._launch(self.eval_queue.pop(), self.eval_samples))
        elif self.phase == "rollout" and not self.cfg.continuous:
            while self.free_slots > 0 and self.round_left > 0:
                self.round_left -= 1
                out.append(self._launch(self.sampler.draw(), self.cfg.group_size))
        elif self.phase == "rollout":
            target = self.cfg.margin * self.cfg.batch_size
            while self.free_slots > 0 and not self.filled and self.cut is None and self._predicted() < target:
                out.append(self._launch(self.sampler.draw(), self.cfg.group_size))
        return out

    def _predicted(self) -> float:
        """Informative groups expected from what is scored and in flight (the continuous-rollout launch test)."""
        return len(self.informative) + self.rate.value * len(self.flight)

    # ------------------------------------------------------------------------------------- round-based modes

    def _score_round_if_generated(self) -> list[Action]:
        if self.round_left > 0 or any(self.tasks[i].state == RUNNING for i in self.round_ids):
            return []
        out: list[Action] = []
        for i in self.round_ids:
            t = self.tasks[i]
            if t.state == GENERATED:
                t.state = SCORING
                out.append(Score(t.id, inline=False))
        return out

    def _next_round(self, size: int) -> list[Action]:
        self.round += 1
        self.round_ids = []
        self.round_left = size
        return self._launch_more()

    def _after_round_reward(self) -> list[Action]:
        if self.flight or self.round_left > 0:
            return []
        if not self.cfg.dynamic:  # the single round is the batch, informative or not
            return [self._select(self.current)]
        if len(self.informative) >= self.cfg.batch_size:
            return [self._select(self.informative[: self.cfg.batch_size])]
        return self._next_round(self.cfg.prompts_per_round)

    # ------------------------------------------------------------------------------------- continuous modes

    def _after_continuous_reward(self) -> list[Action]:
        B = self.cfg.batch_size
        if len(self.informative) < B:
            return self._launch_more()
        if not self.cfg.early_termination:
            self.filled = True  # launch no more; wait for what runs, then take the first B by launch order
            return [] if self.flight else [self._select(self.informative[:B])]
        # Early termination, FIFO: tasks launched after the B-th informative one can never be selected -> abort.
        # Earlier ones still running would come first if informative: carried into the next step, or waited for.
        self.cut = self.informative[B - 1]
        out: list[Action] = []
        k = bisect.bisect_right(self.flight, self.cut)
        for i in self.flight[k:]:
            self.tasks[i].state = ABORTING
            out.append(Abort(i))
        del self.flight[k:]
        if self.cfg.carry_over:
            for i in self.flight:
                self.tasks[i].step = self.step + 1
            self.flight = []
        if not self.flight:
            out.append(self._select(self.informative[:B]))
        return out

    def _select(self, ids: list[int]) -> Train:
        if len(ids) != self.cfg.batch_size:  # a bug, not a user error
            raise AssertionError(f"selected {len(ids)} groups, batch size is {self.cfg.batch_size}")
        chosen = set(ids)
        for i in self.current:
            t = self.tasks[i]
            if t.step != self.step:  # carried over
                continue
            if i in chosen:
                t.state = SELECTED
            elif t.state == SCORED:
                t.state = DROPPED
        self.phase = "training"
        return Train(self.step, tuple(sorted(chosen)))

    def _after_eval_reward(self) -> list[Action]:
        if self.flight:
            return self._launch_more()
        if self.eval_queue:
            if self.cfg.continuous:
                return self._launch_more()
            if self.round_left == 0:  # the synchronous round is fully scored: next one
                return self._next_round(min(self.cfg.prompts_per_round, len(self.eval_queue)))
            return self._launch_more()
        for i in self.current:
            self.tasks[i].state = SELECTED
        self.phase = "idle"
        return [EvalDone(tuple(self.current))]

    # ------------------------------------------------------------------------------------------- checkpoints

    def _prune(self) -> None:
        """Drop finished tasks; keep those in flight, holding a slot, awaiting an abort acknowledgement, or carried
        over and already scored."""
        def keep(t: Task) -> bool:
            return t.holds_slot or t.state in IN_FLIGHT + (ABORTING,) or (t.state == SCORED and t.step >= self.step)

        self.tasks = {i: t for i, t in self.tasks.items() if keep(t)}
        self._reset_indexes()

    def abandon_in_flight(self) -> list[int]:
        """Mark every task in flight as aborted (their workers are gone, e.g. after a restart from a checkpoint);
        returns their ids.  An engine that cannot persist partial responses calls this right after
        ``load_state_dict`` -- the run then continues deterministically, minus that work."""
        lost = [t.id for t in self.tasks.values() if t.state in IN_FLIGHT + (ABORTING,)]
        for i in lost:
            t = self.tasks[i]
            t.state = ABORTED
            self._release(t)
        self._rebuild_indexes()
        return lost

    def state_dict(self) -> dict:
        """Everything needed to continue exactly (JSON-serialisable).  Engines checkpoint between steps."""
        return {
            "config": dataclasses.asdict(self.cfg),
            "sampler": self.sampler.state_dict(),
            "rate": self.rate.state_dict(),
            "step": self.step,
            "phase": self.phase,
            "next_id": self.next_id,
            "tasks": [dataclasses.asdict(t) for t in sorted(self.tasks.values(), key=lambda t: t.id)],
            "slots_held": self.slots_held,
            "round": self.round,
            "round_left": self.round_left,
            "eval_queue": list(self.eval_queue),
            "eval_samples": self.eval_samples,
            "filled": self.filled,
            "cut": self.cut,
        }

    def load_state_dict(self, state: dict) -> None:
        if state["config"] != dataclasses.asdict(self.cfg):
            raise MimoError("scheduler: checkpoint was written with a different scheduler config")
        self.sampler.load_state_dict(state["sampler"])
        self.rate.load_state_dict(state["rate"])
        self.step, self.phase, self.next_id = int(state["step"]), state["phase"], int(state["next_id"])
        self.tasks = {int(d["id"]): Task(**d) for d in state["tasks"]}
        self.slots_held = int(state["slots_held"])
        self.round, self.round_left = int(state["round"]), int(state["round_left"])
        self.eval_queue, self.eval_samples = list(state["eval_queue"]), int(state["eval_samples"])
        self.filled, self.cut = bool(state["filled"]), state["cut"]
        self._rebuild_indexes()
