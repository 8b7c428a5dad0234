"""The RL stage end to end on real worker processes and real rewards: determinism, exact resume after kill -9,
Ray reward actors giving the same run, and the engine's batch invariants."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mimo.config import resolve_config, save_yaml, to_dict
from mimo.errors import MimoError
from mimo.rl.trainer import RLConfig
from mimo.rl.trainer import main as rl_main


@pytest.fixture(scope="module")
def sft_model(rl_sft_model):
    return rl_sft_model  # conftest.py: shared with tests/test_rl_dist.py (built once per session)


def _cfg(model: Path, out: Path, **over) -> RLConfig:
    base = {"init_from": str(model), "out_dir": str(out), "toy.math_problems": "40", "toy.tasks.max_steps": "1",
            "toy.tasks.max_digits": "1", "toy.heldout_math": "8", "steps": "3", "scheduler.batch_size": "2",
            "scheduler.group_size": "8", "scheduler.max_active_tasks": "2", "scheduler.carry_over": "false",
            "actor.lr": "0.001", "actor.mini_batch_groups": "1", "actor.micro_batch_size": "16",
            "rollout.max_new_tokens": "24", "rollout.workers": "2", "rewards.pool.workers": "2",
            "eval_every": "2", "save_every": "1", "threads": "1", "log_every": "100"}
    base.update({k: str(v) for k, v in over.items()})
    return resolve_config(RLConfig, "rl", overrides=base)


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


KEYS = ("reward", "pass_rate", "response_len", "pg_loss", "launched_groups", "informative_groups", "eval_math_reward")


def _trace(run: Path) -> list[tuple]:
    return [tuple(r.get(k) for k in KEYS) for r in _records(run)]


def test_rl_is_deterministic_and_resumes_exactly_after_kill(sft_model, tmp_path):
    a = tmp_path / "a"
    rl_main(_cfg(sft_model, a))
    recs = _records(a)
    assert [r["step"] for r in recs] == [0, 1, 2, 3]
    for r in recs[1:]:
        assert r["informative_groups"] >= 2 and 0 < r["reward"] < 1  # the batch holds informative groups only
        assert r["idle_ratio"] <= 1 and r["updates"] == 2
        assert "draft_accept_mtp1" not in r and "mtp_loss" not in r  # plain decoding, MTP layers frozen

    c = tmp_path / "c"
    cfg_file = tmp_path / "c.yaml"
    save_yaml(cfg_file, {"rl": to_dict(_cfg(sft_model, c))})
    proc = subprocess.Popen([sys.executable, "-m", "mimo.cli", "rl", "--config", str(cfg_file)],
                            env=dict(os.environ, MIMO_PROGRESS="0"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    target = c / "checkpoints" / "step_000001" / "trainer_state.pt"
    deadline = time.time() + 300
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # into step 2's rollout
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert target.exists(), proc.stderr.read().decode()[-2000:]
    rl_main(_cfg(sft_model, c, resume="true"))
    assert [r["step"] for r in _records(c)] == [0, 1, 2, 3]  # no step lost or repeated
    assert _trace(c) == _trace(a)  # and the same numbers as the uninterrupted run: same seed, same run


def test_ray_reward_actors_give_the_same_run(sft_model, tmp_path):
    pytest.importorskip("ray")
    local, ray_run = tmp_path / "local", tmp_path / "ray"
    rl_main(_cfg(sft_model, local, steps=1, eval_every=0))
    rl_main(_cfg(sft_model, ray_run, steps=1, eval_every=0, **{"rewards.pool.backend": "ray"}))
    assert _trace(local) == _trace(ray_run)


def test_overlap_trains_one_version_off_policy_within_the_bound(sft_model, tmp_path, monkeypatch):
    """--overlap: step t+1 rolls out while step t's update runs.  Every sample the update sees is at most
    ``max_staleness`` (1) versions old, the overlapped steps are exactly 1 old, and the log says so per step."""
    import mimo.rl.trainer as trainer

    seen = []  # (step, staleness of each sample) per update, measured against the update's own count
    real = trainer.update_policy

    def spy(policy, optimizer, groups, *args, seed, **kw):
        seen.append([seed - s.version for g in groups for s in g.samples])  # seed = cfg.seed (0) + step
        return real(policy, optimizer, groups, *args, seed=seed, **kw)

    monkeypatch.setattr(trainer, "update_policy", spy)
    out = tmp_path / "overlap"
    rl_main(_cfg(sft_model, out, steps=4, eval_every=0, save_every=0, overlap="true",
                 **{"scheduler.carry_over": "true", "scheduler.max_active_tasks": "4"}))
    recs = _records(out)[-4:]
    assert [r["step"] for r in recs] == [1, 2, 3, 4]
    assert [max(s) for s in seen] == [0, 1, 1, 1]  # step 0 had nothing to overlap with
    assert [r["staleness_max"] for r in recs] == [0, 1, 1, 1]
    assert [r["policy_version"] for r in recs] == [0, 1, 2, 3]
    assert all("overlap_wait_s" in r for r in recs[:3]) and "overlap_wait_s" not in recs[3]  # the last is synchronous
    assert all(r["sync_s"] > 0 for r in recs)  # every update was followed by a (timed) weight sync
    assert (out / "final" / "model.safetensors").is_file()


def test_rollout_engines_out_of_range_or_without_vllm_stop_before_the_run(tmp_path):
    from mimo.errors import ConfigError, MimoError

    with pytest.raises(ConfigError, match=r"rollout.engines: must be >= 1, got 0"):
        _cfg(tmp_path / "model", tmp_path / "run", **{"rollout.engines": "0"})
    cfg = _cfg(tmp_path / "model", tmp_path / "run", **{"rollout.engines": "2"})  # backend local
    with pytest.raises(MimoError, match=r"^rollout.engines > 1 needs rollout.backend vllm, got 'local'$"):
        rl_main(cfg)
    cfg = _cfg(tmp_path / "model", tmp_path / "run", **{"rollout.speculative": "true", "rollout.backend": "vllm"})
    with pytest.raises(MimoError, match=r"^rollout.speculative needs rollout.backend local, got 'vllm'$"):
        rl_main(cfg)
    assert not (tmp_path / "run").exists()  # nothing written


def test_speculative_rollouts_log_acceptance_and_record_the_policys_own_logprobs(sft_model, tmp_path):
    """--rollout.speculative: rollouts drafted with the MTP layer, kept in step by the online MTP loss.  The
    recorded log-probs are the policy's (the trainer's recomputation agrees), acceptance is logged per step."""
    out = tmp_path / "spec"
    rl_main(_cfg(sft_model, out, steps=2, eval_every=0, save_every=0,
                 **{"rollout.speculative": "true", "actor.mtp_loss_weight": "0.2"}))
    recs = _records(out)
    assert [r["step"] for r in recs] == [1, 2]
    for r in recs:
        assert 0 <= r["draft_accept_mtp1"] <= 1 and 1 <= r["draft_tokens_per_verify"] <= 2  # one MTP layer
        assert r["mismatch_abs_mean"] < 1e-5 and r["mismatch_ratio_out"] == 0.0
        assert r["mtp_loss"] > 0 and 0 <= r["mtp1_acc"] <= 1 and r["grad_norm_apart"] > 0
    with pytest.raises(MimoError, match=r"^rollout.num_draft: must be <= the policy's 1 MTP layers, got 2$"):
        rl_main(_cfg(sft_model, tmp_path / "deep", **{"rollout.speculative": "true", "rollout.num_draft": "2"}))
