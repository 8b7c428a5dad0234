"""Backends: the OpenAI-compatible endpoint (a real HTTP stub), replay
file checks, and the local backend's batching (vLLM, for real: tests/test_vllm_rl.py)."""

from __future__ import annotations

import json

import pytest

from mimo.errors import MimoError
from mimo.eval import Benchmark, Item
from mimo.eval.backends import EndpointBackend, EvalRequest, ReplayBackend, Sampling
from openai_stub import OpenAIStub


def _req(pid="p1", n=3, first=0, prompt="What is 2+2?"):
    return EvalRequest("bench", pid, prompt, n, first, 64, 1000)


def test_endpoint_backend_empty_system_prompt_and_n_samples():
    calls = []

    def reply(messages):
        calls.append(messages)
        return f"<think>\nsum\n</think>\n\\boxed{{4}} #{len(calls)}"

    stub = OpenAIStub(reply)
    with stub as url:
        backend = EndpointBackend(url, "MiMo-7B-RL", concurrency=2)
        out = dict(backend.generate([_req("p1"), _req("p2", n=1, prompt="2+3?")], Sampling(0.6, 0.95)))
    by_pid = {r.problem_id: gens for r, gens in out.items()}
    assert len(by_pid["p1"]) == 3 and len(by_pid["p2"]) == 1  # the stub answers one choice: asked again for the rest
    assert all(g.text.startswith("<think>") and g.finish == "stop" for g in by_pid["p1"])
    assert [{"role": "system", "content": ""}, {"role": "user", "content": "What is 2+2?"}] in calls
    bodies = stub.requests
    assert {b["model"] for b in bodies} == {"MiMo-7B-RL"}
    assert all(b["temperature"] == 0.6 and b["top_p"] == 0.95 and b["max_tokens"] == 64 for b in bodies)
    p1 = [b for b in bodies if b["messages"][1]["content"] == "What is 2+2?"]
    assert [b["n"] for b in p1] == [3, 2, 1] and len({b["seed"] for b in p1}) == 3  # asked again, new seeds


def test_endpoint_backend_errors_are_one_line():
    with OpenAIStub(lambda m: 400) as url:
        backend = EndpointBackend(url, max_retries=0)
        with pytest.raises(MimoError, match="request failed \\(HTTP 400"):
            list(backend.generate([_req()], Sampling(0.6, 0.95)))


def test_reasoning_returned_apart_is_put_back():
    from mimo.infer.client import _choice

    c = {"message": {"content": "\\boxed{4}", "reasoning_content": "2+2"}, "finish_reason": "length"}
    assert _choice(c, {"completion_tokens": 9}, True) == {"text": "<think>\n2+2\n</think>\n\\boxed{4}",
                                                          "finish_reason": "length", "tokens": 9}
    assert _choice(c, None, False)["text"] == "\\boxed{4}"


def _bench(name, ids):
    return Benchmark(name, [Item(i, f"prompt {i}", "1", "math") for i in ids])


def test_replay_file_checks(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"problem_id": "a", "completion": "x"}\n{"problem_id": "zz", "completion": "y"}\n')
    with pytest.raises(MimoError, match=r"c\.jsonl:2: problem_id 'zz' is in none of b1"):
        ReplayBackend(path).prepare([_bench("b1", ["a", "b"])])
    path.write_text('{"problem_id": "a", "completion": "x"}\n{"problem_id": "b"}\n')
    with pytest.raises(MimoError, match=r"c\.jsonl:2: expected a string 'completion'"):
        ReplayBackend(path).prepare([_bench("b1", ["a", "b"])])
    path.write_text('{"problem_id": "a", "completion": "x"}\n')
    with pytest.raises(MimoError, match=r"'a' is in b1, b2: add a 'benchmark'"):
        ReplayBackend(path).prepare([_bench("b1", ["a"]), _bench("b2", ["a"])])
    path.write_text("".join(json.dumps(r) + "\n" for r in [
        {"benchmark": "b1", "problem_id": "a", "completion": "1"}, {"benchmark": "b2", "problem_id": "a",
                                                                    "completion": "2"},
        {"benchmark": "b2", "problem_id": "a", "completion": "3"}, {"benchmark": "b9", "problem_id": "q",
                                                                    "completion": "4"}]))
    r = ReplayBackend(path)
    r.prepare([_bench("b1", ["a"]), _bench("b2", ["a"])])
    assert r.samples_for("b1", "a") == 1 and r.samples_for("b2", "a") == 2
    req = EvalRequest("b2", "a", "", 1, 1, 8, 0)
    assert [g.text for _, gens in r.generate([req], Sampling(0.6, 0.95)) for g in gens] == ["3"]
    with pytest.raises(MimoError, match="no such completions file"):
        ReplayBackend(tmp_path / "nope.jsonl")


def test_local_backend_batches_and_splits_requests(tiny_model):
    from mimo.eval.backends import LocalBackend

    class Tok:  # a byte-level stand-in: ids 0..63, 63 ends a turn
        stop_ids = [63]

        def chat_prompt(self, messages):
            return [ord(c) % 60 for c in messages[-1]["content"]][:10] or [1]

        def decode(self, ids):
            return " ".join(map(str, ids))

    model = tiny_model()
    backend = LocalBackend(model, Tok(), batch_size=4)
    reqs = [EvalRequest("b", "p1", "abc", 6, 0, 5, 11), EvalRequest("b", "p2", "hello", 1, 0, 5, 22)]
    out = list(backend.generate(reqs, Sampling(1.0, 1.0)))
    assert [(r.problem_id, r.first, r.n, r.seed) for r, _ in out] == [("p1", 0, 4, 11), ("p1", 4, 2, 15),
                                                                     ("p2", 0, 1, 22)]
    assert backend.generated == 7 and all(len(g) == r.n for r, g in out)
    assert all(0 < gen.tokens <= 5 and gen.finish in ("stop", "length") for _, g in out for gen in g)


def test_replaying_another_file_into_the_same_folder_is_refused(tmp_path):
    from mimo.eval import EvalProtocol, evaluate

    bench = Benchmark("b", [Item("a", "1+1? (A) 2 (B) 3", "A", "choice")])
    first, second = tmp_path / "1.jsonl", tmp_path / "2.jsonl"
    first.write_text('{"problem_id": "a", "completion": "Answer: A"}\n')
    second.write_text('{"problem_id": "a", "completion": "Answer: B"}\n')
    evaluate(ReplayBackend(first), [bench], EvalProtocol(), tmp_path / "out", show_progress=False)
    with pytest.raises(MimoError, match="completions_sha1"):
        evaluate(ReplayBackend(second), [bench], EvalProtocol(), tmp_path / "out", show_progress=False)
    again = evaluate(ReplayBackend(first), [bench], EvalProtocol(), tmp_path / "out", show_progress=False)["b"]
    assert (again["resumed"], again["generated"]) == (1, 0)


def test_samples_for_another_prompt_are_refused_and_grades_for_another_reference_redone(tmp_path):
    from mimo.eval import EvalProtocol, evaluate

    comp = tmp_path / "c.jsonl"
    comp.write_text('{"problem_id": "a", "completion": "Answer: A"}\n{"problem_id": "a", "completion": "Answer: B"}\n')
    bench = Benchmark("b", [Item("a", "Pick: (A) 2 (B) 3", "A", "choice")])
    assert evaluate(ReplayBackend(comp), [bench], EvalProtocol(), tmp_path / "out", show_progress=False)["b"][
        "pass@1"] == 0.5
    regraded = Benchmark("b", [Item("a", "Pick: (A) 2 (B) 3", "B", "choice")])  # a corrected key: grades redone
    res = evaluate(ReplayBackend(comp), [regraded], EvalProtocol(), tmp_path / "out", show_progress=False)["b"]
    assert (res["pass@k"]["1"], res["resumed"], res["generated"]) == (0.5, 2, 0)
    grades = [json.loads(line) for line in open(tmp_path / "out" / "b" / "grades.jsonl")]
    assert len(grades) == 4 and [g["score"] for g in grades[2:]] == [0.0, 1.0]
    shuffled = Benchmark("b", [Item("a", "Pick: (A) 3 (B) 2", "B", "choice")])  # another choice order
    with pytest.raises(MimoError, match="answered another prompt"):
        evaluate(ReplayBackend(comp), [shuffled], EvalProtocol(), tmp_path / "out", show_progress=False)


def test_an_eval_folder_replays_as_is(tmp_path):
    from mimo.eval import EvalProtocol, evaluate

    comp = tmp_path / "c.jsonl"
    comp.write_text("".join(json.dumps({"benchmark": b, "problem_id": "a", "completion": f"Answer: {x}"}) + "\n"
                            for b, x in [("b1", "A"), ("b1", "B"), ("b1", "A"), ("b2", "C")]))
    benches = [Benchmark("b1", [Item("a", "Pick: (A) 2 (B) 3", "A", "choice")]),
               Benchmark("b2", [Item("a", "Pick: (C) 4 (D) 5", "C", "choice")])]
    first = evaluate(ReplayBackend(comp), benches, EvalProtocol(), tmp_path / "one", show_progress=False)
    again = evaluate(ReplayBackend(tmp_path / "one"), benches, EvalProtocol(), tmp_path / "two", show_progress=False)
    assert first["b1"]["pass@k"] == again["b1"]["pass@k"] == {"1": pytest.approx(2 / 3), "2": 1.0, "3": 1.0}
    assert first["b2"]["pass@1"] == again["b2"]["pass@1"] == 1.0
    assert json.loads((tmp_path / "two" / "results.json").read_text()).keys() == {"b1", "b2"}
