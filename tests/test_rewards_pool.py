"""The reward service: local workers replaced and retried when killed, Ray actors likewise, HTTP with real clients."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from mimo.errors import MimoError
from mimo.rewards import RewardResult
from mimo.rewards.pool import RewardPool
from mimo.rewards.server import RewardServer

SLOW_CODE = "```python\nimport time\ntime.sleep(1.5)\nprint(int(input()) * 2)\n```"
FAST_CODE = "```python\nprint(int(input()) * 2)\n```"
DOUBLE = {"tests": [{"testtype": "stdin", "input": "3", "output": "6"},
                   {"testtype": "stdin", "input": "4", "output": "8"}],
          "levels": [0, 1], "scheme": "strict"}


def test_local_worker_killed_mid_task_is_replaced_and_the_task_retried():
    with RewardPool(workers=1) as pool:
        assert pool.submit("math", "$\\boxed{2}$", "2").result().score == 1.0
        first_pid = pool.backend.worker_pids()[0]
        future = pool.submit("code", SLOW_CODE, DOUBLE)
        time.sleep(0.8)  # the worker is inside the first test's sleep
        os.kill(first_pid, signal.SIGKILL)
        result = future.result(timeout=120)
        assert result == RewardResult(1.0, "", ("passed", "passed"))
        assert pool.stats == {"timeouts": 0, "restarts": 1, "retries": 1}
        assert pool.backend.worker_pids()[0] != first_pid
        assert pool.submit("math", "$\\boxed{3}$", "2").result().reason == "wrong_answer"


def test_a_task_that_kills_every_worker_gives_up_after_the_retries():
    with RewardPool(workers=1, max_retries=1, warm_math=False) as pool:
        future = pool.submit("code", SLOW_CODE, DOUBLE)
        killed = None
        for _ in range(2):
            deadline = time.monotonic() + 60
            while (pool.backend.worker_pids() or [killed])[0] == killed and time.monotonic() < deadline:
                time.sleep(0.05)  # the (replacement) worker is on its way
            time.sleep(1.2)  # inside the first test's sleep (or still starting: a death all the same)
            killed = pool.backend.worker_pids()[0]
            os.kill(killed, signal.SIGKILL)
        assert future.result(timeout=120).reason == "worker_died"


def test_mixed_batches_and_user_errors():
    with RewardPool(workers=2) as pool:
        results = pool.score_batch([("math", "$\\boxed{\\frac{1}{2}}$", "0.5"), ("code", SLOW_CODE, DOUBLE),
                                    ("judge", "print(7)", {"tests": DOUBLE["tests"]})])
        assert [r.score for r in results] == [1.0, 1.0, 0.0]
        assert results[2].verdicts == ("wrong_answer", "wrong_answer")
        with pytest.raises(MimoError, match="'tests' list"):
            pool.submit("code", SLOW_CODE, {"levels": [0]}).result()
        with pytest.raises(MimoError, match="reward kind"):
            pool.submit("poetry", "", "")


def test_ray_actor_killed_mid_task_is_restarted_and_the_task_retried():
    ray = pytest.importorskip("ray")
    with RewardPool(workers=2, backend="ray", warm_math=False) as pool:
        assert pool.submit("math", "$\\boxed{2}$", "2").result(timeout=120).score == 1.0
        futures = [pool.submit("code", SLOW_CODE, DOUBLE) for _ in range(2)]
        time.sleep(1.0)
        pids = ray.get([actor.pids.remote() for actor in pool.backend.actors], timeout=60)
        os.kill(pids[0]["actor"], signal.SIGKILL)
        results = [f.result(timeout=180) for f in futures]
        assert all(r == RewardResult(1.0, "", ("passed", "passed")) for r in results)
        assert pool.submit("math", "$\\boxed{3}$", "2").result(timeout=120).reason == "wrong_answer"


def _post(url: str, path: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_http_server_with_raw_and_pool_clients():
    with RewardPool(workers=2) as local:
        server = RewardServer(local, "127.0.0.1", 0).start()
        try:
            with urllib.request.urlopen(server.url + "/health", timeout=30) as response:
                health = json.loads(response.read())
            assert health["status"] == "ok" and health["workers"] == 2 and "bubblewrap" in health["sandbox"]
            status, reply = _post(server.url, "/reward", {"kind": "math", "completion": "$\\boxed{4}$",
                                                          "reference": "4"})
            assert (status, reply["score"]) == (200, 1.0)
            status, reply = _post(server.url, "/judge", {"code": "print(int(input()) * 2)", "tests": DOUBLE["tests"]})
            assert (status, reply["verdicts"]) == (200, ["passed", "passed"])
            status, reply = _post(server.url, "/rewards", {"items": [
                {"kind": "math", "completion": "$\\boxed{5}$", "reference": "4"},
                {"kind": "code", "completion": FAST_CODE, "reference": DOUBLE}]})
            assert status == 200 and [r["score"] for r in reply["results"]] == [0.0, 1.0]
            status, reply = _post(server.url, "/reward", {"kind": "code", "completion": "x", "reference": {}})
            assert status == 400 and "'tests' list" in reply["error"]
            with RewardPool(workers=3, backend="http", url=server.url) as remote:
                futures = [remote.submit("code", FAST_CODE, DOUBLE) for _ in range(3)]
                futures.append(remote.submit("math", "$\\boxed{\\pi}$", "\\pi"))
                assert [f.result(timeout=120).score for f in futures] == [1.0] * 4
                with pytest.raises(MimoError, match="'tests' list"):
                    remote.submit("code", "x", {"levels": []}).result(timeout=60)
        finally:
            server.close()


def test_mimo_judge_serve_command():
    env = {**os.environ, "MIMO_LIGHT_IMPORT": "1", "PYTHONFAULTHANDLER": "1"}  # SIGABRT dumps every thread's stack
    # started with SIGINT ignored, as a background job of a non-interactive shell (CI) starts it: the server must
    # still stop on SIGINT (it once hung here for exactly that reason)
    proc = subprocess.Popen([sys.executable, "-m", "mimo.cli", "judge", "serve", "--port", "0", "--workers", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        line = proc.stdout.readline()
        url = re.search(r"serving (http://\S+)", line).group(1)
        assert url.startswith("http://127.0.0.1:")
        status, reply = _post(url, "/judge", {"code": "def f(x):\n    return x + 1\n", "fn_name": "f",
                                             "tests": [{"testtype": "functional", "input": "1", "output": "2"}]})
        assert (status, reply["verdicts"]) == (200, ["passed"])
    finally:
        proc.send_signal(signal.SIGINT)
        try:  # communicate drains both pipes: a server blocked on a full stderr pipe cannot hang the test
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            _, err = proc.communicate(timeout=30)
            pytest.fail(f"mimo judge serve did not exit within 60 s of SIGINT; its threads:\n{err[-8000:]}")
        assert proc.returncode == 0, err
