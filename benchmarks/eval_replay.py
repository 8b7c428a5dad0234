"""The evaluation pipeline on the real benchmark files, without a model: known completions replayed through
``mimo eval --backend replay`` (the same loaders, graders, metrics and report as a model run).

    MIMO_LIGHT_IMPORT=1 .venv/bin/python benchmarks/eval_replay.py [--data ../shared/data] [--out runs/eval-replay]

Completions written here, one file per case, then graded by the CLI:

* ``gold``     -- MATH-500 / AIME 2024 / AIME 2025: ``<think>...</think> The final answer is $\\boxed{<gold>}$``;
* ``wrong``    -- AIME: the gold answer plus one;
* ``canonical``-- HumanEval: the prompt and its canonical solution in a fenced block after ``</think>``;
* ``pass``     -- HumanEval: the prompt with ``pass`` as the body.

Expected: 100 / 0 / 100 / 0.  Prints a markdown table with the time each replay took (loading, grading in the
reward pool or the sandboxed judge, report).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path


def cases(data: Path) -> list[tuple[str, str, list[dict]]]:
    """(case, benchmark, completion records)."""
    from mimo.eval import LoadOptions, load_benchmark

    out = []
    opts = LoadOptions(data=str(data))
    for name in ("math500", "aime24", "aime25"):
        items = load_benchmark(name, opts).items
        out.append(("gold", name, [{"problem_id": it.id, "completion": "<think>\nworking\n</think>\nThe final answer "
                                    f"is $\\boxed{{{it.reference}}}$."} for it in items]))
    items = load_benchmark("aime24", opts).items
    out.append(("wrong", "aime24", [{"problem_id": it.id, "completion": f"\\boxed{{{int(it.reference) + 1}}}"}
                                    for it in items]))
    with gzip.open(data / "HumanEval.jsonl.gz", "rt") as f:
        problems = [json.loads(line) for line in f]
    out.append(("canonical", "humaneval", [
        {"problem_id": p["task_id"], "completion": f"<think>\nok\n</think>\n```python\n{p['prompt']}"
                                                   f"{p['canonical_solution']}```"} for p in problems]))
    out.append(("pass", "humaneval", [
        {"problem_id": p["task_id"], "completion": f"```python\n{p['prompt']}    pass\n```"} for p in problems]))
    return out


def main() -> int:
    from mimo.eval.cli import EvalConfig
    from mimo.eval.cli import main as eval_main
    from mimo.utils.paths import eval_data_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=None, help="evaluation data folder (default: $MIMO_EVAL_DATA or ../shared/data)")
    ap.add_argument("--out", default="runs/eval-replay")
    ap.add_argument("--workers", type=int, default=0, help="reward workers (0: one per CPU)")
    args = ap.parse_args()
    data = Path(args.data) if args.data else eval_data_dir()
    if data is None:
        print("evaluation data not found (--data)", file=sys.stderr)
        return 2
    rows = ["| case | benchmark | problems | pass@1 | seconds | samples/s |", "|---|---|---:|---:|---:|---:|"]
    for case, name, records in cases(data):
        out = Path(args.out) / f"{case}-{name}"
        comp = out / "completions-in.jsonl"
        comp.parent.mkdir(parents=True, exist_ok=True)
        comp.write_text("".join(json.dumps(r) + "\n" for r in records))
        cfg = EvalConfig(backend="replay", completions=str(comp), benchmarks=[name], data=str(data), out=str(out),
                         overwrite=True, progress=False)
        cfg.grading.workers = args.workers
        t0 = time.perf_counter()
        m = eval_main(cfg)[name]
        dt = time.perf_counter() - t0
        rows.append(f"| {case} | {name} | {m['n_problems']} | {100 * m['pass@1']:.1f} | {dt:.1f} | "
                    f"{len(records) / dt:.0f} |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
