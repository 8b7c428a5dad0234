"""`mimo eval` on bad input: one line naming the file and line (or the field), exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mimo.cli import main


def _one_line_error(capsys, argv: list[str]) -> str:
    rc = main(["eval", *argv, "--progress", "false"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, err
    assert len(err) == 1 and err[0].startswith("mimo eval: error: "), err
    return err[0]


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    comp = tmp_path / "c.jsonl"
    comp.write_text('{"problem_id": "a", "completion": "\\\\boxed{2}"}\n')
    data = tmp_path / "math.jsonl"
    data.write_text('{"problem": "1+1?", "answer": "2", "id": "a"}\n{"problem": "1+2?", "answer": "3", "id": "b"}\n')
    out = str(tmp_path / "out")
    base = ["--backend", "replay", "--completions", str(comp), "--data", str(data), "--out", out]
    # missing benchmark file
    msg = _one_line_error(capsys, [*base[:4], "--benchmarks", "math500", "--data", str(tmp_path / "no.jsonl"),
                                   "--out", out])
    assert "no.jsonl: no such file or folder" in msg
    # malformed data line
    data.write_text('{"problem": "1+1?", "answer": "2", "id": "a"}\n{"problem": \n')
    assert f"{data}:2: malformed JSON" in _one_line_error(capsys, [*base, "--benchmarks", "math500"])
    data.write_text('{"problem": "1+1?", "answer": "2", "id": "a"}\n')
    # malformed completions line
    comp.write_text('{"problem_id": "a", "completion": "x"}\nnot json\n')
    assert f"{comp}:2: malformed JSON" in _one_line_error(capsys, [*base, "--benchmarks", "math500"])
    # missing completions file
    assert "nothere.jsonl: no such completions file" in _one_line_error(
        capsys, ["--backend", "replay", "--completions", str(tmp_path / "nothere.jsonl"), "--benchmarks", "math500",
                 "--data", str(data), "--out", out])
    # unknown benchmark, unknown backend, unknown option
    assert "unknown benchmark 'math5000'" in _one_line_error(capsys, [*base, "--benchmarks", "math5000"])
    assert "--backend: expected one of" in _one_line_error(capsys, ["--backend", "tpu", "--benchmarks", "toy_math"])
    assert "needs --model DIR" in _one_line_error(capsys, ["--benchmarks", "toy_math", "--out", out])
    assert "no such model directory" in _one_line_error(capsys, ["--model", str(tmp_path / "m"), "--benchmarks",
                                                                 "toy_math", "--out", out])


def test_exit_status_of_the_real_command(tmp_path):
    env = {**os.environ, "MIMO_LIGHT_IMPORT": "1"}
    proc = subprocess.run([sys.executable, "-m", "mimo.cli", "eval", "--backend", "replay", "--completions",
                           str(tmp_path / "c.jsonl"), "--benchmarks", "nope", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("mimo eval: error: unknown benchmark 'nope' (known: math500, aime24, aime25, "
                                   "lcb_v5, lcb_v6, gpqa_diamond, humaneval, toy_math, toy_code)")


@pytest.mark.parametrize("flag", ["--temprature"])
def test_unknown_flags_are_argparse_errors(flag, capsys):
    with pytest.raises(SystemExit) as e:
        main(["eval", flag, "0.6"])
    assert e.value.code == 2
