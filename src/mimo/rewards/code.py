"""The code judge: untrusted Python against unit tests, one verdict per test, and the code reward on top.

Test formats (a list of dicts; LiveCodeBench's two shapes plus HumanEval-style asserts):

* ``{"testtype": "stdin", "input": str, "output": str}`` -- the program reads ``input`` on stdin; its stdout is
  compared line by line, token by token, numbers within ``FLOAT_TOL`` (LiveCodeBench compares decimals exactly).
* ``{"testtype": "functional", "input": str, "output": str, "fn_name": str}`` -- ``input`` holds one JSON value per
  line, the arguments of ``fn_name`` (a top-level function, or a method of ``class Solution``); ``output`` is the
  expected return value as JSON.  Tuples compare equal to lists (as in LiveCodeBench), floats within ``FLOAT_TOL``.
  ``fn_name`` may also be given once, to :func:`judge`.
* ``{"testtype": "assert", "test": str, "entry_point": str, "prelude": str (optional)}`` -- HumanEval/MBPP style:
  ``test`` is trusted check code, either defining ``check(candidate)`` (called) or asserting at top level on
  ``candidate``/``entry_point``; ``prelude`` is trusted code run first in the checker (HumanEval's ``prompt``, whose
  helpers such as ``poly`` the checks call).

Security: the expected outputs never enter the sandbox.  stdin output and call results are compared here, in the
judge's process, on plain values rebuilt by :func:`mimo.rewards.runner.loads_value`; assert checks run in a
separate checker process that holds no untrusted code and sees only such values.  So printing or returning a
rigged object, monkeypatching ``==`` or ``json``, ``os._exit(0)`` before the checks, or reading other tests'
expected outputs cannot turn a test green.

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

from mimo.errors import MimoError
from mimo.rewards import RewardResult
from mimo.rewards.checker import loads_json, loads_value
from mimo.rewards.runner import EXIT_MEMORY, EXIT_RUNNER_BUG, EXIT_UNENCODABLE
from mimo.rewards.sandbox import JudgeLimits, Sandbox, default_sandbox, make_limits

VERDICTS = ("passed", "wrong_answer", "time_limit", "memory_limit", "runtime_error", "sandbox_error")
TESTTYPES = ("stdin", "functional", "assert")
FLOAT_TOL = 1e-6


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


def outputs_match(got: str, expected: str, tol: float = FLOAT_TOL) -> bool:
    """stdin/stdout comparison: same lines after stripping; within a line, same tokens or numbers within ``tol``.

    >>> outputs_match("3 4\\n5.0000001\\n\\n", "3  4\\n5")
    True
    >>> outputs_match("3\\n4", "3 4")
    False
    """
    got_lines, want_lines = got.strip().split("\n"), expected.strip().split("\n")
    if len(got_lines) != len(want_lines):
        return False
    for g, w in zip(got_lines, want_lines):
        g, w = g.strip(), w.strip()
        if g == w:
            continue
        g_tokens, w_tokens = g.split(), w.split()
        if len(g_tokens) != len(w_tokens):
            return False
        for a, b in zip(g_tokens, w_tokens):
            if a != b and not _numbers_close(a, b, tol):
                return False
    return True


def _numbers_close(a: str, b: str, tol: float) -> bool:
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    return math.isclose(x, y, rel_tol=tol, abs_tol=tol)


def values_match(got, expected, tol: float = FLOAT_TOL) -> bool:
    """Call-result comparison on plain values: tuples as lists, floats within ``tol``, otherwise ``==``.

    >>> values_match((1, [2.0000000001, "a"]), [1, [2, "a"]])
    True
    >>> values_match({"a": 1}, {"a": 2})
    False
    """
    if isinstance(got, tuple):
        got = list(got)
    if isinstance(expected, tuple):
        expected = list(expected)
    if isinstance(got, list) and isinstance(expected, list):
        return len(got) == len(expected) and all(values_match(g, e, tol) for g, e in zip(got, expected))
    if isinstance(got, dict) and isinstance(expected, dict):
        return got.keys() == expected.keys() and all(values_match(got[k], expected[k], tol) for k in got)
    numbers = (int, float)
    if isinstance(got, float) or isinstance(expected, float):
        if isinstance(got, numbers) and isinstance(expected, numbers) and not isinstance(got, bool):
            return math.isclose(got, expected, rel_tol=tol, abs_tol=tol) or got == expected
        return False
    return got == expected  # both sides are plain values built by our own decoder: == cannot be rigged


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
    pending, retry_whole = list(range(n)), True
    while pending:
        job = {"code": code, "tests": [_runner_test(i, tests[i], fn_name) for i in pending]}
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
    if code == EXIT_MEMORY or (code != 0 and _last_line(err).startswith("MemoryError")):
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
        if outputs_match(report["stdout"], test["output"]):
            return "passed", ""
        return "wrong_answer", f"got {report['stdout'][:60]!r}"
    if not report["result"]:
        return "runtime_error", "the program exited before returning a result"
    try:
        got = loads_value(report["result"])
    except ValueError as e:
        return "wrong_answer", f"unreadable result: {e}"
    try:
        expected = loads_json(test["output"])
    except ValueError:
        return "sandbox_error", "the test's expected output is not JSON"
    return ("passed", "") if values_match(got, expected) else ("wrong_answer", f"got {report['result'][:60]}")


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
