"""A tiny local model through the whole protocol on CPU: report files, resume after a failure or a kill -9 without
regenerating finished samples, the Python API the demo calls, and settings that must match on resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from mimo.errors import MimoError
from mimo.eval import EvalProtocol, evaluate, toy_benchmark
from mimo.eval.backends import LocalBackend


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """A tiny model is 25x faster on one thread than on two busy cores (thread hand-off dominates)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A random tiny MiMo with a toy BPE tokenizer, saved as a model directory."""
    from mimo.model import MiMoForCausalLM, ModelSpec
    from mimo.model.io import save_model_dir
    from mimo.tasks import MathTaskGenerator
    from mimo.tasks.code import CodeTaskGenerator
    from mimo.tokenizer import train_bpe

    d = tmp_path_factory.mktemp("tiny")
    texts = [p.chat_prompt() + p.chat_response() for p in MathTaskGenerator(seed=1).sample(200)]
    texts += [p.chat_prompt() + p.chat_response() for p in CodeTaskGenerator(seed=1).sample(100)]
    tok = train_bpe(texts, 320, d / "tok")
    torch.manual_seed(0)
    spec = ModelSpec(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096)
    model = MiMoForCausalLM(spec.to_hf(eos_token_id=tok.im_end_id)).eval()
    save_model_dir(d / "model", model, tok)
    return d / "model"


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    from mimo.model.io import load_model_dir

    return load_model_dir(tiny_dir)


@pytest.fixture(scope="module")
def pool():
    from mimo.rewards.pool import RewardPool

    with RewardPool(workers=2) as p:
        yield p


def _lines(path):
    return [json.loads(line) for line in open(path)]


def test_tiny_model_runs_the_protocol_end_to_end(tiny_dir, tmp_path, shared_data, capsys):
    from mimo.cli import main

    out = tmp_path / "out"
    rc = main(["eval", "--model", str(tiny_dir), "--benchmarks", "toy_math,toy_code,math500,aime25,humaneval",
               "--data", str(shared_data), "--max_problems", "3", "--toy.size", "3", "--n", "2",
               "--max_new_tokens", "8", "--batch_size", "8", "--out", str(out), "--progress", "false"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert list(res) == ["toy_math", "toy_code", "math500", "aime25", "humaneval"]
    for name, m in res.items():
        assert m["n_problems"] == 3 and m["n_samples"] == 2 and list(m["pass@k"]) == ["1", "2"], name
        assert 0.0 <= m["pass@1"] <= 1.0 and m["stderr"] >= 0.0 and m["generated"] == 6
        assert sum(m["outcomes"].values()) == 6
        assert (out / name / "pass_at_k.png").stat().st_size > 1000
        saved = _lines(out / name / "completions.jsonl")
        assert len(saved) == 6 and all(0 < r["tokens"] <= 8 for r in saved)
        assert len(_lines(out / name / "grades.jsonl")) == 6
    table = (out / "results.md").read_text()
    assert "| MATH-500 | 3 | 2 |" in table and "| toy math (held-out) | 3 | 2 |" in table
    assert (out / "pass_at_k.png").is_file() and (out / "config.yaml").is_file()
    assert "pass@1 (avg@n)" in capsys.readouterr().out
    settings = json.loads((out / "math500" / "run.json").read_text())
    assert (settings["temperature"], settings["top_p"], settings["system_prompt"]) == (0.6, 0.95, "")


class _FailAfter(LocalBackend):
    """Raises after yielding ``k`` batches: an evaluation that crashes midway."""

    def __init__(self, *args, k: int, **kw):
        super().__init__(*args, **kw)
        self.k = k

    def generate(self, requests, sampling):
        for i, out in enumerate(super().generate(requests, sampling)):
            if i == self.k:
                raise RuntimeError("injected failure")
            yield out


def test_resume_after_a_failure_generates_only_what_is_missing(tiny, tmp_path, pool):
    from mimo.tasks import MathTaskGenerator

    model, tok = tiny
    bench = toy_benchmark("toy_math", MathTaskGenerator(seed=5).sample(5, "heldout"), samples=2, max_new_tokens=10)
    protocol = EvalProtocol()
    crashing = _FailAfter(model, tok, batch_size=1, k=4)
    with pytest.raises(RuntimeError, match="injected"):
        evaluate(crashing, [bench], protocol, tmp_path / "a", pool=pool, show_progress=False)
    assert crashing.generated == 5 and len(_lines(tmp_path / "a" / "toy_math" / "completions.jsonl")) == 4
    resumed = LocalBackend(model, tok, batch_size=1)
    res = evaluate(resumed, [bench], protocol, tmp_path / "a", pool=pool, show_progress=False)["toy_math"]
    assert resumed.generated == 6 and (res["generated"], res["resumed"]) == (6, 4)
    # the same samples as an uninterrupted run: per-sample seeds, one sequence per batch
    straight = LocalBackend(model, tok, batch_size=1)
    ref = evaluate(straight, [bench], protocol, tmp_path / "b", pool=pool, show_progress=False)["toy_math"]
    assert straight.generated == 10

    def texts(d):
        return {(r["problem_id"], r["sample"]): r["completion"] for r in _lines(d / "toy_math" / "completions.jsonl")}

    assert texts(tmp_path / "a") == texts(tmp_path / "b") and len(texts(tmp_path / "a")) == 10
    assert res["pass@k"] == ref["pass@k"]
    # a third run finds everything done
    again = LocalBackend(model, tok, batch_size=1)
    evaluate(again, [bench], protocol, tmp_path / "a", pool=pool, show_progress=False)
    assert again.generated == 0


@pytest.mark.slow  # two `mimo eval` processes (imports, model load): ~40 s idle, 90 s on a loaded 2-core box
def test_kill_9_midway_then_resume(tiny_dir, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "mimo.cli", "eval", "--model", str(tiny_dir), "--benchmarks", "toy_math",
           "--toy.size", "6", "--n", "2", "--max_new_tokens", "40", "--batch_size", "1", "--temperature", "1.0",
           "--out", str(out), "--progress", "false", "--grading.workers", "1"]
    env = {**os.environ, "MIMO_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    comp = out / "toy_math" / "completions.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if comp.is_file() and len(comp.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "finished before it could be killed: " + proc.stderr.read().decode()[-1500:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {(r["problem_id"], r["sample"]) for r in _lines(comp)}
    assert 3 <= len(done_before) < 12
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    m = json.loads((out / "results.json").read_text())["toy_math"]
    assert m["resumed"] == len(done_before) and m["generated"] == 12 - len(done_before)
    keys = [(r["problem_id"], r["sample"]) for r in _lines(comp)]
    assert len(keys) == len(set(keys)) == 12 and m["n_problems"] == 6


def test_settings_must_match_to_resume(tiny, tmp_path, pool):
    from mimo.tasks import MathTaskGenerator

    model, tok = tiny
    bench = toy_benchmark("toy_math", MathTaskGenerator(seed=6).sample(2, "heldout"), samples=1, max_new_tokens=4)
    evaluate((model, tok), [bench], EvalProtocol(), tmp_path, pool=pool, show_progress=False)
    with pytest.raises(MimoError, match="temperature=0.6.*0.7.*--overwrite"):
        evaluate((model, tok), [bench], EvalProtocol(temperature=0.7), tmp_path, pool=pool, show_progress=False)
    res = evaluate((model, tok), [bench], EvalProtocol(temperature=0.7), tmp_path, pool=pool, overwrite=True,
                   show_progress=False)
    assert res["toy_math"]["generated"] == 2


def test_demo_api_is_deterministic_with_toy_math_and_code(tiny, tmp_path, pool):
    """What `mimo demo` calls: toy problems -> benchmarks -> evaluate((model, tokenizer), ...) -> results."""
    from mimo.tasks import MathTaskGenerator
    from mimo.tasks.code import CodeTaskGenerator

    model, tok = tiny
    benches = [toy_benchmark("toy_math", MathTaskGenerator(seed=2).sample(3, "heldout"), samples=3, max_new_tokens=6),
               toy_benchmark("toy_code", CodeTaskGenerator(seed=2).sample(2, "heldout"), samples=3, max_new_tokens=6)]
    runs = [evaluate((model, tok), benches, EvalProtocol(), tmp_path / str(i), pool=pool, show_progress=False)
            for i in range(2)]
    for name in ("toy_math", "toy_code"):
        assert runs[0][name]["pass@k"] == runs[1][name]["pass@k"] and len(runs[0][name]["pass@k"]) == 3
        a = (tmp_path / "0" / name / "completions.jsonl").read_text()
        assert a == (tmp_path / "1" / name / "completions.jsonl").read_text()
    assert runs[0]["toy_code"]["n_problems"] == 2


def test_a_model_that_answers_right_scores_100(tiny, tmp_path, pool):
    """Grading of local generations end to end: a backend whose 'model' writes the reference answers."""
    from mimo.eval.backends import EvalBackend, Generation
    from mimo.tasks import MathTaskGenerator
    from mimo.tasks.code import CodeTaskGenerator

    math = MathTaskGenerator(seed=4).sample(4, "heldout")
    code = CodeTaskGenerator(seed=4).sample(3, "heldout")
    answers = {p.prompt_text(): p.chat_response() for p in math + code}

    class Oracle(EvalBackend):
        def generate(self, requests, sampling):
            for r in requests:
                yield r, [Generation(answers[r.prompt], 1, "stop")] * r.n

    res = evaluate(Oracle(), [toy_benchmark("toy_math", math, samples=2), toy_benchmark("toy_code", code, samples=2)],
                   EvalProtocol(), tmp_path, pool=pool, show_progress=False)
    assert res["toy_math"]["pass@1"] == 1.0 and res["toy_code"]["pass@1"] == 1.0, res


def test_another_model_in_the_same_folder_is_refused(tiny, tmp_path, pool):
    import copy

    from mimo.tasks import MathTaskGenerator

    model, tok = tiny
    bench = toy_benchmark("toy_math", MathTaskGenerator(seed=7).sample(1, "heldout"), samples=1, max_new_tokens=2)
    evaluate((model, tok), [bench], EvalProtocol(), tmp_path, pool=pool, show_progress=False)
    trained = copy.deepcopy(model)
    with torch.no_grad():
        trained.lm_head.weight.add_(0.01)
    with pytest.raises(MimoError, match="weights="):
        evaluate((trained, tok), [bench], EvalProtocol(), tmp_path, pool=pool, show_progress=False)
