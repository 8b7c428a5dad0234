"""The code judge: untrusted Python against unit tests, one verdict per test, and the code reward on top.

Test formats (a list of dicts; LiveCodeBench's two shapes plus HumanEval-style asserts):

* ``{"testtype": "stdin", "input": str, "output": str}`` -- the program reads ``input`` on stdin; its stdout is
  compared by :func:`outputs_match` (LiveCodeBench's rule, below).
* ``{"testtype": "functional", "input": str, "output": str, "fn_name": str}`` -- ``input`` holds one JSON value per
  line, the arguments of ``fn_name`` (a top-level function, or a method of ``class Solution``); ``output`` is the
  expected return value as JSON, compared by :func:`values_match`.  ``fn_name`` may also be given once, to
  :func:`judge`.
* ``{"testtype": "assert", "test": str, "entry_point": str, "prelude": str (optional)}`` -- HumanEval/MBPP style:
  ``test`` is trusted check code, either defining ``check(candidate)`` (called) or asserting at top level on
  ``candidate``/``entry_point``; ``prelude`` is trusted code run first in the checker (HumanEval's ``prompt``, whose
  helpers such as ``poly`` the checks call).

stdin and functional tests may carry ``"tolerance": float`` for problems whose statement accepts an error (e.g.
"within 1e-6"): then non-integer numbers may differ by that much, relative or absolute.  Integers never get one.

**Comparison rules (LiveCodeBench's, ``lcb_runner/evaluation/testing_util.py``).**  stdin: both outputs stripped
and split into lines, each line stripped, same number of lines; a line matches when equal, or when both lines are
whitespace-separated numbers that are equal as exact ``Decimal`` (``1e3`` = ``1000``, ``2.50`` = ``2.5``, but
``1000001`` != ``1000000`` and ``0.3333333`` != ``0.333333333``).  Functional: a returned tuple becomes a list (top
level only), then ``==`` (so ``1.0 == 1``, but ``0.1 + 0.2 != 0.3``).  Before every stdin/functional program the
runner executes LiveCodeBench's import prelude (:data:`mimo.rewards.runner.PRELUDE`: ``from math import *``,
``collections``, ``typing``, ... and ``sys.setrecursionlimit(50000)``) -- in the RL reward and in ``mimo eval``
alike, since both call this judge (``prelude=False`` turns it off).

**Where mimo departs from LiveCodeBench's grader, on purpose** (the conformance suite in
``tests/test_rewards_lcb_conformance.py`` lists each case): the program runs as a real ``__main__`` on a real stdin,
in a fresh process per test, rather than wrapped in a function under a mocked ``sys.stdin`` in one process for all
tests. So ``for line in sys.stdin`` works (the mock is not iterable), ``sys.stdin.buffer.readline()`` returns
successive lines (the mock always returns the first), ``os.write(1, ...)`` output counts, a function's ``global``
statement reaches the program's top-level variables, an ``if __name__ == "__main__":`` that is not the last
statement runs, ``quit()`` exits like ``exit()`` (LiveCodeBench sets ``quit`` to None), a program that starts with
``from __future__`` runs (the prepended prelude makes it a SyntaxError there), no state leaks from one test into the
next, and a non-zero exit status is a runtime error (LiveCodeBench swallows ``SystemExit`` whatever its code).
Memory is capped (RLIMIT_AS, ``memory_mb``); LiveCodeBench sets no cap.

**Threat model.**  The program is hostile and knows this module.  Assets: the verdicts, the expected outputs and
check code, the host.  What stands between the program and a verdict:

* The expected outputs and the check code never enter the program's process: stdin output and call results are
  compared here, in the judge's process, on plain values rebuilt by :func:`mimo.rewards.runner.loads_value`; assert
  checks run in a separate checker process (own uid, forked before any program code exists) that sees only such
  values.  A rigged ``__eq__``, a monkeypatched ``==``/``AssertionError``, or reading other tests' data gains
  nothing.
* The program runs with descriptors 0, 1 and 2 only (everything else is closed before it starts).  A call test's
  value is written after the call returns by a serializer the driver built before the program was loaded
  (:func:`mimo.rewards.checker.make_serializer`: its own JSON writer, builtins bound in advance), so patching
  ``json``, ``builtins``, ``os.write`` or the codec module changes nothing; the runner and codec modules are
  removed from ``sys.modules``.  The value goes on stdout behind a marker carrying a fresh per-test random nonce
  that exists only in the driver's locals; the checker's RPC replies carry the same kind of nonce.  A program that
  writes a fake result to any descriptor (``os.write(3, b'42')``) and exits gets ``wrong_answer`` or
  ``runtime_error``, never ``passed``; exiting with status 0 before returning is ``wrong_answer`` (no answer).
* Out of scope: a program that walks its own interpreter (``gc``, frames, ``ctypes``) can find the nonce and make
  the driver report any value -- which is no more than returning that value, since it cannot learn the expected
  one.  stdout *is* the answer of a stdin test, so whatever the program prints is graded, by definition.
* Exit statuses the runner assigns (:data:`~mimo.rewards.runner.EXIT_MEMORY`, ...) can be faked with
  ``os._exit``, but none of them maps to ``passed``.
* Isolation (files, network, processes, other jobs): :mod:`mimo.rewards.sandbox`.

Verdicts (:data:`VERDICTS`): ``passed``, ``wrong_answer`` (incl. output over the cap), ``time_limit`` (wall clock or
CPU), ``memory_limit`` (MemoryError under RLIMIT_AS), ``runtime_error`` (exception, signal, non-zero exit, no
result), ``sandbox_error`` (the judge itself failed -- not the program's fault).
"""

from __future__ import annotations

import dataclasses
import math
import re
import signal
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

from mimo.errors import MimoError
from mimo.rewards import RewardResult
from mimo.rewards.checker import loads_json, loads_value
from mimo.rewards.runner import EXIT_MEMORY, EXIT_RUNNER_BUG, EXIT_UNENCODABLE
from mimo.rewards.sandbox import JudgeLimits, Sandbox, default_sandbox, make_limits

VERDICTS = ("passed", "wrong_answer", "time_limit", "memory_limit", "runtime_error", "sandbox_error")
TESTTYPES = ("stdin", "functional", "assert")


@dataclasses.dataclass
class JudgeResult:
    """One verdict, one short reason ("" when passed) and the wall time per test, in the order of the tests."""

    verdicts: list[str]
    details: list[str]
    times: list[float]

    @property
    def passed(self) -> list[bool]:
        return [v == "passed" for v in self.verdicts]

    @property
    def all_passed(self) -> bool:
        return all(self.passed)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# -------------------------------------------------------------------------------------------------- comparing

_INTEGER = re.compile(r"[+-]?[0-9]+")


def _decimals(line: str) -> list[Decimal] | None:
    try:
        return [Decimal(token) for token in line.split()]
    except (InvalidOperation, ValueError):
        return None


def _stripped_lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().split("\n")]


def outputs_match(got: str, expected: str, tol: float | None = None) -> bool:
    """stdin/stdout comparison, LiveCodeBench's rule: both texts stripped and split into lines, each line stripped,
    same number of lines; a line matches when it is equal, or when both lines are all numbers and the numbers are
    equal as exact ``Decimal``s.  With ``tol`` (only for problems that ask for it), two non-integer numbers may also
    differ by ``tol`` relative or absolute; integer tokens are always exact.

    >>> outputs_match("3 4\\n5.0\\n\\n", "3  4\\n5"), outputs_match("1000001", "1000000")
    (True, False)
    >>> outputs_match("0.3333333", "0.333333333"), outputs_match("0.3333333", "0.333333333", tol=1e-6)
    (False, True)
    >>> outputs_match("Yes  no", "Yes no"), outputs_match("3\\n4", "3 4")  # words: the line must be equal
    (False, False)
    """
    got_lines, want_lines = _stripped_lines(got), _stripped_lines(expected)
    if len(got_lines) != len(want_lines):
        return False
    for g, w in zip(got_lines, want_lines):
        if g == w:
            continue
        g_nums, w_nums = _decimals(g), _decimals(w)
        if g_nums is None or w_nums is None or len(g_nums) != len(w_nums):
            return False
        if g_nums == w_nums:
            continue
        if tol is None:
            return False
        for a, b, a_text, b_text in zip(g_nums, w_nums, g.split(), w.split()):
            if a == b:
                continue
            if _INTEGER.fullmatch(a_text) or _INTEGER.fullmatch(b_text) or not _close(a, b, tol):
                return False
    return True


def _close(a: Decimal, b: Decimal, tol: float) -> bool:
    if not (a.is_finite() and b.is_finite()):
        return False
    t = Decimal(repr(tol))
    return abs(a - b) <= t * max(Decimal(1), abs(b))


def values_match(got, expected, tol: float | None = None) -> bool:
    """Call-result comparison, LiveCodeBench's rule: a returned tuple becomes a list (top level only), then ``==``.
    With ``tol`` (only for problems that ask for it), floats -- never ints -- may differ by ``tol``, at any depth.

    >>> values_match((1, [2.0, "a"]), [1, [2, "a"]]), values_match([(1, 2)], [[1, 2]])
    (True, False)
    >>> values_match(0.1 + 0.2, 0.3), values_match(0.1 + 0.2, 0.3, tol=1e-9), values_match(1000001, 1000000, tol=1e-3)
    (False, True, False)
    """
    if isinstance(got, tuple):
        got = list(got)
    if tol is None:
        return got == expected  # both sides are plain values built by our own decoder: == cannot be rigged
    return _close_values(got, expected, tol)


def _close_values(got, expected, tol: float) -> bool:
    if isinstance(got, list) and isinstance(expected, list):
        return len(got) == len(expected) and all(_close_values(g, e, tol) for g, e in zip(got, expected))
    if isinstance(got, dict) and isinstance(expected, dict):
        return got.keys() == expected.keys() and all(_close_values(got[k], expected[k], tol) for k in got)
    if type(got) is float and type(expected) in (int, float) or type(expected) is float and type(got) is int:
        return got == expected or math.isclose(got, expected, rel_tol=tol, abs_tol=tol)
    return got == expected


# ------------------------------------------------------------------------------------------------------ judge


def _check_tests(tests: Sequence[dict], fn_name: str | None) -> None:
    if not isinstance(tests, (list, tuple)):
        raise MimoError(f"tests: expected a list of dicts, got {type(tests).__name__}")
    required = {"stdin": ("input", "output"), "functional": ("input", "output"), "assert": ("test", "entry_point")}
    for i, t in enumerate(tests):
        if not isinstance(t, dict) or t.get("testtype") not in TESTTYPES:
            raise MimoError(f"tests[{i}]: expected a dict with testtype in {TESTTYPES}, got {str(t)[:80]}")
        for key in required[t["testtype"]]:
            if not isinstance(t.get(key), str):
                raise MimoError(f"tests[{i}]: {t['testtype']} test needs a string {key!r}")
        if t["testtype"] == "functional" and not (t.get("fn_name") or fn_name):
            raise MimoError(f"tests[{i}]: functional test needs 'fn_name' (in the test or passed to judge)")
        tol = t.get("tolerance")
        if tol is not None and (isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol < 1):
            raise MimoError(f"tests[{i}]: 'tolerance' must be a number in [0, 1), got {tol!r}")


def _runner_test(i: int, t: dict, fn_name: str | None) -> dict:
    """What the sandbox gets for a test: its input only -- never the expected output or the check code."""
    if t["testtype"] == "stdin":
        return {"i": i, "mode": "stdin", "input": t["input"]}
    if t["testtype"] == "functional":
        return {"i": i, "mode": "call", "fn_name": t.get("fn_name") or fn_name, "args": t["input"]}
    return {"i": i, "mode": "serve", "entry_point": t["entry_point"]}


def judge(code: str, tests: Sequence[dict], *, fn_name: str | None = None, sandbox: Sandbox | None = None,
          **limits) -> JudgeResult:
    """Run ``code`` against ``tests`` in the sandbox; ``limits`` are :class:`~mimo.rewards.sandbox.JudgeLimits`
    fields (``time_limit=6.0``, ``memory_mb=1024``, ``unsafe=False``, ...).  Raises MimoError for malformed tests or
    a missing bubblewrap (unless ``unsafe=True``); every problem of the *program* is a verdict instead."""
    _check_tests(tests, fn_name)
    lim = make_limits(**limits)
    box = sandbox or default_sandbox(lim.unsafe)
    n = len(tests)
    verdicts, details, times = ["sandbox_error"] * n, ["not run"] * n, [0.0] * n
    checks = {str(i): {"prelude": t.get("prelude", ""), "test": t["test"], "entry_point": t["entry_point"]}
              for i, t in enumerate(tests) if t["testtype"] == "assert"}
    pending, retry_whole, batched = list(range(n)), True, True
    while pending:
        job = {"code": code, "tests": [_runner_test(i, tests[i], fn_name) for i in pending], "prelude": lim.prelude}
        if not batched:
            job["reports"] = "each"
        wanted = {k: v for k, v in checks.items() if int(k) in pending}
        run = box.run(job, wanted or None, lim)
        for i in pending:
            if i in run.reports:
                report = run.reports[i]
                verdicts[i], details[i] = _verdict(tests[i], report, run.checks.get(i), lim)
                times[i] = report["wall"]
        missing = [i for i in pending if i not in run.reports]
        if not missing:
            break
        why = run.error or "the sandbox stopped"
        if batched and run.running != missing[0]:
            # The runner sends reports in batches and announces only tests that run long, so which test it died
            # in is unknown: the missing ones run again in a fresh session that reports after every test.
            batched, pending = False, missing
            if not run.reports:  # this rerun is also the one retry of a session that died while idle
                retry_whole = False
            continue
        if not run.reports and retry_whole:  # a session that died while idle, or a slow start: once more
            retry_whole = False
            continue
        if not run.reports and box.root:  # as root the program cannot stop the runner: the judge is broken
            for i in missing:
                details[i] = why
            break
        # The runner died during a test: that test gets the blame (ours as root, the program's possibly without
        # root, where it can signal the runner), the rest run again in a fresh session.
        verdicts[missing[0]] = "sandbox_error" if box.root else "runtime_error"
        details[missing[0]] = why
        pending, retry_whole = missing[1:], True
    return JudgeResult(verdicts, details, times)


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


def _verdict(test: dict, report: dict, check: dict | None, lim: JudgeLimits) -> tuple[str, str]:
    """Map the runner's report (and the checker's outcome) of one test to (verdict, reason)."""
    status, code, sig, err = report["status"], report["code"], report["signal"], report["stderr"]
    cpu_limit = float(lim.cpu_limit or lim.time_limit)
    if status == "timeout":
        return "time_limit", f"over the {lim.time_limit:g}s wall-clock limit"
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and report["cpu"] >= cpu_limit - 0.05):
        return "time_limit", f"over the {cpu_limit:g}s CPU limit"
    if status == "output_limit":
        return "wrong_answer", f"output limit exceeded (over {lim.output_bytes} bytes)"
    if code == EXIT_MEMORY or report.get("oom") or (code != 0 and _last_line(err).startswith("MemoryError")):
        return "memory_limit", f"over the {lim.memory_mb} MiB memory limit"
    if code == EXIT_RUNNER_BUG:
        return "sandbox_error", f"runner failed before the program ran: {_last_line(err)}"
    kind = test["testtype"]
    if kind == "assert":
        if check is None:
            return "sandbox_error", "the checker gave no outcome"
        outcome, detail = check["outcome"], check.get("detail", "")
        if outcome == "passed":
            return "passed", ""
        if outcome == "failed":
            return "wrong_answer", detail
        if outcome == "died" and code == 0 and sig is None:
            return "runtime_error", "the program exited before the checks ran"
        return "runtime_error", detail or _crash_reason(code, sig, err)
    if code == EXIT_UNENCODABLE:
        return "wrong_answer", _last_line(err)
    if code != 0 or sig is not None:
        return "runtime_error", _crash_reason(code, sig, err)
    if kind == "stdin":
        if outputs_match(report["stdout"], test["output"], test.get("tolerance")):
            return "passed", ""
        return "wrong_answer", f"got {report['stdout'][:60]!r}"
    if report["result"] is None:  # exit status 0 and no answer: like a stdin program that prints nothing
        return "wrong_answer", "the program exited without returning a value"
    try:
        got = loads_value(report["result"])
    except ValueError as e:
        return "wrong_answer", f"unreadable result: {e}"
    try:
        expected = loads_json(test["output"])
    except ValueError:
        return "sandbox_error", "the test's expected output is not JSON"
    if values_match(got, expected, test.get("tolerance")):
        return "passed", ""
    return "wrong_answer", f"got {report['result'][:60]}"


def _crash_reason(code: int | None, sig: int | None, err: str) -> str:
    line = _last_line(err)
    if sig is not None:
        return f"killed by signal {signal.Signals(sig).name}" + (f": {line}" if line else "")
    return line or f"exit status {code}"


# ------------------------------------------------------------------------------------------------ code reward

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.S)


def extract_code(completion: str) -> str | None:
    """The last fenced Python block of the answer (after ``</think>`` when there is one); None when the reasoning
    never closed or there is no such block.

    >>> extract_code("<think>```python\\nx=1\\n```</think>Answer:\\n```python\\nprint(2)\\n```")
    'print(2)\\n'
    >>> extract_code("<think>still thinking") is None
    True
    """
    if "</think>" in completion:
        completion = completion.rsplit("</think>", 1)[1]
    elif "<think>" in completion:
        return None
    blocks = [body for lang, body in _FENCE.findall(completion) if lang.lower() in ("python", "python3", "py", "")]
    return blocks[-1] if blocks else None


def code_reward(completion: str, reference: dict, **limits) -> RewardResult:
    """The code reward of one completion.  ``reference``: ``{"tests": [...], "levels": [...] | None, "scheme":
    "strict" | "soft" | "vanilla", "level_weights": [...] | None, "fn_name": str | None}`` (scheme defaults to
    strict when levels are given, else vanilla).  ``score`` in [0, 1]; ``verdicts`` one per test."""
    from mimo.rewards.levels import scheme_reward

    if not isinstance(reference, dict) or "tests" not in reference:
        raise MimoError("code reference: expected a dict with 'tests' (and optionally 'levels', 'scheme')")
    code = extract_code(completion)
    if code is None:
        return RewardResult(0.0, "no_code")
    return judged_reward(judge(code, reference["tests"], fn_name=reference.get("fn_name"), **limits), reference,
                         scheme_reward)


def judged_reward(result: JudgeResult, reference: dict, scheme_reward=None) -> RewardResult:
    """Score a :class:`JudgeResult` with the reference's scheme; the reason names the first failing test."""
    if scheme_reward is None:
        from mimo.rewards.levels import scheme_reward
    score = scheme_reward(result.passed, reference.get("levels"), reference.get("scheme"),
                          reference.get("level_weights"))
    failed = [(i, v) for i, v in enumerate(result.verdicts) if v != "passed"]
    reason = ""
    if failed:
        reason = f"{failed[0][1]} on test {failed[0][0]} ({len(failed)}/{len(result.verdicts)} failed)"
    return RewardResult(score, reason, tuple(result.verdicts))
