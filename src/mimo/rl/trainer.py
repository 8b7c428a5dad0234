"""``mimo rl``: MiMo's GRPO on the Seamless Rollout Engine, from any checkpoint (Base -> RL-Zero, SFT -> RL).

Each iteration the engine (:mod:`mimo.rl.engine`) rolls out over-sampled prompt groups until ``batch_size``
informative groups are in (dynamic sampling; the easy pool is drawn with probability ``alpha``), rewards are
computed asynchronously on the reward pool (Math-Verify for math, the sandboxed judge with the test-difficulty
reward for code; no format or length reward), and the actor (:mod:`mimo.rl.actor`) takes ``batch_size /
mini_batch_groups`` gradient steps with the clip-higher token-level loss and no KL.  Weights then go back to the
rollout workers.  Validation runs through the same engine.  Checkpoints hold the model, optimizer, scheduler
(sampler, easy pool, pass-rate statistics) and RNG, written atomically between steps: ``--resume true`` after a
``kill -9`` repeats and loses no step.

Logged per step: reward, pass rate, response length, entropy, clip fraction, approx KL, valid / wasted samples,
worker idle ratio, waste ratio, easy-pool size and the time split rollout / reward / train.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch

from mimo.config import F, save_yaml, stage_cli, to_dict
from mimo.errors import MimoError
from mimo.rewards.pool import PoolConfig, RewardPool
from mimo.rl.actor import ActorConfig, update_policy
from mimo.rl.engine import RolloutEngine
from mimo.rl.problems import ToyRL, load_problems, toy_problems
from mimo.rl.rollout import EndpointBackend, GenParams, LocalProcessBackend
from mimo.rl.sampling import ProblemSampler
from mimo.rl.scheduler import Scheduler, SchedulerConfig
from mimo.train.checkpoint import CheckpointManager, load_model_dir, save_model_dir
from mimo.train.loop import make_optimizer
from mimo.utils.io import write_jsonl
from mimo.utils.logging import MetricsLogger
from mimo.utils.seed import rng_state, seed_everything, set_rng_state


@dataclasses.dataclass
class RolloutConfig:
    """Where and how responses are generated."""

    backend: str = F("local", "local (worker processes with a torch copy), endpoint (OpenAI-compatible), vllm")
    workers: int = F(2, "rollout workers (local processes; concurrent requests for endpoint)")
    threads_per_worker: int = F(1, "torch threads per local worker")
    url: str = F("http://127.0.0.1:8000/v1", "endpoint base URL")
    max_new_tokens: int = F(128, "generation budget per response (7B: 32768)")
    temperature: float = F(1.0, "sampling temperature (MiMo: 1.0)")
    top_p: float = F(1.0, "nucleus mass (MiMo: 1.0)")
    deterministic: bool = F(True, "hand events to the scheduler in a canonical order (reproducible runs)")
    vllm_max_seqs: int = F(256, "vllm: most sequences in the engine's running batch")
    vllm_kv_cache_gib: int = F(1, "vllm on CPU: KV-cache size in GiB (VLLM_CPU_KVCACHE_SPACE, when not set)")
    vllm_seed: int = F(0, "vllm: engine seed (each request also carries its own seed)")


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
    resume: bool = F(False, "resume from out_dir's latest checkpoint")
    max_steps: int | None = F(None, "stop after this many steps (tests)")
    seed: int = F(0, "random seed")
    threads: int = F(0, "torch threads of the trainer (0: default)")
    log_every: int = F(1, "print a log line every N steps")


def make_backend(cfg: RolloutConfig, model, model_dir: str):
    if cfg.backend == "local":
        return LocalProcessBackend(model, cfg.workers, cfg.threads_per_worker)
    if cfg.backend == "endpoint":
        return EndpointBackend(cfg.url, num_workers=cfg.workers)
    if cfg.backend == "vllm":
        from mimo.rl.vllm_rollout import VLLMBackend  # imports vLLM (seconds): only when asked for

        backend = VLLMBackend(model_dir, max_num_seqs=cfg.vllm_max_seqs,
                              kv_cache_gib=cfg.vllm_kv_cache_gib, seed=cfg.vllm_seed)
        backend.sync_weights(model)  # the trainer's weights, whatever the directory held (e.g. after resume)
        return backend
    raise MimoError(f"rollout.backend: expected local, endpoint or vllm, got {cfg.backend!r}")


def group_metrics(groups) -> dict[str, float]:
    samples = [s for g in groups for s in g.samples]
    n = max(len(samples), 1)
    return {
        "reward": sum(s.reward for s in samples) / n,
        "pass_rate": sum(s.reward >= 1.0 for s in samples) / n,
        "response_len": sum(len(s.response_ids) for s in samples) / n,
        "truncated": sum(s.truncated for s in samples) / n,
    }


def assign_levels(engine: RolloutEngine, problems, rollouts: int, params: GenParams, n_levels: int) -> dict:
    """Test difficulty levels per code problem from the pass matrix of ``rollouts`` samples of the current policy."""
    from mimo.rewards.levels import assign_test_levels, verdict_matrix

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
    params = GenParams(cfg.rollout.max_new_tokens, cfg.eval_temperature, cfg.eval_top_p, engine.params.stop_ids)
    results, stats = engine.validate([p.id for p in heldout], cfg.eval_samples, params)
    metrics: dict[str, float] = {"eval_s": stats.rollout_s, "eval_idle_ratio": stats.idle_ratio}
    kinds = {p.id: p.kind for p in heldout}
    rows = []
    for kind in ("math", "code"):
        scores = [s.reward for pid, ss in results.items() if kinds[pid] == kind for s in ss]
        if scores:
            metrics[f"eval_{kind}_reward"] = sum(scores) / len(scores)
            metrics[f"eval_{kind}_acc"] = sum(r >= 1.0 for r in scores) / len(scores)
    for pid, ss in list(results.items()):
        rows += [{"problem_id": pid, "completion": s.text, "reward": s.reward, "reason": s.reason} for s in ss]
    write_jsonl(out / "samples" / f"eval_step{step:05d}.jsonl", rows)
    return metrics


def main(cfg: RLConfig) -> dict:
    if not cfg.init_from:
        raise MimoError("rl: --init_from (a model directory) is required")
    if cfg.rollout.backend != "local" and cfg.steps > 0 and cfg.rollout.backend != "vllm":
        raise MimoError("rl: training needs a backend whose weights follow the trainer (local or vllm); "
                        "the endpoint backend serves a fixed policy")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_yaml(out / "config.yaml", {"rl": to_dict(cfg)})
    model, tok = load_model_dir(cfg.init_from)
    if tok is None:
        raise MimoError(f"{cfg.init_from}: no tokenizer in the model directory")
    train = load_problems(cfg.data, tok) if cfg.data else toy_problems(cfg.toy, tok, "train")
    heldout = load_problems(cfg.heldout, tok) if cfg.heldout else toy_problems(cfg.toy, tok, "heldout")
    problems = {p.id: p for p in train + heldout}
    if len(problems) != len(train) + len(heldout):
        raise MimoError("rl: training and held-out problems share ids")
    sampler = ProblemSampler([p.id for p in train], alpha=cfg.alpha, seed=cfg.seed)
    sched = Scheduler(cfg.scheduler, sampler)
    optimizer = make_optimizer(model, cfg.actor.lr, cfg.actor.weight_decay)
    ckpt = CheckpointManager(out, keep=cfg.keep_checkpoints)
    step = 0
    levels: dict = {}
    if cfg.resume:
        path, state = ckpt.restore(model, optimizer)
        sched.load_state_dict(state["scheduler"])
        lost = sched.abandon_in_flight()
        set_rng_state(state["rng"])
        step, levels = state["step"], state.get("levels", {})
        print(f"[rl] resumed from {path} at step {step}" + (f" ({len(lost)} in-flight tasks dropped)" if lost else ""),
              flush=True)
    params = GenParams(cfg.rollout.max_new_tokens, cfg.rollout.temperature, cfg.rollout.top_p, tuple(tok.stop_ids))
    last = min(cfg.steps, cfg.max_steps) if cfg.max_steps is not None else cfg.steps
    logger = MetricsLogger(out, total_steps=last, print_every=cfg.log_every, resume_step=step if cfg.resume else None)
    with make_backend(cfg.rollout, model, cfg.init_from) as backend, RewardPool(cfg.rewards.pool) as pool:
        engine = RolloutEngine(sched, backend, pool, problems, tok.decode, params, seed=cfg.seed,
                               deterministic=cfg.rollout.deterministic, code_scheme=cfg.rewards.code_scheme)
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
        while step < last:
            groups, stats = engine.run_step()
            t0 = time.perf_counter()
            train_metrics = update_policy(model, optimizer, groups, cfg.actor, tok.pad_id, seed=cfg.seed + step)
            train_s = time.perf_counter() - t0
            engine.end_step(model)
            step += 1
            record = {**group_metrics(groups), **{k: v for k, v in train_metrics.items()},
                      **stats.as_metrics(), "train_s": train_s, "easy_pool": sched.sampler.summary()["easy_pool"],
                      # compute accounting (for compute-matched baselines): tokens decoded by the rollout
                      # workers, and prompt + response tokens the update ran forward and backward over
                      "gen_tokens": sum(stats.tokens.values()),
                      "train_tokens": cfg.actor.epochs * sum(len(s.prompt_ids) + len(s.response_ids)
                                                             for g in groups for s in g.samples),
                      "tokens": sum(len(s.response_ids) for g in groups for s in g.samples)}
            if heldout and ((cfg.eval_every and step % cfg.eval_every == 0) or step == last):
                record.update(validate(engine, heldout, cfg, out, step))
            result = logger.log(step, **record)
            if (cfg.save_every and step % cfg.save_every == 0) or step == last:
                ckpt.save(step, model, {"optimizer": optimizer.state_dict(), "scheduler": sched.state_dict(),
                                        "rng": rng_state(), "levels": levels}, tokenizer=tok,
                          config={"rl": to_dict(cfg)})
    if step >= cfg.steps:
        save_model_dir(out / "final", model, tok)
        print(f"[rl] done: {out / 'final'}", flush=True)
    logger.close()
    (out / "summary.json").write_text(json.dumps(result, indent=2, default=float))
    return result


def cli(argv: list[str]) -> int:
    return stage_cli(argv, prog="mimo rl", description=__doc__.split("\n\n")[0], cls=RLConfig, section="rl",
                     main=main)
