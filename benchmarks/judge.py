"""Reward throughput, side by side in one run: our sandboxed judge vs a LiveCodeBench-style baseline on the 164
HumanEval canonical solutions, and our math reward pool vs bare Math-Verify on MATH-500.

    .venv/bin/python benchmarks/judge.py [--workers N] [--repeat 3] [--data ../shared/data]

Code rows (one assert test per sample, all 164 samples, best of ``--repeat``):

* ``exec in-process``   -- ``exec(program + check)`` in this process: the tests' own cost, no isolation at all;
* ``LCB-style``         -- the baseline: a forked process per sample, ``exec`` + ``signal.alarm``, result over a
  pipe, ``--workers`` samples at once; no OS isolation (the program can read and write every file of the host);
* ``mimo judge``        -- ``RewardPool(workers=N)``: bubblewrap sandboxes (kept warm per worker), a fresh uid and
  rlimits per test, results compared outside the sandbox, the check code in a separate process.

``per-test overhead`` = wall time x workers / samples - the in-process exec time per sample: what isolation costs
per test on one core.  Math rows: ``math_reward`` through ``RewardPool`` (worker processes, wall-clock kill) vs
``math_verify.verify(parse(gold), parse(answer))`` called in a loop in one process.
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def find_data(arg: str | None) -> Path:
    from mimo.utils.paths import eval_data_dir

    for c in (arg, eval_data_dir()):
        if c and Path(c, "HumanEval.jsonl.gz").exists():
            return Path(c)
    sys.exit("benchmarks/judge.py: no ../shared/data with HumanEval.jsonl.gz and MATH-500 (use --data)")


def humaneval(data: Path) -> list[dict]:
    with gzip.open(data / "HumanEval.jsonl.gz", "rt") as f:
        return [json.loads(line) for line in f]


def program(p: dict) -> str:
    return p["prompt"] + p["canonical_solution"]


# ------------------------------------------------------------------------------------------- code baselines


def exec_in_process(problems: list[dict]) -> float:
    start = time.perf_counter()
    for p in problems:
        namespace: dict = {}
        exec(program(p) + "\n" + p["test"] + f"\ncheck({p['entry_point']})\n", namespace)
    return time.perf_counter() - start


def _lcb_child(source: str, conn, timeout: int) -> None:
    """LiveCodeBench's pattern: exec under signal.alarm in a throwaway process, report through a pipe."""
    def handler(signum, frame):
        raise TimeoutError()

    signal.signal(signal.SIGALRM, handler)
    signal.alarm(timeout)
    try:
        exec(source, {})
        conn.send(True)
    except BaseException:  # noqa: BLE001
        conn.send(False)
    finally:
        signal.alarm(0)


def lcb_style(problems: list[dict], workers: int, timeout: int = 6) -> tuple[float, int]:
    ctx = multiprocessing.get_context("fork")

    def one(p: dict) -> bool:
        parent, child = ctx.Pipe(duplex=False)
        source = program(p) + "\n" + p["test"] + f"\ncheck({p['entry_point']})\n"
        proc = ctx.Process(target=_lcb_child, args=(source, child, timeout))
        proc.start()
        child.close()
        ok = parent.poll(timeout + 1) and parent.recv()
        proc.join(1)
        if proc.is_alive():
            proc.kill()
        return bool(ok)

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        passed = sum(pool.map(one, problems))
    return time.perf_counter() - start, passed


def mimo_judge(pool, problems: list[dict]) -> tuple[float, int]:
    start = time.perf_counter()
    futures = [pool.submit("judge", program(p), {"tests": [{"testtype": "assert", "test": p["test"],
                                                             "entry_point": p["entry_point"], "prelude": p["prompt"]}]})
               for p in problems]
    passed = sum(f.result().verdicts == ("passed",) for f in futures)
    return time.perf_counter() - start, passed


# ------------------------------------------------------------------------------------------------------ math


def math_items(data: Path, rep: int = 0) -> list[tuple[str, str]]:
    """MATH-500 golds as boxed answers; ``rep`` spaces inside the box make each repetition miss Math-Verify's
    parse cache, so that no row is measured on cached parses."""
    golds = [json.loads(line)["answer"] for line in open(data / "math500_test.jsonl")]
    pad = " " * rep
    return [(f"<think>\nworking\n</think>\nThe final answer is $\\boxed{{{pad}{g}}}$.", g) for g in golds]


def bare_math_verify(items) -> tuple[float, int]:
    from math_verify import parse, verify

    from mimo.rewards.math import answer_text, gold_text

    start = time.perf_counter()
    correct = sum(bool(verify(parse(gold_text(g)), parse(answer_text(c)))) for c, g in items)
    return time.perf_counter() - start, correct


def mimo_math(pool, items) -> tuple[float, int]:
    start = time.perf_counter()
    results = pool.map("math", [c for c, _ in items], [g for _, g in items])
    return time.perf_counter() - start, sum(r.score == 1.0 for r in results)


# ------------------------------------------------------------------------------------------------------ main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=0, help="parallel workers (0: one per CPU)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row; the best is reported")
    parser.add_argument("--data", default=None, help="folder with HumanEval.jsonl.gz and math500_test.jsonl")
    args = parser.parse_args()
    os.environ.setdefault("MIMO_LIGHT_IMPORT", "1")
    from mimo.rewards.pool import RewardPool, default_workers

    workers = args.workers or default_workers()
    data = find_data(args.data)
    problems = humaneval(data)
    items = math_items(data)
    n, m = len(problems), len(items)
    rows = []
    direct = min(exec_in_process(problems) for _ in range(args.repeat))
    per_sample_exec = direct / n
    rows.append(("code", "exec in-process (no isolation)", 1, direct, n, n))

    best = min((lcb_style(problems, workers) for _ in range(args.repeat)), key=lambda r: r[0])
    rows.append(("code", "LCB-style: fork + exec + alarm", workers, best[0], n, best[1]))

    t0 = time.perf_counter()
    with RewardPool(workers=workers, warm_math=False) as pool:
        mimo_judge(pool, problems[: 2 * workers])  # start the workers and their sandboxes
        startup = time.perf_counter() - t0
        best = min((mimo_judge(pool, problems) for _ in range(args.repeat)), key=lambda r: r[0])
    rows.append(("code", "mimo judge (bwrap, uid, rlimits)", workers, best[0], n, best[1]))

    best = min((bare_math_verify(math_items(data, rep + 1)) for rep in range(args.repeat)), key=lambda r: r[0])
    rows.append(("math", "bare Math-Verify, one process", 1, best[0], m, best[1]))
    with RewardPool(workers=workers) as pool:
        mimo_math(pool, items[: 4 * workers])
        best = min((mimo_math(pool, math_items(data, rep + 1)) for rep in range(args.repeat)), key=lambda r: r[0])
    rows.append(("math", "mimo RewardPool (wall-clock kill)", workers, best[0], m, best[1]))

    print(f"\nrewards benchmark: {os.cpu_count()} CPUs, workers={workers}, best of {args.repeat}; "
          f"pool start-up {startup:.2f}s not included\n")
    header = f"{'kind':<5} {'implementation':<34} {'workers':>7} {'items':>6} {'correct':>7} {'wall s':>7} " \
             f"{'items/s':>8} {'overhead ms/test':>16}"
    print(header)
    print("-" * len(header))
    for kind, name, w, wall, count, correct in rows:
        overhead = (wall * w / count - per_sample_exec) * 1000 if kind == "code" else float("nan")
        over = f"{overhead:16.2f}" if kind == "code" else f"{'':>16}"
        print(f"{kind:<5} {name:<34} {w:>7} {count:>6} {correct:>7} {wall:7.2f} {count / wall:8.1f} {over}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
