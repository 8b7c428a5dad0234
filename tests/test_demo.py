"""`mimo demo --quick` end to end through the real CLI: every stage runs, the report has the documented schema.

The quick demo is the whole pipeline with small budgets (~3 minutes on 2 cores): corpus and tokenizer, Base with
MTP over three stages, SFT, RL and RL-Zero on the rollout engine with real reward workers and the sandboxed judge,
the compute-matched control, the extra MTP layers, evaluation, speculative decoding, the report.  Its numbers are
not checked here (too small to mean anything); the full demo's are in the README.  A re-run into the same folder
reuses every stage and keeps the recorded timings.  ``MIMO_SLOW=1`` adds a second run with the same seed in a new
folder, which must give the same family table.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

FAMILY = ("Base", "RL-Zero", "SFT", "RL")


def run_demo(out: Path, *extra: str) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "mimo.cli", "demo", "--quick", "--out", str(out), *extra], env=env,
                          capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "report.json").read_text())


def check_cell(cell: dict, n: int) -> None:
    assert set(cell) >= {"pass@1", "stderr", "n"}
    assert isinstance(cell["pass@1"], float) and 0.0 <= cell["pass@1"] <= 1.0
    assert isinstance(cell["stderr"], float) and 0.0 <= cell["stderr"] <= 0.5
    assert cell["n"] == n


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, run_demo(out)


def test_quick_demo_report_schema(quick):
    out, report = quick
    cfg = report["config"]
    assert set(report["family"]) == set(FAMILY)
    for name in FAMILY:
        check_cell(report["family"][name]["math"], cfg["eval_math"])
        check_cell(report["family"][name]["code"], cfg["eval_code"])
    check_cell(report["control"]["math"], cfg["eval_math"])
    check_cell(report["control"]["code"], cfg["eval_code"])
    acc = report["mtp"]["acceptance"]
    assert len(acc) == cfg["mtp_layers"] and all(0.0 <= a <= 1.0 for a in acc)
    assert isinstance(report["mtp"]["speedup"], float) and report["mtp"]["speedup"] > 0
    best = report["mtp"]["best"]  # the best draft depth per temperature, and whether it pays
    assert set(best) == {"0.0", "0.6"}
    for b in best.values():
        assert 1 <= b["depth"] <= cfg["mtp_layers"] and len(b["acceptance"]) == b["depth"]
        assert b["speedup"] == pytest.approx(b["tokens_per_s"] / b["plain_tokens_per_s"])
        word = "pays" if b["speedup"] > 1.0 else "**does not pay**"
        assert f"speculative decoding {word} ({b['speedup']:.2f}x" in (out / "report.md").read_text()
    for key in ("idle_ratio", "waste_ratio"):
        assert isinstance(report["rollout"][key], float) and 0.0 <= report["rollout"][key] <= 1.0
    assert isinstance(report["seconds"], float) and report["seconds"] > 0
    assert {c["claim"] for c in report["checks"]} >= {"RL > SFT on math", "SFT > Base on math"}
    for c in report["checks"]:
        assert math.isfinite(c["points"])
        assert c["holds"] == (c["z"] >= 3.0)
    # pass@k for k = 1..passk_samples, non-decreasing in k, for every model
    for kind in ("math", "code"):
        for name, curve in report["pass_at_k"][kind].items():
            ks = sorted(int(k) for k in curve)
            assert ks == list(range(1, cfg["passk_samples"] + 1)), (kind, name)
            vals = [curve[str(k)] for k in ks]
            assert all(b >= a - 1e-12 for a, b in zip(vals, vals[1:])), (kind, name)
    # held-out curves from step 0 (the start model) through the run's last step
    last = {"RL": cfg["rl_steps"], "RL-Zero": cfg["rlzero_steps"]}
    for name, pts in report["curves"].items():
        steps = [p["step"] for p in pts]
        assert steps[0] == 0 and steps == sorted(set(steps)), name
        if name in last:
            assert steps[-1] == last[name], name
    assert set(report["code_rewards"]) == {"start (SFT)", *cfg["code_rewards"]}
    for cell in report["code_rewards"].values():
        check_cell(cell, cfg["eval_code"])
    assert report["quick"] is True and report["reused_stages"] == []
    assert report["seconds"] == pytest.approx(sum(report["stage_seconds"].values()), abs=0.5)


def test_quick_demo_ran_every_stage(quick):
    out, report = quick
    for stage in ("pretrain", "sft", "rl", "rl_zero", "control", "mtp"):
        assert (out / stage / "final" / "model.safetensors").is_file(), stage
    assert set(report["stage_seconds"]) >= {"corpus+pretrain (Base)", "SFT", "RL", "RL-Zero", "control",
                                            "MTP layers", "evaluation", "speculative"}
    md = (out / "report.md").read_text()
    assert "| Benchmark | Base | RL-Zero | SFT | RL |" in md
    # the RL stages logged real steps through the engine (rewards from the worker pool)
    for stage in ("rl", "rl_zero"):
        rows = [json.loads(x) for x in (out / stage / "metrics.jsonl").read_text().splitlines() if x.strip()]
        assert rows and all("reward" in r and "idle_ratio" in r for r in rows)
    mtp_cfg = json.loads((out / "mtp" / "final" / "config.json").read_text())
    assert mtp_cfg["num_nextn_predict_layers"] == report["config"]["mtp_layers"]
    for plot in ("pass_at_k_toy_math.png", "pass_at_k_toy_code.png", "heldout_curves.png", "code_rewards.png",
                 "training_curves.png"):
        assert (out / "plots" / plot).stat().st_size > 1000
        assert f"plots/{plot}" in md
    assert "Smoke test" in md.split("## Family")[0]


def test_rerun_keeps_timings(quick):
    """A re-run of a finished demo reuses every stage and reports the times it took to build, not its own."""
    out, first = quick
    again = run_demo(out)
    assert again["stage_seconds"] == first["stage_seconds"]
    assert again["seconds"] == first["seconds"]
    assert set(again["reused_stages"]) == set(first["stage_seconds"])
    assert again["family"] == first["family"]
    assert "reused" in (out / "report.md").read_text().split("## Family")[0]


def test_quick_keeps_explicit_budget_flags(tmp_path):
    """``--quick`` cuts budgets, except those given explicitly on the command line or in the config file."""
    from mimo.demo.family import QUICK, DemoConfig, parse

    cfg, explicit = parse(["--quick", "--rl_steps", "3"])
    scaled = cfg.scaled(explicit)
    assert scaled.rl_steps == 3 and scaled.sft_steps == QUICK["sft_steps"]
    (tmp_path / "c.yaml").write_text("demo:\n  sft_steps: 7\n")
    cfg, explicit = parse(["--quick", "--config", str(tmp_path / "c.yaml")])
    scaled = cfg.scaled(explicit)
    assert scaled.sft_steps == 7 and scaled.rl_steps == QUICK["rl_steps"]
    assert DemoConfig().scaled() == DemoConfig()  # no --quick: nothing changes


@pytest.mark.slow
def test_quick_demo_is_deterministic(quick, tmp_path):
    _, first = quick
    second = run_demo(tmp_path / "again")
    assert second["family"] == first["family"] and second["control"] == first["control"]


def test_stage_cache_keys_on_the_starting_weights(tmp_path):
    """A stage is reused only when its config *and* the weights it started from are unchanged: rebuilding SFT
    with other steps must rerun RL, whose own config (which names SFT's folder, not its weights) is the same."""
    import dataclasses

    import yaml

    from mimo.demo.stages import _done, _mark_start

    @dataclasses.dataclass
    class Cfg:
        steps: int

    init, stage = tmp_path / "sft" / "final", tmp_path / "rl"
    init.mkdir(parents=True)
    (stage / "final").mkdir(parents=True)
    (init / "model.safetensors").write_bytes(b"weights v1")
    (stage / "final" / "model.safetensors").write_bytes(b"rl")
    (stage / "config.yaml").write_text(yaml.safe_dump({"rl": {"steps": 3}}))
    cfg = Cfg(3)
    assert not _done(stage, "rl", cfg, init)  # no record of its start: not reusable
    _mark_start(stage, init)
    assert _done(stage, "rl", cfg, init)
    assert not _done(stage, "rl", Cfg(4), init)  # its own config changed
    (init / "model.safetensors").write_bytes(b"weights v2")
    assert not _done(stage, "rl", cfg, init)  # its start changed
