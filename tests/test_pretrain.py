"""Pretraining: gradient accumulation, exact resume after kill -9, DDP equivalence, learning, bad input."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mimo.cli import main as mimo_main
from mimo.config import resolve_config
from mimo.train.loop import accumulate_step, make_optimizer
from mimo.train.pretrain import PretrainConfig
from mimo.train.pretrain import main as pretrain_main

ROOT = Path(__file__).resolve().parents[1]


def _small_cfg(out: Path, **over) -> PretrainConfig:
    overrides = {
        "out_dir": str(out), "model.hidden_size": "32", "model.intermediate_size": "64",
        "model.num_hidden_layers": "2", "model.num_attention_heads": "4", "model.num_key_value_heads": "2",
        "toy.vocab_size": "300", "toy.docs_per_source": "400", "toy.stage_tokens": "[30000]",
        "stages": "[{name: a, steps: 4, seq_len: 64, lr: 0.003}, {name: b, steps: 4, seq_len: 64, lr: 0.002, "
                  "rope_theta: 640000.0, mtp_loss_weight: 0.1}]",
        "batch_size": "8", "batch_size_start": "4", "batch_warmup_steps": "3", "micro_batch_size": "4",
        "warmup_steps": "2", "decay_steps": "3", "eval_every": "0", "eval_batches": "1", "save_every": "2",
        "log_every": "100", "threads": "1",
    }
    overrides.update({k: str(v) for k, v in over.items()})
    return resolve_config(PretrainConfig, "pretrain", overrides=overrides)


def _losses(run: Path) -> dict[int, float]:
    out = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        out[rec["step"]] = rec["loss"]  # a re-done step after resume overwrites the earlier record
    return out


def test_grad_accumulation_equals_larger_batch(tiny_model):
    a = tiny_model(seed=0).train()
    b = copy.deepcopy(a)
    x = torch.randint(0, 64, (8, 16))

    def loss_fn(model, mb):
        out = model(input_ids=mb, labels=mb, mtp_loss_weight=0.3)
        return out.loss, {"loss": out.loss.detach()}

    # SGD: the update is lr * gradient, so equal updates mean equal accumulated gradients (Adam's first step,
    # lr * g / |g|, would amplify rounding noise in near-zero gradients)
    opt_a, opt_b = torch.optim.SGD(a.parameters(), lr=1.0), torch.optim.SGD(b.parameters(), lr=1.0)
    ma = accumulate_step(a, opt_a, [x], loss_fn, grad_clip=0)
    mb = accumulate_step(b, opt_b, list(x.split(2)), loss_fn, grad_clip=0)
    assert abs(ma["loss"] - mb["loss"]) < 1e-5 and abs(ma["grad_norm"] - mb["grad_norm"]) < 1e-4
    for (n, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-6), n
    # and the AdamW used in training accepts the same call
    accumulate_step(a, make_optimizer(a, 1e-3), list(x.split(4)), loss_fn)


def test_kill_and_resume_gives_identical_losses(tmp_path):
    ref = tmp_path / "ref"
    pretrain_main(_small_cfg(ref))
    expected = _losses(ref)
    assert sorted(expected) == list(range(1, 9))

    run = tmp_path / "killed"
    cfg_args = ["--out_dir", str(run)]
    # same config as _small_cfg, through the real CLI in a subprocess that we SIGKILL after its 2nd checkpoint
    base = _small_cfg(run)
    cfg_file = tmp_path / "c.yaml"
    from mimo.config import save_yaml, to_dict

    save_yaml(cfg_file, {"pretrain": to_dict(base)})
    env = dict(os.environ, MIMO_PROGRESS="0")
    proc = subprocess.Popen([sys.executable, "-m", "mimo.cli", "pretrain", "--config", str(cfg_file), *cfg_args],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    target = run / "checkpoints" / "step_000004" / "trainer_state.pt"
    deadline = time.time() + 240
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert target.exists(), proc.stderr.read().decode()[-2000:]
    resumed = _small_cfg(run, resume="true")
    pretrain_main(resumed)
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))  # the log neither repeats nor loses a step
    got = _losses(run)
    assert sorted(got) == sorted(expected)
    for step in expected:
        assert got[step] == pytest.approx(expected[step], abs=1e-6), step
    assert (run / "final" / "model.safetensors").is_file()


def test_ddp_two_processes_match_one(tmp_path):
    one = tmp_path / "one"
    pretrain_main(_small_cfg(one, save_every=0, batch_warmup_steps=0))
    cfg_file = tmp_path / "c.yaml"
    from mimo.config import save_yaml, to_dict

    two = tmp_path / "two"
    cfg = _small_cfg(two, save_every=0, batch_warmup_steps=0)
    # reuse rank-0-built data so both runs read identical shards
    save_yaml(cfg_file, {"pretrain": to_dict(cfg)})
    torchrun = Path(sys.executable).parent / "torchrun"
    env = dict(os.environ, MIMO_PROGRESS="0", OMP_NUM_THREADS="1")
    res = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", "29533", "-m", "mimo.cli",
                          "pretrain", "--config", str(cfg_file)], env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    a, b = _losses(one), _losses(two)
    assert sorted(a) == sorted(b)
    for step in a:
        assert b[step] == pytest.approx(a[step], abs=1e-4), step


def test_short_run_lowers_heldout_loss_and_raises_mtp_accuracy(tmp_path):
    cfg = _small_cfg(tmp_path, eval_every="5", save_every="0",
                     stages="[{name: a, steps: 40, seq_len: 64, lr: 0.003}]", decay_steps="10", eval_batches="2")
    pretrain_main(cfg)
    evals = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in evals if "eval_loss" in r]
    first, last = evals[0], evals[-1]
    assert last["eval_loss"] < first["eval_loss"] - 0.3
    assert last["eval_mtp1_acc"] > first["eval_mtp1_acc"] + 0.05


@pytest.mark.parametrize(
    "argv, message",
    [
        (["pretrain", "--preset", "nope"], "unknown preset 'nope'"),
        (["pretrain", "--config", "/nonexistent/c.yaml"], "/nonexistent/c.yaml: no such config file"),
        (["pretrain", "--batch_size", "many"], "--batch_size: expected an integer"),
        (["pretrain", "--model.hidden_size", "1.5"], "--model.hidden_size: expected an integer"),
        (["generate", "--model", "/nonexistent", "--prompt", "hi"], "/nonexistent: not a model directory"),
    ],
)
def test_bad_input_one_line_error(argv, message, capsys):
    rc = mimo_main(argv)
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_unknown_config_key_in_file(tmp_path, capsys):
    p = tmp_path / "c.yaml"
    p.write_text("pretrain:\n  batch_sise: 3\n")
    assert mimo_main(["pretrain", "--config", str(p)]) == 2
    err = capsys.readouterr().err
    assert "pretrain.batch_sise: unknown key" in err and len(err.strip().splitlines()) == 1
