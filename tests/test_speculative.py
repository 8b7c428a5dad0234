"""MTP speculative decoding: lossless (greedy: same tokens; sampling: same distribution), the acceptance rules with
stubs, the MTP caches against an uncached reference, rollback/compaction, batching with per-row acceptance."""

from __future__ import annotations

import doctest

import pytest
import torch

from mimo.infer import speculative
from mimo.infer.decoding import GenerationStats, KVCache, probs_from_logits
from mimo.infer.engine import generate
from mimo.infer.speculative import accept_greedy, accept_sampled


def agreeable_model(tiny_config, alpha: float, noise: float, k: int = 3, seed: int = 0, vocab: int = 64,
                    sharpen: float = 1.0):
    """A random tiny model whose MTP layers often agree with the main model, so drafts are accepted at varied
    rates: the main residual branches are scaled by ``alpha`` (alpha = 0: next token depends on the current token
    only), each MTP layer passes the token embedding through (plus ``noise`` times a random hidden projection)."""
    from mimo.model import MiMoForCausalLM

    torch.manual_seed(seed)
    cfg = tiny_config(num_nextn_predict_layers=k, vocab_size=vocab)
    model = MiMoForCausalLM(cfg).eval()
    H = cfg.hidden_size
    with torch.no_grad():
        for layer in list(model.model.layers) + list(model.model.mtp_layers):
            layer.self_attn.o_proj.weight.mul_(alpha)
            layer.mlp.down_proj.weight.mul_(alpha)
        for layer in model.model.mtp_layers:
            w = torch.zeros(H, 2 * H)
            w[:, H:] = torch.eye(H)
            w[:, :H] = noise * torch.randn(H, H)
            layer.input_proj.weight.copy_(w)
        model.lm_head.weight.mul_(sharpen)
    return model


def _prompts(n: int, vocab: int, seed: int = 0, max_len: int = 12) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, max_len, (n,), generator=g)
    return [torch.randint(1, vocab, (int(m),), generator=g).tolist() for m in lengths]


def test_doctests():
    assert doctest.testmod(speculative).failed == 0


# ------------------------------------------------------------------------------------------ acceptance with stubs


def test_greedy_accept_none_all_some():
    drafts = torch.tensor([[4, 5, 6], [4, 5, 6], [4, 5, 6], [4, 9, 6]])
    targets = torch.tensor([[1, 5, 6, 7],  # first draft wrong: none accepted, correction 1
                            [4, 5, 6, 7],  # all accepted, bonus 7
                            [4, 5, 2, 7],  # two accepted, correction 2
                            [4, 5, 6, 7]])  # a later match after a mismatch does not count
    n, nxt = accept_greedy(drafts, targets)
    assert n.tolist() == [0, 3, 2, 1]
    assert nxt.tolist() == [1, 7, 2, 5]


def _onehot(idx, V):
    return torch.nn.functional.one_hot(torch.tensor(idx), V).float()


def test_sampled_accept_none_all_some():
    V = 5
    drafts = torch.tensor([[1, 2], [1, 2], [1, 2]])
    q = torch.stack([_onehot([1, 2], V)] * 3)  # the drafter was certain
    p = torch.stack([
        _onehot([3, 0, 4], V),  # target never proposes d1: reject at once, residual = p -> token 3
        torch.stack([_onehot(1, V), _onehot(2, V), _onehot(4, V)]),  # agrees everywhere: accept both, bonus 4
        torch.stack([_onehot(1, V), _onehot(0, V), _onehot(4, V)]),  # agrees on d1 only: correction 0
    ])
    n, nxt = accept_sampled(drafts, q, p, torch.Generator().manual_seed(0))
    assert n.tolist() == [0, 2, 1]
    assert nxt.tolist() == [3, 4, 0]


def _chi2_pvalue(observed: torch.Tensor, expected: torch.Tensor, min_expected: float = 5.0) -> float:
    """Pearson chi-square goodness of fit; cells with small expected counts are pooled into one."""
    observed, expected = observed.double().flatten(), expected.double().flatten()
    small = expected < min_expected
    if small.any():
        observed = torch.cat([observed[~small], observed[small].sum()[None]])
        expected = torch.cat([expected[~small], expected[small].sum()[None]])
    keep = expected > 0
    assert observed[~keep].sum() == 0, "a sample fell where the distribution has no mass"
    observed, expected = observed[keep], expected[keep]
    stat = ((observed - expected) ** 2 / expected).sum()
    dof = max(len(observed) - 1, 1)
    return float(torch.special.gammaincc(torch.tensor(dof / 2, dtype=torch.float64), stat / 2))


def test_rejection_sampling_recovers_the_target_distribution():
    """Stub p, q: the first emitted token follows p_0 and, when a draft was accepted, the second follows p_1."""
    V, N = 6, 40000
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(2 + 1, V, generator=g) * 1.5, dim=-1)
    q = torch.softmax(torch.randn(2, V, generator=g) * 1.5, dim=-1)
    P, Q = p.expand(N, -1, -1), q.expand(N, -1, -1)
    drafts = torch.multinomial(Q.reshape(-1, V), 1, generator=g).view(N, 2)
    n, nxt = accept_sampled(drafts, Q, P, g)
    first = torch.where(n >= 1, drafts[:, 0], nxt)
    assert _chi2_pvalue(torch.bincount(first, minlength=V), N * p[0]) > 1e-3
    reached = n >= 1
    second = torch.where(n >= 2, drafts[:, 1], nxt)[reached]
    assert _chi2_pvalue(torch.bincount(second, minlength=V), reached.sum() * p[1]) > 1e-3
    # the acceptance probability of the first draft is sum_x min(p, q)
    expect = torch.minimum(p[0], q[0]).sum()
    assert abs((n >= 1).float().mean() - expect) < 0.01
    # a wrong rule (always accept) is caught by the same test
    wrong_first = drafts[:, 0]
    assert _chi2_pvalue(torch.bincount(wrong_first, minlength=V), N * p[0]) < 1e-6


# ------------------------------------------------------------------------------------------ greedy is lossless


@pytest.mark.parametrize("alpha,noise,k", [(0.0, 0.0, 3), (0.3, 0.1, 3), (0.3, 0.1, 2), (1.0, 0.3, 1)])
def test_greedy_speculative_equals_plain(tiny_config, alpha, noise, k):
    model = agreeable_model(tiny_config, alpha, noise, k=3)
    prompts = _prompts(8, 64, seed=k)
    plain = generate(model, prompts, 30, stop_ids=[])
    stats = GenerationStats()
    assert generate(model, prompts, 30, stop_ids=[], speculative=True, num_draft=k, stats=stats) == plain
    if alpha == 0.0:  # drafts always right: every round accepts all k
        assert stats.accepted == stats.drafted
    else:  # per-row acceptance really varies
        assert 0 < stats.accepted[0] < stats.drafted[0]
    # stop tokens that occur mid-round, at different positions in different rows
    stops = sorted({plain[0][7], plain[3][13], plain[5][2]})
    ref = generate(model, prompts, 30, stop_ids=stops)
    assert generate(model, prompts, 30, stop_ids=stops, speculative=True, num_draft=k) == ref
    assert ref != plain
    # max_new_tokens boundaries around the chunk size
    for max_new in (1, 2, k, k + 1, k + 2):
        out = generate(model, prompts, max_new, stop_ids=[], speculative=True, num_draft=k)
        assert out == [p[:max_new] for p in plain], max_new


def test_greedy_speculative_batch_composition_and_compaction(tiny_config):
    model = agreeable_model(tiny_config, 0.3, 0.1, k=3)
    prompts = _prompts(4, 64, seed=5)
    ref = generate(model, prompts, 24, stop_ids=[3])
    alone = [speculative.speculative_generate(model, [p], 24, stop_ids=[3])[0] for p in prompts]
    tight = speculative.speculative_generate(model, prompts, 24, stop_ids=[3], cache_slack=0)
    assert alone == ref and tight == ref


def test_speculative_runs_on_a_random_model_with_k_layers(tiny_model):
    """The interface others rely on: any MiMoForCausalLM (random init, k MTP layers), batch > 1, no stop ids."""
    model = tiny_model(seed=3, num_nextn_predict_layers=2)
    prompts = [[1, 2, 3], [4], [5, 6, 7, 8, 9]]
    out = generate(model, prompts, 12, speculative=True)
    assert out == generate(model, prompts, 12) and all(len(o) == 12 for o in out)
    with pytest.raises(ValueError, match="num_draft"):
        generate(model, prompts, 4, speculative=True, num_draft=3)


def test_draft_depth_follows_the_batch_size_table(tiny_model):
    """num_draft=None picks the depth by batch size (capped at the model's layers, 0 = plain decoding); a model's
    own measured table (config.mtp_draft_depths) replaces the default."""
    model = tiny_model(seed=1, num_nextn_predict_layers=2)  # 2 main layers: the shallow table
    assert [speculative.auto_num_draft(model, b) for b in (1, 3, 4, 8, 9, 4096)] == [2, 2, 1, 1, 0, 0]
    deep = tiny_model(seed=1, num_nextn_predict_layers=3, num_hidden_layers=8)
    assert [speculative.auto_num_draft(deep, b) for b in (1, 15, 16, 31, 32, 63, 64)] == [3, 3, 2, 2, 1, 1, 0]
    model.config.mtp_draft_depths = [[1, 1], [8, 2]]
    assert [speculative.auto_num_draft(model, b) for b in (1, 2, 8, 9)] == [1, 2, 2, 0]
    prompts = _prompts(9, 64, seed=1)
    plain = generate(model, prompts, 8, stop_ids=[])
    for batch, depth in ((prompts[:1], 1), (prompts[:8], 2), (prompts, 0)):
        stats = GenerationStats()
        assert generate(model, batch, 8, stop_ids=[], speculative=True, stats=stats) == plain[:len(batch)]
        assert len(stats.drafted) == depth and all(d > 0 for d in stats.drafted)


def test_kv_cache_compact_keeps_valid_slots_in_order():
    cache = KVCache(1, batch=2, max_slots=8, num_kv_heads=1, head_dim=1)
    valid = torch.tensor([[True, False, True, True, False], [False, True, False, False, True]])
    cache.chunk(valid)
    cache.k[0][:, 0, :5, 0] = torch.arange(5.0)
    cache.advance(valid)
    cache.compact()
    assert cache.length == 3
    assert cache.valid[:, :3].tolist() == [[True, True, True], [True, True, False]]
    assert cache.k[0][0, 0, :3, 0].tolist() == [0, 2, 3] and cache.k[0][1, 0, :2, 0].tolist() == [1, 4]
    assert cache.pos.tolist() == [3, 2]


# ------------------------------------------------------------------------------------------ the MTP caches


def _reference_drafts(model, seq: list[int], k: int) -> list[torch.Tensor]:
    """Uncached reference: MTP logits at the last position when the chain drafts greedily after ``seq``
    (seq ends with the newest committed token x_L; the main model sees seq[:-1]); with
    ``mtp_zero_first_position`` every layer's token input at position 0 is zero (vLLM's drafter input)."""
    L = len(seq) - 1
    x = torch.tensor([seq])
    out = model.model(input_ids=x[:, :L])
    h, pe = model.model.mtp_source(out), out.position_embeddings
    toks = list(seq)
    logits = []
    for i in range(k):
        emb = model.model.embed_tokens(torch.tensor([toks[1 + i: 1 + i + L]]))  # x_{t+1+i}, t < L
        if model.config.mtp_zero_first_position:
            emb[:, 0] = 0.0
        h = model.model.mtp_layers[i](h, emb, pe)
        lg = model.lm_head(h[0, -1])
        logits.append(lg)
        toks.append(int(lg.argmax()))
    return logits


@pytest.mark.parametrize("zero_first", [False, True], ids=["as-mimo", "zero-position-0"])
@pytest.mark.parametrize("path", ["module-batched", "fast-batched", "fast-solo"])
def test_mtp_drafts_match_uncached_reference(tiny_model, monkeypatch, zero_first, path):
    """Every round's drafts (cached, batched, with rollbacks, carries and compaction) are what an uncached MTP chain
    computes from the committed prefix -- on a random model where attention inside the MTP layers matters.  Three
    drafting paths: the MTP modules (fp64, so the tolerance is tight), the fused FastMTPLayer in a batch, and the
    batch-of-one path (truncation rollback, table masks)."""
    model = tiny_model(seed=4, num_nextn_predict_layers=3, mtp_zero_first_position=zero_first)
    if path == "module-batched":
        model = model.double()
    prompts = _prompts(3, 64, seed=9)
    seen = []
    name = "draft_solo" if path == "fast-solo" else "draft"
    real_draft = getattr(speculative, name)

    def recording_draft(model_, st, k, *args):
        assert (st.layers is not None) == path.startswith("fast") and (st.solo is not None) == (path == "fast-solo")
        before = [st.tokens[r, : int(st.last[r]) + 1].tolist() for r in range(st.last.shape[0])]
        d, q = real_draft(model_, st, k, *args)
        seen.extend(zip(before, d.tolist()))
        return d, q

    monkeypatch.setattr(speculative, name, recording_draft)
    tol = 1e-9 if path == "module-batched" else 1e-4
    with torch.no_grad():
        for batch in ([[p] for p in prompts] if path == "fast-solo" else [prompts]):
            speculative.speculative_generate(model, batch, 16, stop_ids=[], cache_slack=0)
        assert len(seen) > 30
        for seq, drafts in seen:
            ref = _reference_drafts(model, seq, 3)
            for i, (d, lg) in enumerate(zip(drafts, ref)):
                assert lg[d] >= lg.max() - tol, (seq, i)
                if i + 1 < 3 and d != int(lg.argmax()):
                    break  # a near-tie chose another draft; the rest of the chain differs legitimately


def test_fast_mtp_layer_computes_what_the_module_computes(tiny_model):
    """The fused drafting forward against the MTP module, with a KV cache, on weights whose attention is peaked
    (q/k scaled up: RoPE and the mask then decide the output), all norms and biases non-trivial."""
    from mimo.infer.decoding import engine_attention

    model = tiny_model(seed=6, num_nextn_predict_layers=2)
    layer = model.model.mtp_layers[1]
    with torch.no_grad():
        for lin in (layer.self_attn.q_proj, layer.self_attn.k_proj):
            lin.weight.mul_(8.0)
            lin.bias.normal_()
        for p in layer.parameters():
            if p.dim() == 1 and p.shape[0] == model.config.hidden_size:  # the norms
                p.uniform_(0.5, 1.5)
    fast = speculative.FastMTPLayer(layer, model.config)
    rope = speculative.RopeTable(model, 32, torch.zeros(1))
    g = torch.Generator().manual_seed(0)
    H = model.config.hidden_size
    outs = {}
    for name in ("module", "fast"):
        cache = KVCache.for_model(model.config, 2, 32, num_layers=1)
        got = []
        for W in (5, 1, 3):  # chunks over positions 0-4, 5, 6-8, one row padded in the last chunk
            g.manual_seed(W)
            h, e = torch.randn(2, W, H, generator=g), torch.randn(2, W, H, generator=g)
            valid = torch.ones(2, W, dtype=torch.bool)
            if W == 3:
                valid[1, 2] = False
            positions, mask = cache.chunk(valid)
            with torch.no_grad():
                if name == "fast":
                    out = fast(h, e, *rope(positions), mask, cache)
                else:
                    with engine_attention(model, h.device):
                        out = layer(h, e, model.model.rotary_emb(h, positions), mask, cache)
            cache.advance(valid)
            got.append(out[valid])
        outs[name] = torch.cat(got)
    assert torch.allclose(outs["fast"], outs["module"], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(outs["module"][:5], outs["module"][:5].mean(0), atol=1e-2)  # not a degenerate case


# ------------------------------------------------------------------------------------------ sampling is lossless


def _exact_sequence_probs(model, prompt: list[int], n: int, temperature: float, top_p: float) -> torch.Tensor:
    """P(x_1..x_n | prompt) under plain sampling, for every sequence: (V,)*n, by enumeration."""
    V = model.config.vocab_size
    seqs = torch.cartesian_prod(*[torch.arange(V)] * n) if n > 1 else torch.arange(V)[:, None]
    x = torch.cat([torch.tensor(prompt).expand(len(seqs), -1), seqs], dim=1)
    with torch.no_grad():
        logits = model(input_ids=x).logits[:, len(prompt) - 1: -1]  # (S, n, V)
    probs = probs_from_logits(logits, temperature, top_p)
    per_token = probs.gather(2, seqs[..., None])[..., 0]  # (S, n)
    return per_token.prod(dim=1).view(*[V] * n)


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.6, 0.95)])  # (0.6, 0.95): the evaluation protocol
def test_sampling_distribution_matches_plain(tiny_config, temperature, top_p):
    """Chi-square: 3-token continuations sampled with speculation (k=2, mixed acceptance) follow the exact
    distribution of plain sampling (enumerated); plain sampling passes the same test."""
    V, N, n = 6, 6000, 3
    # logits scaled by 40 / T: the same softmax(logits / T) at every temperature, so that the test keeps its power
    # at T < 1 (sharper targets would leave almost no room for a wrong sampler to show) while T and top-p still run
    model = agreeable_model(tiny_config, 0.5, 0.3, k=2, vocab=V, sharpen=40.0 * temperature)
    prompt = [1, 4, 2]
    exact = _exact_sequence_probs(model, prompt, n, temperature, top_p)
    stats = GenerationStats()
    for spec, seed in ((True, 1), (False, 2)):
        outs = generate(model, [prompt] * N, n, temperature=temperature, top_p=top_p, speculative=spec, seed=seed,
                        stop_ids=[], stats=stats if spec else None, num_draft=2 if spec else None)
        idx = torch.tensor(outs) @ torch.tensor([V * V, V, 1])
        counts = torch.bincount(idx, minlength=V ** n)
        assert _chi2_pvalue(counts, N * exact.flatten()) > 1e-3, spec
    rate = stats.accepted[0] / stats.drafted[0]
    assert 0.2 < rate < 0.95  # drafts are accepted sometimes, rejected sometimes


def test_sampling_distribution_matches_plain_one_sequence_at_a_time(tiny_config):
    """The batch-of-one path (its own drafting and verification code) under the same chi-square test: 2-token
    continuations at T=0.6, top-p 0.95, one generate call per sample."""
    V, N, n, temperature, top_p = 6, 2000, 2, 0.6, 0.95
    model = agreeable_model(tiny_config, 0.5, 0.3, k=2, vocab=V, sharpen=40.0 * temperature)
    prompt = [1, 4, 2]
    exact = _exact_sequence_probs(model, prompt, n, temperature, top_p)
    stats = GenerationStats()
    outs = [speculative.speculative_generate(model, [prompt], n, temperature, top_p, seed=s, stop_ids=[],
                                             stats=stats)[0] for s in range(N)]
    counts = torch.bincount(torch.tensor(outs) @ torch.tensor([V, 1]), minlength=V ** n)
    assert _chi2_pvalue(counts, N * exact.flatten()) > 1e-3
    assert 0.2 < stats.accepted[0] / stats.drafted[0] < 0.95


def test_logprobs_and_abort_under_speculation(tiny_config):
    """RL rollouts read per-token log-probs and abort early; speculation gives the plain path's values."""
    from mimo.infer.decoding import GenerationAborted

    model = agreeable_model(tiny_config, 0.3, 0.1, k=3)
    prompts = _prompts(3, 64, seed=2)
    plain_lp, spec_lp = [], []
    out = generate(model, prompts, 14, stop_ids=[], logprobs=plain_lp)
    assert generate(model, prompts, 14, stop_ids=[], speculative=True, logprobs=spec_lp) == out
    for a, b in zip(plain_lp, spec_lp):
        assert torch.allclose(torch.tensor(a), torch.tensor(b), atol=1e-4)
    sampled_lp = []
    sampled = generate(model, prompts, 14, temperature=0.8, seed=1, stop_ids=[], speculative=True,
                       logprobs=sampled_lp)
    for p, o, lp in zip(prompts, sampled, sampled_lp):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([p + o])).logits[0, len(p) - 1:-1] / 0.8
        ref = torch.log_softmax(logits, -1).gather(-1, torch.tensor(o)[:, None])[:, 0]
        assert torch.allclose(torch.tensor(lp), ref, atol=1e-4)
    calls = []
    with pytest.raises(GenerationAborted):
        generate(model, prompts, 14, stop_ids=[], speculative=True, abort=lambda: calls.append(1) or len(calls) >= 2)
    assert len(calls) == 2


def test_zero_first_position_keeps_greedy_and_changes_only_drafts(tiny_config, monkeypatch):
    """vLLM's drafter input (token embedding zeroed at position 0) changes what the MTP layers propose, never the
    emitted tokens."""
    prompts = _prompts(8, 64, seed=3, max_len=4)  # short prompts: position 0 weighs on many drafts
    plain = generate(agreeable_model(tiny_config, 1.0, 0.5, k=1), prompts, 20, stop_ids=[])
    real_draft, drafts = speculative.draft, {}
    for zero in (False, True):
        model = agreeable_model(tiny_config, 1.0, 0.5, k=1)
        model.config.mtp_zero_first_position = zero
        seen = drafts[zero] = []

        def recording(*args, seen=seen):
            d, q = real_draft(*args)
            seen.append(d)
            return d, q

        monkeypatch.setattr(speculative, "draft", recording)
        assert generate(model, prompts, 20, stop_ids=[], speculative=True) == plain
    first = [d.tolist() for d in drafts[False]], [d.tolist() for d in drafts[True]]
    assert first[0][0] != first[1][0]  # the first round's drafts read position 0 (prompts of 1-3 tokens)
