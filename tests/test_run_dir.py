"""Run directories: no silent clobbering, resume walks back past damaged checkpoints, unwritable dirs in one line."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mimo.errors import MimoError
from mimo.train.checkpoint import CheckpointManager, prepare_run_dir, run_state

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--model.hidden_size", "32", "--model.intermediate_size", "64", "--model.num_hidden_layers", "2",
         "--model.num_attention_heads", "4", "--model.num_key_value_heads", "2", "--toy.vocab_size", "300",
         "--toy.docs_per_source", "300", "--toy.stage_tokens", "[20000]",
         "--stages", "[{name: a, steps: 4, seq_len: 32, lr: 0.003}]", "--batch_size", "4", "--batch_size_start", "4",
         "--micro_batch_size", "4", "--warmup_steps", "1", "--decay_steps", "1", "--eval_every", "0",
         "--eval_batches", "1", "--save_every", "2", "--keep_checkpoints", "3", "--log_every", "100",
         "--threads", "1"]


def checksums(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def mimo(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "mimo.cli", *argv], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("pretrain") / "run"
    r = mimo("pretrain", "--out_dir", str(run), *SMALL, cwd=run.parent)
    assert r.returncode == 0, r.stderr
    assert run_state(run) == "finished"
    return run


def test_rerun_into_finished_run_refused_and_nothing_changes(finished_run):
    before = checksums(finished_run)
    r = mimo("pretrain", "--out_dir", str(finished_run), *SMALL, cwd=finished_run.parent)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert "already holds a finished pretrain run" in r.stderr and "--resume true" in r.stderr
    assert checksums(finished_run) == before


def test_partly_written_run_refused(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints" / "step_000002").mkdir(parents=True)
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    before = checksums(run)
    with pytest.raises(MimoError, match="already holds a partly written sft run"):
        prepare_run_dir(run, resume=False, overwrite=False, stage="sft")
    with pytest.raises(MimoError, match="exclude each other"):
        prepare_run_dir(run, resume=True, overwrite=True, stage="sft")
    assert checksums(run) == before
    # a fresh directory, or one holding only caches, is not a run
    (tmp_path / "fresh" / "data").mkdir(parents=True)
    assert prepare_run_dir(tmp_path / "fresh", resume=False, overwrite=False, stage="sft") == tmp_path / "fresh"


def test_overwrite_starts_over(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints" / "step_000002").mkdir(parents=True)
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    (run / "data").mkdir()
    (run / "data" / "cache.bin").write_bytes(b"keep")
    prepare_run_dir(run, resume=False, overwrite=True, stage="pretrain")
    assert run_state(run) is None and not (run / "metrics.jsonl").exists()
    assert (run / "data" / "cache.bin").read_bytes() == b"keep"


def _copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_resume_skips_truncated_trainer_state(finished_run, tmp_path):
    run = _copy_run(finished_run, tmp_path / "run")
    ckpts = CheckpointManager(run)
    assert [p.name for p in ckpts.candidates()] == ["step_000004", "step_000002"]
    state = run / "checkpoints" / "step_000004" / "trainer_state.pt"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    path, st = ckpts.load_state()
    assert path.name == "step_000002" and st["step"] == 2
    # the CLI says which checkpoint it skipped and why, and continues from the older one
    import shutil

    shutil.rmtree(run / "final")
    r = mimo("pretrain", "--out_dir", str(run), *SMALL, "--resume", "true", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "skipping" in r.stderr and "step_000004: trainer_state.pt does not load" in r.stderr
    assert "resumed from" in r.stdout and "step_000002 at step 2" in r.stdout
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert sorted(set(steps)) == [1, 2, 3, 4]
    assert torch.load(run / "checkpoints" / "step_000004" / "trainer_state.pt", weights_only=False)["step"] == 4


def test_latest_pointing_at_missing_step_falls_back(finished_run, tmp_path, capsys):
    run = _copy_run(finished_run, tmp_path / "run")
    (run / "checkpoints" / "latest").write_text("step_000099\n")
    path, st = CheckpointManager(run).load_state()
    assert path.name == "step_000004" and st["step"] == 4
    assert "skipping" in capsys.readouterr().err


def test_no_loadable_checkpoint_is_one_line(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints" / "step_000002").mkdir(parents=True)
    (run / "checkpoints" / "step_000002" / "trainer_state.pt").write_bytes(b"PK\x03\x04garbage")
    (run / "checkpoints" / "step_000002" / "model.safetensors").write_bytes(b"x")
    with pytest.raises(MimoError, match=r"no checkpoint that loads .*step_000002: trainer_state.pt does not load"):
        CheckpointManager(run).load_state()


def run_read_only(ro: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``mimo argv`` with ``ro`` read-only: a read-only bind mount in a private mount namespace when root
    (EROFS, as on a read-only volume; root ignores permission bits), else permission bits (EACCES)."""
    if os.geteuid() != 0:
        ro.chmod(0o555)
        try:
            return mimo(*argv, cwd=cwd)
        finally:
            ro.chmod(0o755)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    script = 'mount --bind -o ro "$0" "$0" && exec "$@"'
    r = subprocess.run(["unshare", "--mount", "sh", "-c", script, str(ro), sys.executable, "-m", "mimo.cli", *argv],
                       capture_output=True, text=True, cwd=cwd, env=env, timeout=300)
    if "mount" in r.stderr and "mimo" not in r.stderr:
        pytest.skip(f"no read-only bind mount here: {r.stderr.strip()}")
    return r


@pytest.mark.parametrize("stage", ["pretrain", "sft", "rl", "train-mtp"])
def test_read_only_out_dir_is_one_line(stage, tmp_path, finished_run):
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "keep.txt").write_text("old")
    before = checksums(ro)
    extra = SMALL if stage == "pretrain" else ["--init_from", str(finished_run / "final"), "--threads", "1"]
    r = run_read_only(ro, stage, "--out_dir", str(ro / "run"), *extra, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().count("\n") == 0, r.stderr
    assert f"{ro / 'run'}: cannot write (" in r.stderr
    assert "Read-only file system" in r.stderr or "Permission denied" in r.stderr
    assert checksums(ro) == before


@pytest.mark.parametrize("command", ["eval", "data", "demo"])
def test_read_only_output_of_eval_data_demo_is_one_line(command, tmp_path):
    comp, data = tmp_path / "c.jsonl", tmp_path / "math.jsonl"
    data.write_text(json.dumps({"problem": "1+1?", "answer": "2", "id": "a"}) + "\n")
    comp.write_text(json.dumps({"problem_id": "a", "completion": "\\boxed{2}"}) + "\n")
    docs = tmp_path / "docs.jsonl"
    docs.write_text(json.dumps({"text": "one two three four five six", "url": "u", "id": "1"}) + "\n")
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "keep.txt").write_text("old")
    before = checksums(ro)
    argv = {"eval": ["eval", "--backend", "replay", "--completions", str(comp), "--benchmarks", "math500",
                     "--data", str(data), "--out", str(ro / "out"), "--progress", "false"],
            "data": ["data", "dedup", "--input", str(docs), "--output", str(ro / "out")],
            "demo": ["demo", "--quick", "--out", str(ro / "out")]}[command]
    r = run_read_only(ro, *argv, cwd=tmp_path)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{ro / 'out'}" in lines[0], lines
    assert "cannot write (Read-only file system)" in lines[0] or "(Permission denied)" in lines[0], lines
    assert checksums(ro) == before


def test_dedup_on_a_broken_line_is_one_line_without_library_logging(tmp_path):
    docs = tmp_path / "docs.jsonl"
    docs.write_text(json.dumps({"text": "a b c", "url": "u1", "id": "1"}) + "\n" + '{"text": \n')
    r = mimo("data", "dedup", "--input", str(docs), "--output", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip() == f"mimo data: error: {docs}:2: malformed JSON (Expecting value at column 1)"
    verbose = mimo("--verbose", "data", "dedup", "--input", str(docs), "--output", str(tmp_path / "out"),
                   cwd=tmp_path)
    assert verbose.returncode == 2 and len(verbose.stderr.splitlines()) > 10  # --verbose shows datatrove's log
