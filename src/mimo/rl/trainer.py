"""``mimo rl``: MiMo's GRPO on the Seamless Rollout Engine, from any checkpoint (Base -> RL-Zero, SFT -> RL).

Each iteration the engine (:mod:`mimo.rl.engine`) rolls out over-sampled prompt groups until ``batch_size``
informative groups are in (dynamic sampling; the easy pool is drawn with probability ``alpha``), rewards are
computed asynchronously on the reward pool (Math-Verify for math, the sandboxed judge with the test-difficulty
reward for code; no format or length reward), and the actor (:mod:`mimo.rl.actor`) takes ``batch_size /
mini_batch_groups`` gradient steps with the clip-higher token-level loss and no KL.  Weights then go back to the
rollout workers.  Validation runs through the same engine.  Checkpoints hold the model, optimizer, scheduler
(sampler, easy pool, pass-rate statistics) and RNG, written atomically between steps: ``--resume true`` after a
``kill -9`` repeats and loses no step.

Under ``torchrun`` the update is data-parallel (DDP, gloo): rank 0 alone rolls out, scores, logs and checkpoints,
and broadcasts each step's batch; every rank trains on its shard with the token-level normalisation kept global, so
the step equals the single-process one (docs/distributed.md).

``--overlap true`` rolls out step t+1 while step t's update runs on a thread (one step off policy, as verl's
one-step-off and AReaL do; off by default: MiMo's steps roll out from the weights of every update before them).
Each sample records the policy version (updates applied) that generated it; ``--max_staleness S`` (1 under
overlap) retires carried-over tasks launched more than S versions before the update that would use them (aborted if
running, dropped if scored), and the engine refuses a batch with an older sample.  The importance ratio is against
the recorded rollout log-probs, so stale samples are corrected as in the vLLM path (``--actor.tis_cap``).  Steps
that validate, checkpoint or end the run are trained synchronously, so resume stays exact; the log carries
``policy_version``, ``staleness_max``/``staleness_mean``, ``stale_retired_groups`` and ``overlap_wait_s``.

Logged per step: reward, pass rate, response length, entropy, clip fraction, approx KL, informative / wasted groups,
worker idle ratio, waste ratio, the update's padding share (``pad_frac``), easy-pool size and the time split
rollout / reward / train / weight sync (``sync_s``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from pathlib import Path

from mimo.config import F, stage_cli
from mimo.errors import MimoError
from mimo.infer.decoding import SamplingParams
from mimo.model.io import load_model_dir
from mimo.rewards import passed
from mimo.rewards.levels import assign_test_levels, verdict_matrix
from mimo.rewards.pool import PoolConfig, RewardPool
from mimo.rl.actor import ActorConfig, update_policy
from mimo.rl.engine import RolloutEngine
from mimo.rl.problems import ToyRL, load_problems, toy_problems
from mimo.rl.rollout import RolloutConfig, check_rollout, draft_depth, make_backend
from mimo.rl.sampling import ProblemSampler
from mimo.rl.scheduler import Scheduler, SchedulerConfig
from mimo.train import dist
from mimo.train.loop import make_optimizer
from mimo.train.run import StageRun
from mimo.utils.io import write_jsonl


@dataclasses.dataclass
class RewardConfig:
    pool: PoolConfig = F(factory=PoolConfig, help="reward workers (local processes, Ray actors or a judge server)")
    code_scheme: str = F("strict", "code reward: strict or soft (test-difficulty levels) or vanilla (all pass)")
    level_rollouts: int = F(0, "before training, roll out each code problem this many times to assign test "
                               "difficulty levels from the pass matrix (0: use the levels in the data)")
    n_levels: int = F(3, "test difficulty levels")


@dataclasses.dataclass
class RLConfig:
    init_from: str = F("", "model directory to start from (Base -> RL-Zero, SFT -> RL)")
    out_dir: str = F("runs/rl", "run directory")
    data: str | None = F(None, "RL problems JSONL (see mimo.rl.problems); None: the toy set")
    heldout: str | None = F(None, "validation problems JSONL; None: held-out toy problems")
    toy: ToyRL = F(factory=ToyRL, help="built-in toy problems")
    steps: int = F(50, "RL iterations")
    alpha: float = F(0.1, "easy-pool draw probability (MiMo: 0.1)")
    scheduler: SchedulerConfig = F(factory=SchedulerConfig, help="rollout scheduler (Table 2's modes)")
    actor: ActorConfig = F(factory=ActorConfig, help="policy update")
    rollout: RolloutConfig = F(factory=RolloutConfig, help="generation")
    rewards: RewardConfig = F(factory=RewardConfig, help="rewards")
    eval_every: int = F(10, "validate every N steps (0: never; also before the first step and at the end)")
    eval_samples: int = F(1, "samples per held-out problem")
    eval_temperature: float = F(0.6, "validation temperature (MiMo's protocol: 0.6)")
    eval_top_p: float = F(0.95, "validation nucleus mass (MiMo's protocol: 0.95)")
    save_every: int = F(10, "checkpoint every N steps (0: only at the end)")
    keep_checkpoints: int = F(2, "checkpoints kept")
    resume: bool = F(False, "resume from out_dir's newest checkpoint that loads")
    overwrite: bool = F(False, "start over in an out_dir that holds a run (removes its checkpoints, metrics, final)")
    max_steps: int | None = F(None, "stop after this many steps (tests)")
    ray_address: str | None = F(None, "Ray cluster for the vLLM rollout engines and Ray reward actors (sets "
                                      "rollout.ray_address and rewards.pool.ray_address where those are unset; "
                                      "None: the running Ray, or a local one started for the run)")
    overlap: bool = F(False, "roll out step t+1 while step t's update runs: one step off policy, so each sample is "
                             "one policy version old when trained on (default off: every step's rollouts start "
                             "from the weights of all the updates before it)")
    max_staleness: int = F(0, "train on no sample generated more than this many policy versions before the update "
                              "(carried-over tasks older than that are aborted or dropped); 0: no bound, or 1 with "
                              "--overlap")
    seed: int = F(0, "random seed")
    threads: int = F(0, "torch threads of the trainer (0: default)")
    log_every: int = F(1, "print a log line every N steps")


def group_metrics(groups) -> dict[str, float]:
    samples = [s for g in groups for s in g.samples]
    n = max(len(samples), 1)
    return {
        "reward": sum(s.reward for s in samples) / n,
        "pass_rate": sum(passed(s.reward) for s in samples) / n,
        "response_len": sum(len(s.response_ids) for s in samples) / n,
        "truncated": sum(s.truncated for s in samples) / n,
    }


def assign_levels(engine: RolloutEngine, problems, rollouts: int, params: SamplingParams, n_levels: int) -> dict:
    """Test difficulty levels per code problem from the pass matrix of ``rollouts`` samples of the current policy."""

    code = [p.id for p in problems if p.kind == "code"]
    if not code:
        return {}
    results, _ = engine.validate(code, rollouts, params)
    levels = {}
    for pid, samples in results.items():
        n_tests = len(engine.problems[pid].reference["tests"])
        levels[pid] = assign_test_levels(verdict_matrix([s.verdicts for s in samples], n_tests), n_levels)
    return levels


def validate(engine: RolloutEngine, heldout, cfg: RLConfig, out: Path, step: int) -> dict[str, float]:
    params = SamplingParams(cfg.rollout.max_new_tokens, cfg.eval_temperature, cfg.eval_top_p, engine.params.stop_ids)
    results, stats = engine.validate([p.id for p in heldout], cfg.eval_samples, params)
    metrics: dict[str, float] = {"eval_s": stats.rollout_s, "eval_idle_ratio": stats.idle_ratio}
    kinds = {p.id: p.kind for p in heldout}
    rows = []
    for kind in ("math", "code"):
        scores = [s.reward for pid, ss in results.items() if kinds[pid] == kind for s in ss]
        if scores:
            metrics[f"eval_{kind}_reward"] = sum(scores) / len(scores)
            metrics[f"eval_{kind}_acc"] = sum(passed(r) for r in scores) / len(scores)
    for pid, ss in list(results.items()):
        rows += [{"problem_id": pid, "completion": s.text, "reward": s.reward, "reason": s.reason} for s in ss]
    write_jsonl(out / "samples" / f"eval_step{step:05d}.jsonl", rows)
    return metrics


def main(cfg: RLConfig) -> dict:
    """One RL run; under ``torchrun`` the trainer is data-parallel (DDP) and only rank 0 rolls out.

    Rank 0 owns the rollout engine, the reward pool, validation, the metrics log and the checkpoints; each step it
    broadcasts the selected groups to every rank, and all ranks train on their shard of them
    (:func:`mimo.rl.actor.update_policy`: the gradient is the single-process gradient of the whole batch).  The other
    ranks start no worker and write nothing.  Resume: rank 0 picks the checkpoint, every rank loads that one."""
    if not cfg.init_from:
        raise MimoError("rl: --init_from (a model directory) is required")
    check_rollout(cfg.rollout)
    if cfg.rollout.backend != "local" and cfg.steps > 0 and cfg.rollout.backend != "vllm":
        raise MimoError("rl: training needs a backend whose weights follow the trainer (local or vllm); "
                        "the endpoint backend serves a fixed policy")
    info = dist.init_distributed("cpu")  # gloo: the RL trainer and its local rollout workers live on the CPU
    if cfg.overlap and info.enabled:
        dist.cleanup(info)
        raise MimoError("rl: --overlap runs in one process; under torchrun the update is data-parallel and "
                        "synchronous (drop --overlap)")
    try:
        run = StageRun("rl", "rl", cfg, cfg.out_dir, cfg.seed, cfg.threads, cfg.keep_checkpoints, cfg.resume,
                       is_main=info.is_main, overwrite=cfg.overwrite)
        dist.barrier(info)  # rank 0 has checked (and with --overwrite cleaned) the run directory
        run.save_config()
        model, tok = load_model_dir(cfg.init_from)
        if tok is None:
            raise MimoError(f"{cfg.init_from}: no tokenizer in the model directory")
        if cfg.actor.mtp_loss_weight > 0 and model.num_mtp_layers == 0:
            raise MimoError(f"actor.mtp_loss_weight: {cfg.init_from} has no MTP layers to train")
        draft_depth(cfg.rollout, model)  # a one-line error before any worker starts
        optimizer = make_optimizer(model, cfg.actor.lr, cfg.actor.weight_decay)
        state = run.restore(model, optimizer) if info.is_main else {}  # rank 0 picks the newest that loads
        chosen = dist.broadcast_object(str(run.restored_from) if run.restored_from else None, info)
        if not info.is_main and chosen is not None:  # the other ranks load the very same checkpoint
            state = run.restore(model, optimizer, path=chosen)
        policy = dist.wrap_model(model, info, "ddp", find_unused_parameters=True, forward_sync_buffers=False)
        if info.is_main:
            result = _lead(cfg, run, model, policy, optimizer, tok, state, info)
        else:
            _follow(cfg, policy, optimizer, tok, state, info)
            result = {}
        dist.barrier(info)  # every rank is past its last collective before any rank tears down
        del policy  # DDP's reducer holds the process group: let it go while the group is still alive
        return result
    finally:
        dist.cleanup(info)


def _follow(cfg: RLConfig, policy, optimizer, tok, state: dict, info: dist.DistInfo) -> None:
    """A rank other than 0: train on each step's broadcast batch, nothing else."""
    step, last = state.get("step", 0), _last_step(cfg)
    while step < last:
        groups = dist.broadcast_object(None, info)  # sync point: rank 0 has rolled out and scored the step
        update_policy(policy, optimizer, groups, cfg.actor, tok.pad_id, cfg.rollout.temperature,
                      seed=cfg.seed + step, dist_info=info)
        step += 1


def _capture(fn, args: tuple, done: dict) -> None:
    """Run ``fn(*args)`` on a thread: its result, or the exception it raised, goes into ``done``."""
    try:
        done["result"] = fn(*args)
    except BaseException as e:  # re-raised by the trainer's loop when it joins
        done["error"] = e


def _last_step(cfg: RLConfig) -> int:
    return min(cfg.steps, cfg.max_steps) if cfg.max_steps is not None else cfg.steps


def _lead(cfg: RLConfig, run: StageRun, model, policy, optimizer, tok, state: dict, info: dist.DistInfo) -> dict:
    """Rank 0 (the only rank of a single-process run): rollouts, rewards, training, validation, logs, checkpoints."""
    out = run.out
    train = load_problems(cfg.data, tok) if cfg.data else toy_problems(cfg.toy, tok, "train")
    heldout = load_problems(cfg.heldout, tok) if cfg.heldout else toy_problems(cfg.toy, tok, "heldout")
    problems = {p.id: p for p in train + heldout}
    if len(problems) != len(train) + len(heldout):
        raise MimoError("rl: training and held-out problems share ids")
    sampler = ProblemSampler([p.id for p in train], alpha=cfg.alpha, seed=cfg.seed)
    sched = Scheduler(cfg.scheduler, sampler)
    step, levels = state.get("step", 0), state.get("levels", {})
    if state:
        sched.load_state_dict(state["scheduler"])
        lost = sched.abandon_in_flight()
        if lost:
            print(f"[rl] {len(lost)} in-flight tasks of the checkpoint dropped", flush=True)
    params = SamplingParams(cfg.rollout.max_new_tokens, cfg.rollout.temperature, cfg.rollout.top_p, tuple(tok.stop_ids))
    last = _last_step(cfg)
    logger = run.logger(last, cfg.log_every)
    pool_cfg, rollout_cfg = cfg.rewards.pool, cfg.rollout
    if cfg.ray_address:  # one cluster for both, unless each was given its own
        pool_cfg = dataclasses.replace(pool_cfg, ray_address=pool_cfg.ray_address or cfg.ray_address)
        rollout_cfg = dataclasses.replace(rollout_cfg, ray_address=rollout_cfg.ray_address or cfg.ray_address)
    ray_rewards = (pool_cfg.workers or os.cpu_count() or 1) if pool_cfg.backend == "ray" else 0
    with make_backend(rollout_cfg, model, cfg.init_from, extra_cpus=ray_rewards) as backend, \
            RewardPool(pool_cfg) as pool:
        bound = cfg.max_staleness or (1 if cfg.overlap else 0)
        engine = RolloutEngine(sched, backend, pool, problems, tok.decode, params, seed=cfg.seed,
                               deterministic=cfg.rollout.deterministic, code_scheme=cfg.rewards.code_scheme,
                               version=step, max_staleness=bound)
        if cfg.rewards.level_rollouts > 0 and not levels:
            t0 = time.perf_counter()
            levels = assign_levels(engine, train, cfg.rewards.level_rollouts, params, cfg.rewards.n_levels)
            print(f"[rl] test difficulty levels for {len(levels)} code problems from "
                  f"{cfg.rewards.level_rollouts} rollouts each ({time.perf_counter() - t0:.1f}s)", flush=True)
        for pid, lv in levels.items():
            problems[pid] = dataclasses.replace(problems[pid], reference={**problems[pid].reference, "levels": lv})
        engine.problems = problems
        result: dict = {}
        if cfg.eval_every and step == 0 and heldout:
            result = logger.log(0, **validate(engine, heldout, cfg, out, 0))

        def update(groups, at_step: int) -> tuple[dict, float]:  # at_step: passed, as the loop moves on meanwhile
            t0 = time.perf_counter()
            metrics = update_policy(policy, optimizer, groups, cfg.actor, tok.pad_id, cfg.rollout.temperature,
                                    seed=cfg.seed + at_step, dist_info=info)
            return metrics, time.perf_counter() - t0

        def record_of(groups, stats, train_metrics: dict, train_s: float) -> dict:
            record = {**group_metrics(groups), **train_metrics, **stats.as_metrics(), "train_s": train_s,
                      "sync_s": engine.last_sync_s,  # the weight sync after this step's update
                      "easy_pool": sched.sampler.summary()["easy_pool"],
                      # compute accounting (for compute-matched baselines): tokens decoded by the rollout
                      # workers, and prompt + response tokens the update ran forward and backward over
                      "gen_tokens": sum(stats.tokens.values()),
                      "train_tokens": cfg.actor.epochs * sum(len(s.prompt_ids) + len(s.response_ids)
                                                             for g in groups for s in g.samples),
                      "tokens": sum(len(s.response_ids) for g in groups for s in g.samples)}
            if info.enabled:
                record["world_size"] = info.world_size
            return record

        def after_update(record: dict) -> dict:
            """Validation, the log line and the checkpoint of the step just trained (``step`` is its number)."""
            if heldout and ((cfg.eval_every and step % cfg.eval_every == 0) or step == last):
                record.update(validate(engine, heldout, cfg, out, step))
            logged = logger.log(step, **record)
            if (cfg.save_every and step % cfg.save_every == 0) or step == last:
                run.checkpoint(step, model, optimizer, tok, scheduler=sched.state_dict(), levels=levels)
            return logged

        def boundary(n: int) -> bool:  # a step after which the run validates, saves or ends: no overlap into it
            return n == last or bool(cfg.eval_every and heldout and n % cfg.eval_every == 0) or \
                bool(cfg.save_every and n % cfg.save_every == 0)

        pending = None  # overlap: (thread, its result, groups, stats) of the update still running
        while step < last:
            groups, stats = engine.run_step(train_version=step)
            if pending is not None:  # the previous step's update ran while this step rolled out
                thread, done, p_groups, p_stats = pending
                t0 = time.perf_counter()
                thread.join()
                if "error" in done:
                    raise done["error"]
                engine.sync_weights(model)  # this step's update starts from them; the next rollout too
                record = record_of(p_groups, p_stats, *done["result"])
                record["overlap_wait_s"] = time.perf_counter() - t0
                result = after_update(record)
                pending = None
            groups = dist.broadcast_object(groups, info)  # sync point: the other ranks wait for the batch here
            if cfg.overlap and not boundary(step + 1):
                engine.end_step()  # the scheduler moves on; the workers keep generating with the weights they have
                done: dict = {}
                thread = threading.Thread(target=_capture, args=(update, (groups, step), done),
                                          name="mimo-rl-update", daemon=True)
                thread.start()
                pending = (thread, done, groups, stats)
                step += 1
                continue
            train_metrics, train_s = update(groups, step)
            engine.end_step(model)
            step += 1
            result = after_update(record_of(groups, stats, train_metrics, train_s))
    run.finish(model, tok, step >= cfg.steps)
    logger.close()
    (out / "summary.json").write_text(json.dumps(result, indent=2, default=float))
    return result


def cli(argv: list[str]) -> int:
    return stage_cli(argv, prog="mimo rl", description=__doc__.split("\n\n")[0], cls=RLConfig, section="rl",
                     main=main)
