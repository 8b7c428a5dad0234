"""``mimo demo``: the MiMo family -- Base, RL-Zero, SFT, RL -- rebuilt from nothing at toy scale on a CPU.

One command, no arguments, about 12 minutes on 2 cores (``--quick``: ~2 minutes, a smoke test for CI):

1. the toy corpus (generated math, code, text and synthetic reasoning sources) and a byte-level BPE tokenizer;
2. **Base**: pretraining with an MTP layer over three data stages (stage 2 raises math + code, stage 3 adds the
   synthetic reasoning traces, a longer context and RoPE base 640000);
3. **SFT**: supervised fine-tuning on toy problems answered by an *imperfect* teacher (some traces are wrong);
4. **RL** (from SFT) and **RL-Zero** (from Base): MiMo's GRPO on the Seamless Rollout Engine -- math reward
   (Math-Verify), test-difficulty code reward (levels from the starting model's pass matrix; RL-Zero uses the soft
   one), dynamic sampling, easy pool, early termination -- on harder problems than SFT saw;
5. **code rewards**: RL from SFT on the toy code problems alone with the vanilla (all tests), strict and soft
   rewards, same start and budget (the paper's comparison of code rewards at toy scale);
6. **control**: SFT continued with supervised training for the same compute as RL (so an RL gain is not just
   annealing);
7. the extra MTP layers (copied from the pretrained one, main model frozen) and speculative decoding;
8. evaluation of every model with MiMo's protocol (temperature 0.6, top-p 0.95, avg@k with standard errors) on
   held-out math and code problems, pass@k for k = 1..16, and held-out accuracy at every few RL steps of RL,
   RL-Zero, the control and the code-reward runs; ``report.md``, ``report.json`` and PNG plots.

Budgets are in steps (not seconds), so a re-run with the same seed gives the same table on the same machine;
float results differ between CPU kinds, so a claim must hold over seeds (``benchmarks/demo_seeds.py``), not in one
run's digits.  Every stage is cached in its folder: re-running a finished demo redoes nothing and keeps the
timings recorded when each stage ran (``timings.json``).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Literal

from mimo.config import F, add_config_args, config_from_args, load_yaml, stage_cli
from mimo.demo.report import write_report
from mimo.demo.stages import (
    compute_control_steps,
    evaluate_family,
    measure_rollout,
    measure_specdec,
    run_control,
    run_mtp,
    run_pretrain,
    run_rl,
    run_sft,
)
from mimo.errors import MimoError
from mimo.rewards.levels import SCHEMES
from mimo.utils.io import write_json
from mimo.utils.logging import format_seconds


@dataclasses.dataclass
class DemoConfig:
    out: str = F("runs/demo", "output folder (each stage in its own subfolder; report.md / report.json at the top)")
    quick: bool = F(False, "the ~3-minute smoke test (CI): smaller budgets everywhere, same pipeline; budget flags "
                           "given explicitly keep their values")
    seed: int = F(0, "seed of everything")
    threads: int = F(2, "torch threads for training stages")
    pretrain_steps: list[int] = F(factory=lambda: [120, 120, 50], help="optimizer steps of the three stages")
    sft_steps: int = F(240, "SFT optimizer steps")
    rl_steps: int = F(40, "RL iterations (RL from SFT)")
    rlzero_steps: int = F(10, "RL iterations (RL-Zero from Base)")
    rlzero_code_scheme: str = F("soft", "RL-Zero's code reward (soft: partial credit, so Base's rollouts give signal)")
    code_rl_steps: int = F(8, "RL iterations of each run of the code-reward comparison (from SFT, code only, half "
                              "the RL stage's batch)")
    code_rewards: list[str] = F(factory=lambda: ["vanilla", "strict", "soft"],
                                help="code rewards compared (each one RL run from SFT with the same budget)")
    curve_every: int = F(5, "RL steps between the checkpoints evaluated for the held-out math curves (the "
                            "code-reward runs: every quarter of their steps)")
    curve_problems: int = F(300, "held-out math problems of the curves (1 sample each)")
    curve_code_problems: int = F(50, "held-out code problems of the code-reward curves (2 samples each)")
    mtp_steps: int = F(30, "steps training the extra MTP layers")
    mtp_layers: int = F(3, "MTP layers after train-mtp")
    eval_math: int = F(2000, "held-out math problems of the family table")
    eval_code: int = F(200, "held-out code problems of the family table and the code-reward comparison")
    eval_samples: int = F(1, "samples per held-out problem (avg@k); for a fixed budget, more problems shrink the "
                             "standard error more than more samples")
    passk_problems: int = F(64, "held-out math problems of the pass@k curves")
    passk_code_problems: int = F(16, "held-out code problems of the pass@k curves")
    passk_samples: int = F(16, "samples per problem of the pass@k curves (k = 1 .. this)")
    eval_batch: int = F(128, "sequences per generation batch in evaluation")
    specdec_prompts: int = F(8, "prompts of the speculative-decoding measurement")
    rollout_backend: Literal["local", "vllm"] = F("local", "RL stages' rollout backend: local (worker processes) "
                                                           "or vllm")

    def scaled(self, explicit: frozenset[str] = frozenset()) -> DemoConfig:
        """The quick version: the same stages with budgets cut to fit ~3 minutes; a field in ``explicit`` (given
        on the command line or in a config file) keeps its value, and is named."""
        if not self.quick:
            return self
        kept = sorted(k for k in QUICK if k in explicit)
        if kept:
            print(f"[demo] --quick: keeping the explicitly given {', '.join(kept)}", flush=True)
        return dataclasses.replace(self, **{k: v for k, v in QUICK.items() if k not in explicit})


# --quick's budgets (every field a budget; the pipeline is the full one)
QUICK = dict(pretrain_steps=[12, 8, 6], sft_steps=10, rl_steps=2, rlzero_steps=1, code_rl_steps=1, curve_every=1,
             curve_problems=16, curve_code_problems=4, mtp_steps=8, eval_math=24, eval_code=8, eval_samples=2,
             passk_problems=8, passk_code_problems=4, passk_samples=4, eval_batch=32, specdec_prompts=4)

# the stages in order, each with its share of a full demo's time (the ETA's weights)
STAGES = {"corpus+pretrain (Base)": 5, "SFT": 1, "RL": 2.5, "RL-Zero": 1.5, "code rewards": 2, "control": 0.7,
          "MTP layers": 0.5, "evaluation": 2.5, "speculative": 0.3}


class Progress:
    """Stage headers with elapsed time and a step-weighted ETA for the whole demo, and the time ledger.

    ``timings.json`` in the output folder keeps, per stage, the seconds of the invocation that did its work; a
    stage reused from an earlier invocation keeps its recorded time, so a re-run's report shows the time the demo
    took to build, plus this invocation's own time apart."""

    def __init__(self, weights: dict[str, float], out: Path):
        self.weights, self.done, self.t0 = weights, 0.0, time.perf_counter()
        self.total = sum(weights.values())
        self.path = out / "timings.json"
        self.recorded: dict[str, float] = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self.now: dict[str, float] = {}
        self.reused: list[str] = []
        self.current: str | None = None
        self.t_stage = self.t0

    def stage(self, name: str) -> None:
        now = time.perf_counter()
        if self.current is not None:
            self.now[self.current] = now - self.t_stage
            self.done += self.weights.get(self.current, 0.0)
        self.current, self.t_stage = name, now
        elapsed = now - self.t0
        eta = elapsed / self.done * (self.total - self.done) if self.done > 0 else float("nan")
        tag = f"[{list(self.weights).index(name) + 1}/{len(self.weights)}] " if name in self.weights else ""
        print(f"\n=== {tag}{name} | elapsed {format_seconds(elapsed)} | ETA {format_seconds(eta)} ===", flush=True)

    def ran(self, did_work: bool) -> None:
        """The current stage did its work (its time is recorded at once) or was reused from an earlier
        invocation (its recorded time stays)."""
        if not did_work:
            self.reused.append(self.current)
        else:
            self.recorded[self.current] = time.perf_counter() - self.t_stage
            write_json(self.path, self.recorded)

    def finish(self) -> float:
        self.stage("done")
        for name, seconds in self.now.items():
            if name not in self.reused and name in self.recorded:
                self.recorded[name] = seconds
        write_json(self.path, self.recorded)
        return time.perf_counter() - self.t0


def main(cfg: DemoConfig, explicit: frozenset[str] = frozenset()) -> dict:
    import torch

    cfg = cfg.scaled(explicit)
    for scheme in cfg.code_rewards + [cfg.rlzero_code_scheme]:
        if scheme not in SCHEMES:
            raise MimoError(f"demo: code reward {scheme!r} is not one of {', '.join(SCHEMES)}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, cfg.threads))
    prog = Progress(STAGES, out)
    models: dict[str, Path] = {}
    prog.stage("corpus+pretrain (Base)")
    models["Base"], ran = run_pretrain(cfg, out)
    prog.ran(ran)
    prog.stage("SFT")
    models["SFT"], ran = run_sft(cfg, out, models["Base"])
    prog.ran(ran)
    prog.stage("RL")
    models["RL"], rl_metrics, ran = run_rl(cfg, out, models["SFT"], "rl", cfg.rl_steps)
    prog.ran(ran)
    prog.stage("RL-Zero")
    models["RL-Zero"], rlzero_metrics, ran = run_rl(cfg, out, models["Base"], "rl_zero", cfg.rlzero_steps,
                                                    code_scheme=cfg.rlzero_code_scheme)
    prog.ran(ran)
    prog.stage("code rewards")
    code_runs, any_ran = {}, False
    for scheme in cfg.code_rewards:
        code_runs[f"code_{scheme}"], _, ran = run_rl(cfg, out, models["SFT"], f"code_{scheme}", cfg.code_rl_steps,
                                                     code_scheme=scheme, code_only=True)
        any_ran |= ran
    prog.ran(any_ran)
    prog.stage("control")
    control_steps = compute_control_steps(rl_metrics, cfg)
    models["control"], ran = run_control(cfg, out, models["SFT"], control_steps)
    prog.ran(ran)
    prog.stage("MTP layers")
    mtp_model, ran = run_mtp(cfg, out, models["RL"])
    prog.ran(ran)
    prog.stage("evaluation")
    curve_runs = {"RL": (out / "rl", "SFT", "math"), "RL-Zero": (out / "rl_zero", "Base", "math"),
                  "control": (out / "control", "SFT", "math"),
                  **{name: (out / name, "SFT", "code") for name in code_runs}}
    results, curves, code_results, ran = evaluate_family(cfg, out, models, curve_runs, code_runs)
    prog.ran(ran)
    prog.stage("speculative")
    specdec, ran = measure_specdec(cfg, out, mtp_model)
    prog.ran(ran)
    seconds = prog.finish()
    rollout = measure_rollout(rl_metrics, rlzero_metrics)
    report = write_report(out, cfg, results, specdec, rollout, control_steps, curves, code_results,
                          prog.recorded, prog.now, prog.reused, seconds)
    print(f"\n[demo] done in {format_seconds(seconds)}: {out / 'report.md'}", flush=True)
    print((out / "report.md").read_text().split("\n## ", 2)[1] if (out / "report.md").is_file() else "")
    return report


def parse(argv: list[str]) -> tuple[DemoConfig, frozenset[str]]:
    """The demo's config from the command line, and the fields given explicitly (flags or the config file)."""
    import argparse

    parser = argparse.ArgumentParser(prog="mimo demo", description=__doc__.split("\n\n")[0])
    add_config_args(parser, DemoConfig, "demo")
    args = parser.parse_args(argv)
    cfg = config_from_args(DemoConfig, "demo", args)
    explicit = {k[4:] for k, v in vars(args).items() if k.startswith("cfg:") and v is not None}
    if args.config:
        explicit |= set(load_yaml(args.config).get("demo") or {})
    return cfg, frozenset(explicit)


def cli(argv: list[str]) -> int:
    _, explicit = parse(argv)  # which budget flags --quick must leave alone
    return stage_cli(argv, prog="mimo demo", description=__doc__.split("\n\n")[0], cls=DemoConfig, section="demo",
                     main=lambda cfg: main(cfg, explicit))
