"""``mimo demo``: the MiMo family -- Base, RL-Zero, SFT, RL -- rebuilt from nothing at toy scale on a CPU.

One command, no arguments, about 15 minutes on 2 cores (``--quick``: ~3 minutes, for CI):

1. the toy corpus (generated math, code, text and synthetic reasoning sources) and a byte-level BPE tokenizer;
2. **Base**: pretraining with an MTP layer over three data stages (stage 2 raises math + code, stage 3 adds the
   synthetic reasoning traces, a longer context and RoPE base 640000);
3. **SFT**: supervised fine-tuning on toy problems answered by an *imperfect* teacher (some traces are wrong);
4. **RL** (from SFT) and **RL-Zero** (from Base): MiMo's GRPO on the Seamless Rollout Engine -- math reward
   (Math-Verify), test-difficulty code reward (strict levels from the starting model's pass matrix), dynamic
   sampling, easy pool, early termination -- on harder problems than SFT saw;
5. **control**: SFT continued with supervised training for the same compute as RL (so an RL gain is not just
   annealing);
6. the extra MTP layers (copied from the pretrained one, main model frozen) and speculative decoding;
7. evaluation of every model with MiMo's protocol (temperature 0.6, top-p 0.95, avg@k with standard errors,
   pass@k curves) on held-out math and code problems; ``report.md``, ``report.json`` and PNG plots.

Budgets are in steps (not seconds), so a re-run with the same seed gives the same table on CPU.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from mimo.config import F, stage_cli
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
from mimo.utils.logging import format_seconds


@dataclasses.dataclass
class DemoConfig:
    out: str = F("runs/demo", "output folder (each stage in its own subfolder; report.md / report.json at the top)")
    quick: bool = F(False, "the ~3-minute version (CI): smaller budgets everywhere, same pipeline")
    seed: int = F(0, "seed of everything")
    threads: int = F(2, "torch threads for training stages")
    pretrain_steps: list[int] = F(factory=lambda: [120, 120, 50], help="optimizer steps of the three stages")
    sft_steps: int = F(120, "SFT optimizer steps")
    rl_steps: int = F(40, "RL iterations (RL from SFT)")
    rlzero_steps: int = F(10, "RL iterations (RL-Zero from Base)")
    mtp_steps: int = F(30, "steps training the extra MTP layers")
    mtp_layers: int = F(3, "MTP layers after train-mtp")
    eval_math: int = F(500, "held-out math problems")
    eval_code: int = F(50, "held-out code problems")
    eval_samples: int = F(2, "samples per held-out problem (avg@k, pass@k)")
    specdec_prompts: int = F(16, "prompts of the speculative-decoding measurement")
    rollout_backend: str = F("local", "RL stages' rollout backend: local (worker processes) or vllm")

    def scaled(self) -> DemoConfig:
        """The quick version: the same stages with budgets cut to fit ~3 minutes."""
        if not self.quick:
            return self
        return dataclasses.replace(self, pretrain_steps=[12, 8, 6], sft_steps=10, rl_steps=2, rlzero_steps=1,
                                   mtp_steps=8, eval_math=24, eval_code=8, eval_samples=2, specdec_prompts=4)


STAGES = ("corpus+pretrain (Base)", "SFT", "RL", "RL-Zero", "control", "MTP layers", "evaluation", "speculative",
          "report")


class Progress:
    """Stage headers with elapsed time and a step-weighted ETA for the whole demo."""

    def __init__(self, weights: dict[str, float]):
        self.weights, self.done, self.t0 = weights, 0.0, time.perf_counter()
        self.total = sum(weights.values())
        self.times: dict[str, float] = {}
        self.current: str | None = None
        self.t_stage = self.t0

    def stage(self, name: str) -> None:
        now = time.perf_counter()
        if self.current is not None:
            self.times[self.current] = now - self.t_stage
            self.done += self.weights.get(self.current, 0.0)
        self.current, self.t_stage = name, now
        elapsed = now - self.t0
        eta = elapsed / self.done * (self.total - self.done) if self.done > 0 else float("nan")
        tag = f"[{list(self.weights).index(name) + 1}/{len(self.weights)}] " if name in self.weights else ""
        print(f"\n=== {tag}{name} | elapsed {format_seconds(elapsed)} | ETA {format_seconds(eta)} ===", flush=True)

    def finish(self) -> float:
        self.stage("done")
        return time.perf_counter() - self.t0


def main(cfg: DemoConfig) -> dict:
    import torch

    cfg = cfg.scaled()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, cfg.threads))
    weights = {"corpus+pretrain (Base)": 5, "SFT": 1, "RL": 2.5, "RL-Zero": 2.5, "control": 1, "MTP layers": 0.7,
               "evaluation": 2, "speculative": 0.3, "report": 0.1}
    prog = Progress(weights)
    models: dict[str, Path] = {}
    prog.stage("corpus+pretrain (Base)")
    models["Base"] = run_pretrain(cfg, out)
    prog.stage("SFT")
    models["SFT"] = run_sft(cfg, out, models["Base"])
    prog.stage("RL")
    models["RL"], rl_metrics = run_rl(cfg, out, models["SFT"], "rl", cfg.rl_steps)
    prog.stage("RL-Zero")
    models["RL-Zero"], rlzero_metrics = run_rl(cfg, out, models["Base"], "rl_zero", cfg.rlzero_steps)
    prog.stage("control")
    control_steps = compute_control_steps(rl_metrics, cfg)
    models["control"] = run_control(cfg, out, models["SFT"], control_steps)
    prog.stage("MTP layers")
    mtp_model = run_mtp(cfg, out, models["RL"])
    prog.stage("evaluation")
    results = evaluate_family(cfg, out, models)
    prog.stage("speculative")
    specdec = measure_specdec(cfg, out, mtp_model)
    prog.stage("report")
    rollout = measure_rollout(rl_metrics, rlzero_metrics)
    seconds = prog.finish()
    report = write_report(out, cfg, results, specdec, rollout, rl_metrics, rlzero_metrics, control_steps,
                          prog.times, seconds)
    print(f"\n[demo] done in {format_seconds(seconds)}: {out / 'report.md'}", flush=True)
    print((out / "report.md").read_text().split("\n## ", 2)[1] if (out / "report.md").is_file() else "")
    return report


def cli(argv: list[str]) -> int:
    return stage_cli(argv, prog="mimo demo", description=__doc__.split("\n\n")[0], cls=DemoConfig,
                     section="demo", main=main)
