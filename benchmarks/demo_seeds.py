"""`mimo demo` over several seeds: the family table and every claim per seed, with the mean and the spread.

    python benchmarks/demo_seeds.py --seeds 1 2 3 --out runs/seeds      # ~15 min per seed on 2 cores
    python benchmarks/demo_seeds.py --seeds 1 2 3 --out runs/seeds --markdown

Each seed is one ``mimo demo --seed S --out OUT/seed_S`` run, one after another (each wants the machine to itself:
its stage times are part of the result); a seed whose folder already holds a finished report is reused, not re-run
(the demo's own cache, which keeps the recorded timings).  The table is what the README's demo section shows:
pass@1 per model and seed, each claim's gap in combined standard errors per seed, the wall time of each run, and
the CPU model (float results differ between CPU kinds, so the seeds, not one run's digits, are the result).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
from pathlib import Path

MODELS = ("Base", "RL-Zero", "SFT", "RL", "control")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_seed(seed: int, out: Path, extra: list[str]) -> dict:
    report = out / "report.json"
    if not report.is_file():
        cmd = [sys.executable, "-m", "mimo.cli", "demo", "--seed", str(seed), "--out", str(out), *extra]
        print("[demo_seeds] " + " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    return json.loads(report.read_text())


def cell(report: dict, model: str, kind: str) -> dict:
    return (report["control"] if model == "control" else report["family"][model])[kind]


def spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.1f} (sd {sd:.1f})"


def table(reports: dict[int, dict]) -> str:
    seeds = list(reports)
    lines = ["| model | benchmark | " + " | ".join(f"seed {s}" for s in seeds) + " | mean (seed-to-seed sd) |",
             "|---" * (len(seeds) + 3) + "|"]
    for kind in ("math", "code"):
        for model in MODELS:
            cells = [cell(reports[s], model, kind) for s in seeds]
            vals = [100 * c["pass@1"] for c in cells]
            lines.append(f"| {model} | {kind} | " + " | ".join(f"{100 * c['pass@1']:.1f} ± {100 * c['stderr']:.1f}"
                                                               for c in cells) + f" | {spread(vals)} |")
    lines += ["", "| claim | " + " | ".join(f"seed {s}: gap, z" for s in seeds) + " | holds on every seed |",
              "|---" * (len(seeds) + 2) + "|"]
    for i, check in enumerate(reports[seeds[0]]["checks"]):
        per = [reports[s]["checks"][i] for s in seeds]
        lines.append(f"| {check['claim']} | " + " | ".join(f"{c['points']:+.1f}, {c['z']:.1f}" for c in per) +
                     f" | {'yes' if all(c['holds'] for c in per) else 'NO'} |")
    schemes = [k for k in reports[seeds[0]].get("code_rewards", {})]
    if schemes:
        lines += ["", "| held-out code after code RL | " + " | ".join(f"seed {s}" for s in seeds) + " | mean |",
                  "|---" * (len(seeds) + 2) + "|"]
        for k in schemes:
            vals = [100 * reports[s]["code_rewards"][k]["pass@1"] for s in seeds]
            lines.append(f"| {k} | " + " | ".join(f"{100 * reports[s]['code_rewards'][k]['pass@1']:.1f} ± "
                                                  f"{100 * reports[s]['code_rewards'][k]['stderr']:.1f}"
                                                  for s in seeds) + f" | {spread(vals)} |")
    lines += ["", "| | " + " | ".join(f"seed {s}" for s in seeds) + " |", "|---" * (len(seeds) + 1) + "|",
              "| wall time (min) | " + " | ".join(f"{reports[s]['seconds'] / 60:.1f}" for s in seeds) + " |",
              "| MTP speedup (greedy, batch 1) | " + " | ".join(f"{reports[s]['mtp']['speedup']:.2f}x"
                                                             for s in seeds) + " |",
              "", f"CPU: {cpu_model()}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--out", default="runs/seeds", help="one folder per seed under this one")
    p.add_argument("--json", default=None, help="also write the per-seed reports' summary here")
    p.add_argument("--markdown", action="store_true", help="only print the table (no runs that are not finished)")
    args, extra = p.parse_known_args(argv)
    reports = {}
    for seed in args.seeds:
        folder = Path(args.out) / f"seed_{seed}"
        if args.markdown and not (folder / "report.json").is_file():
            sys.exit(f"demo_seeds: {folder / 'report.json'} missing (run without --markdown first)")
        reports[seed] = run_seed(seed, folder, extra)
    text = table(reports)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_model(), "seeds": {
            s: {"family": r["family"], "control": r["control"], "checks": r["checks"], "seconds": r["seconds"],
                "code_rewards": r.get("code_rewards")} for s, r in reports.items()}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
