"""Hostile programs: each gets the right verdict, nothing escapes the sandbox, the judge keeps its throughput."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import statistics
import threading
import time
from pathlib import Path

import pytest

from mimo.rewards.pool import RewardPool
from mimo.rewards.sandbox import UID_BASE

LIMITS = {"time_limit": 2.0, "memory_mb": 512, "processes": 8}
STDIN = [{"testtype": "stdin", "input": "3\n", "output": "6\n"}]
FUNCTIONAL = [{"testtype": "functional", "input": "3", "output": "6", "fn_name": "f"}]
ASSERT = [{"testtype": "assert", "test": "def check(candidate):\n    assert candidate(3) == 6\n", "entry_point": "f"}]


def program_processes() -> list[int]:
    """Host pids running as a sandboxed program's uid (the checkers' odd uids live as long as their session)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            uid_line = next(ln for ln in (entry / "status").read_text().splitlines() if ln.startswith("Uid:"))
        except (OSError, StopIteration):
            continue
        uid = int(uid_line.split()[1])
        if uid >= UID_BASE and (uid - UID_BASE) % 2 == 0:
            pids.append(int(entry.name))
    return pids


@pytest.fixture(scope="module")
def pool():
    with RewardPool(workers=2, limits=LIMITS) as p:
        yield p


def judge_all(pool, cases: dict[str, tuple]) -> dict[str, tuple[str, ...]]:
    """Judge every case at once; a case is (code, tests) or (code, tests, per-case limits)."""
    futures = {name: pool.submit("judge", case[0], {"tests": case[1], "limits": case[2] if len(case) > 2 else {}})
               for name, case in cases.items()}
    return {name: f.result().verdicts for name, f in futures.items()}


def honest_throughput(pool, n: int = 40) -> float:
    code = "def f(x):\n    return 2 * x\nif __name__ == '__main__':\n    print(2 * int(input()))\n"
    start = time.monotonic()
    results = [pool.submit("judge", code, {"tests": STDIN + FUNCTIONAL + ASSERT}) for _ in range(n)]
    assert all(r.result().verdicts == ("passed",) * 3 for r in results)
    return n / (time.monotonic() - start)


def test_hostile_programs_get_the_right_verdicts_and_nothing_escapes(pool, tmp_path):
    before = statistics.median(honest_throughput(pool) for _ in range(3))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]
    outside = tmp_path / "escaped.txt"
    host_tmp = Path("/tmp") / f"mimo-escape-{secrets.token_hex(4)}"
    secret = f"SECRET-{secrets.token_hex(8)}"
    hunt = (  # looks for the expected output everywhere it can read, prints it if found
        "import gc, os\n"
        "def hunt():\n"
        "    key = 'SECRET-'\n"
        "    for obj in gc.get_objects():  # strings are not tracked: look inside the containers\n"
        "        items = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else ()\n"
        "        for item in list(items):\n"
        "            if isinstance(item, str) and item.startswith(key) and len(item) == 23:\n"
        "                return item\n"
        "    for root, dirs, files in os.walk('/'):\n"
        "        if root.startswith(('/usr', '/proc', '/sys', '/dev')) or 'pyenv' in root:\n"
        "            dirs[:] = []  # the host's shared binaries and libraries, and kernel files\n"
        "            continue\n"
        "        for name in files:\n"
        "            try:\n"
        "                data = open(os.path.join(root, name), 'rb').read(1 << 20)\n"
        "            except Exception:\n"
        "                continue\n"
        "            i = data.find(key.encode())\n"
        "            if i >= 0:\n"
        "                return data[i:i + 23].decode(errors='replace')\n"
        "    for pid in [p for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()]:\n"
        "        chunks = []\n"
        "        for part in ('environ', 'cmdline'):\n"
        "            try:\n"
        "                chunks.append(open(f'/proc/{pid}/{part}', 'rb').read())\n"
        "            except Exception:\n"
        "                pass\n"
        "        try:  # the other processes' memory: the runner's, the checker's\n"
        "            with open(f'/proc/{pid}/maps') as maps, open(f'/proc/{pid}/mem', 'rb') as mem:\n"
        "                for line in maps:\n"
        "                    lo, hi = (int(x, 16) for x in line.split()[0].split('-'))\n"
        "                    if 'r' in line.split()[1] and hi - lo < (64 << 20):\n"
        "                        mem.seek(lo)\n"
        "                        chunks.append(mem.read(hi - lo))\n"
        "        except Exception:\n"
        "            pass\n"
        "        for data in chunks:\n"
        "            i = data.find(key.encode())\n"
        "            if i >= 0:\n"
        "                return data[i:i + 23].decode(errors='replace')\n"
        "    return 'none'\n"
    )
    leak_tests = [{"testtype": "stdin", "input": "", "output": secret},
                  {"testtype": "functional", "input": "", "output": f'"{secret}"', "fn_name": "hunt"},
                  {"testtype": "assert", "test": f"assert candidate() == {secret!r}\n", "entry_point": "hunt"}]
    cases = {
        "fork bomb": ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
                      STDIN),
        "fork count": ("import os, time\nn = 0\nfor _ in range(100):\n    try:\n        if os.fork() == 0:\n"
                       "            time.sleep(60)\n        n += 1\n    except OSError:\n        break\n"
                       "print(6 if n < 8 else n)\n", STDIN),
        "memory bomb": ("x = bytearray(10 ** 11)\n", STDIN),
        "memory growth": ("blocks = []\nwhile True:\n    blocks.append(bytearray(10 ** 7))\n", STDIN),
        "infinite loop": ("while True:\n    pass\n", STDIN),
        "long sleep": ("import time\ntime.sleep(1000)\n", STDIN),
        "network connect": (f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\nprint(6)\n",
                            STDIN),
        "write outside /tmp": (f"open({str(outside)!r}, 'w').write('x')\nprint(6)\n", STDIN),
        "write host /tmp": (f"open({str(host_tmp)!r}, 'w').write('x')\nprint(6)\n", STDIN),
        "write read-only root": ("open('/usr/pwned', 'w').write('x')\nprint(6)\n", STDIN),
        "read other tests' expected output": (hunt + "if __name__ == '__main__':\n    print(hunt())\n", leak_tests),
        "hunt control": (f"planted = [''.join({list(secret)!r})]\n" + hunt + "print(hunt())\n", leak_tests[:1]),
        "kill the parent": ("import os\nfor pid in (os.getppid(), 1, -1):\n    try:\n        os.kill(pid, 9)\n"
                            "    except OSError:\n        pass\n"
                            "def f(x):\n    return 2 * x\nif __name__ == '__main__':\n    print(2 * int(input()))\n",
                            STDIN + FUNCTIONAL + ASSERT),
        "daemon left behind": ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(1000)\n"
                               "print(6)\n", STDIN),
        "print a gigabyte": ("import sys\nfor _ in range(1000):\n    sys.stdout.write('x' * 10 ** 6)\n", STDIN),
        "flood stderr": ("import sys\nfor _ in range(200):\n    sys.stderr.write('x' * 10 ** 6)\nprint(6)\n", STDIN),
        "os._exit(0) first": ("import os\ndef f(x):\n    return 0\nos._exit(0)\n", STDIN + FUNCTIONAL + ASSERT),
        "__eq__ always true": ("class Any:\n    def __eq__(self, other):\n        return True\n"
                               "    def __ne__(self, other):\n        return False\n"
                               "def f(x):\n    return Any()\nif __name__ == '__main__':\n    print(Any())\n",
                               STDIN + FUNCTIONAL + ASSERT),
        "int with rigged __eq__": ("class Six(int):\n    def __eq__(self, other):\n        return True\n"
                                   "def f(x):\n    return Six(5)\n", FUNCTIONAL + ASSERT),
        "monkeypatched comparison": ("import builtins, json, operator, sys\n"
                                     "builtins.AssertionError = type('Never', (Exception,), {})\n"
                                     "operator.eq = lambda a, b: True\n"
                                     "json.dumps = lambda *a, **k: 'true'\nsys.modules['math'] = None\n"
                                     "def f(x):\n    return 5\nif __name__ == '__main__':\n    print(5)\n",
                                     STDIN + FUNCTIONAL + ASSERT),
        "patched json.dumps": ("import json\njson.dumps = lambda *a, **k: '6'\ndef f(x):\n    return 0\n",
                               FUNCTIONAL + ASSERT),
        "result forged on fd 3": ("import os\ndef f(x):\n    for fd in (0, 1, 3):\n        try:\n"
                                  "            os.write(fd, b'6' if fd != 0 else b'{\"ok\":6}\\n')\n"
                                  "        except OSError:\n            pass\n    os._exit(0)\n", FUNCTIONAL + ASSERT),
    }
    slow = {"fork bomb", "infinite loop", "long sleep"}  # expected time_limit: the module's 2 s
    for name, case in cases.items():  # every other verdict must not depend on how loaded the machine is
        if name not in slow and len(case) == 2:
            cases[name] = (*case, {"time_limit": 30})
    verdicts = judge_all(pool, cases)
    expected = {
        "fork bomb": ("time_limit",),
        "fork count": ("passed",),  # RLIMIT_NPROC held: fewer than 8 processes
        "memory bomb": ("memory_limit",),
        "memory growth": ("memory_limit",),
        "infinite loop": ("time_limit",),
        "long sleep": ("time_limit",),
        "network connect": ("runtime_error",),
        "write outside /tmp": ("runtime_error",),
        "write host /tmp": ("passed",),  # /tmp is private: the write lands in the sandbox's own tmpfs
        "write read-only root": ("runtime_error",),
        "read other tests' expected output": ("wrong_answer",) * 3,
        "hunt control": ("passed",),  # the hunt does find a secret where one is readable
        "kill the parent": ("passed",) * 3,  # the runner and the checker survive, the program carries on
        "daemon left behind": ("passed",),
        "print a gigabyte": ("wrong_answer",),  # output limit
        "flood stderr": ("passed",),
        "os._exit(0) first": ("wrong_answer", "wrong_answer", "runtime_error"),  # no answer; no checks ran
        "__eq__ always true": ("wrong_answer",) * 3,
        "int with rigged __eq__": ("wrong_answer",) * 2,
        "monkeypatched comparison": ("wrong_answer",) * 3,
        "patched json.dumps": ("wrong_answer",) * 2,
        "result forged on fd 3": ("wrong_answer",) * 2,
    }
    assert verdicts == expected
    # nothing escaped
    with pytest.raises(BlockingIOError):
        listener.accept()
    listener.close()
    assert not outside.exists() and not host_tmp.exists()
    time.sleep(0.5)
    assert program_processes() == [], "a sandboxed program outlived its test"
    # the judge is still up, at full speed
    after = statistics.median(honest_throughput(pool) for _ in range(3))
    print(f"honest jobs/s before {before:.1f}, after {after:.1f}")
    assert after >= 0.4 * before, (before, after)  # same speed, give or take the load of a shared machine
    assert pool.stats["timeouts"] == 0 and pool.stats["restarts"] == 0


def test_tmp_is_private_per_test_and_files_are_size_capped(pool):
    code = ("import os, sys\nprint('clean' if not os.listdir('/tmp') else 'dirty')\n"
            "open('/tmp/left-over', 'w').write('x')\n"
            "os.makedirs('/tmp/a/b/c')\nopen('/tmp/a/b/c/deep', 'w').write('x')\n"
            "os.symlink('/usr', '/tmp/a/usr')\nos.symlink('/tmp/a/b', '/tmp/to-b')\n"
            "try:\n    open('/tmp/big', 'wb').write(b'x' * (64 << 20))\n    print('big')\n"
            "except OSError:\n    print('capped')\n")
    tests = [{"testtype": "stdin", "input": "", "output": "clean\ncapped"}] * 3
    assert pool.submit("judge", code, {"tests": tests}).result().verdicts == ("passed",) * 3


def test_environment_and_identity_inside_the_sandbox(pool):
    code = ("import os, socket\n"
            "print(os.getuid() >= 1000000, os.getuid() != 0, sorted(os.environ))\n"
            "print(os.path.exists('/work'), os.path.exists('/root/.ssh'), os.path.exists('/home'))\n"
            "print(os.access('/usr/bin', os.W_OK))\n")
    os.environ["MIMO_TEST_SECRET"] = "do-not-leak"
    try:
        expected = "True True ['LANG', 'PATH', 'PWD']\nFalse False False\nFalse\n"
        r = pool.submit("judge", code, {"tests": [{"testtype": "stdin", "input": "", "output": expected}]}).result()
    finally:
        del os.environ["MIMO_TEST_SECRET"]
    assert r.verdicts == ("passed",), r.reason


def _child_bwrap_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if stat.split(") ")[1].split()[1] == str(os.getpid()) and "(bwrap)" in stat:
                pids.append(int(entry.name))
    return pids


def test_a_dead_session_costs_one_test_the_rest_run_again():
    from mimo.rewards.code import judge
    from mimo.rewards.sandbox import Sandbox

    box = Sandbox()
    code = "import time\nn = int(input())\ntime.sleep(n)\nprint(n)\n"
    tests = [{"testtype": "stdin", "input": str(n), "output": str(n)} for n in (0, 3, 0)]
    try:
        assert judge(code, tests[:1], sandbox=box).verdicts == ["passed"]  # a warm session
        killer = threading.Timer(1.0, lambda: [os.kill(p, signal.SIGKILL) for p in _child_bwrap_pids()])
        killer.start()
        result = judge(code, tests, sandbox=box, time_limit=5)
        killer.join()
        assert result.verdicts == ["passed", "sandbox_error", "passed"], result.details
        assert "stopped" in result.details[1]
    finally:
        box.close()


class _LosingBox:
    """A real sandbox whose first run loses the reports after test 0, as when the session dies during a test
    that ran too briefly to be announced (``running`` None) or during an announced one (``running`` given)."""

    def __init__(self, box, running):
        self.box, self.root, self.running, self.jobs = box, box.root, running, []

    def run(self, job, checks, limits):
        self.jobs.append(job)
        run = self.box.run(job, checks, limits)
        if len(self.jobs) == 1:
            run.reports = {i: r for i, r in run.reports.items() if i == 0}
            run.error, run.running = "the sandbox stopped: lost", self.running
        return run


@pytest.mark.parametrize("running", [None, 1])
def test_reports_lost_from_a_batch_are_rerun_one_report_at_a_time(running):
    from mimo.rewards.code import judge
    from mimo.rewards.sandbox import Sandbox

    box = _LosingBox(Sandbox(), running)
    tests = [{"testtype": "stdin", "input": str(n), "output": str(2 * n)} for n in (1, 2, 3)]
    try:
        result = judge("print(2 * int(input()))", tests, sandbox=box)
    finally:
        box.box.close()
    sent = [([t["i"] for t in job["tests"]], job.get("reports")) for job in box.jobs]
    if running is None:  # which test the runner died in is unknown: the missing ones run again, reported singly
        assert sent == [([0, 1, 2], None), ([1, 2], "each")]
        assert result.verdicts == ["passed"] * 3
    else:  # the runner had announced test 1: it gets the blame, as with reports sent singly
        assert sent == [([0, 1, 2], None), ([2], None)]
        assert result.verdicts == ["passed", "sandbox_error", "passed"]


def test_large_outputs_and_checks_in_one_job_do_not_deadlock(pool):
    code = "import sys\ndef f(x):\n    return x\nif __name__ == '__main__':\n    sys.stdout.write('7' * (4 << 20))\n"
    big = repr("y" * (2 << 20))
    big_check = f"def check(candidate):\n    assert candidate({big}) == {big}\n"
    check = {"testtype": "assert", "test": big_check, "entry_point": "f"}
    tests = [check] + [{"testtype": "stdin", "input": "", "output": "7" * (4 << 20)}] * 2 + [check]
    r = pool.submit("judge", code, {"tests": tests, "limits": {"time_limit": 10}}).result(timeout=120)
    assert r.verdicts == ("passed",) * 4


def test_a_session_that_died_while_idle_is_replaced():
    from mimo.rewards.code import judge
    from mimo.rewards.sandbox import Sandbox

    box = Sandbox()
    tests = [{"testtype": "stdin", "input": "2", "output": "4"}]
    try:
        assert judge("print(int(input()) * 2)", tests, sandbox=box).verdicts == ["passed"]
        for pid in _child_bwrap_pids():  # e.g. the OOM killer, while the session waits for work
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        assert judge("print(int(input()) * 2)", tests, sandbox=box).verdicts == ["passed"]
    finally:
        box.close()
