"""Model-based difficulty in `mimo data curate-rl`: the threshold rule on stubbed rollout statistics, and the real
path (RL engine, local rollout workers, reward pool) with a tiny model rigged to always answer "4"."""

from __future__ import annotations

import doctest
import json

import pytest

import mimo.curate.difficulty as difficulty
from mimo.curate.difficulty import PassStats, difficulty_drop, sample_stats
from mimo.data.cli import cli
from mimo.rl.actor import Sample


def test_doctests():
    assert doctest.testmod(difficulty).failed == 0


@pytest.mark.parametrize("kind, solved, n, dropped", [
    ("math", 8, 8, True), ("math", 7, 8, False),          # 0.875 <= 0.9
    ("math", 15, 16, True), ("math", 14, 16, False),      # MiMo's 16 rollouts: 0.9375 > 0.9, 0.875 kept
    ("math", 0, 8, False),
    ("code", 8, 8, True), ("code", 7, 8, False), ("code", 0, 8, False),  # code: only "solved every time" goes
])
def test_policy_thresholds(kind, solved, n, dropped):
    drop = difficulty_drop(kind, PassStats(n, solved), None)
    assert (drop is not None and drop[0] == "too_easy") is dropped


def test_reference_threshold_and_custom_limits():
    assert difficulty_drop("code", PassStats(8, 3), PassStats(4, 0))[0] == "unsolved_by_reference"
    assert difficulty_drop("math", PassStats(8, 3), PassStats(4, 1)) is None
    assert difficulty_drop("math", PassStats(8, 6), None, math_max_pass_rate=0.7)[0] == "too_easy"
    assert difficulty_drop("code", PassStats(8, 7), None, code_max_pass_rate=0.8)[0] == "too_easy"


def test_sample_stats_count_a_code_rollout_as_solved_only_when_every_test_passes():
    samples = [Sample([], [], [], reward=1.0, verdicts=("passed",) * 3),
               Sample([], [], [], reward=0.0, verdicts=("passed", "time_limit", "passed")),
               Sample([], [], [], reward=0.0, verdicts=())]  # no code block: no verdicts
    st = sample_stats("code", samples, 3)
    assert (st.rollouts, st.solved) == (3, 1)
    assert st.pass_matrix == [[1, 1, 1], [1, 0, 1], [0, 0, 0]]
    assert sample_stats("math", [Sample([], [], [], reward=r) for r in (1.0, 0.0, 1.0, 1.0)], 0).pass_rate == 0.75


def _problems():
    code_tests = [{"testtype": "functional", "input": str(i), "output": str(i + 1), "fn_name": "inc"} for i in range(4)]
    code = {"kind": "code", "problem": "Write inc(x) returning x + 1.", "tests": code_tests, "fn_name": "inc"}
    return [
        {"id": "m-easy", "problem": "What is 1 + 1?", "answer": "2"},
        {"id": "m-ok", "problem": "What is 2 + 2?", "answer": "4"},
        {"id": "m-unsolved", "problem": "What is 3 + 3?", "answer": "6"},
        {"id": "m-lost", "problem": "What is 4 + 4?", "answer": "8"},
        {"id": "c-easy", **code, "problem": code["problem"] + " (easy)"},
        {"id": "c-ok", **code, "problem": code["problem"] + " (medium)"},
    ]


def test_thresholds_with_stubbed_rollouts(tmp_path, monkeypatch):
    """The whole stage on canned rollout statistics: what is dropped, what is stored on what is kept."""
    matrix = [[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0],
              [1, 1, 0, 0]]  # 8 rollouts x 4 tests: test pass rates 1, .75, .375, .125; solved once
    policy = {"m-easy": PassStats(8, 8), "m-ok": PassStats(8, 7),
              "c-easy": PassStats(8, 8, [[1] * 4] * 8), "c-ok": PassStats(8, 1, matrix)}  # m-lost: no rollouts
    reference = {"m-easy": PassStats(4, 4), "m-ok": PassStats(4, 2), "m-unsolved": PassStats(4, 0),
                 "m-lost": PassStats(4, 1), "c-easy": PassStats(4, 4), "c-ok": PassStats(4, 3)}
    calls = []

    def fake_roll_out(records, n, *, model="", endpoint="", **kw):
        calls.append((model, n, sorted(records)))
        stats = reference if model == "REF" else policy
        return {pid: stats[pid] for pid in records if pid in stats}, {"seconds": 0.0, "idle_ratio": 0.0}

    monkeypatch.setattr(difficulty, "roll_out", fake_roll_out)
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(p) + "\n" for p in _problems()))
    assert cli(["curate-rl", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl"),
                "--report", str(tmp_path / "r.json"), "--benchmarks", "[]", "--model", "POLICY", "--rollouts", "8",
                "--reference", "REF", "--reference_rollouts", "4"]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    # the reference runs first, on everything; the policy only on what the reference left
    assert calls[0] == ("REF", 4, sorted(p["id"] for p in _problems()))
    assert calls[1] == ("POLICY", 8, ["c-easy", "c-ok", "m-easy", "m-lost", "m-ok"])
    assert {r: ids for r, ids in report["dropped"].items() if ids} == {
        "unsolved_by_reference": ["m-unsolved"], "rollout_failed": ["m-lost"], "too_easy": ["m-easy", "c-easy"]}
    details = {d["id"]: d for d in report["dropped_records"]}
    assert details["m-easy"]["pass_rate"] == 1.0 and details["m-easy"]["reference_pass_rate"] == 1.0
    assert details["m-unsolved"]["reference_pass_rate"] == 0.0
    kept = {json.loads(line)["id"]: json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()}
    assert set(kept) == {"m-ok", "c-ok"}
    assert (kept["m-ok"]["pass_rate"], kept["m-ok"]["rollouts"], kept["m-ok"]["reference_pass_rate"]) == (0.875, 8, 0.5)
    assert "pass_matrix" not in kept["m-ok"] and "levels" not in kept["m-ok"]
    assert kept["c-ok"]["pass_rate"] == 0.125 and kept["c-ok"]["pass_matrix"] == matrix
    assert kept["c-ok"]["test_pass_rates"] == [1.0, 0.75, 0.375, 0.125]
    assert kept["c-ok"]["levels"] == [0, 1, 2, 2]  # easiest test first; what `mimo rl` reads as the test levels


@pytest.fixture(scope="module")
def always_four(tmp_path_factory):
    """A tiny MiMo model directory whose every answer is "4": the attention and MLP outputs are zero, so the next
    token depends on the current one only (the last prompt token -> "4" -> <|im_end|>), by a wide margin."""
    import torch

    from mimo.model import MiMoForCausalLM, ModelSpec
    from mimo.model.io import save_model_dir
    from mimo.tasks import MathTaskGenerator
    from mimo.tokenizer import train_bpe

    out = tmp_path_factory.mktemp("always_four")
    texts = [p.pretrain_text() for p in MathTaskGenerator(seed=0).sample(100)] + ["def inc(x):\n    return x+1\n"] * 9
    tok = train_bpe(texts, 300, out / "tok")
    cfg = ModelSpec(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256).to_hf()
    torch.manual_seed(0)
    model = MiMoForCausalLM(cfg).eval()
    last, (four,), end = tok.chat_prompt("?")[-1], tok.encode("4"), tok.im_end_id
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        emb, head = model.model.embed_tokens.weight, model.lm_head.weight
        emb[last], emb[four] = torch.eye(32)[0], torch.eye(32)[1]
        head.zero_()
        head[four, 0] = head[end, 1] = 20.0  # logit margin 20 * sqrt(32): p("4") ~ 1 - 1e-47 at temperature 1
    return save_model_dir(out / "model", model, tok)


def test_real_rollouts_store_pass_rates_and_apply_the_thresholds(tmp_path, always_four):
    """Through the RL engine with local rollout workers: "1 + 1" (gold 2) and "2 + 2" (gold 4) rolled out 8 times."""
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(p) + "\n" for p in _problems()
                                               if p["id"] in ("m-easy", "m-ok", "c-ok")))
    assert cli(["curate-rl", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl"),
                "--report", str(tmp_path / "r.json"), "--benchmarks", "[]", "--model", str(always_four),
                "--rollouts", "8", "--rollout.max_new_tokens", "6", "--rollout.workers", "1",
                "--pool.workers", "2"]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["dropped"]["too_easy"] == ["m-ok"]  # always "4": solved 8/8
    kept = {json.loads(line)["id"]: json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()}
    assert set(kept) == {"m-easy", "c-ok"}
    assert (kept["m-easy"]["pass_rate"], kept["m-easy"]["rollouts"]) == (0.0, 8)
    assert kept["c-ok"]["pass_matrix"] == [[0] * 4] * 8 and kept["c-ok"]["levels"] == [0] * 4
    assert "8 per problem" in report["notes"]["policy_rollouts"]


def test_real_reference_model_drops_what_it_never_solves(tmp_path, always_four):
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(p) + "\n" for p in _problems()
                                               if p["id"] in ("m-easy", "m-ok")))
    assert cli(["curate-rl", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl"),
                "--report", str(tmp_path / "r.json"), "--benchmarks", "[]", "--reference", str(always_four),
                "--rollouts", "4", "--rollout.max_new_tokens", "6", "--rollout.workers", "1"]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["dropped"]["unsolved_by_reference"] == ["m-easy"]
    (kept,) = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert kept["id"] == "m-ok" and kept["reference_pass_rate"] == 1.0 and "pass_rate" not in kept


def test_endpoint_rollouts_build_the_prompts_with_the_tokenizer(tmp_path, always_four):
    """``--endpoint URL --tokenizer DIR``: prompts go out as token ids, answers come back as token ids."""
    from mimo.tokenizer import Tokenizer
    from openai_stub import OpenAIStub

    tok = Tokenizer.load(always_four)
    answers = {"What is 1 + 1?": "2", "What is 2 + 2?": "5"}  # the server solves the first problem only

    def complete(body):
        prompt = tok.decode(body["prompt"])
        (question,) = [q for q in answers if q in prompt]
        return [tok.encode(answers[question]) + [tok.im_end_id]] * body["n"]

    (tmp_path / "in.jsonl").write_text("".join(json.dumps(p) + "\n" for p in _problems()
                                               if p["id"] in ("m-easy", "m-ok")))
    stub = OpenAIStub(lambda messages: "", completions=complete)
    with stub as url:
        assert cli(["curate-rl", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl"),
                    "--report", str(tmp_path / "r.json"), "--benchmarks", "[]", "--endpoint", url,
                    "--tokenizer", str(always_four), "--rollouts", "3", "--rollout.max_new_tokens", "5"]) == 0
    assert [r["n"] for r in stub.requests] == [3, 3] and stub.requests[0]["max_tokens"] == 5
    assert sorted(r["prompt"] for r in stub.requests) == sorted(tok.chat_prompt(q) for q in answers)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["dropped"]["too_easy"] == ["m-easy"]
    (kept,) = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert (kept["id"], kept["pass_rate"], kept["rollouts"]) == ("m-ok", 0.0, 3)
