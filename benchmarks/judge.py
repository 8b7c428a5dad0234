"""Reward throughput, side by side in one run: our sandboxed judge vs a LiveCodeBench-style baseline on the 164
HumanEval canonical solutions and on stdin problems with 12 tests each, and our math reward pool vs bare
Math-Verify on MATH-500.

    .venv/bin/python benchmarks/judge.py [--workers N] [--repeat 3] [--data ../shared/data] [--json FILE] [--no-math]

Code runners (tests/s = tests judged per wall second, best of ``--repeat``; the contenders take turns within each
repetition, so a machine shared with other jobs loads them alike):

* ``exec in-process``   -- ``exec(program + check)`` in this process: the tests' own cost, no isolation at all;
* ``lcb_style``         -- the baseline, LiveCodeBench's own grader as its cost is laid out (``check_correctness``
  and ``run_test`` of ``lcb_runner/evaluation``; our code, the same steps): a pool of ``--workers`` processes; per
  (problem, response) a ``multiprocessing.Manager`` whose proxied list carries the results and a
  ``multiprocessing.Process`` joined under a global timeout; inside, the guard that disables destructive functions,
  a stdin program rewritten into one function after the import prelude and compiled once, then per test
  ``signal.alarm``, ``faulthandler`` on/off, stdout captured and ``open``/``sys.stdin`` patched with
  ``unittest.mock``; the same comparison rule.  No OS isolation, no isolation between tests;
* ``lcb_lean``          -- the same pattern stripped to its core, for reference: a forked process per (problem,
  response) (no Manager, no pool, no mocks) that runs all of its tests in a loop under ``signal.alarm`` with
  ``sys.stdin``/``sys.stdout`` swapped for StringIO, results over a pipe, ``--workers`` samples at once;
* ``mimo``              -- ``RewardPool(workers=N)``: bubblewrap sandboxes kept warm per worker (one start serves
  many (problem, response) jobs), a trusted driver that forks a fresh process per test with its own uid and
  rlimits, results compared outside the sandbox, assert checks in a separate checker process.

``--json FILE`` writes ``{"rows": [{"runner", "dataset", "tests", "seconds", "tests_per_s"}, ...]}`` (code rows).
Math rows: ``math_reward`` through ``RewardPool`` (worker processes, wall-clock kill) vs
``math_verify.verify(parse(gold), parse(answer))`` called in a loop in one process.
"""

from __future__ import annotations

import argparse
import gzip
import io
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


# --------------------------------------------------------------------------------------------- stdin problems

# (name, correct program, input generator): a spread of reading and printing styles; 12 random tests each.
STDIN_PROBLEMS = [
    ("sum", "print(sum(map(int, input().split())))\n",
     lambda r: " ".join(str(r.randint(-99, 99)) for _ in range(5))),
    ("sort", "n = int(input())\nprint(*sorted(map(int, input().split())))\n",
     lambda r: (lambda xs: f"{len(xs)}\n{' '.join(map(str, xs))}")(
         [r.randint(0, 999) for _ in range(r.randint(1, 30))])),
    ("reverse", "import sys\nprint(sys.stdin.readline().strip()[::-1])\n",
     lambda r: "".join(r.choice("abcdef") for _ in range(r.randint(1, 40)))),
    ("fib", "n = int(input())\na, b = 0, 1\nfor _ in range(n):\n    a, b = b, a + b\nprint(a)\n",
     lambda r: str(r.randint(0, 300))),
    ("primes", "n = int(input())\n"
     "print(sum(all(k % d for d in range(2, int(k ** 0.5) + 1)) for k in range(2, n + 1)))\n",
     lambda r: str(r.randint(2, 3000))),
    ("lines", "import sys\nfor line in sys.stdin.read().split('\\n'):\n    if line:\n"
     "        print(len(line.split()))\n",
     lambda r: "\n".join(" ".join("w" * r.randint(1, 3) for _ in range(r.randint(1, 6)))
                         for _ in range(r.randint(1, 8)))),
    ("gcd", "from math import gcd\na, b = map(int, input().split())\nprint(gcd(a, b), a * b // gcd(a, b))\n",
     lambda r: f"{r.randint(1, 10 ** 6)} {r.randint(1, 10 ** 6)}"),
    ("count", "from collections import Counter\ns = input()\nc = Counter(s)\nfor k in sorted(c):\n    print(k, c[k])\n",
     lambda r: "".join(r.choice("xyz") for _ in range(r.randint(1, 50)))),
    ("matrix", "n = int(input())\nm = [list(map(int, input().split())) for _ in range(n)]\n"
     "for row in zip(*m):\n    print(*row)\n",
     lambda r: (lambda n: f"{n}\n" + "\n".join(" ".join(str(r.randint(0, 9)) for _ in range(n)) for _ in range(n)))(
         r.randint(1, 8))),
    ("dp", "def main():\n    n = int(input())\n    ways = [1] + [0] * n\n    for c in (1, 2, 5):\n"
     "        for v in range(c, n + 1):\n            ways[v] += ways[v - c]\n    print(ways[n])\n"
     "if __name__ == '__main__':\n    main()\n", lambda r: str(r.randint(0, 500))),
]
TESTS_PER_PROBLEM = 12


def _run_stdin(program: str, text: str) -> str:
    """The reference output: our own trusted programs, run here with swapped stdio."""
    import io

    old_in, old_out = sys.stdin, sys.stdout
    sys.stdin, sys.stdout = io.StringIO(text), io.StringIO()
    try:
        exec(compile(program, "<reference>", "exec", dont_inherit=True), {"__name__": "__main__"})
        return sys.stdout.getvalue()
    finally:
        sys.stdin, sys.stdout = old_in, old_out


def stdin_problems(copies: int = 4) -> list[dict]:
    """``copies`` x 10 problems (each copy with fresh random tests), 12 stdin tests each."""
    import random

    rng = random.Random(0)
    out = []
    for _ in range(copies):
        for name, program, gen in STDIN_PROBLEMS:
            inputs = [gen(rng) + "\n" for _ in range(TESTS_PER_PROBLEM)]
            tests = [{"testtype": "stdin", "input": x, "output": _run_stdin(program, x)} for x in inputs]
            out.append({"name": name, "program": program, "tests": tests})
    return out


# -------------------------------------------------------------------------------------------- code contenders


def exec_in_process(problems: list[dict]) -> float:
    start = time.perf_counter()
    for p in problems:
        namespace: dict = {}
        exec(program(p) + "\n" + p["test"] + f"\ncheck({p['entry_point']})\n", namespace)
    return time.perf_counter() - start


def _lcb_lean_child(sample: dict, conn, timeout: int) -> None:
    """The lean variant: all tests of a sample in one throwaway process, each under signal.alarm, stdio swapped
    for StringIO; nothing else of LiveCodeBench's per-test work."""
    def handler(signum, frame):
        raise TimeoutError()

    signal.signal(signal.SIGALRM, handler)
    results = []
    try:
        compiled = compile(sample["source"], "<sample>", "exec", dont_inherit=True)
        for test in sample["tests"]:
            signal.alarm(timeout)
            old_in, old_out = sys.stdin, sys.stdout
            try:
                if test is None:  # an assert test: the check code is part of the source
                    exec(compiled, {})
                    results.append(True)
                    continue
                sys.stdin, sys.stdout = io.StringIO(test["input"]), io.StringIO()
                try:
                    exec(compiled, {"__name__": "__main__"})
                except SystemExit:
                    pass
                got = sys.stdout.getvalue()
                sys.stdin, sys.stdout = old_in, old_out
                results.append(sys.modules["mimo.rewards.code"].outputs_match(got, test["output"]))
            except BaseException:  # noqa: BLE001
                sys.stdin, sys.stdout = old_in, old_out
                results.append(False)
            finally:
                signal.alarm(0)
    finally:
        conn.send(results)


def lcb_lean(samples: list[dict], workers: int, timeout: int = 6) -> tuple[float, int]:
    """``samples``: ``{"source", "tests"}``; returns (wall seconds, tests passed)."""
    ctx = multiprocessing.get_context("fork")
    import mimo.rewards.code  # noqa: F401 -- imported here, before the forks: the children only use it

    def one(sample: dict) -> int:
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_lcb_lean_child, args=(sample, child, timeout))
        proc.start()
        child.close()
        ok = parent.recv() if parent.poll(timeout * len(sample["tests"]) + 5) else []
        proc.join(1)
        if proc.is_alive():
            proc.kill()
        return sum(map(bool, ok))

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        passed = sum(pool.map(one, samples))
    return time.perf_counter() - start, passed


# LiveCodeBench's grader, as its cost is laid out (our own code; the steps follow its `check_correctness` and
# `run_test`): per (problem, response) a `multiprocessing.Manager` whose proxied lists carry the results back and a
# `multiprocessing.Process` joined with a global timeout, started from a pool of `workers` processes; inside, the
# guard that disables destructive functions; a stdin program rewritten (via `ast`) into one function after the
# import prelude and compiled once; per test `signal.alarm`, `faulthandler` on and off, stdout captured in a
# StringIO and `open`, `sys.stdin` and its `readline`/`readlines`/`read` patched with `unittest.mock`.


def _lcb_guard() -> None:
    import builtins
    import shutil
    import subprocess

    os.environ["OMP_NUM_THREADS"] = "1"
    for name in ("kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid", "fork", "forkpty",
                 "killpg", "rename", "renames", "truncate", "replace", "unlink", "fchmod", "fchown", "chmod", "chown",
                 "chroot", "lchown", "getcwd", "chdir"):
        setattr(os, name, None)
    shutil.rmtree = shutil.move = shutil.chown = None
    subprocess.Popen = None
    builtins.help = None
    for mod in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[mod] = None


def _lcb_as_function(code: str) -> str:
    """The stdin program as the body of one function (imports stay at the top), after the prelude."""
    import ast

    from mimo.rewards.runner import PRELUDE

    try:
        tree = ast.parse(code)
        last = tree.body[-1] if tree.body else None
        if isinstance(last, ast.If) and ast.unparse(last.test).strip() == "__name__ == '__main__'":
            tree = ast.parse(ast.unparse(tree.body[:-1]) + "\n" + ast.unparse(last.body))
        imports = [st for st in tree.body if isinstance(st, (ast.Import, ast.ImportFrom))]
        body = [st for st in tree.body if not isinstance(st, (ast.Import, ast.ImportFrom))] or [ast.Pass()]
        fn = ast.FunctionDef(name="wrapped_function", args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[],
                             kw_defaults=[], defaults=[]), body=body, decorator_list=[], lineno=1)
        return PRELUDE + "\n" + ast.unparse(imports) + "\n" + ast.unparse(fn)
    except SyntaxError:
        return code


def _lcb_call_stdin(method, text: str) -> None:
    from unittest import mock

    lines = iter(text.split("\n"))
    with mock.patch("builtins.open", mock.mock_open(read_data=text)), \
            mock.patch("sys.stdin", io.StringIO(text)), \
            mock.patch("sys.stdin.readline", lambda *a: next(lines)), \
            mock.patch("sys.stdin.readlines", lambda *a: text.split("\n")), \
            mock.patch("sys.stdin.read", lambda *a: text):
        try:
            method()
        except SystemExit:
            pass


def _lcb_run(sample: dict, timeout: int, results) -> None:
    import faulthandler
    import types

    from mimo.rewards.code import outputs_match

    def handler(signum, frame):
        raise TimeoutError()

    signal.signal(signal.SIGALRM, handler)
    _lcb_guard()
    out: list = []
    try:
        if sample["tests"] == [None]:  # an assert test: program and check code in one
            signal.alarm(timeout)
            try:
                exec(sample["source"], types.ModuleType("tmp_sol").__dict__)
                out.append(True)
            except BaseException:  # noqa: BLE001
                out.append(-4)
            finally:
                signal.alarm(0)
            return
        module = types.ModuleType("tmp_sol")
        signal.alarm(timeout)
        try:
            exec(_lcb_as_function(sample["source"]), module.__dict__)
        finally:
            signal.alarm(0)
        method = module.wrapped_function
        for test in sample["tests"]:
            signal.alarm(timeout)
            faulthandler.enable()
            old_out, sys.stdout = sys.stdout, io.StringIO()
            try:
                _lcb_call_stdin(method, test["input"])
                got = sys.stdout.getvalue()
            except BaseException:  # noqa: BLE001
                out.append(-4)
                return
            finally:
                sys.stdout = old_out
                signal.alarm(0)
                faulthandler.disable()
            if not outputs_match(got, test["output"]):
                out.append(-2)
                return
            out.append(True)
    finally:
        results.append(out)


def _lcb_check_correctness(sample: dict, timeout: int = 6) -> int:
    ctx = multiprocessing.get_context("fork")
    manager = ctx.Manager()
    results = manager.list()
    proc = ctx.Process(target=_lcb_run, args=(sample, timeout, results))
    proc.start()
    proc.join(timeout=(timeout + 1) * len(sample["tests"]) + 5)
    if proc.is_alive():
        proc.kill()
    got = list(results[0]) if results else []
    manager.shutdown()
    return sum(r is True for r in got)


def lcb_style(samples: list[dict], workers: int, timeout: int = 6) -> tuple[float, int]:
    """LiveCodeBench's grader pattern (above) over ``samples`` (``{"source", "tests"}``) with ``workers``
    processes; returns (wall seconds, tests passed)."""
    from concurrent.futures import ProcessPoolExecutor

    import mimo.rewards.code  # noqa: F401 -- before the pool forks

    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        list(pool.map(_lcb_noop, range(workers)))  # the pool's own start-up is not the grader's cost
        start = time.perf_counter()
        passed = sum(pool.map(_lcb_check_correctness, samples))
        return time.perf_counter() - start, passed


def _lcb_noop(i: int) -> int:
    return i


def lcb_humaneval(problems: list[dict]) -> list[dict]:
    return [{"source": program(p) + "\n" + p["test"] + f"\ncheck({p['entry_point']})\n", "tests": [None]}
            for p in problems]


def lcb_stdin(problems: list[dict]) -> list[dict]:
    return [{"source": p["program"], "tests": p["tests"]} for p in problems]


def mimo_judge(pool, jobs: list[tuple[str, dict]]) -> tuple[float, int]:
    """``jobs``: (code, reference) pairs; returns (wall seconds, tests passed)."""
    start = time.perf_counter()
    futures = [pool.submit("judge", code, reference) for code, reference in jobs]
    passed = sum(sum(v == "passed" for v in f.result().verdicts) for f in futures)
    return time.perf_counter() - start, passed


def mimo_humaneval(problems: list[dict]) -> list[tuple[str, dict]]:
    return [(program(p), {"tests": [{"testtype": "assert", "test": p["test"], "entry_point": p["entry_point"],
                                     "prelude": p["prompt"]}]}) for p in problems]


def mimo_stdin(problems: list[dict]) -> list[tuple[str, dict]]:
    return [(p["program"], {"tests": p["tests"]}) for p in problems]


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
    parser.add_argument("--json", default=None, help="write the code rows here as JSON")
    parser.add_argument("--no-math", action="store_true", help="skip the math rows")
    args = parser.parse_args()
    os.environ.setdefault("MIMO_LIGHT_IMPORT", "1")
    from mimo.rewards.pool import RewardPool, default_workers
    from mimo.rewards.sandbox import sandbox_status

    workers = args.workers or default_workers()
    data = find_data(args.data)
    problems = humaneval(data)
    stdin_set = stdin_problems()
    datasets = {"humaneval": (lcb_humaneval(problems), mimo_humaneval(problems), len(problems)),
                "stdin": (lcb_stdin(stdin_set), mimo_stdin(stdin_set), sum(len(p["tests"]) for p in stdin_set))}
    direct = min(exec_in_process(problems) for _ in range(args.repeat))
    best: dict[tuple[str, str], tuple[float, int]] = {}

    def keep(key, result):
        if key not in best or result[0] < best[key][0]:
            best[key] = result

    t0 = time.perf_counter()
    with RewardPool(workers=workers, warm_math=False) as pool:
        mimo_judge(pool, datasets["humaneval"][1][: 2 * workers])  # start the workers and their sandboxes
        startup = time.perf_counter() - t0
        for _ in range(args.repeat):  # interleaved: both runners see the same machine load
            for name, (lcb_samples, mimo_jobs, _) in datasets.items():
                keep(("lcb_style", name), lcb_style(lcb_samples, workers))
                keep(("lcb_lean", name), lcb_lean(lcb_samples, workers))
                keep(("mimo", name), mimo_judge(pool, mimo_jobs))
    rows = [{"runner": runner, "dataset": name, "tests": datasets[name][2], "passed": passed,
             "seconds": round(wall, 4), "tests_per_s": round(datasets[name][2] / wall, 1)}
            for (runner, name), (wall, passed) in sorted(best.items(), key=lambda kv: (kv[0][1], kv[0][0]))]

    math_rows = []
    if not args.no_math:
        items = math_items(data)
        m = len(items)
        res = min((bare_math_verify(math_items(data, rep + 1)) for rep in range(args.repeat)), key=lambda r: r[0])
        math_rows.append(("bare Math-Verify, one process", 1, res[0], m, res[1]))
        with RewardPool(workers=workers) as pool:
            mimo_math(pool, items[: 4 * workers])
            res = min((mimo_math(pool, math_items(data, rep + 1)) for rep in range(args.repeat)), key=lambda r: r[0])
        math_rows.append(("mimo RewardPool (wall-clock kill)", workers, res[0], m, res[1]))

    print(f"\nrewards benchmark: {os.cpu_count()} CPUs, workers={workers}, best of {args.repeat}; "
          f"pool start-up {startup:.2f}s not included\n{sandbox_status()}\n")
    header = (f"{'dataset':<10} {'runner':<10} {'tests':>6} {'passed':>6} {'wall s':>7} {'tests/s':>8} "
              f"{'vs lcb_style':>12}")
    print(header)
    print("-" * len(header))
    n = len(problems)
    print(f"{'humaneval':<10} {'in-process':<10} {n:>6} {n:>6} {direct:7.2f} {n / direct:8.1f} {'(no isolation)':>12}")
    for row in rows:
        base = next(r for r in rows if r["dataset"] == row["dataset"] and r["runner"] == "lcb_style")
        ratio = row["tests_per_s"] / base["tests_per_s"]
        print(f"{row['dataset']:<10} {row['runner']:<10} {row['tests']:>6} {row['passed']:>6} {row['seconds']:7.2f} "
              f"{row['tests_per_s']:8.1f} {ratio:11.2f}x")
    if math_rows:
        print(f"\n{'math':<34} {'workers':>7} {'items':>6} {'correct':>7} {'wall s':>7} {'items/s':>8}")
        for name, w, wall, count, correct in math_rows:
            print(f"{name:<34} {w:>7} {count:>6} {correct:>7} {wall:7.2f} {count / wall:8.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "workers": workers, "cpus": os.cpu_count(),
                                               "sandbox": sandbox_status()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
