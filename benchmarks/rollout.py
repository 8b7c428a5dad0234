#!/usr/bin/env python
"""Table 2 and Table 3 of MiMo (Seamless Rollout Engine), reproduced on the trace-driven simulator.

    python benchmarks/rollout.py --simulate [--json FILE] [--steps 12] [--seed 0] [--sensitivity]
                                 [--trace.FIELD VALUE ...] [--system.FIELD VALUE ...]
    python benchmarks/rollout.py --real --model runs/demo/sft/final [--real-steps 6] [--backend local|vllm]
                                 [--json FILE]

Runs the real scheduler (``mimo.rl.scheduler``) on simulated workers with a virtual clock
(``mimo.rl.simulator``; its docstring defines the trace model and every metric) and prints each row next to the
paper's.  ``--json`` writes ``{"rows": [{"method", "overall_speedup", "rollout_speedup", "normalized_idle_time",
"idle_ratio", "waste_ratio"}, ...], "validation": {"speedup", "idle_ratio_naive", "idle_ratio_engine"}}``.
``--sensitivity`` adds rows for the early-termination variants and assumptions the paper leaves open.

``--real`` runs Table 2's five modes as real ``mimo rl`` runs on this machine: a tiny model (e.g. the demo's SFT
checkpoint) in local rollout worker processes, real rewards (Math-Verify workers; the bubblewrap judge for code
problems, "vanilla" all-tests reward so no level assignment is needed), the same seed and problems in every mode.
``--backend vllm`` runs the same five modes with vLLM rollouts (one continuously batched engine for every task in
flight; ``--real-workers`` then has no effect on rollouts).
Per mode: seconds per step (rollout + reward wait + training), rollout seconds, worker idle ratio and sample waste
as ``mimo rl`` logs them; speedups relative to naive dynamic sampling.  Its JSON goes under ``"real_rows"``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from mimo.rl.scheduler import MODES, SchedulerConfig
from mimo.rl.simulator import SystemConfig, TraceConfig, simulate_mode, table2, table3, trace_stats
from mimo.utils.io import write_json

# Table 2 of arXiv 2505.07608 (256 GPUs): overall, rollout, normalised idle time, idle ratio, sample waste ratio.
PAPER = {
    "no_dynamic_sampling": (2.45, 2.82, 0.36, 0.708, None),
    "naive_dynamic_sampling": (1.00, 1.00, 1.00, 0.693, 0.221),
    "continuous_rollout": (1.99, 2.20, 0.25, 0.388, 0.139),
    "async_reward": (2.09, 2.34, 0.21, 0.340, 0.164),
    "early_termination": (2.29, 2.61, 0.15, 0.277, 0.129),
}
PAPER_VALIDATION = (1.96, 0.658, 0.329)  # speedup, idle ratio naive, idle ratio engine
KEYS = ("overall_speedup", "rollout_speedup", "normalized_idle_time", "idle_ratio", "waste_ratio")


def _fmt(v, pct: bool) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.1f}%" if pct else f"{v:.2f}"


def print_table2(rows: list[dict], label: str = "sim") -> None:
    heads = ("overall", "rollout", "norm. idle", "idle ratio", "waste")
    print(f"{'method':24s} | " + " | ".join(f"{h:>15s}" for h in heads))
    print(f"{'':24s} | " + " | ".join(f"{label:>7s} {'paper':>7s}" for _ in heads))
    for r in rows:
        cells = []
        for key, paper in zip(KEYS, PAPER[r["method"]]):
            pct = key in ("idle_ratio", "waste_ratio")
            cells.append(f"{_fmt(r[key], pct):>7s} {_fmt(paper, pct):>7s}")
        print(f"{r['method']:24s} | " + " | ".join(cells))


def run_real(model: str, steps: int, workers: int, out_root: str | None, backend: str = "local") -> list[dict]:
    """Table 2's five modes as real ``mimo rl`` runs from ``model`` (see the module docstring)."""
    import json
    import tempfile
    from pathlib import Path

    from mimo.config import from_dict, resolve_config
    from mimo.rl.trainer import RLConfig
    from mimo.rl.trainer import main as rl_main

    root = Path(out_root or tempfile.mkdtemp(prefix="rollout-real-"))
    rows, stats = [], {}
    for mode in MODES:
        over = {"init_from": model, "out_dir": str(root / mode), "steps": steps, "eval_every": 0, "save_every": 0,
                "seed": 0, "threads": 1, "scheduler": {"mode": mode, "batch_size": 8, "group_size": 8,
                                                      "max_active_tasks": 2 * workers},
                "rollout": {"workers": workers, "backend": backend},
                "rewards": {"code_scheme": "vanilla", "level_rollouts": 0, "pool": {"workers": 2}},
                "toy": {"math_problems": 400, "code_problems": 60, "heldout_math": 0, "heldout_code": 0}}
        base = resolve_config(RLConfig, "rl", preset="tiny")
        cfg = from_dict(RLConfig, over, "benchmarks/rollout.py --real", base=base)
        print(f"[real] {mode}: {steps} steps from {model}, {backend} rollouts", flush=True)
        rl_main(cfg)
        ms = [json.loads(x) for x in (root / mode / "metrics.jsonl").read_text().splitlines() if x.strip()]
        ms = [m for m in ms if "rollout_s" in m]
        mean = lambda k: sum(m.get(k, 0.0) for m in ms) / len(ms)  # noqa: E731
        stats[mode] = {"step_s": ms[-1]["time"] / len(ms), "rollout_s": mean("rollout_s"),
                       "idle_ratio": mean("idle_ratio"), "waste_ratio": mean("waste_ratio"),
                       "launched": mean("launched_groups")}
    naive = stats["naive_dynamic_sampling"]
    for mode in MODES:
        x = stats[mode]
        rows.append({"method": mode, "overall_speedup": naive["step_s"] / x["step_s"],
                     "rollout_speedup": naive["rollout_s"] / x["rollout_s"],
                     "normalized_idle_time": (x["idle_ratio"] * x["rollout_s"]) /
                                             max(naive["idle_ratio"] * naive["rollout_s"], 1e-9),
                     "idle_ratio": x["idle_ratio"],
                     "waste_ratio": None if mode == "no_dynamic_sampling" else x["waste_ratio"],
                     "seconds_per_step": x["step_s"], "groups_launched_per_step": x["launched"]})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--simulate", action="store_true", help="run the trace-driven simulator (Table 2 and 3)")
    ap.add_argument("--json", metavar="FILE", help="write the tables as JSON")
    ap.add_argument("--steps", type=int, default=12, help="measured training steps per mode (after 2 warm-up)")
    ap.add_argument("--seed", type=int, default=0, help="trace seed")
    ap.add_argument("--batch-size", type=int, default=512, help="prompts per batch (paper: 512)")
    ap.add_argument("--val-prompts", type=int, default=2048, help="validation prompts (4 naive rounds)")
    ap.add_argument("--sensitivity", action="store_true", help="also print early-termination variants")
    ap.add_argument("--real", action="store_true", help="Table 2's modes as real tiny-model `mimo rl` runs (CPU)")
    ap.add_argument("--model", default="runs/demo/sft/final", help="--real: the starting checkpoint")
    ap.add_argument("--real-steps", type=int, default=6, help="--real: RL steps per mode")
    ap.add_argument("--real-workers", type=int, default=2, help="--real: rollout worker processes")
    ap.add_argument("--real-out", default=None, help="--real: keep the runs here (default: a temporary folder)")
    ap.add_argument("--backend", choices=("local", "vllm"), default="local", help="--real: rollout backend")
    for prefix, cls in (("trace", TraceConfig), ("system", SystemConfig)):  # --trace.sample_sigma 0.4, ...
        for f in dataclasses.fields(cls):
            if f.name != "seed":
                ap.add_argument(f"--{prefix}.{f.name}", type=type(f.default), default=None, dest=f"{prefix}:{f.name}",
                                metavar=type(f.default).__name__.upper(),
                                help=f.metadata.get("help", "").replace("%", "%%"))
    args = ap.parse_args(argv)
    over = {k: v for k, v in vars(args).items() if ":" in k and v is not None}
    if not args.simulate and not args.real:
        ap.error("nothing to do: pass --simulate and/or --real")
    out: dict = {}
    if args.real:
        from pathlib import Path

        if not (Path(args.model) / "config.json").is_file():
            ap.error(f"--model {args.model}: no checkpoint there (run `mimo demo` first, or pass a model directory)")
        real = run_real(args.model, args.real_steps, args.real_workers, args.real_out, args.backend)
        engine = "one vLLM engine" if args.backend == "vllm" else f"{args.real_workers} rollout workers"
        print(f"\nTable 2 on real tiny-model rollouts ({args.model}, {args.real_steps} steps per mode, B = 8 x 8, "
              f"{engine})")
        print_table2(real, label="real")
        for r in real:
            print(f"  {r['method']:24s} {r['seconds_per_step']:.2f} s/step, {r['groups_launched_per_step']:.1f} "
                  f"groups launched per step")
        out["real_rows"], out["real_backend"] = real, args.backend
        if not args.simulate:
            if args.json:
                write_json(args.json, out)
                print(f"\nwrote {args.json}")
            return 0

    B = args.batch_size
    sched = SchedulerConfig(batch_size=B, group_size=16, max_active_tasks=2 * B)
    trace = TraceConfig(seed=args.seed, **{k[6:]: v for k, v in over.items() if k.startswith("trace:")})
    system_over = {k[7:]: v for k, v in over.items() if k.startswith("system:")}
    system = SystemConfig(**{"saturation_seqs": B * 16, **system_over})
    t0 = time.time()
    ts = trace_stats(trace)
    print(f"trace: mean response {ts['mean_tokens']:.0f} tokens ({100 * ts['mean_over_max']:.0f}% of "
          f"{trace.max_tokens}), truncated {100 * ts['truncated']:.1f}% (groups with one: "
          f"{100 * ts['groups_with_truncation']:.0f}%), pass rate {100 * ts['pass_rate']:.1f}%, informative groups "
          f"{100 * ts['informative']:.0f}% (all-pass {100 * ts['all_pass']:.0f}%, all-fail "
          f"{100 * ts['all_fail']:.0f}%), mean reward latency {ts['reward_s']:.1f}s")
    print(f"system: B={B} x n=16, {sched.max_active_tasks} groups in flight at most, decode saturates at "
          f"{system.saturation_seqs} responses x {system.decode_tokens_per_s:.0f} tok/s, "
          f"{system.reward_workers} reward workers; {args.steps} steps per mode after 2 warm-up\n", flush=True)

    t2 = table2(sched, trace, system, steps=args.steps)
    print(f"Table 2 (training time {t2['train_s']:.0f}s/step = 8.8% of a naive step, as Table 2 implies)")
    print_table2(t2["rows"])
    for m in MODES:
        x = t2["metrics"][m]
        print(f"  {m:24s} rollout {x.rollout_s:6.0f}s/step, {x.tasks_per_step:5.0f} groups launched/step, "
              f"{x.extra['aborted_per_step']:4.0f} aborted, waste over all decoded tokens "
              f"{100 * x.waste_all_tokens:.1f}%")

    t3 = table3(args.val_prompts, sched, trace, system)
    print(f"\nTable 3 (validation, {args.val_prompts} prompts x 16)   sim      paper")
    paper_speedup, paper_naive, paper_engine = PAPER_VALIDATION
    print(f"  speedup                          {t3['speedup']:5.2f}x   {paper_speedup:.2f}x")
    print(f"  idle ratio, naive                {100 * t3['idle_ratio_naive']:5.1f}%   {100 * paper_naive:.1f}%")
    print(f"  idle ratio, engine               {100 * t3['idle_ratio_engine']:5.1f}%   {100 * paper_engine:.1f}%")

    if args.sensitivity:
        naive = t2["metrics"]["naive_dynamic_sampling"]
        system_t = dataclasses.replace(system, train_s=t2["train_s"])
        print("\nSensitivity of early_termination (rollout speedup / idle ratio / waste):")
        variants = [
            ("default above (launch margin 1.5 B, carry-over)", {}),
            ("paper's literal launch rule: margin 1.0 B", {"launch_margin": 1.0}),
            ("strictly on-policy: wait, no carry-over", {"carry_over": False}),
            ("max in flight = B groups", {"max_active_tasks": B}),
            ("max in flight = 4B groups", {"max_active_tasks": 4 * B}),
            ("launch margin 1.25 B", {"launch_margin": 1.25}),
            ("launch margin 1.4 B", {"launch_margin": 1.4}),
            ("launch margin 2.0 B", {"launch_margin": 2.0}),
        ]
        for name, change in variants:
            m = simulate_mode("early_termination", args.steps, dataclasses.replace(sched, **change), trace, system_t)
            print(f"  {name:42s} {naive.rollout_s / m.rollout_s:5.2f}x  {100 * m.idle_ratio:5.1f}%  "
                  f"{100 * m.waste_ratio:5.1f}%  overall {naive.step_s / m.step_s:.2f}x", flush=True)

    if args.json:
        validation = {k: t3[k] for k in ("speedup", "idle_ratio_naive", "idle_ratio_engine")}
        write_json(args.json, {"rows": t2["rows"], "validation": validation, **out})
        print(f"\nwrote {args.json}")
    print(f"({time.time() - t0:.0f}s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
