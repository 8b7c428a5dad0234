"""The stages of ``mimo demo``, each a thin call into the real stage code with demo-sized budgets.

Every stage writes into its own folder and is skipped when that folder already holds a finished model made with
the same configuration (so an interrupted demo continues where it stopped).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import yaml

from mimo.config import from_dict, resolve_config, to_dict
from mimo.eval import EvalProtocol, evaluate, toy_benchmark
from mimo.eval.report import plot_pass_at_k
from mimo.infer.bench import specdec_benchmark
from mimo.model.io import load_model_dir
from mimo.rewards.pool import RewardPool
from mimo.rl import trainer as rl_stage
from mimo.tasks import HELDOUT_SEED
from mimo.tasks.spec import harder
from mimo.train import mtp as mtp_stage
from mimo.train import pretrain as pretrain_stage
from mimo.train import sft as sft_stage
from mimo.utils.io import write_json


def _done(stage_dir: Path, section: str, cfg) -> bool:
    """The stage already finished with this very config."""
    saved = stage_dir / "config.yaml"
    if not (stage_dir / "final" / "model.safetensors").is_file() or not saved.is_file():
        return False
    return (yaml.safe_load(saved.read_text()) or {}).get(section) == json.loads(json.dumps(to_dict(cfg)))


def _tiny(cls, section: str, **overrides):
    """A stage config from the tiny preset with Python-valued overrides (dotted keys for nested fields).

    Stages overwrite their folder: the demo itself skips a stage that finished with the same config and reruns
    one whose config changed, so its folders are a cache rather than runs to protect."""
    cfg = resolve_config(cls, section, preset="tiny")
    if "overwrite" in {f.name for f in dataclasses.fields(cls)} and not overrides.get("resume"):
        overrides = {"overwrite": True, **overrides}
    nested: dict = {}
    for key, value in overrides.items():
        d = nested
        parts = key.split(".")
        for p in parts[:-1]:
            d = d.setdefault(p, {})
        d[parts[-1]] = value
    return from_dict(cls, nested, f"demo:{section}", base=cfg)


def run_pretrain(cfg, out: Path) -> Path:
    base = _tiny(pretrain_stage.PretrainConfig, "pretrain")
    stages = [dict(to_dict(s), steps=n) for s, n in zip(base.stages, cfg.pretrain_steps)]
    pc = _tiny(pretrain_stage.PretrainConfig, "pretrain", out_dir=str(out / "pretrain"), stages=stages, seed=cfg.seed,
               threads=cfg.threads, eval_every=max(1, sum(cfg.pretrain_steps) // 4),
               save_every=sum(cfg.pretrain_steps), decay_steps=max(1, cfg.pretrain_steps[-1] // 2),
               warmup_steps=max(1, min(20, cfg.pretrain_steps[0] // 4)),
               batch_warmup_steps=max(1, min(30, cfg.pretrain_steps[0] // 3)),
               **{"toy.seed": cfg.seed, "toy.docs_per_source": 2000 if cfg.quick else 8000})
    if not _done(out / "pretrain", "pretrain", pc):
        pretrain_stage.main(pc)
    return out / "pretrain" / "final"


def sft_config(cfg, out: Path, init: Path, name: str = "sft", steps: int | None = None, lr: float | None = None):
    kw = {"init_from": str(init), "out_dir": str(out / name), "seed": cfg.seed, "threads": cfg.threads,
          "steps": steps if steps is not None else cfg.sft_steps, "decontaminate_toy_heldout": 1000,
          "toy.seed": cfg.seed + 1, "toy.problems": 600 if cfg.quick else 3000,
          "toy.code_problems": 100 if cfg.quick else 1000}
    if lr is not None:
        kw["lr"], kw["decay_steps"] = lr, 0
    return _tiny(sft_stage.SFTConfig, "sft", **kw)


def run_sft(cfg, out: Path, base: Path) -> Path:
    sc = sft_config(cfg, out, base)
    if not _done(out / "sft", "sft", sc):
        sft_stage.main(sc)
    return out / "sft" / "final"


def run_control(cfg, out: Path, sft: Path, steps: int) -> Path:
    """SFT continued on the same data, at the SFT run's final (low) learning rate, for RL's compute."""
    base = sft_config(cfg, out, sft)
    low = base.lr * base.min_lr_ratio if base.decay_steps else base.lr
    sc = sft_config(cfg, out, sft, name="control", steps=max(1, steps), lr=low)
    if not _done(out / "control", "sft", sc):
        sft_stage.main(sc)
    return out / "control" / "final"


def rl_config(cfg, out: Path, init: Path, name: str, steps: int):
    quick = {"scheduler.batch_size": 2, "scheduler.group_size": 4, "rollout.max_new_tokens": 64,
             "rewards.level_rollouts": 2, "actor.mini_batch_groups": 2} if cfg.quick else {}
    return _tiny(rl_stage.RLConfig, "rl", init_from=str(init), out_dir=str(out / name), steps=steps, seed=cfg.seed,
                 threads=1, eval_every=0, save_every=steps, **{
                     "toy.seed": cfg.seed + 7, "toy.heldout_math": 0, "toy.heldout_code": 0,
                     "toy.math_problems": 200 if cfg.quick else 2000, "toy.code_problems": 24 if cfg.quick else 48,
                     "rollout.backend": cfg.rollout_backend, **quick})


def run_rl(cfg, out: Path, init: Path, name: str, steps: int) -> tuple[Path, list[dict]]:
    rc = rl_config(cfg, out, init, name, steps)
    if not _done(out / name, "rl", rc):
        rl_stage.main(rc)
    metrics = [json.loads(line) for line in (out / name / "metrics.jsonl").read_text().splitlines()]
    return out / name / "final", [m for m in metrics if m.get("step", 0) > 0]


def compute_control_steps(rl_metrics: list[dict], cfg) -> int:
    """SFT steps with the compute of the RL run: a decoded token costs a forward (2N FLOPs), a trained token a
    forward and a backward (6N); an SFT step trains batch_size x seq_len tokens."""
    sc = sft_config(cfg, Path("."), Path("."))
    rl_flops = sum(2 * m.get("gen_tokens", 0) + 6 * m.get("train_tokens", 0) for m in rl_metrics)
    return max(1, math.ceil(rl_flops / (6 * sc.batch_size * sc.seq_len)))


def run_mtp(cfg, out: Path, model: Path) -> Path:
    mc = _tiny(mtp_stage.MtpConfig, "mtp", init_from=str(model), out_dir=str(out / "mtp"),
               num_mtp_layers=cfg.mtp_layers, steps=cfg.mtp_steps, seed=cfg.seed, threads=cfg.threads, accept_prompts=0,
               decay_steps=max(1, cfg.mtp_steps // 3), warmup_steps=max(1, min(20, cfg.mtp_steps // 5)),
               eval_every=cfg.mtp_steps, save_every=cfg.mtp_steps,
               **{"toy.seed": cfg.seed, "toy.docs_per_source": 2000 if cfg.quick else 8000})
    if not _done(out / "mtp", "mtp", mc):
        mtp_stage.main(mc)
    return out / "mtp" / "final"


def heldout_problems(cfg) -> tuple[list, list]:
    math_p = harder().math(HELDOUT_SEED).sample(cfg.eval_math, "heldout")
    code_p = harder().code(HELDOUT_SEED).sample(cfg.eval_code, "heldout")
    return math_p, code_p


def evaluate_family(cfg, out: Path, models: dict[str, Path]) -> dict[str, dict]:
    """Every model on the same held-out math and code problems under MiMo's protocol."""

    math_p, code_p = heldout_problems(cfg)
    benches = [toy_benchmark("toy_math", math_p, samples=cfg.eval_samples, max_new_tokens=96),
               toy_benchmark("toy_code", code_p, samples=cfg.eval_samples, max_new_tokens=128)]
    protocol = EvalProtocol(temperature=0.6, top_p=0.95, n=cfg.eval_samples, seed=cfg.seed)
    results: dict[str, dict] = {}
    with RewardPool() as pool:
        for name, path in models.items():
            model, tok = load_model_dir(path)
            results[name] = evaluate((model, tok), benches, protocol, out_dir=out / "eval" / name, pool=pool,
                                     show_progress=False, plots=False)
            line = ", ".join(f"{b} {100 * r['pass@1']:.1f} +- {100 * r['stderr']:.1f}"
                             for b, r in results[name].items())
            print(f"[demo/eval] {name}: {line}", flush=True)
    for bench in ("toy_math", "toy_code"):
        plot_pass_at_k({n: r[bench]["pass@k"] for n, r in results.items()}, out / "plots" / f"pass_at_k_{bench}.png",
                       f"pass@k on held-out {bench.replace('_', ' ')}")
    return results


def measure_specdec(cfg, out: Path, model_dir: Path) -> dict:
    math_p, _ = heldout_problems(cfg)
    model, tok = load_model_dir(model_dir)
    prompts = [tok.chat_prompt(p.prompt_text()) for p in math_p[: cfg.specdec_prompts]]
    res = specdec_benchmark(model, prompts, max_new_tokens=96, stop_ids=tok.stop_ids, temperatures=(0.0, 0.6),
                            peers=False, repeats=1 if cfg.quick else 2, log=lambda s: print(f"[demo/specdec] {s}"))
    write_json(out / "specdec.json", res)
    return res


def measure_rollout(rl_metrics: list[dict], rlzero_metrics: list[dict]) -> dict:
    rows = rl_metrics + rlzero_metrics

    def mean(key):
        vals = [m[key] for m in rows if key in m]
        return sum(vals) / len(vals) if vals else 0.0

    return {"idle_ratio": mean("idle_ratio"), "waste_ratio": mean("waste_ratio"), "rollout_s": mean("rollout_s"),
            "reward_s": mean("reward_s"), "train_s": mean("train_s"), "informative_groups": mean("informative_groups"),
            "launched_groups": mean("launched_groups"), "steps": len(rows)}
