"""Command line of the rewards: ``mimo rewards levels`` and ``mimo judge serve|run``.

* ``mimo rewards levels --problems P.jsonl --solutions S.jsonl`` judges every solution (rollouts of several models)
  against its problem's tests, clusters the tests by pass rate (:func:`mimo.rewards.levels.assign_test_levels`)
  and stores ``levels``, ``test_pass_rates`` and ``levels_rollouts`` in each problem record of ``P.jsonl``
  (rewritten atomically).  Problems: ``{"id", "tests": [...], "fn_name"?}``; solutions: ``{"problem_id" (or the
  id field), "code"}`` or ``{..., "completion"}`` (code taken from its last fenced block).
* ``mimo judge serve`` starts the HTTP reward service (:mod:`mimo.rewards.server`) on loopback.
* ``mimo judge run --code FILE --tests FILE`` judges one program and prints a verdict per test.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import sys
import time

from mimo.config import F, add_config_args, config_from_args
from mimo.errors import MimoError
from mimo.rewards.pool import PoolConfig, RewardPool
from mimo.rewards.sandbox import JudgeLimits
from mimo.utils.io import iter_jsonl, read_jsonl, write_jsonl
from mimo.utils.logging import progress


@dataclasses.dataclass
class LevelsConfig:
    """``mimo rewards levels``: test difficulty levels from many rollouts."""

    problems: str = F("", "problems JSONL (levels are written back into it)")
    solutions: str = F("", "solutions JSONL: one rollout per line, with 'code' or 'completion'")
    n_levels: int = F(3, "number of difficulty levels")
    id_field: str = F("id", "problem id field in the problems file")
    workers: int = F(0, "judge worker processes; 0 = one per CPU")
    limits: JudgeLimits = F(factory=JudgeLimits, help="code judge limits per test")


@dataclasses.dataclass
class JudgeConfig:
    """``mimo judge serve``: the reward service over HTTP."""

    host: str = F("127.0.0.1", "address to listen on (the API has no authentication: keep it loopback)")
    port: int = F(8321, "port (0: any free port)")
    workers: int = F(0, "reward worker processes; 0 = one per CPU")
    math_timeout: float = F(5.0, "wall-clock seconds per math item")
    limits: JudgeLimits = F(factory=JudgeLimits, help="code judge limits per test")


def levels_main(cfg: LevelsConfig) -> int:
    if not cfg.problems or not cfg.solutions:
        raise MimoError("--problems and --solutions are required")
    problems = read_jsonl(cfg.problems)
    index = {}
    for n, p in enumerate(problems, start=1):
        if cfg.id_field not in p or not isinstance(p.get("tests"), list):
            raise MimoError(f"{cfg.problems}:{n}: a problem needs {cfg.id_field!r} and a 'tests' list")
        index[str(p[cfg.id_field])] = p
    jobs = []
    for n, s in enumerate(iter_jsonl(cfg.solutions), start=1):
        pid = str(s.get("problem_id", s.get(cfg.id_field)))
        if pid not in index:
            raise MimoError(f"{cfg.solutions}:{n}: unknown problem {pid!r}")
        if not isinstance(s.get("code", s.get("completion")), str):
            raise MimoError(f"{cfg.solutions}:{n}: a solution needs 'code' or 'completion'")
        jobs.append((pid, s))
    from mimo.rewards.levels import verdict_matrix

    start = time.monotonic()
    matrices: dict[str, list[list[bool]]] = collections.defaultdict(list)
    with RewardPool(PoolConfig(workers=cfg.workers, limits=cfg.limits, warm_math=False)) as pool:
        futures = []
        for pid, s in jobs:
            problem = index[pid]
            reference = {"tests": problem["tests"], "fn_name": problem.get("fn_name")}
            kind, text = ("judge", s["code"]) if "code" in s else ("code", s["completion"])
            futures.append((pid, len(problem["tests"]), pool.submit(kind, text, reference)))
        for pid, n_tests, future in progress(futures, desc="judging rollouts"):
            matrices[pid] += verdict_matrix([future.result().verdicts], n_tests)
    from mimo.rewards.levels import assign_test_levels, pass_rates

    histogram: collections.Counter = collections.Counter()
    for pid, matrix in matrices.items():
        problem = index[pid]
        problem["levels"] = assign_test_levels(matrix, cfg.n_levels)
        problem["test_pass_rates"] = [round(r, 4) for r in pass_rates(matrix)]
        problem["levels_rollouts"] = len(matrix)
        histogram.update(problem["levels"])
    write_jsonl(cfg.problems, problems)
    untouched = len(problems) - len(matrices)
    print(f"levels: {len(matrices)} problems from {len(jobs)} rollouts in {time.monotonic() - start:.1f}s; "
          f"tests per level {dict(sorted(histogram.items()))}"
          + (f"; {untouched} problems had no rollouts (left unchanged)" if untouched else ""))
    return 0


def _stop_on_signals() -> None:
    """SIGINT and SIGTERM end the server cleanly.  Set explicitly: a process started in the background by a
    non-interactive shell (``cmd &``, nohup, some CI runners) inherits SIGINT *ignored*, and Python then installs no
    KeyboardInterrupt handler, so Ctrl-C / ``kill -INT`` would never reach ``serve_forever``."""
    import signal

    def stop(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)


def serve_main(cfg: JudgeConfig) -> int:
    from mimo.rewards.sandbox import sandbox_status
    from mimo.rewards.server import RewardServer

    pool = RewardPool(PoolConfig(workers=cfg.workers, math_timeout=cfg.math_timeout, limits=cfg.limits))
    server = RewardServer(pool, cfg.host, cfg.port)
    _stop_on_signals()
    print(f"mimo judge: serving {server.url} with {pool.workers} workers; {sandbox_status()}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        pool.close()
    return 0


def run_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mimo judge run", description="judge one program against tests")
    parser.add_argument("--code", required=True, help="Python source file")
    parser.add_argument("--tests", required=True, help="JSON list of tests, or JSONL with one test per line")
    parser.add_argument("--fn-name", default=None, help="function of functional tests")
    parser.add_argument("--time-limit", type=float, default=6.0)
    parser.add_argument("--unsafe", action="store_true", help="run without bubblewrap (NO isolation)")
    args = parser.parse_args(argv)
    from mimo.rewards.code import judge

    try:
        code = open(args.code, encoding="utf-8").read()
        text = open(args.tests, encoding="utf-8").read()
    except OSError as e:
        raise MimoError(str(e)) from None
    tests = json.loads(text) if text.lstrip().startswith("[") else read_jsonl(args.tests)
    result = judge(code, tests, fn_name=args.fn_name, time_limit=args.time_limit, unsafe=args.unsafe)
    for i, (verdict, detail, t) in enumerate(zip(result.verdicts, result.details, result.times)):
        print(f"test {i}: {verdict:<13} {t * 1000:7.1f} ms  {detail}")
    print(f"{sum(result.passed)}/{len(result.verdicts)} passed")
    return 0 if result.all_passed else 1


def _stage(argv: list[str], prog: str, description: str, cls, section: str, main) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_config_args(parser, cls, section)
    return int(main(config_from_args(cls, section, parser.parse_args(argv))) or 0)


def cli(argv: list[str]) -> int:
    """``mimo rewards <levels>``."""
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: mimo rewards levels --problems FILE --solutions FILE [options]\n\n"
              "  levels   judge rollouts and store test difficulty levels in the problems file")
        return 0
    if argv[0] == "levels":
        return _stage(argv[1:], "mimo rewards levels", LevelsConfig.__doc__, LevelsConfig, "rewards", levels_main)
    print(f"mimo rewards: unknown sub-command {argv[0]!r} (sub-commands: levels)", file=sys.stderr)
    return 2


def judge_cli(argv: list[str]) -> int:
    """``mimo judge <serve|run>``."""
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: mimo judge serve [options] | mimo judge run --code FILE --tests FILE\n\n"
              "  serve   the reward service over HTTP (loopback by default)\n"
              "  run     judge one program and print a verdict per test")
        return 0
    if argv[0] == "serve":
        return _stage(argv[1:], "mimo judge serve", JudgeConfig.__doc__, JudgeConfig, "judge", serve_main)
    if argv[0] == "run":
        return run_main(argv[1:])
    print(f"mimo judge: unknown sub-command {argv[0]!r} (sub-commands: serve, run)", file=sys.stderr)
    return 2
