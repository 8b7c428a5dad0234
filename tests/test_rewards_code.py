"""Code judge: the three test formats, verdicts, comparisons, the code reward, and all of HumanEval."""

from __future__ import annotations

import doctest
import gzip
import json

import pytest

import mimo.rewards.code as code_mod
from mimo.errors import MimoError
from mimo.rewards import checker
from mimo.rewards.code import code_reward, extract_code, judge, outputs_match, values_match
from mimo.rewards.pool import RewardPool
from mimo.rewards.sandbox import Sandbox


def test_doctests():
    assert doctest.testmod(code_mod).failed == 0


def test_stdin_tests_compare_lines_tokens_and_floats():
    code = "a, b = map(float, input().split())\nprint(a / b)\nprint('done')\n"
    tests = [
        {"testtype": "stdin", "input": "1 3\n", "output": "0.333333333\ndone\n", "tolerance": 1e-6},  # asked for
        {"testtype": "stdin", "input": "1 4\n", "output": "0.25 \n  done"},        # whitespace
        {"testtype": "stdin", "input": "1 2\n", "output": "0.6\ndone"},            # wrong
        {"testtype": "stdin", "input": "1 0\n", "output": "inf\ndone"},            # ZeroDivisionError
        {"testtype": "stdin", "input": "", "output": ""},                          # EOFError
    ]
    tests.append({"testtype": "stdin", "input": "1 3\n", "output": "0.333333333\ndone\n"})  # exact by default
    r = judge(code, tests, time_limit=5)
    assert r.verdicts == ["passed", "passed", "wrong_answer", "runtime_error", "runtime_error", "wrong_answer"]
    assert "ZeroDivisionError" in r.details[3] and "EOFError" in r.details[4]
    assert len(r.times) == 6 and all(t >= 0 for t in r.times)


def test_functional_tests_named_function_and_solution_class():
    fn = "def twice(xs, k):\n    return [x * k for x in xs], {'n': len(xs)}\n"
    tests = [{"testtype": "functional", "input": "[1, 2]\n3", "output": "[[3, 6], {\"n\": 2}]"},
             {"testtype": "functional", "input": "[]\n3", "output": "[[], {\"n\": 1}]"}]
    assert judge(fn, tests, fn_name="twice").verdicts == ["passed", "wrong_answer"]
    cls = ("class Solution:\n    def twoSum(self, nums, target):\n"
           "        return (0, 1) if nums[0] + nums[1] == target else None\n")
    tests = [{"testtype": "functional", "input": "[2, 7]\n9", "output": "[0, 1]", "fn_name": "twoSum"},
             {"testtype": "functional", "input": "[2, 7]\n8", "output": "[0, 1]", "fn_name": "twoSum"}]
    assert judge(cls, tests).verdicts == ["passed", "wrong_answer"]  # a tuple equals the JSON list, as in LCB
    assert judge("def other(): pass\n", tests[:1]).verdicts == ["runtime_error"]  # no such function
    big = {"testtype": "functional", "input": "5000", "output": "1" + "0" * 5000, "fn_name": "p"}
    assert judge("def p(n):\n    return 10 ** n\n", [big]).verdicts == ["passed"]  # past the 4300-digit default


def test_assert_tests_with_prelude_and_top_level_asserts():
    prelude = "def helper(x):\n    return x + 1\n\ndef inc(x):\n    '''add one'''\n"
    check = "def check(candidate):\n    for i in range(50):\n        assert candidate(i) == helper(i)\n"
    tests = [{"testtype": "assert", "test": check, "entry_point": "inc", "prelude": prelude},
             {"testtype": "assert", "test": "assert inc(1) == 2\nassert inc(-1) == 0\n", "entry_point": "inc"},
             {"testtype": "assert", "test": "assert candidate(1) == 3\n", "entry_point": "inc"}]
    assert judge("def inc(x):\n    return x + 1\n", tests).verdicts == ["passed", "passed", "wrong_answer"]
    raising = judge("def inc(x):\n    raise ValueError('no')\n", tests[:1])
    assert raising.verdicts == ["runtime_error"] and "ValueError" in raising.details[0]


def test_codec_round_trip_and_rejects_junk():
    value = [1, 2.5, float("inf"), "s", None, True, (1, (2,)), {1: "a", (2, 3): [4]}, {5}, frozenset({6}),
             b"\x00\xff", 3 + 4j, 10 ** 4000]
    assert checker.loads_value(checker.dumps_value(value)) == value
    for junk in ['{"$t": "os.system", "v": "ls"}', '{"a": 1}', '{"$t": "set", "v": [[1]]}', "[" * 100000, "nan"]:
        with pytest.raises(ValueError):
            checker.loads_value(junk)


def test_values_and_outputs_match():
    assert values_match((1.0, [2, 3]), [1, [2, 3]]) and not values_match([1], [1, 1])
    assert not values_match([1.0, (2, 3)], [1, [2, 3]])  # tuples become lists at the top level only, as in LCB
    assert not values_match("1", 1) and values_match(True, True)
    assert outputs_match("YES\n", "YES") and not outputs_match("YES", "NO")
    assert not outputs_match("", "0")


def test_integers_never_get_a_tolerance():
    # the old 1e-6 relative tolerance passed all of these
    for got, want in [("1000001", "1000000"), (str(10 ** 17 + 1), str(10 ** 17)), ("998244353", "998244352"),
                      ("998243355", "998244352")]:
        for tol in (None, 1e-6):
            assert not outputs_match(got, want, tol), (got, want, tol)
            assert not values_match(int(got), int(want), tol)
    assert outputs_match("1e6", "1000000") and outputs_match("+5", "5") and outputs_match("2.50", "2.5")  # Decimal
    assert not outputs_match("3.0000001", "3", 1e-6)  # the expected token is an integer: exact
    assert outputs_match("3.0000001", "3.0", 1e-6) and not outputs_match("3.01", "3.0", 1e-6)
    assert values_match([0.30000000000000004], [0.3], 1e-9) and not values_match([0.30000000000000004], [0.3])
    with pytest.raises(MimoError, match="tolerance"):
        judge("print(1)", [{"testtype": "stdin", "input": "", "output": "1", "tolerance": "1e-6"}])


def test_extract_code_and_code_reward():
    completion = ("<think>\nlet me try\n```python\nprint(1)\n```\n</think>\n"
                  "Final:\n```python\nprint(int(input()) * 2)\n```")
    assert extract_code(completion) == "print(int(input()) * 2)\n"
    tests = [{"testtype": "stdin", "input": f"{i}", "output": f"{2 * i}"} for i in range(3)]
    tests.append({"testtype": "stdin", "input": "x", "output": "xx"})
    reference = {"tests": tests, "levels": [0, 0, 1, 2], "scheme": "soft"}
    r = code_reward(completion, reference)
    assert r.verdicts == ("passed", "passed", "passed", "runtime_error")
    assert r.score == pytest.approx(2 / 3) and "runtime_error on test 3" in r.reason
    assert code_reward(completion, {**reference, "scheme": "strict"}).score == pytest.approx(2 / 3)
    assert code_reward(completion, {"tests": tests}).score == 0.0  # vanilla by default without levels
    assert code_reward("<think>no code yet", reference).reason == "no_code"


def test_malformed_tests_and_limits_are_user_errors():
    with pytest.raises(MimoError, match=r"tests\[0\]: functional test needs 'fn_name'"):
        judge("x = 1", [{"testtype": "functional", "input": "1", "output": "1"}])
    with pytest.raises(MimoError, match=r"tests\[0\]"):
        judge("x = 1", [{"testtype": "bogus"}])
    with pytest.raises(MimoError, match="unknown judge limit 'time'"):
        judge("x = 1", [], time=3)
    with pytest.raises(MimoError, match=r"output_bytes \(16777216\) must be below file_size_mb \(16 MiB\)"):
        judge("x = 1", [], output_bytes=16 << 20)


def test_the_runner_compiles_a_program_once_per_job_and_leaves_what_compiling_reports_to_the_test():
    """A job's program is compiled once by the runner (compiling runs none of it) unless compiling has something
    to say: a syntax error or a compile-time warning then comes from each test's own compile, on its stderr."""
    from mimo.rewards import runner

    code = runner.precompile("def f(x: int) -> int:\n    return x\n")
    assert code is not None and not code.co_flags & __import__("__future__").annotations.compiler_flag
    assert runner.precompile("x = (") is None  # SyntaxError
    assert runner.precompile("print(1 is 1)\n") is None  # SyntaxWarning at compile time
    assert runner.precompile("x = 1\0") is None  # NUL byte: ValueError
    assert runner.precompile("x = 1\n" + "#" * runner.PRECOMPILE_LIMIT) is None
    warned = judge("print(1 is 1)\n", [{"testtype": "stdin", "input": "", "output": "True"}])
    assert warned.passed == [True]
    broken = judge("x = (", [{"testtype": "stdin", "input": "", "output": ""}])
    assert broken.verdicts == ["runtime_error"] and "SyntaxError" in broken.details[0]


def test_refuses_without_bubblewrap_unless_unsafe(tmp_path):
    with pytest.raises(MimoError, match="bubblewrap"):
        Sandbox(bwrap=str(tmp_path / "no-bwrap"))
    with pytest.warns(RuntimeWarning, match="WITHOUT a sandbox"):
        box = Sandbox(bwrap=str(tmp_path / "no-bwrap"), unsafe=True)
    try:
        r = judge("print(int(input()) + 1)", [{"testtype": "stdin", "input": "1", "output": "2"}], sandbox=box)
        assert r.verdicts == ["passed"]
    finally:
        box.close()


# ------------------------------------------------------------------------------------------------ HumanEval

def _humaneval(shared_data) -> list[dict]:
    with gzip.open(shared_data / "HumanEval.jsonl.gz", "rt") as f:
        return [json.loads(line) for line in f]


def humaneval_test(problem: dict) -> dict:
    return {"testtype": "assert", "test": problem["test"], "entry_point": problem["entry_point"],
            "prelude": problem["prompt"]}


def test_all_humaneval_canonical_solutions_pass_and_pass_bodies_fail(shared_data):
    problems = _humaneval(shared_data)
    assert len(problems) == 164
    with RewardPool(workers=2) as pool:
        good = [pool.submit("judge", p["prompt"] + p["canonical_solution"], {"tests": [humaneval_test(p)]})
                for p in problems]
        empty = [pool.submit("judge", p["prompt"] + "    pass\n", {"tests": [humaneval_test(p)]}) for p in problems]
        good = [f.result() for f in good]
        empty = [f.result() for f in empty]
    failed = [(p["task_id"], r.verdicts, r.reason) for p, r in zip(problems, good) if r.verdicts != ("passed",)]
    assert not failed, failed[:5]
    passed = [p["task_id"] for p, r in zip(problems, empty) if r.verdicts != ("wrong_answer",)]
    assert not passed, f"`pass` bodies not judged wrong_answer: {passed[:5]}"


def test_mimo_judge_run_command(tmp_path, capsys):
    from mimo.cli import main

    (tmp_path / "sol.py").write_text("print(sum(map(int, input().split())))\n")
    tests = [{"testtype": "stdin", "input": "1 2", "output": "3"}, {"testtype": "stdin", "input": "2 2", "output": "5"}]
    (tmp_path / "tests.json").write_text(json.dumps(tests))
    assert main(["judge", "run", "--code", str(tmp_path / "sol.py"), "--tests", str(tmp_path / "tests.json")]) == 1
    out = capsys.readouterr().out
    assert "test 0: passed" in out and "test 1: wrong_answer" in out and "1/2 passed" in out
    assert main(["judge", "run", "--code", str(tmp_path / "missing.py"), "--tests", str(tmp_path / "tests.json")]) == 2


FORTY_TWO = [{"testtype": "functional", "input": "1", "output": "42", "fn_name": "f"}]


def test_the_program_cannot_write_its_own_verdict():
    """Regression: these returned 0 and were graded as if they had returned 42."""
    cases = {
        "patched json.dumps": "import json\njson.dumps = lambda *a, **k: '42'\ndef f(x):\n    return 0\n",
        "fd 3 then exit": "import os\ndef f(x):\n    try:\n        os.write(3, b'42')\n    except OSError:\n"
                          "        pass\n    os._exit(0)\n",
        "patched codec": "import sys\nfor m in list(sys.modules.values()):\n    for name in ('dumps_value', 'encode', "
                         "'make_serializer', 'result_marker'):\n        if hasattr(m, name):\n"
                         "            setattr(m, name, lambda *a, **k: '42')\n"
                         "import builtins\nbuiltins.isinstance = lambda *a: True\nimport os\nos.write = lambda *a: 0\n"
                         "def f(x):\n    return 0\n",
        "prints a result line": "def f(x):\n    print('42')\n"
                                "    print('\\x00mimo-result:' + '0' * 32 + '\\x00' + '42')\n    return 0\n",
    }
    for name, code in cases.items():
        r = judge(code, FORTY_TWO)
        assert r.verdicts == ["wrong_answer"], (name, r)
    # fd 3 is closed: the bare write is an exception (the program's fault), not a pass
    assert judge("import os\ndef f(x):\n    os.write(3, b'42')\n    os._exit(0)\n", FORTY_TWO).verdicts == \
        ["runtime_error"]
    # the honest program still passes, also when it prints and patches json itself
    assert judge("import json\njson.dumps = None\ndef f(x):\n    print(1)\n    return 42\n", FORTY_TWO).passed == [True]


def test_only_stdin_stdout_stderr_reach_the_program():
    code = ("import os\nprint(sorted(int(fd) for fd in os.listdir('/proc/self/fd')))\n"
            "def f(x):\n    return sorted(int(fd) for fd in os.listdir('/proc/self/fd'))\n")
    # listdir itself holds one descriptor while it runs: the lowest free one, 3
    tests = [{"testtype": "stdin", "input": "", "output": "[0, 1, 2, 3]"},
             {"testtype": "functional", "input": "0", "output": "[0, 1, 2, 3]", "fn_name": "f"},
             {"testtype": "assert", "test": "assert candidate(0) == [0, 1, 2, 3]\n", "entry_point": "f"}]
    assert judge(code, tests).verdicts == ["passed"] * 3


def test_each_test_starts_random_from_a_fresh_seed_and_seeding_still_replays():
    # the runner swaps random's at-fork reseed for C-level hooks: each test (and each fork of a program) reseeds
    fresh = "import random\nprint(random.random(), random.gauss(0, 1))\n"
    details = judge(fresh, [{"testtype": "stdin", "input": "", "output": "x"}] * 3).details
    assert len(set(details)) == 3, details
    forks = ("import os, random\nr, w = os.pipe()\nif os.fork() == 0:\n"
             "    os.write(w, repr(random.random()).encode())\n    os._exit(0)\n"
             "os.wait()\nprint(os.read(r, 100).decode() != repr(random.random()))\n")
    assert judge(forks, [{"testtype": "stdin", "input": "", "output": "True"}]).passed == [True]  # as in CPython
    import random

    random.seed(5)
    want = f"{random.random()} {random.gauss(0, 1)}"
    seeded = "random.seed(5)\nprint(random.random(), random.gauss(0, 1))\n"  # the prelude's `random`
    assert judge(seeded, [{"testtype": "stdin", "input": "", "output": want}] * 2).passed == [True, True]


def test_annotations_and_the_prelude_behave_as_in_livecodebench():
    annotated = ("def f(x: int) -> int:\n    return x\n"
                 "print(f.__annotations__['x'] is int)\n")
    assert judge(annotated, [{"testtype": "stdin", "input": "", "output": "True"}]).passed == [True]
    undefined = "def f(x: Undefined) -> int:\n    return x\nprint(1)\n"  # evaluated at def time: NameError
    assert judge(undefined, [{"testtype": "stdin", "input": "", "output": "1"}]).verdicts == ["runtime_error"]
    relies = ("def f(xs: List[int]) -> int:\n    return int(sqrt(sum(Counter(xs).values())))\n"
              "def deep(n):\n    return 0 if n == 0 else 1 + deep(n - 1)\n"
              "print(f([1, 2, 2, 4]), deep(20000))\n")
    tests = [{"testtype": "stdin", "input": "", "output": "2 20000"}]
    assert judge(relies, tests).passed == [True]
    assert judge(relies, tests, prelude=False).verdicts == ["runtime_error"]
    # the RL reward (code_reward) runs the same judge with the same default
    completion = f"<think>ok</think>\n```python\n{relies}```"
    assert code_reward(completion, {"tests": tests}).score == 1.0


def test_the_ready_made_prelude_module_binds_what_executing_the_prelude_would():
    """A test's process takes a module built before the fork instead of executing the prelude: the same names
    bound to the same objects (stdio: the test's own), and the prelude's recursion limit."""
    import subprocess
    import sys

    script = (
        "import io, json, sys\n"
        "from mimo.rewards import runner\n"
        "for m in runner.PRELUDE_MODULES: __import__(m)\n"
        "runner.prepare_modules()\n"
        "out = sys.stdout\n"
        "sys.stdin, sys.stdout, sys.stderr = io.StringIO('x'), io.StringIO(), io.StringIO()\n"
        "default = sys.getrecursionlimit()\n"
        "ready = runner._module('__main__', True)\n"
        "limit = sys.getrecursionlimit()\n"
        "fresh = type(sys)('__main__').__dict__\n"  # what the judge did before: a new module, the prelude run in it
        "fresh['__builtins__'] = runner.builtins\n"
        "exec(compile(runner.PRELUDE, '<p>', 'exec', dont_inherit=True), fresh)\n"
        "plain = runner._module('solution', False)\n"
        "json.dump({'keys': sorted(set(ready) ^ set(fresh)), 'same': [k for k in fresh if ready.get(k) is fresh[k]],"
        " 'n': len(fresh), 'stdin': ready['stdin'] is sys.stdin, 'limit': limit, 'default': default,"
        " 'plain': sorted(plain)}, out)\n")
    env = {**__import__("os").environ, "MIMO_LIGHT_IMPORT": "1"}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    got = __import__("json").loads(r.stdout)
    assert got["keys"] == [] and len(got["same"]) == got["n"] > 500, got
    assert got["stdin"] and got["limit"] == 50000 and got["default"] < 50000
    assert got["plain"] == ["__builtins__", "__doc__", "__loader__", "__name__", "__package__", "__spec__"]


def test_rl_reward_and_eval_grade_a_prelude_program_alike():
    from mimo.eval.grading import submit

    body = "def f(xs: List[int]) -> int:\n    return int(sqrt(sum(Counter(xs).values())))\nprint(f(list(range(16))))\n"
    completion = f"<think>ok</think>\n```python\n{body}```"
    reference = {"tests": [{"testtype": "stdin", "input": "", "output": "4"}]}
    with RewardPool(workers=1) as pool:
        rl = pool.submit("code", completion, reference).result()  # what the RL engine submits
        ev = submit(pool, "lcb", completion, reference).result()  # what `mimo eval` submits
    assert rl.score == ev.score == 1.0 and rl.verdicts == ev.verdicts == ("passed",)
