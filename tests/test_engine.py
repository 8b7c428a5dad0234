"""Generation engine: cached greedy equals uncached greedy, determinism, sampling filters, cache rollback."""

from __future__ import annotations

import torch

from mimo.infer.decoding import KVCache, probs_from_logits, sample_logits
from mimo.infer.engine import generate


def _uncached_greedy(model, prompt, n, stops):
    seq, new = list(prompt), []
    for _ in range(n):
        with torch.no_grad():
            t = int(model(input_ids=torch.tensor([seq])).logits[0, -1].argmax())
        new.append(t)
        seq.append(t)
        if t in stops:
            break
    return new


def test_cached_greedy_equals_uncached(tiny_model):
    model = tiny_model(seed=1)
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(1, 64, (int(n),), generator=g).tolist() for n in torch.randint(1, 12, (6,), generator=g)]
    stops = {5, 9}
    out = generate(model, prompts, max_new_tokens=24, stop_ids=sorted(stops))
    for p, o in zip(prompts, out):
        assert o == _uncached_greedy(model, p, 24, stops)
    # batch composition does not change greedy results
    assert [generate(model, [p], 24, stop_ids=sorted(stops))[0] for p in prompts] == out




def test_sampling_deterministic_and_seed_dependent(tiny_model):
    model = tiny_model()
    prompts = [[1, 2, 3], [4, 5]] * 3
    a = generate(model, prompts, 16, temperature=1.0, seed=7, stop_ids=[])
    b = generate(model, prompts, 16, temperature=1.0, seed=7, stop_ids=[])
    c = generate(model, prompts, 16, temperature=1.0, seed=8, stop_ids=[])
    assert a == b and a != c
    assert all(len(o) == 16 for o in a)


def test_top_p_keeps_smallest_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    p = probs_from_logits(logits, temperature=1.0, top_p=0.8)
    assert torch.allclose(p, torch.tensor([[0.625, 0.375, 0.0, 0.0]]))
    p = probs_from_logits(logits, temperature=1.0, top_p=0.81)
    assert torch.allclose(p, torch.tensor([[0.5, 0.3, 0.15, 0.0]]) / 0.95)
    assert sample_logits(logits, 0.0).tolist() == [0]


def test_cache_invalidate_rolls_back_positions():
    cache = KVCache(1, batch=2, max_slots=8, num_kv_heads=1, head_dim=2)
    valid = torch.tensor([[True, True, True], [True, False, False]])
    cache.chunk(valid)
    cache.advance(valid)
    assert cache.pos.tolist() == [3, 1] and cache.length == 3
    new = torch.ones(2, 3, dtype=torch.bool)
    pos, mask = cache.chunk(new)
    assert pos.tolist() == [[3, 4, 5], [1, 2, 3]]
    assert mask.shape == (2, 1, 3, 6)
    assert mask[1, 0, 0].tolist() == [True, False, False, True, False, False]
    cache.advance(new)
    cache.invalidate(start=3, keep=torch.tensor([1, 3]))
    assert cache.pos.tolist() == [4, 4]
    assert cache.valid[0, :6].tolist() == [True, True, True, True, False, False]


def test_logprobs_match_a_full_forward_and_abort(tiny_model):
    import pytest

    from mimo.infer.decoding import GenerationAborted

    model = tiny_model(seed=2)
    prompts = [[1, 2, 3], [7, 8, 9, 10, 11]]
    lps: list[list[float]] = []
    out = generate(model, prompts, 10, temperature=0.7, seed=3, stop_ids=[], logprobs=lps)
    for p, o, lp in zip(prompts, out, lps):
        seq = torch.tensor([p + o])
        with torch.no_grad():
            logits = model(input_ids=seq).logits[0, len(p) - 1:-1] / 0.7
        ref = torch.log_softmax(logits, -1).gather(-1, torch.tensor(o)[:, None])[:, 0]
        assert torch.allclose(torch.tensor(lp), ref, atol=1e-5)
    calls = []

    def abort():
        calls.append(1)
        return len(calls) >= 3

    with pytest.raises(GenerationAborted):
        generate(model, prompts, 10, stop_ids=[], abort=abort)
    assert len(calls) == 3


def _without_engine_attention(monkeypatch):
    """Make the engine run transformers' own "sdpa" attention (K/V expanded per query head): the old path."""
    import contextlib

    import mimo.infer.decoding as decoding
    import mimo.infer.speculative as speculative

    def off(model, device):
        return contextlib.nullcontext()

    monkeypatch.setattr(decoding, "engine_attention", off)
    monkeypatch.setattr(speculative, "engine_attention", off)


def test_engine_attention_is_bit_identical_and_never_expands_kv(tiny_model, monkeypatch):
    import transformers.integrations.sdpa_attention as sdpa

    model = tiny_model(seed=3)  # 4 query heads on 2 KV heads: the grouped layout
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(1, 64, (n,), generator=g).tolist() for n in (1, 7, 3, 12, 5)]  # padded batch
    kw = dict(max_new_tokens=20, stop_ids=[])
    lps_new: list[list[float]] = []
    sampled_new = generate(model, prompts, temperature=1.0, seed=4, logprobs=lps_new, **kw)
    calls = []
    real_repeat = sdpa.repeat_kv
    monkeypatch.setattr(sdpa, "repeat_kv", lambda h, n: calls.append(n) or real_repeat(h, n))
    greedy_new = generate(model, prompts, **kw)
    spec_new = generate(model, prompts, speculative=True, **kw)
    assert calls == [] and model.config._attn_implementation == "sdpa"  # no K/V expansion; switch put back
    _without_engine_attention(monkeypatch)
    lps_old: list[list[float]] = []
    assert generate(model, prompts, temperature=1.0, seed=4, logprobs=lps_old, **kw) == sampled_new
    assert lps_old == lps_new  # the same floats, not just close
    assert generate(model, prompts, **kw) == greedy_new
    assert generate(model, prompts, speculative=True, **kw) == spec_new == greedy_new
    assert calls  # the old path did expand


def test_padded_greedy_batch_equals_each_prompt_alone_with_finished_rows(tiny_model):
    # prompts of lengths 1..9 in one padded batch; stop tokens make rows finish at different steps (cache.select)
    model = tiny_model(seed=5)
    g = torch.Generator().manual_seed(2)
    prompts = [torch.randint(1, 64, (n,), generator=g).tolist() for n in range(1, 10)]
    alone = [generate(model, [p], 16, stop_ids=[3, 11, 17])[0] for p in prompts]
    assert generate(model, prompts, 16, stop_ids=[3, 11, 17]) == alone
    assert len({len(o) for o in alone}) > 1  # rows did finish at different steps
