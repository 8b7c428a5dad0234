"""Conformance with LiveCodeBench's official grader (``lcb_runner/evaluation/testing_util.py``).

Each case is a small program and LiveCodeBench-format tests, labelled with the verdict the official grader gives
(worked out by reading that grader: its ``grade_stdio``/``grade_call_based``, the prelude, the stdin mock, the
function wrapping) and, where mimo departs on purpose, mimo's verdict and why.  Official verdict names: its
error codes -2/-3/-4 are ``wrong_answer``/``time_limit``/``runtime_error``; ``no_result`` is its -1 (the grading
process died, e.g. on an uncaught ``SystemExit``, and every test counts as failed).  Where the official grader
stops at the first failing test, the remaining tests are labelled as it would have graded them alone.

``python tests/test_rewards_lcb_conformance.py`` prints the README's table.
"""

from __future__ import annotations

import sys
from typing import NamedTuple

import pytest

from mimo.rewards.code import judge


class Case(NamedTuple):
    name: str
    code: str
    tests: list[dict]
    official: tuple[str, ...]
    mimo: tuple[str, ...] | None = None  # None: same as official
    why: str = ""


def stdin(inp: str, out: str) -> dict:
    return {"testtype": "stdin", "input": inp, "output": out}


def call(args: str, out: str, fn: str = "f") -> dict:
    return {"testtype": "functional", "input": args, "output": out, "fn_name": fn}


P, WA, RE, TLE = "passed", "wrong_answer", "runtime_error", "time_limit"
REAL_STDIN = "mimo gives the program a real stdin; LiveCodeBench's mock of sys.stdin"
CASES = [
    # -------------------------------------------------------------------------------- whitespace and lines
    Case("trailing spaces and newline", "print('1 2 ')\n", [stdin("", "1 2")], (P,)),
    Case("blank lines around the output", "print()\nprint()\nprint(5)\nprint()\n", [stdin("", "5")], (P,)),
    Case("blank line inside the output", "print(1)\nprint()\nprint(2)\n", [stdin("", "1\n2")], (WA,)),
    Case("extra spaces between numbers", "print('1   2')\n", [stdin("", "1 2")], (P,)),
    Case("extra spaces between words", "print('Yes  No')\n", [stdin("", "Yes No")], (WA,)),
    Case("tab between numbers", "print('1\\t2')\n", [stdin("", "1 2")], (P,)),
    Case("CRLF line ends", "import sys\nsys.stdout.write('5\\r\\n6\\r\\n')\n", [stdin("", "5\n6")], (P,)),
    Case("a line missing", "print(1)\n", [stdin("", "1\n2")], (WA,)),
    Case("letter case", "print('yes')\n", [stdin("", "Yes")], (WA,)),
    Case("unicode output", "print('h\\u00e9llo')\n", [stdin("", "h\u00e9llo")], (P,)),
    # ------------------------------------------------------------------------------- numbers and formats
    Case("1.0 for 1", "print('1.0')\n", [stdin("", "1")], (P,)),
    Case("1e3 for 1000", "print('1e3')\n", [stdin("", "1000")], (P,)),
    Case("1000001 for 1000000", "print(1000001)\n", [stdin("", "1000000")], (WA,)),
    Case("10**17+1 for 10**17", "print(10**17 + 1)\n", [stdin("", str(10 ** 17))], (WA,)),
    Case("off by one near 998244352", "print(998244353)\n", [stdin("", "998244352")], (WA,)),
    Case("float within 1e-6, no tolerance", "print(1/3)\n", [stdin("", "0.333333")], (WA,)),
    Case("float digits exactly equal", "print('%.6f' % (1/3))\n", [stdin("", "0.333333")], (P,)),
    Case("+5 for 5", "print('+5')\n", [stdin("", "5")], (P,)),
    Case("-0 for 0", "print('-0')\n", [stdin("", "0")], (P,)),
    Case("0x10 for 16", "print('0x10')\n", [stdin("", "16")], (WA,)),
    Case("1_000 for 1000", "print('1_000')\n", [stdin("", "1000")], (P,)),
    Case("5. for 5", "print('5.')\n", [stdin("", "5")], (P,)),
    Case("inf for Infinity", "print(float('inf'))\n", [stdin("", "Infinity")], (P,)),
    Case("number and word, extra space", "print('3  a')\n", [stdin("", "3 a")], (WA,)),
    # ------------------------------------------------------------------------------------- call-based
    Case("tuple for a list", "def f(x):\n    return (x, x)\n", [call("1", "[1, 1]")], (P,)),
    Case("nested tuple", "def f(x):\n    return [(x, x)]\n", [call("1", "[[1, 1]]")], (WA,)),
    Case("1.0 for 1", "def f(x):\n    return 1.0\n", [call("1", "1")], (P,)),
    Case("0.1+0.2 for 0.3", "def f(x):\n    return 0.1 + 0.2\n", [call("1", "0.3")], (WA,)),
    Case("True for 1", "def f(x):\n    return True\n", [call("1", "1")], (P,)),
    Case("int keys for JSON's string keys", "def f(x):\n    return {1: 2}\n", [call("1", '{"1": 2}')], (WA,)),
    Case("set for a list", "def f(x):\n    return {1, 2}\n", [call("1", "[1, 2]")], (WA,)),
    Case("string for a number", "def f(x):\n    return '42'\n", [call("1", "42")], (WA,)),
    Case("None for null", "def f(x):\n    return None\n", [call("1", "null")], (P,)),
    Case("infinity", "def f(x):\n    return float('inf')\n", [call("1", "Infinity")], (P,)),
    Case("big integer", "def f(x):\n    return 10 ** 30 + x\n", [call("1", str(10 ** 30 + 1))], (P,)),
    Case("two arguments on two lines", "def f(a, b):\n    return a + b\n", [call("[1, 2]\n[3]", "[1, 2, 3]")], (P,)),
    Case("Solution method", "class Solution:\n    def twoSum(self, a, t):\n        return [0, 1]\n",
         [call("[2, 7]\n9", "[0, 1]", "twoSum")], (P,)),
    Case("exception in the call", "def f(x):\n    return x // 0\n", [call("1", "1")], (RE,)),
    Case("state kept between tests",
         "class Solution:\n    calls = 0\n    def f(self, x):\n        Solution.calls += 1\n"
         "        return Solution.calls\n", [call("1", "1"), call("1", "1")], (P, WA), (P, P),
         "each test runs in a fresh process; LiveCodeBench calls one instance for all tests"),
    Case("'class Solution' in a comment", "# no class Solution here\ndef f(x):\n    return x\n",
         [call("1", "1")], (RE,), (P,), "LiveCodeBench picks Solution() whenever the text contains 'class Solution'"),
    # ------------------------------------------------------------------------------- early exit and errors
    Case("exit() after the answer", "print(5)\nexit()\nprint(6)\n", [stdin("", "5")], (P,)),
    Case("sys.exit() before the whole answer", "import sys\nprint(5)\nsys.exit()\nprint(6)\n",
         [stdin("", "5\n6")], (WA,)),
    Case("sys.exit(1) after the answer", "import sys\nprint(5)\nsys.exit(1)\n", [stdin("", "5")], (P,), (RE,),
         "a non-zero exit status is a runtime error on real judges; LiveCodeBench swallows any SystemExit"),
    Case("quit() after the answer", "print(5)\nquit()\n", [stdin("", "5")], (RE,), (P,),
         "LiveCodeBench sets builtins.quit to None, so quit() is a TypeError there"),
    Case("sys.exit() inside a call", "import sys\ndef f(x):\n    sys.exit()\n", [call("1", "1")], ("no_result",),
         (WA,), "the call gave no answer; LiveCodeBench's grading process dies on the uncaught SystemExit"),
    Case("exception after the answer", "print(5)\nraise ValueError\n", [stdin("", "5")], (RE,)),
    Case("stderr beside the answer", "import sys\nprint('noise', file=sys.stderr)\nprint(5)\n",
         [stdin("", "5")], (P,)),
    Case("answer on stderr only", "import sys\nprint(5, file=sys.stderr)\n", [stdin("", "5")], (WA,)),
    Case("infinite loop", "while True:\n    pass\n", [stdin("", "5")], (TLE,)),
    # ---------------------------------------------------------------------------------- imports, prelude
    Case("bare sqrt", "print(int(sqrt(16)))\n", [stdin("", "4")], (P,)),
    Case("bare Counter and deque", "print(Counter('aab')['a'], len(deque([1])))\n", [stdin("", "2 1")], (P,)),
    Case("List[int] in a signature",
         "class Solution:\n    def f(self, xs: List[int]) -> int:\n        return len(xs)\n",
         [call("[1, 2]", "2")], (P,)),
    Case("recursion depth 10000", "def d(n):\n    return 0 if n == 0 else 1 + d(n - 1)\nprint(d(10000))\n",
         [stdin("", "10000")], (P,)),
    Case("from __future__ first", "from __future__ import annotations\nprint(5)\n", [stdin("", "5")], (RE,), (P,),
         "a valid program; LiveCodeBench's prepended prelude makes its __future__ import a SyntaxError"),
    # ------------------------------------------------------------------------------------- annotations
    Case("annotations are evaluated", "def g(x: int):\n    return x\nprint(g.__annotations__['x'] is int)\n",
         [stdin("", "True")], (P,)),
    Case("annotation naming nothing", "def g(x: Undefined):\n    return x\nprint(5)\n", [stdin("", "5")], (RE,)),
    # ---------------------------------------------------------------------------------------- reading stdin
    Case("input() line by line", "a = int(input())\nb = int(input())\nprint(a + b)\n", [stdin("2\n3\n", "5")], (P,)),
    Case("sys.stdin.read().split()", "import sys\nprint(sum(map(int, sys.stdin.read().split())))\n",
         [stdin("2 3\n4\n", "9")], (P,)),
    Case("sys.stdin.readline()", "import sys\nprint(sys.stdin.readline().strip()[::-1])\n",
         [stdin("abc\n", "cba")], (P,)),
    Case("open(0).read()", "print(len(open(0).read().split()))\n", [stdin("1 2 3\n", "3")], (P,)),
    Case("input() past the end", "input()\ninput()\n", [stdin("1\n", "")], (RE,)),
    Case("for line in sys.stdin", "import sys\nprint(sum(int(x) for x in sys.stdin))\n", [stdin("2\n3\n", "5")],
         (RE,), (P,), f"{REAL_STDIN} is not iterable"),
    Case("sys.stdin.buffer.readline() twice", "import sys\na = sys.stdin.buffer.readline()\n"
         "b = sys.stdin.buffer.readline()\nprint(int(a) + int(b))\n", [stdin("2\n3\n", "5")], (WA,), (P,),
         f"{REAL_STDIN} returns the first line on every call"),
    # --------------------------------------------------------------------------------------- writing stdout
    Case("sys.stdout.write", "import sys\nsys.stdout.write('5\\n')\n", [stdin("", "5")], (P,)),
    Case("print without a newline", "print(5, end='')\n", [stdin("", "5")], (P,)),
    Case("os.write(1, ...)", "import os\nos.write(1, b'5\\n')\n", [stdin("", "5")], (WA,), (P,),
         "mimo reads the program's real stdout; LiveCodeBench captures only sys.stdout"),
    # --------------------------------------------------------------------------------- program structure
    Case("__main__ guard last", "def main():\n    print(5)\nif __name__ == '__main__':\n    main()\n",
         [stdin("", "5")], (P,)),
    Case("__main__ guard not last", "def main():\n    print(5)\nif __name__ == '__main__':\n    main()\nX = 1\n",
         [stdin("", "5")], (WA,), (P,), "mimo runs the program as __main__; LiveCodeBench unwraps the guard only "
                                        "when it is the last statement, else its module is not __main__"),
    Case("global statement", "x = 0\ndef inc():\n    global x\n    x += 1\ninc()\nprint(x)\n", [stdin("", "1")],
         (RE,), (P,), "LiveCodeBench moves top-level code into a function, so x is no longer a global there"),
]


def _key(case: Case) -> str:
    return case.name + (" (call)" if case.tests[0]["testtype"] == "functional" else "")


@pytest.fixture(scope="module")
def results() -> dict[str, tuple[str, ...]]:
    # a generous wall clock except where the limit is the point: verdicts must not depend on the machine's load
    return {_key(case): tuple(judge(case.code, case.tests, time_limit=2.0 if case.official == (TLE,) else 20.0)
                              .verdicts) for case in CASES}


def test_the_suite_is_well_formed():
    assert len(CASES) >= 40 and len({_key(c) for c in CASES}) == len(CASES)
    for case in CASES:
        assert len(case.official) == len(case.tests) and (case.mimo is None) == (case.why == ""), case.name
        assert case.mimo is None or case.mimo != case.official, case.name


@pytest.mark.parametrize("case", CASES, ids=_key)
def test_mimo_gives_the_labelled_verdict(case, results):
    assert results[_key(case)] == (case.mimo or case.official), case.why or "mimo should agree with LiveCodeBench"


def table() -> str:
    """The README's tables: the departures with their reasons, then every case (in a collapsed block)."""
    agree = sum(c.mimo is None for c in CASES)
    rows = [f"{agree} of {len(CASES)} cases get the official verdict; the {len(CASES) - agree} departures, each on "
            "purpose:", "", "| case | kind | official | mimo | why mimo departs |", "|---|---|---|---|---|"]
    rows += [f"| {c.name} | {c.tests[0]['testtype']} | {', '.join(c.official)} | {', '.join(c.mimo)} | {c.why} |"
             for c in CASES if c.mimo is not None]
    rows += ["", "<details><summary>All cases: official vs mimo verdict</summary>", "",
             "| case | kind | official | mimo |", "|---|---|---|---|"]
    rows += [f"| {c.name} | {c.tests[0]['testtype']} | {', '.join(c.official)} | {', '.join(c.mimo or c.official)}"
             f"{'' if c.mimo is None else ' (departs)'} |" for c in CASES]
    return "\n".join(rows + ["", "</details>"])


if __name__ == "__main__":
    print(table())
    sys.exit(0)
