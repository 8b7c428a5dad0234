"""RL gain on vLLM rollouts vs local rollout workers: the demo's RL stage run again from its SFT model with each
backend and several seeds, every result evaluated exactly as ``mimo demo`` evaluates its family.

    .venv/bin/python benchmarks/rl_backends.py --demo runs/demo [--seeds 0,1,2] [--backends local,vllm]
                                               [--out runs/rl-backends] [--json FILE]

``--demo`` is a finished ``mimo demo`` folder: its ``rl/config.yaml`` (the RL stage's exact settings, SFT start
included) is reused with only ``seed``, ``out_dir`` and ``rollout.backend`` changed.  The evaluation is the demo's:
held-out toy math and code, temperature 0.6, top-p 0.95, avg@2, +- one standard error over problems.  Prints one
row per (backend, seed), the mean and its standard error over seeds, and the gain over the demo's SFT model.
``--json`` writes ``{"sft": {...}, "runs": [{"backend", "seed", "toy_math", "toy_math_se", "toy_code",
"toy_code_se"}, ...]}`` (pass@1 as fractions).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--demo", default="runs/demo", help="a finished `mimo demo` folder (its rl/config.yaml is reused)")
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated RL seeds")
    ap.add_argument("--backends", default="local,vllm", help="comma-separated rollout backends")
    ap.add_argument("--steps", type=int, default=0, help="RL steps (0: the demo's)")
    ap.add_argument("--out", default="runs/rl-backends", help="where the runs and their evaluations go")
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args(argv)

    from mimo.config import load_yaml, resolve_config
    from mimo.demo.family import DemoConfig
    from mimo.demo.stages import evaluate_family
    from mimo.rl.trainer import RLConfig
    from mimo.rl.trainer import main as rl_main

    demo = Path(args.demo)
    config = demo / "rl" / "config.yaml"
    if not config.is_file():
        ap.error(f"--demo {demo}: no rl/config.yaml there (run `mimo demo` first)")
    out = Path(args.out)
    seeds = [int(s) for s in args.seeds.split(",")]
    backends = args.backends.split(",")
    models = {}
    for backend in backends:
        for seed in seeds:
            name = f"{backend}-s{seed}"
            over = {"seed": str(seed), "out_dir": str(out / name), "rollout.backend": backend}
            if args.steps:
                over["steps"] = str(args.steps)
            cfg = resolve_config(RLConfig, "rl", config_file=str(config), overrides=over)
            if not (out / name / "final" / "config.json").is_file():
                print(f"[rl-backends] {name}: {cfg.steps} steps from {cfg.init_from}", flush=True)
                rl_main(cfg)
            models[name] = out / name / "final"
    sft = load_yaml(config)["rl"]["init_from"]
    results = evaluate_family(DemoConfig(), out, {"sft": Path(sft), **models})

    def cell(r: dict, bench: str) -> str:
        return f"{100 * r[bench]['pass@1']:.1f} +- {100 * r[bench]['stderr']:.1f}"

    base = results.pop("sft")
    print(f"\nSFT start ({sft}): toy math {cell(base, 'toy_math')}, toy code {cell(base, 'toy_code')}")
    print(f"{'backend':8s} {'seed':>4s} {'toy math':>14s} {'toy code':>14s}")
    for name, r in results.items():
        backend, seed = name.rsplit("-s", 1)
        print(f"{backend:8s} {seed:>4s} {cell(r, 'toy_math'):>14s} {cell(r, 'toy_code'):>14s}")
    for backend in backends:
        xs = [100 * results[f"{backend}-s{s}"]["toy_math"]["pass@1"] for s in seeds]
        se = statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else float("nan")
        print(f"{backend}: toy math mean {statistics.mean(xs):.1f} +- {se:.1f} over {len(xs)} seeds, gain over SFT "
              f"{statistics.mean(xs) - 100 * base['toy_math']['pass@1']:+.1f}")
    if args.json:
        runs = []
        for name, r in results.items():
            backend, seed = name.rsplit("-s", 1)
            row = {"backend": backend, "seed": int(seed)}
            for bench in ("toy_math", "toy_code"):
                row[bench], row[f"{bench}_se"] = r[bench]["pass@1"], r[bench]["stderr"]
            runs.append(row)
        Path(args.json).write_text(json.dumps({"sft": {b: base[b]["pass@1"] for b in base}, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
