#!/usr/bin/env python
"""``mimo rl`` scaled out: K trainer ranks (torchrun, DDP) x E vLLM rollout engines (Ray actors), same seed.

    python benchmarks/rl_scale.py --init_from runs/demo/sft/final [--layouts 1+1,2+2] [--steps 10] [--seed 0]
                                  [--out runs/rl_scale] [--json FILE]

Each layout ``K+E`` runs ``torchrun --nproc_per_node K -m mimo.cli rl --preset tiny --rollout.backend vllm
--rollout.engines E`` from the same start and seed, validating on the held-out toy sets before the first step
and after the last.  The table: seconds per step, the weight sync (``sync_s``: the trainer's state dict into
every engine) and the engines' idle ratio per step (means over the steps), and held-out math / code accuracy
with its binomial standard error.  On one 2-core machine the layouts share the same cores, so s/step says what
the coordination costs here, not what more machines would give.  Code levels are off (``level_rollouts 0``) to
keep a run to minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_layout(init_from: str, out: Path, ranks: int, engines: int, steps: int, seed: int) -> dict:
    from mimo.config import load_yaml

    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks), "-m", "mimo.cli", "rl",
           "--preset", "tiny", "--init_from", init_from, "--out_dir", str(out), "--overwrite", "true",
           "--steps", str(steps), "--seed", str(seed), "--eval_every", str(steps), "--save_every", str(steps),
           "--rollout.backend", "vllm", "--rollout.engines", str(engines), "--rewards.level_rollouts", "0",
           "--log_every", "1"]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=str(REPO), env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"rl_scale: {ranks}+{engines} failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}")
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in recs if r.get("step", 0) > 0 and "rollout_s" in r]
    marks = [r["time"] for r in train]
    first, last = recs[0], recs[-1]
    row = {"layout": f"{ranks}+{engines}", "ranks": ranks, "engines": engines, "steps": len(train), "wall_s": wall,
           "s_per_step": (marks[-1] - marks[0]) / max(len(marks) - 1, 1),
           "sync_s": statistics.mean(r["sync_s"] for r in train),
           "idle_ratio": statistics.mean(r["idle_ratio"] for r in train),
           "workers_active": statistics.mean(r["workers_active"] for r in train),
           "world_size": train[-1].get("world_size", 1)}
    for kind, n in (("math", "heldout_math"), ("code", "heldout_code")):
        key = f"eval_{kind}_acc"
        if key in last:
            size = int(load_yaml(out / "config.yaml")["rl"]["toy"][n])
            p = last[key]
            row[f"{kind}_start"] = first.get(key)
            row[f"{kind}_final"] = p
            row[f"{kind}_se"] = math.sqrt(p * (1 - p) / size)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--init_from", required=True, help="the start model (the demo's SFT: runs/demo/sft/final)")
    ap.add_argument("--layouts", default="1+1,2+2", help="comma-separated K+E: trainer ranks + vLLM engines")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/rl_scale")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if not (Path(args.init_from) / "config.json").is_file():
        ap.error(f"--init_from: {args.init_from} holds no model (config.json); run `mimo demo` first")
    rows = []
    for layout in args.layouts.split(","):
        try:
            ranks, engines = (int(x) for x in layout.split("+"))
        except ValueError:
            ap.error(f"--layouts: expected K+E (e.g. 2+2), got {layout!r}")
        print(f"[rl_scale] {layout}: {ranks} trainer rank(s), {engines} vLLM engine(s), {args.steps} steps ...",
              flush=True)
        rows.append(run_layout(args.init_from, Path(args.out) / layout.replace("+", "_"), ranks, engines,
                               args.steps, args.seed))
        print(f"[rl_scale] {layout} done in {rows[-1]['wall_s']:.0f}s", flush=True)

    def acc(r: dict, kind: str) -> str:
        if r.get(f"{kind}_final") is None:
            return "-"
        return f"{100 * r[f'{kind}_start']:.1f} -> {100 * r[f'{kind}_final']:.1f} +- {100 * r[f'{kind}_se']:.1f}"

    print(f"\n{'layout':6s} | {'s/step':>6s} | {'sync_s':>7s} | {'idle':>5s} | {'engines used':>12s} | "
          f"{'held-out math %':>21s} | {'held-out code %':>21s}")
    for r in rows:
        print(f"{r['layout']:6s} | {r['s_per_step']:6.2f} | {r['sync_s']:7.3f} | {r['idle_ratio']:5.2f} | "
              f"{r['workers_active']:12.2f} | {acc(r, 'math'):>21s} | {acc(r, 'code'):>21s}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "params": vars(args)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
