"""Model-based difficulty of RL problems: roll each one out N times, keep what RL can still learn from.

MiMo rolls the SFT model out 16 times per problem and drops math problems with a pass rate above 90% and code
problems solved in every rollout (nothing left to learn); problems that strong models cannot solve are dropped too
(likely a wrong gold answer or broken tests).  Here:

* the rollouts go through the RL machinery itself -- :class:`mimo.rl.engine.RolloutEngine` in validation mode
  (every prompt rolled out N times, rewards streamed from :class:`mimo.rewards.pool.RewardPool`) on any rollout
  backend (local worker processes from ``--model DIR``, vLLM, or an OpenAI-compatible ``--endpoint``), with the
  prompts built exactly as ``mimo rl`` builds them (:func:`mimo.rl.problems.problem_from_record`);
* a rollout *solves* a problem when its reward is 1: the Math-Verify answer matches, or the code passes every test;
* code problems also get the rollouts x tests pass matrix and the test difficulty levels assigned from it
  (:func:`mimo.rewards.levels.assign_test_levels`), which ``mimo rl`` uses for the strict/soft reward.

Fields added to kept records: ``pass_rate`` (solved rollouts / rollouts), ``rollouts``; with a reference model
``reference_pass_rate``; for code ``pass_matrix`` (one row per rollout, 1 = test passed), ``test_pass_rates`` and
``levels`` (the last two as ``mimo rewards levels`` writes them).

The decision rule (:func:`difficulty_drop`) is a pure function of the pass statistics, tested on its own.
"""

from __future__ import annotations

import dataclasses
import time

from mimo.errors import MimoError
from mimo.infer.decoding import SamplingParams
from mimo.model.io import load_model_dir
from mimo.rewards import passed
from mimo.rewards.levels import assign_test_levels, pass_rates, verdict_matrix
from mimo.rewards.pool import PoolConfig, RewardPool
from mimo.rl.engine import RolloutEngine
from mimo.rl.problems import problem_from_record
from mimo.rl.rollout import RolloutConfig, make_backend
from mimo.rl.sampling import ProblemSampler
from mimo.rl.scheduler import Scheduler, SchedulerConfig
from mimo.tokenizer import Tokenizer


@dataclasses.dataclass
class PassStats:
    """How one model did on one problem: ``solved`` of ``rollouts``, and for code the pass matrix."""

    rollouts: int
    solved: int
    pass_matrix: list[list[int]] | None = None  # code: (rollouts, tests), 1 = passed

    @property
    def pass_rate(self) -> float:
        return self.solved / self.rollouts if self.rollouts else 0.0


def sample_stats(kind: str, samples, n_tests: int = 0) -> PassStats:
    """Pass statistics from scored rollout samples (``.reward``; code also ``.verdicts``).

    >>> from types import SimpleNamespace as S
    >>> st = sample_stats("code", [S(reward=1.0, verdicts=("passed", "passed")),
    ...                            S(reward=0.0, verdicts=("passed", "wrong_answer")), S(reward=0.0, verdicts=())], 2)
    >>> st.solved, round(st.pass_rate, 3), st.pass_matrix
    (1, 0.333, [[1, 1], [1, 0], [0, 0]])
    """
    if kind != "code":
        return PassStats(len(samples), sum(passed(s.reward) for s in samples))

    matrix = [[int(p) for p in row] for row in verdict_matrix([s.verdicts for s in samples], n_tests)]
    return PassStats(len(samples), sum(n_tests > 0 and all(row) for row in matrix), matrix)


def difficulty_drop(kind: str, policy: PassStats | None, reference: PassStats | None, *,
                    math_max_pass_rate: float = 0.9, code_max_pass_rate: float = 1.0) -> tuple[str, str] | None:
    """``(reason, detail)`` when the problem goes, None when it stays.  ``None`` stats: that model was not asked.

    >>> difficulty_drop("math", PassStats(16, 15), None)        # 0.9375 > 0.9
    ('too_easy', 'policy pass rate 15/16 = 0.938 > 0.9')
    >>> difficulty_drop("math", PassStats(16, 14), None) is None   # 0.875
    True
    >>> difficulty_drop("code", PassStats(8, 7), None) is None     # not solved in every rollout
    True
    >>> difficulty_drop("code", PassStats(8, 8), None)
    ('too_easy', 'solved in 8/8 policy rollouts')
    >>> difficulty_drop("math", PassStats(8, 0), PassStats(8, 0))
    ('unsolved_by_reference', 'reference solves 0/8')
    """
    if reference is not None and reference.solved == 0:
        return "unsolved_by_reference", f"reference solves 0/{reference.rollouts}"
    if policy is None:
        return None
    if kind == "code":
        if policy.rollouts and policy.pass_rate >= code_max_pass_rate:
            return "too_easy", f"solved in {policy.solved}/{policy.rollouts} policy rollouts"
    elif policy.pass_rate > math_max_pass_rate:
        return "too_easy", (f"policy pass rate {policy.solved}/{policy.rollouts} = {policy.pass_rate:.3f} "
                            f"> {math_max_pass_rate:g}")
    return None


def roll_out(records: dict[str, dict], n: int, *, model: str = "", endpoint: str = "", tokenizer: str = "",
             rollout_cfg=None, pool_cfg=None, seed: int = 0) -> tuple[dict[str, PassStats], dict]:
    """Roll every record (``{id: record}`` in the RL JSONL format) out ``n`` times with one model and score the
    rollouts; returns ``({id: PassStats}, timing)``.  ``model``: a model directory (local workers, or vLLM with
    ``rollout_cfg.backend = "vllm"``); ``endpoint``: an OpenAI-compatible base URL, with ``tokenizer`` (a model or
    tokenizer directory) to build the prompts.  Problems whose rollouts did not come back are missing."""

    if bool(model) == bool(endpoint):
        raise MimoError("difficulty rollouts: give exactly one of a model directory or an endpoint")
    if n < 1:
        raise MimoError(f"--rollouts: expected at least 1, got {n}")
    rollout_cfg = rollout_cfg or RolloutConfig()

    net = None
    if endpoint:
        if not tokenizer:
            raise MimoError("--endpoint needs --tokenizer DIR (a model or tokenizer directory) to build the prompts")
        tok = Tokenizer.load(tokenizer)
        rollout_cfg = dataclasses.replace(rollout_cfg, backend="endpoint", url=endpoint)
    elif rollout_cfg.backend == "vllm":  # vLLM loads the weights itself: only the tokenizer here
        tok = Tokenizer.load(tokenizer or model)
    else:
        net, tok = load_model_dir(model)
        rollout_cfg = dataclasses.replace(rollout_cfg, backend="local")
        if tok is None:
            raise MimoError(f"{model}: no tokenizer in the model directory")
    problems = {pid: problem_from_record(rec, tok, f"problem {pid}", pid) for pid, rec in records.items()}
    ids = list(problems)
    params = SamplingParams(rollout_cfg.max_new_tokens, rollout_cfg.temperature, rollout_cfg.top_p, tuple(tok.stop_ids))
    # Validation mode launches every prompt at once (up to the slot limit); batch and group sizes do not apply.
    sched = Scheduler(SchedulerConfig(batch_size=1, group_size=max(2, n), max_active_tasks=max(1, len(ids))),
                      ProblemSampler(ids, alpha=0.0, seed=seed))
    t0 = time.perf_counter()
    with make_backend(rollout_cfg, net, model) as backend, RewardPool(pool_cfg or PoolConfig()) as pool:
        engine = RolloutEngine(sched, backend, pool, problems, tok.decode, params, seed=seed,
                               deterministic=rollout_cfg.deterministic, code_scheme="vanilla")
        results, stats = engine.validate(ids, n, params)
    out = {}
    for pid, samples in results.items():
        p = problems[pid]
        n_tests = len(p.reference["tests"]) if p.kind == "code" else 0
        out[pid] = sample_stats(p.kind, samples, n_tests)
    return out, {"seconds": round(time.perf_counter() - t0, 2), "idle_ratio": round(stats.idle_ratio, 3)}


def added_fields(kind: str, policy: PassStats | None, reference: PassStats | None, n_levels: int) -> dict:
    """The fields a kept record gets (module docstring)."""
    out: dict = {}
    if policy is not None:
        out["pass_rate"] = round(policy.pass_rate, 6)
        out["rollouts"] = policy.rollouts
    if reference is not None:
        out["reference_pass_rate"] = round(reference.pass_rate, 6)
    if kind == "code" and policy is not None and policy.pass_matrix:
        out["pass_matrix"] = policy.pass_matrix
        out["test_pass_rates"] = [round(r, 4) for r in pass_rates(policy.pass_matrix)]
        out["levels"] = assign_test_levels(policy.pass_matrix, n_levels)
    return out
