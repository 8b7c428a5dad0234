"""``mimo serve``: a real server on loopback answers the ``openai`` client (chat and completions, plain and
streaming, n > 1, stop strings) and the RL rollout endpoint client (token-id prompts, log-probs); bad requests get
4xx with a message and the server keeps serving."""

from __future__ import annotations

import http.client
import json
import threading

import pytest
import torch

from mimo.infer.engine import generate
from mimo.infer.serve import ChatEngine, Server

NAME = "tiny-mimo"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from mimo.model import MiMoForCausalLM, ModelSpec
    from mimo.tokenizer import train_bpe

    texts = ["Compute 12 + 345. The answer is \\boxed{357}.", "The river opens in the morning.",
             "What is 7 * 8? 7 * 8 = 56"] * 40
    tok = train_bpe(texts, 300, tmp_path_factory.mktemp("tok"))
    torch.manual_seed(0)
    cfg = ModelSpec(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=160,
                    num_nextn_predict_layers=2).to_hf()
    model = MiMoForCausalLM(cfg).eval()
    server = Server(("127.0.0.1", 0), ChatEngine(model, tok, NAME), default_max_tokens=16, max_tokens=64, max_n=4,
                    max_body_bytes=4096)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, model, tok
    server.shutdown()
    server.server_close()


@pytest.fixture
def client(served):
    from openai import OpenAI

    return OpenAI(base_url=served[0].url, api_key="unused", max_retries=0, timeout=60)


MESSAGES = [{"role": "user", "content": "Compute 12 + 3."}]


def test_openai_client_plain_and_streaming(served, client):
    server, model, tok = served
    r = client.chat.completions.create(model=NAME, messages=MESSAGES, max_tokens=20, temperature=0)
    text = r.choices[0].message.content
    assert r.model == NAME and r.choices[0].finish_reason in ("stop", "length")
    # the same tokens as the engine's greedy decoding of the ChatML prompt
    ids = generate(model, [tok.chat_prompt(MESSAGES)], 20, stop_ids=tok.stop_ids)[0]
    ids = [t for t in ids if t not in tok.stop_ids]
    assert text == tok.decode(ids) and r.usage.completion_tokens == len(ids)
    assert r.usage.prompt_tokens == len(tok.chat_prompt(MESSAGES))

    stream = client.chat.completions.create(model=NAME, messages=MESSAGES, max_tokens=20, temperature=0,
                                            stream=True, stream_options={"include_usage": True})
    deltas, finish, usage = [], None, None
    for ev in stream:
        if ev.usage is not None:
            usage = ev.usage
        for c in ev.choices:
            deltas.append(c.delta.content or "")
            finish = c.finish_reason or finish
    assert "".join(deltas) == text and finish == r.choices[0].finish_reason
    assert usage.completion_tokens == r.usage.completion_tokens
    assert len([d for d in deltas if d]) > 1  # really streamed, not one blob


def test_openai_client_n_and_stop_strings(served, client):
    r = client.chat.completions.create(model=NAME, messages=MESSAGES, max_tokens=24, temperature=1.0, n=3, seed=1)
    assert [c.index for c in r.choices] == [0, 1, 2]
    again = client.chat.completions.create(model=NAME, messages=MESSAGES, max_tokens=24, temperature=1.0, n=3,
                                           seed=1)
    assert [c.message.content for c in again.choices] == [c.message.content for c in r.choices]  # seeded
    full = r.choices[0].message.content
    assert len(full) > 8
    stop = full[5:8]  # a stop string from the middle of choice 0
    cut = client.chat.completions.create(model=NAME, messages=MESSAGES, max_tokens=24, temperature=1.0, n=3,
                                         seed=1, stop=[stop])
    assert cut.choices[0].message.content == full[: full.find(stop)]
    assert cut.choices[0].finish_reason == "stop"
    streamed = client.chat.completions.create(model=NAME, messages=MESSAGES, max_tokens=24, temperature=1.0,
                                              n=3, seed=1, stop=stop, stream=True)
    parts = {}
    for ev in streamed:
        for c in ev.choices:
            parts[c.index] = parts.get(c.index, "") + (c.delta.content or "")
    assert [parts[i] for i in range(3)] == [c.message.content for c in cut.choices]


def test_completions_plain_streaming_and_rollout_client(served, client):
    server, model, tok = served
    prompt = "Question: Compute 12 + 3.\nAnswer:"
    r = client.completions.create(model=NAME, prompt=prompt, max_tokens=12, temperature=0)
    ids = generate(model, [tok.encode(prompt)], 12, stop_ids=tok.stop_ids)[0]
    assert r.choices[0].text == tok.decode([t for t in ids if t not in tok.stop_ids])
    streamed = client.completions.create(model=NAME, prompt=prompt, max_tokens=12, temperature=0, stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == r.choices[0].text

    # what mimo.rl.rollout.EndpointRolloutBackend sends: token ids in, token ids and log-probs out
    from mimo.infer.decoding import SamplingParams
    from mimo.rl.rollout import EndpointRolloutBackend, RolloutDone, RolloutRequest

    p_ids = tok.chat_prompt("Compute 2 + 2.")
    backend = EndpointRolloutBackend(server.url, model=NAME, num_workers=1)
    backend.launch(RolloutRequest(task_id=7, prompt_ids=tuple(p_ids), num_samples=3, seed=5,
                                  params=SamplingParams(max_new_tokens=10, temperature=0.8, stop_ids=(5,))))
    done = backend.events.get(timeout=120)
    assert isinstance(done, RolloutDone), getattr(backend, "last_error", done)
    assert done.task_id == 7 and len(done.responses) == 3
    for resp, lps in zip(done.responses, done.logprobs):
        assert 0 < len(resp) <= 10 and len(lps) == len(resp)
        with torch.no_grad():  # the log-probs are the policy's, at temperature 0.8
            logits = model(input_ids=torch.tensor([p_ids + resp])).logits[0, len(p_ids) - 1:-1] / 0.8
        ref = torch.log_softmax(logits, -1).gather(-1, torch.tensor(resp)[:, None])[:, 0]
        assert torch.allclose(torch.tensor(lps), ref, atol=1e-4)
        assert 5 not in resp[:-1]  # stop_token_ids end a sample (the stop token itself is returned)
    status, payload = _raw(server, "POST", "/v1/completions", {"model": NAME, "prompt": [10 ** 6], "max_tokens": 2})
    assert status == 400 and "token ids" in json.loads(payload)["error"]["message"]


def _raw(server, method, path, body=None, headers=None):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    conn.request(method, path, body=data, headers=headers or {"Content-Type": "application/json"})
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    return resp.status, payload


GOOD = {"model": NAME, "messages": MESSAGES, "max_tokens": 4}


@pytest.mark.parametrize("body,status,words", [
    (b"{not json", 400, "malformed JSON"),
    (b"[1, 2]", 400, "JSON object"),
    ({"model": NAME}, 400, "`messages` is required"),
    ({**GOOD, "messages": "hi"}, 400, "`messages` is required"),
    ({**GOOD, "messages": [{"role": "user", "content": 5}]}, 400, "messages[0].content"),
    ({**GOOD, "messages": [{"role": "wizard", "content": "x"}]}, 400, "messages[0].role"),
    ({**GOOD, "messages": ["hi"]}, 400, "messages[0]"),
    ({**GOOD, "model": "gpt-9"}, 404, "does not exist"),
    ({"messages": MESSAGES}, 400, "`model` is required"),
    ({**GOOD, "temperature": "hot"}, 400, "`temperature` must be a number"),
    ({**GOOD, "temperature": 7}, 400, "`temperature` must be in"),
    ({**GOOD, "max_tokens": 10 ** 9}, 400, "`max_tokens` must be in"),
    ({**GOOD, "max_tokens": 0}, 400, "`max_tokens` must be in"),
    ({**GOOD, "max_tokens": 2.5}, 400, "`max_tokens` must be an integer"),
    ({**GOOD, "n": 50}, 400, "`n` must be in"),
    ({**GOOD, "stream": "yes"}, 400, "`stream` must be true or false"),
    ({**GOOD, "stop": [1]}, 400, "`stop`"),
    ({**GOOD, "logprobs": True}, 400, "not supported"),
    ({**GOOD, "presence_penalty": 0.5}, 400, "not supported"),
    ({**GOOD, "frobnicate": 1}, 400, "unrecognized request argument `frobnicate`"),
    ({**GOOD, "messages": [{"role": "user", "content": "7 * 8 = 56 " * 30}], "max_tokens": 64}, 400,
     "too many tokens"),
])
def test_bad_requests_get_4xx_with_a_message(served, body, status, words):
    server = served[0]
    got, payload = _raw(server, "POST", "/v1/chat/completions", body)
    assert got == status, payload
    err = json.loads(payload)["error"]
    assert words in err["message"] and err["type"]


def test_bad_transport_and_routes_then_still_serving(served, client):
    server = served[0]
    assert _raw(server, "GET", "/nope")[0] == 404
    assert _raw(server, "POST", "/v1/embeddings", GOOD)[0] == 404
    assert _raw(server, "DELETE", "/v1/chat/completions")[0] == 405
    assert _raw(server, "POST", "/v1/chat/completions", b"x" * 5000)[0] == 413
    status, payload = _raw(server, "GET", "/v1/models")
    assert status == 200 and json.loads(payload)["data"][0]["id"] == NAME
    # the openai client surfaces the 4xx as its own exception type, with our message
    import openai

    with pytest.raises(openai.BadRequestError, match="temperature"):
        client.chat.completions.create(model=NAME, messages=MESSAGES, temperature=5)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="other", messages=MESSAGES)
    # a client that hangs up mid-stream does not hurt the server
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("POST", "/v1/chat/completions", body=json.dumps({**GOOD, "stream": True, "max_tokens": 40}),
                 headers={"Content-Type": "application/json"})
    conn.getresponse().read(10)
    conn.close()
    r = client.chat.completions.create(model=NAME, messages=MESSAGES, max_tokens=3)
    assert r.choices[0].message.content is not None


def test_client_disconnect_mid_stream_aborts_its_generation_without_a_traceback(served, client, caplog, monkeypatch):
    import logging
    import time

    from mimo.infer.engine import GenerationAborted

    server = served[0]
    engine = server.engine
    # no stop token ends it early: a sampled <|im_end|> (which depends on the CPU's float rounding) would finish
    # the generation before the hang-up is seen
    monkeypatch.setattr(type(engine.tok), "stop_ids", property(lambda self: []))
    outcomes = []
    original = engine.complete

    def recording(*args, **kwargs):
        poll = kwargs["abort"]
        kwargs["abort"] = lambda: (time.sleep(0.05), poll())[1]  # 60 tokens take 3 s: the hang-up comes first
        try:
            out = original(*args, **kwargs)
        except GenerationAborted:
            outcomes.append("aborted")
            raise
        outcomes.append("done")
        return out

    engine.complete = recording
    try:
        with caplog.at_level(logging.WARNING):
            host, port = server.server_address[:2]
            conn = http.client.HTTPConnection(host, port, timeout=30)
            conn.request("POST", "/v1/chat/completions",
                         body=json.dumps({**GOOD, "stream": True, "max_tokens": 60, "temperature": 1.0,
                                          "stop_token_ids": [], "seed": 3}),
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            # the role chunk goes out before the generation is queued, and a hang-up seen before the generation
            # thread picks the job up skips it without calling engine.complete: wait for a content delta, so the
            # generation is running when the client leaves
            seen = b""
            while seen.count(b"data: ") < 2:
                more = resp.read1(64)
                assert more, seen
                seen += more
            conn.sock.close()  # hang up mid-stream
            conn.close()
            deadline = time.time() + 60
            while not outcomes and time.time() < deadline:
                time.sleep(0.05)
            # the generator is free: the next request is answered
            r = client.chat.completions.create(model=NAME, messages=MESSAGES, max_tokens=3)
            assert r.choices[0].message.content is not None
        assert outcomes[0] == "aborted"
        assert outcomes[-1] == "done"
        assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR], caplog.text
    finally:
        engine.complete = original


def test_a_burst_of_concurrent_clients_gets_no_connection_errors(served):
    from concurrent.futures import ThreadPoolExecutor

    from openai import OpenAI

    server = served[0]

    def one(i: int):
        c = OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=120)
        return c.chat.completions.create(model=NAME, messages=MESSAGES, max_tokens=2, seed=i).usage.completion_tokens

    with ThreadPoolExecutor(40) as pool:
        tokens = list(pool.map(one, range(40)))
    assert len(tokens) == 40 and all(1 <= t <= 2 for t in tokens)
