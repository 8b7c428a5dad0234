"""Rollout workers start safely after the trainer used OpenMP: `mimo rl` with 1 worker x 2 threads and 2 x 1.

With forked workers, 1 x 2 hung forever: the trainer's 2-thread OpenMP pool was in use before the fork, and the
child's own 2-thread pool deadlocked in the inherited barrier.  The workers are spawned now; a hang shows up
here as the subprocess timeout.
"""

from __future__ import annotations

import json

import pytest

from test_run_dir import SMALL, mimo


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("pretrain") / "run"
    r = mimo("pretrain", "--out_dir", str(run), *SMALL, "--save_every", "0", cwd=run.parent)
    assert r.returncode == 0, r.stderr
    return run / "final"


@pytest.mark.parametrize("workers,threads", [(1, 2), (2, 1)])
def test_rl_with_worker_threads(model_dir, tmp_path, workers, threads):
    out = tmp_path / "rl"
    r = mimo("rl", "--init_from", str(model_dir), "--out_dir", str(out), "--steps", "1", "--threads", "2",
             "--rollout.workers", str(workers), "--rollout.threads_per_worker", str(threads),
             "--scheduler.mode", "no_dynamic_sampling", "--scheduler.batch_size", "2", "--scheduler.group_size", "2",
             "--rollout.max_new_tokens", "8", "--eval_every", "0", "--rewards.pool.workers", "1",
             "--toy.math_problems", "40", "--toy.code_problems", "0", "--toy.heldout_math", "4",
             "--actor.mini_batch_groups", "2", "--actor.micro_batch_size", "4", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 1 and records[-1]["launched_groups"] == 2
    assert (out / "final" / "model.safetensors").is_file()
