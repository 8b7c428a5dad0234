"""`mimo demo --quick` end to end through the real CLI: every stage runs, the report has the documented schema.

The quick demo is the whole pipeline with small budgets (~3 minutes on 2 cores): corpus and tokenizer, Base with
MTP over three stages, SFT, RL and RL-Zero on the rollout engine with real reward workers and the sandboxed judge,
the compute-matched control, the extra MTP layers, evaluation, speculative decoding, the report.  Its numbers are
not checked here (too small to mean anything); the full demo's are in the README.  ``MIMO_SLOW=1`` adds a second
run with the same seed, which must give the same family table.
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


def run_demo(out: Path) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "mimo.cli", "demo", "--quick", "--out", str(out)], env=env,
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
    for key in ("idle_ratio", "waste_ratio"):
        assert isinstance(report["rollout"][key], float) and 0.0 <= report["rollout"][key] <= 1.0
    assert isinstance(report["seconds"], float) and report["seconds"] > 0
    assert {c["claim"] for c in report["checks"]} >= {"RL > SFT on math", "SFT > Base on math"}
    for c in report["checks"]:
        assert math.isfinite(c["points"])


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
    for plot in ("pass_at_k_toy_math.png", "pass_at_k_toy_code.png"):
        assert (out / "plots" / plot).stat().st_size > 1000


@pytest.mark.slow
def test_quick_demo_is_deterministic(quick, tmp_path):
    _, first = quick
    second = run_demo(tmp_path / "again")
    assert second["family"] == first["family"] and second["control"] == first["control"]
