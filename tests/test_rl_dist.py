"""``mimo rl`` data-parallel (mimo.rl.actor, mimo.rl.trainer, mimo.train.dist): two gloo ranks take the
single-process gradient of the same batch however unevenly its tokens fall on them, and a ``torchrun`` job killed
with SIGKILL resumes with ``--resume true`` without losing or repeating a step."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mimo.config import resolve_config, save_yaml, to_dict
from mimo.rl.actor import ActorConfig, Group, Sample, token_logprobs, update_policy

WORLD = 2
ACTOR = dict(lr=1.0, mini_batch_groups=2, micro_batch_size=2, grad_clip=0.0, tis_cap=2.0)  # 2 updates per call


def _tiny_model():
    from mimo.model import MiMoForCausalLM, ModelSpec

    torch.manual_seed(0)
    spec = ModelSpec(vocab_size=48, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, max_position_embeddings=64, num_nextn_predict_layers=1)
    return MiMoForCausalLM(spec.to_hf())


def _groups(model) -> list[Group]:
    """4 prompts x 3 responses; response lengths 1..10, so the two ranks' token counts differ in every
    mini-batch (a plain mean of per-rank token means would be wrong).  Old log-probs are the model's own plus
    noise, so some ratios are clipped."""
    g = torch.Generator().manual_seed(1)
    groups = []
    for p in range(4):
        prompt = torch.randint(1, 48, (3 + p,), generator=g).tolist()
        samples = []
        for i in range(3):
            resp = torch.randint(1, 48, (1 + (3 * p + 7 * i) % 10,), generator=g).tolist()
            with torch.no_grad():
                lp, _ = token_logprobs(model, torch.tensor([prompt + resp]))
            old = lp[0, len(prompt) - 1:] + 0.3 * torch.randn(len(resp), generator=g)
            samples.append(Sample(prompt, resp, old.tolist(), reward=float((p + i) % 3 == 0)))
        groups.append(Group(f"p{p}", samples))
    return groups


def _sgd(model):
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=ACTOR["lr"])


def _rank_main(rank: int, port: int, out: str) -> None:
    from mimo.train import dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD))
    torch.set_num_threads(1)
    info = dist.init_distributed("cpu")
    model = _tiny_model()
    groups = _groups(model)
    policy = dist.wrap_model(model, info, "ddp", find_unused_parameters=True, forward_sync_buffers=False)
    metrics = update_policy(policy, _sgd(model), groups, ActorConfig(**ACTOR), pad_id=0, temperature=1.0, seed=3,
                            dist_info=info)
    torch.save({"metrics": metrics, "params": {n: p.detach().clone() for n, p in model.named_parameters()}},
               Path(out) / f"rank{rank}.pt")
    dist.cleanup(info)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reference():
    model = _tiny_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    groups = _groups(model)
    shards = [sum(len(s.response_ids) for i, s in enumerate(x for g in groups for x in g.samples) if i % 2 == r)
              for r in range(WORLD)]
    assert shards[0] != shards[1]  # uneven token split: DDP's plain mean of per-rank means would differ
    ref = update_policy(model, _sgd(model), groups, ActorConfig(**ACTOR), pad_id=0, temperature=1.0, seed=3)
    return model, before, groups, ref


def test_two_ranks_take_the_single_process_gradient(tmp_path):
    import torch.multiprocessing as mp

    # fork: the ranks inherit this process's imports (a spawned rank spends ~5 s importing transformers); they run
    # single-threaded, so the parent's OpenMP pool is never entered after the fork
    ctx = mp.get_context("fork")
    port = _free_port()
    procs = [ctx.Process(target=_rank_main, args=(r, port, str(tmp_path))) for r in range(WORLD)]
    for p in procs:
        p.start()
    # the single-process reference while the ranks run; one thread, as they do (two cores: two OpenMP threads
    # beside two busy ranks spin-wait for seconds)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, before, groups, ref = _reference()
    finally:
        torch.set_num_threads(threads)
    for p in procs:
        p.join(60)
    for p in procs:
        if p.exitcode is None:  # hung: never leave a rank behind
            p.kill()
        assert p.exitcode == 0
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    moved = 0.0
    for n, p in model.named_parameters():
        moved = max(moved, float((p.detach() - before[n]).abs().max()))
        for r in ranks:  # SGD with lr 1 and no clip: the weight change is minus the summed gradients
            torch.testing.assert_close(r["params"][n], p.detach(), rtol=1e-5, atol=1e-6, msg=n)
    assert moved > 1e-3  # the update did something
    for k in ("pg_loss", "entropy", "clip_frac", "approx_kl", "grad_norm", "mismatch_abs_mean", "tis_weight_mean"):
        assert abs(ranks[0]["metrics"][k] - ref[k]) <= 1e-5 * max(1.0, abs(ref[k])), k
    assert ranks[0]["metrics"]["updates"] == ref["updates"] == 2
    assert ref["clip_frac"] > 0


# ------------------------------------------------------------------------------------------- kill -9 and resume


def _rl_config(model: Path, out: Path):
    from mimo.rl.trainer import RLConfig

    return resolve_config(RLConfig, "rl", overrides={
        "init_from": str(model), "out_dir": str(out), "toy.math_problems": "40", "toy.tasks.max_steps": "1",
        "toy.tasks.max_digits": "1", "toy.heldout_math": "0", "steps": "3", "scheduler.batch_size": "2",
        "scheduler.group_size": "8", "scheduler.max_active_tasks": "2", "scheduler.carry_over": "false",
        "actor.lr": "0.001", "actor.mini_batch_groups": "1", "actor.micro_batch_size": "16",
        "rollout.max_new_tokens": "24", "rollout.workers": "1", "rewards.pool.workers": "1", "eval_every": "0",
        "save_every": "1", "keep_checkpoints": "5", "threads": "1", "log_every": "1"})


def _torchrun(cfg_file: Path, *extra: str, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(WORLD),
           "-m", "mimo.cli", "rl", "--config", str(cfg_file), *extra]
    env = dict(os.environ, MIMO_PROGRESS="0", OMP_NUM_THREADS="1")
    return subprocess.Popen(cmd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)


def _kill_job(pid: int) -> None:
    """SIGKILL the whole job at once, as a scheduler would: torchrun, its ranks (torchrun starts each in a session
    of its own, so killing torchrun's process group would miss them), the rollout and reward workers.  Everything
    is stopped first so nothing moves on (or spawns) between the kills."""
    import psutil

    root = psutil.Process(pid)
    root.send_signal(signal.SIGSTOP)
    procs = [root] + root.children(recursive=True)
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for p in procs:
            try:
                p.send_signal(sig)
            except psutil.NoSuchProcess:  # a short-lived helper that ended on its own
                pass
    psutil.wait_procs(procs[1:], timeout=30)


def _printed_steps(log: Path) -> list[int]:
    return [int(m) for m in re.findall(r"^step (\d+)/", log.read_text(), flags=re.M)]


def _kill_after_step_1(run: Path, cfg_file: Path, log: Path) -> None:
    """Start the 2-rank job, SIGKILL all of it once step 1's checkpoint is in (step 2 is under way)."""
    job = _torchrun(cfg_file, log=log)
    target = run / "checkpoints" / "step_000001" / "trainer_state.pt"
    deadline = time.time() + 120
    while not target.exists() and job.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    _kill_job(job.pid)
    job.wait()
    assert target.exists(), log.read_text()[-3000:]
    assert max(_printed_steps(log)) < 3, log.read_text()[-3000:]  # it died mid-run
    assert not (run / "final").exists()


def _check_resumed_run(run: Path, resumed: int, printed: list[int]) -> None:
    assert resumed >= 1
    assert printed == list(range(resumed + 1, 4))  # the resumed job trained exactly the steps after its checkpoint
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]  # the log: no step lost or repeated
    assert all(r["updates"] == 2 for r in records)
    assert [r.get("world_size") for r in records[:resumed]] == [WORLD] * resumed  # those of the killed job
    # the weights went on from the checkpoint's: the final model moved past step 1's
    from safetensors.torch import load_file

    final = load_file(str(run / "final" / "model.safetensors"))
    at_1 = load_file(str(run / "checkpoints" / "step_000001" / "model.safetensors"))
    assert max(float((final[k] - at_1[k]).abs().max()) for k in final) > 0
    assert [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")] == []  # no temp dir left


def test_torchrun_job_killed_with_sigkill_resumes_from_its_last_checkpoint(rl_sft_model, tmp_path, capsys):
    """The job is two ranks under torchrun; the resume runs in this process (one rank: a second torchrun job costs
    ~12 s of CI, see the slow test below for the same command again): the checkpoint does not depend on the world
    size, and the step numbers continue exactly."""
    from mimo.rl.trainer import main as rl_main

    run, cfg_file = tmp_path / "run", tmp_path / "rl.yaml"
    cfg = _rl_config(rl_sft_model, run)
    save_yaml(cfg_file, {"rl": to_dict(cfg)})
    _kill_after_step_1(run, cfg_file, tmp_path / "first.log")
    capsys.readouterr()
    rl_main(dataclasses.replace(cfg, resume=True))
    text = capsys.readouterr().out
    resumed = int(re.search(r"resumed from \S+ at step (\d+)", text).group(1))
    _check_resumed_run(run, resumed, [int(m) for m in re.findall(r"^step (\d+)/", text, flags=re.M)])


@pytest.mark.slow
def test_torchrun_job_killed_with_sigkill_resumes_with_the_same_command(rl_sft_model, tmp_path):
    """As above, the resume being the same torchrun command again, and its final weights those of an uninterrupted
    job to the bit (~45 s: three 2-rank jobs)."""
    from safetensors.torch import load_file

    run, cfg_file = tmp_path / "run", tmp_path / "rl.yaml"
    save_yaml(cfg_file, {"rl": to_dict(_rl_config(rl_sft_model, run))})
    ref_file = tmp_path / "ref.yaml"
    save_yaml(ref_file, {"rl": to_dict(_rl_config(rl_sft_model, tmp_path / "ref"))})
    ref = _torchrun(ref_file, log=tmp_path / "ref.log")
    assert ref.wait(timeout=180) == 0, (tmp_path / "ref.log").read_text()[-3000:]
    _kill_after_step_1(run, cfg_file, tmp_path / "first.log")
    second = _torchrun(cfg_file, "--resume", "true", log=tmp_path / "second.log")
    assert second.wait(timeout=180) == 0, (tmp_path / "second.log").read_text()[-3000:]
    text = (tmp_path / "second.log").read_text()
    assert text.count("resumed from") == 1  # rank 0 alone prints
    resumed = int(re.search(r"resumed from \S+ at step (\d+)", text).group(1))
    _check_resumed_run(run, resumed, _printed_steps(tmp_path / "second.log"))  # one line per step: rank 0's
    final, want = (load_file(str(d / "final" / "model.safetensors")) for d in (run, tmp_path / "ref"))
    assert all(torch.equal(final[k], want[k]) for k in want)  # the steps it would have trained, exactly
