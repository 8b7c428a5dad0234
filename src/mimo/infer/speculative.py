"""MTP self-speculative decoding: draft k tokens with the model's chained MTP layers, verify them in one forward
of the main model, keep the longest acceptable prefix plus one token from the target.

One round, for a sequence whose newest committed token is x_L (the main model has processed positions < L)::

    draft    MTP layer i at position L-1 reads (hidden of layer i-1 at L-1, embed(x_{L+i})) and proposes x_{L+1+i};
             layer 0 reads the main model's hidden and the real x_L, layer i > 0 the draft of layer i-1.
    verify   the main model runs [x_L, d_{L+1}, ..., d_{L+k}] at positions L..L+k -> k+1 target distributions.
    accept   greedy: the longest prefix of drafts equal to the target's argmax, then the target's next argmax;
             sampling: rejection sampling (accept d with prob min(1, p(d)/q(d)); on the first rejection sample from
             norm(max(0, p - q)); after k acceptances sample the bonus token from p).  Both are lossless: the
             output has exactly the distribution of plain decoding (greedy: the same tokens).
    rollback the main cache keeps the accepted slots and marks the rest invalid (holes, see decoding.KVCache).

MTP caches.  MTP layer i has its own one-layer KV cache whose entry at position t must hold what training showed
it: ``(hidden_{i-1}(t), embed(x_{t+1+i}))`` with *real* tokens.  Entry t is real once x_{t+1+i} is committed, i.e.
t <= L-1-i.  Each round layer i runs one chunk over positions [c_i, L-1] (c_i = its committed count, which is also
its RoPE counter): the first entries are real and stay; the last i use drafted tokens (teacher forcing with the
drafts, exactly the training view if the drafts are right), serve this round's drafting and are rolled back.  Layer
i+1 needs layer i's hidden from position c_{i+1} = c_i - 1 (or c_i), so each layer carries its newest committed
output to the next round (``carry``).

Batching: rows accept different numbers of drafts; all caches are slot-based with per-row validity, chunks are
right-padded, finished rows are dropped (``KVCache.select``) and holes are squeezed out when a cache fills up
(``KVCache.compact``).

Departure from the paper's serving stack: vLLM/SGLang run MiMo's MTP with one draft token (vLLM only ever runs MTP
layer 0, chaining it on itself for more drafts); here draft i comes from MTP layer i, which is what the paper's
acceptance figures (layer 1 ~90%, layer 3 >75%) describe.  vLLM and SGLang also zero the MTP token embedding at
position 0; mimo does so only under ``config.mtp_zero_first_position`` (default off, as mimo trains).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers.models.qwen2.modeling_qwen2 import rotate_half

from mimo.infer.decoding import (
    GenerationAborted,
    GenerationStats,
    KVCache,
    engine_attention,
    forward_chunk,
    prefill,
    probs_from_logits,
    sample_logits,
    stop_set,
)

# ---------------------------------------------------------------------------------------------- acceptance rules


def accept_greedy(drafts: torch.Tensor, target_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy verification.  drafts (B, k), target_tokens (B, k+1) = the target's argmax at each verified position.

    Returns ``(n_accepted (B,), next_token (B,))``: the length of the longest prefix of drafts equal to the targets,
    and the target's token right after it (a correction, or the bonus token when all k were accepted).

    >>> accept_greedy(torch.tensor([[5, 6, 7]]), torch.tensor([[5, 6, 9, 4]]))
    (tensor([2]), tensor([9]))
    """
    k = drafts.shape[1]
    match = (drafts == target_tokens[:, :k]).long()
    n = match.cumprod(dim=1).sum(dim=1)  # (B,)
    return n, target_tokens.gather(1, n[:, None])[:, 0]


def accept_sampled(drafts: torch.Tensor, draft_probs: torch.Tensor, target_probs: torch.Tensor,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rejection-sampling verification (Leviathan et al. 2023; Chen et al. 2023).

    drafts (B, k) were sampled from draft_probs (B, k, V); target_probs (B, k+1, V).  Draft j is accepted with
    probability min(1, p_j(d_j) / q_j(d_j)) as long as all before it were; at the first rejection the next token is
    drawn from norm(max(0, p_j - q_j)), after k acceptances from p_k.  The result is distributed exactly as sampling
    from the target.  Returns ``(n_accepted (B,), next_token (B,))``.
    """
    B, k = drafts.shape
    p_d = target_probs[:, :k].gather(2, drafts[..., None])[..., 0]  # (B, k)
    q_d = draft_probs.gather(2, drafts[..., None])[..., 0]
    u = torch.rand(B, k, generator=generator, device=drafts.device, dtype=p_d.dtype)
    ok = (u * q_d < p_d).long()  # u < p/q without dividing; q_d > 0 since d was drawn from q
    n = ok.cumprod(dim=1).sum(dim=1)  # (B,)
    rows = torch.arange(B, device=drafts.device)
    p_n = target_probs[rows, n]  # (B, V)
    q_pad = torch.cat([draft_probs, torch.zeros_like(draft_probs[:, :1])], dim=1)  # q_k := 0 -> residual = p_k
    residual = (p_n - q_pad[rows, n]).clamp(min=0)
    mass = residual.sum(dim=-1, keepdim=True)
    # mass is 0 only when p == q up to rounding, where a rejection is (numerically) impossible anyway
    residual = torch.where(mass > 0, residual / mass.clamp(min=1e-30), p_n)
    return n, torch.multinomial(residual, 1, generator=generator)[:, 0]


# ------------------------------------------------------------------------------------------- the draft forward


def _rms(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Qwen2RMSNorm's arithmetic, op for op (fp32 inputs)."""
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


class FastMTPLayer:
    """An inference-only forward of one :class:`~mimo.model.modeling.MiMoMTPLayer` for drafting.

    Drafting runs an MTP layer on one to a few positions per round, where the time goes into module dispatch, not
    arithmetic (on the 16-layer benchmark model one module-path MTP layer cost ~3 main-model layers).  This does the
    same computation in few ops: q/k/v in one matmul and gate/up in another (weights concatenated once, at the
    start of a generation, so an RL step's update of the MTP layers is seen by the next generation), RoPE from a
    table computed once, SDPA on the masked GQA layout directly.  Same arithmetic as the module path, up to the
    rounding of the fused matmuls (tested); any such difference changes which tokens are drafted, never which are
    emitted (verification is by the main model)."""

    def __init__(self, layer, config):
        attn, mlp = layer.self_attn, layer.mlp
        self.eps = config.rms_norm_eps
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = attn.head_dim
        self.scaling = attn.scaling
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        self.split = (q, kv, kv)
        self.w_qkv = torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]).detach()
        self.b_qkv = torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias]).detach()
        self.w_o = attn.o_proj.weight.detach()
        self.w_gate_up = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]).detach()
        self.w_down = mlp.down_proj.weight.detach()
        self.inter = mlp.gate_proj.weight.shape[0]
        self.w_in = layer.input_proj.weight.detach()
        self.norms = [n.weight.detach() for n in (layer.hidden_layernorm, layer.token_layernorm, layer.input_layernorm,
                                                   layer.post_attention_layernorm, layer.final_layernorm)]

    def __call__(self, hidden: torch.Tensor, embeds: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                 mask: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """hidden, embeds (B, T, H); cos/sin (B, T, D); mask (B, 1, T, slots + T) -> final-normed output (B, T, H)."""
        n_h, n_t, n_in, n_post, n_final = self.norms
        eps = self.eps
        B, T, _ = hidden.shape
        x = F.linear(torch.cat([_rms(hidden, n_h, eps), _rms(embeds, n_t, eps)], dim=-1), self.w_in)
        q, k, v = F.linear(_rms(x, n_in, eps), self.w_qkv, self.b_qkv).split(self.split, dim=-1)
        q = q.view(B, T, self.heads, self.head_dim).transpose(1, 2)
        k = k.view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
        v = v.view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = cos[:, None], sin[:, None]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k, v = cache.update(k, v, 0)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scaling,
                                           enable_gqa=self.kv_heads != self.heads)
        x = x + F.linear(a.transpose(1, 2).reshape(B, T, -1), self.w_o)
        gate, up = F.linear(_rms(x, n_post, eps), self.w_gate_up).split(self.inter, dim=-1)
        x = x + F.linear(F.silu(gate) * up, self.w_down)
        return _rms(x, n_final, eps)


class RopeTable:
    """cos/sin of every position up to ``n``, computed once per generation with the model's own rotary module
    (so any RoPE scaling it applies is kept), then looked up by position."""

    def __init__(self, model, n: int, like: torch.Tensor):
        cos, sin = model.model.rotary_emb(like, torch.arange(n, device=like.device)[None])
        self.cos, self.sin = cos[0], sin[0]  # (n, D)
        self.positions = torch.arange(n, device=like.device)

    def __call__(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cos[positions], self.sin[positions]


# ---------------------------------------------------------------------------------------------------- the state


@dataclass
class SpecState:
    """Everything one batch of speculative decoding carries between rounds (rows = live sequences)."""

    main: KVCache  # main model; pos[b] = L_b (positions < L_b processed)
    mtp: list[KVCache]  # one per draft depth; pos[b] = c_i: committed (real) entries, positions 0..c_i-1
    tokens: torch.Tensor  # (B, S) token at each position: committed up to L, this round's drafts after it
    last: torch.Tensor  # (B,) L: position of the newest committed token (not yet fed to the main model)
    hidden: torch.Tensor  # (B, W, H) main hidden states of the last main chunk ...
    hidden_start: torch.Tensor  # (B,) ... starting at this position
    carry: list[torch.Tensor]  # carry[i] (B, H): MTP layer i's output at position c_i - 1 (its newest committed)
    layers: list[FastMTPLayer] | None = None  # the drafting forward of each MTP layer (None: the module path)
    rope: RopeTable | None = None
    solo: list[int] | None = None  # batch of one: c_i per MTP layer as ints (see draft_solo)

    def select(self, rows: torch.Tensor) -> None:
        self.main.select(rows)
        for c in self.mtp:
            c.select(rows)
        self.tokens, self.last = self.tokens[rows], self.last[rows]
        self.hidden, self.hidden_start = self.hidden[rows], self.hidden_start[rows]
        self.carry = [c[rows] for c in self.carry]


def _ensure_room(cache: KVCache, width: int) -> None:
    if cache.length + width > cache.max_slots:
        cache.compact()
        if cache.length + width > cache.max_slots:
            raise RuntimeError(f"KV cache full ({cache.max_slots} slots) even after compaction")


def _pick(logits: torch.Tensor, temperature: float, top_p: float,
          generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Draft token (B,) and, when sampling, the distribution it was drawn from (B, V)."""
    if temperature <= 0:
        return logits.argmax(dim=-1), None
    q = probs_from_logits(logits, temperature, top_p)
    return torch.multinomial(q, 1, generator=generator)[:, 0], q


# ---------------------------------------------------------------------------------------------------- one round


def draft(model, st: SpecState, k: int, temperature: float, top_p: float,
          generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run the k chained MTP layers (catching their caches up on the newly committed positions) and return the
    drafts (B, k) with their distributions (B, k, V) (None under greedy).  Writes the drafts into ``st.tokens``."""
    B, H = st.hidden.shape[0], st.hidden.shape[2]
    L = st.last
    last = (L - 1)[:, None]  # (B, 1) the position every layer drafts from
    steps = torch.arange(int((L - st.mtp[-1].pos).max()), device=L.device)[None, :]  # widest chunk is the last
    src, src_start = st.hidden, st.hidden_start  # producer of layer i's hidden input
    drafts, qs = [], []
    embed, rotary = model.model.embed_tokens, model.model.rotary_emb
    zero_first = getattr(model.config, "mtp_zero_first_position", False)
    for i in range(k):
        cache = st.mtp[i]
        c = cache.pos.clone()  # (B,) committed entries of layer i = its first chunk position
        n = L - c  # chunk length per row (>= 1)
        W = int(n.max())
        _ensure_room(cache, W)
        pos = c[:, None] + steps[:, :W]  # (B, W)
        valid = pos <= last
        pos = torch.minimum(pos, last)  # pads repeat the last position (their output is ignored)
        h_in = src.gather(1, (pos - src_start[:, None])[..., None].expand(B, W, H))  # (B, W, H)
        tok = st.tokens.gather(1, pos + (1 + i))  # x_{t+1+i}: real, or a draft of an earlier layer
        start = cache.length
        positions, mask = cache.chunk(valid)
        e = embed(tok)
        if zero_first:  # as trained (config.mtp_zero_first_position): no token input at position 0
            e = e.masked_fill((pos == 0)[..., None], 0.0)
        if st.layers is not None:
            g = st.layers[i](h_in, e, *st.rope(positions), mask, cache)  # (B, W, H)
        else:
            with engine_attention(model, h_in.device):
                g = model.model.mtp_layers[i](h_in, e, rotary(h_in, positions), mask, cache)
        cache.advance(valid)
        keep = (n - i).clamp(min=0)  # real entries: positions t <= L-1-i
        # the output at L-1 (drafts) and at the newest real position (carried to the next round)
        sel = g.gather(1, torch.stack([n - 1, (keep - 1).clamp(min=0)], dim=1)[..., None].expand(B, 2, H))
        d, q = _pick(model.lm_head(sel[:, 0]), temperature, top_p, generator)
        st.tokens.scatter_(1, L[:, None] + (1 + i), d[:, None])
        drafts.append(d)
        qs.append(q)
        cache.invalidate(start, keep)
        # layer i+1 reads from position c_{i+1} >= c - 1: prepend the carried output at c - 1
        src = torch.cat([st.carry[i][:, None], g], dim=1)
        src_start = c - 1
        st.carry[i] = torch.where((keep > 0)[:, None], sel[:, 1], st.carry[i])
    q_all = torch.stack(qs, dim=1) if temperature > 0 else None
    return torch.stack(drafts, dim=1), q_all


def _causal(start: int, end: int, device) -> torch.Tensor:
    """(1, 1, end - start, end): queries at positions [start, end) over keys [0, end), causal (slot t = position t)."""
    return torch.ones(end - start, end, dtype=torch.bool, device=device).tril(start)[None, None]


def draft_solo(model, st: SpecState, k: int, temperature: float, top_p: float,
               generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`draft` for a batch of one sequence, with the same result and far fewer ops.  One row means no
    padding and no validity masks: each MTP cache is rolled back by truncation (its slot t holds position t), so
    the chunk's mask is a plain causal block (none for a single position), RoPE a slice of the table, and the
    bookkeeping plain ints."""
    L = int(st.last[0])
    src, src_start = st.hidden, int(st.hidden_start[0])
    embed = model.model.embed_tokens
    zero_first = getattr(model.config, "mtp_zero_first_position", False)
    drafts, qs = [], []
    for i in range(k):
        cache, c = st.mtp[i], st.solo[i]
        W = L - c
        e = embed(st.tokens[:, c + 1 + i: L + 1 + i])  # x_{t+1+i} for t in [c, L-1]
        if zero_first and c == 0:
            e[:, 0] = 0.0
        cache.length = c
        g = st.layers[i](src[:, c - src_start: L - src_start], e, st.rope.cos[None, c:L], st.rope.sin[None, c:L],
                         None if W == 1 else _causal(c, L, e.device), cache)  # (1, W, H)
        keep = max(W - i, 0)  # real entries: positions t <= L-1-i
        cache.length = st.solo[i] = c + keep
        d, q = _pick(model.lm_head(g[:, -1]), temperature, top_p, generator)
        st.tokens[:, L + 1 + i] = d
        drafts.append(d)
        qs.append(q)
        src, src_start = torch.cat([st.carry[i][:, None], g], dim=1), c - 1
        if keep > 0:
            st.carry[i] = g[:, keep - 1]
    q_all = torch.stack(qs, dim=1) if temperature > 0 else None
    return torch.stack(drafts, dim=1), q_all


def verify(model, st: SpecState, drafts: torch.Tensor, draft_probs: torch.Tensor | None, temperature: float,
           top_p: float, generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One main-model forward over [x_L, drafts]; accept, roll back the main cache, advance ``st``.
    Returns ``(n_accepted (B,), next_token (B,), target logits (B, k+1, V))``; the new tokens of row b are
    drafts[b, :n[b]] + [next[b]]."""
    B, k = drafts.shape
    rows = torch.arange(B, device=drafts.device)
    L = st.last
    _ensure_room(st.main, k + 1)
    chunk = st.tokens.gather(1, L[:, None] + torch.arange(k + 1, device=L.device)[None, :])  # (B, k+1)
    start = st.main.length
    logits, hidden, _ = forward_chunk(model, st.main, chunk)  # (B, k+1, V), (B, k+1, H)
    if temperature <= 0:
        n, nxt = accept_greedy(drafts, logits.argmax(dim=-1))
    else:
        n, nxt = accept_sampled(drafts, draft_probs, probs_from_logits(logits, temperature, top_p), generator)
    st.main.invalidate(start, n + 1)  # keep x_L and the accepted drafts
    st.tokens[rows, L + 1 + n] = nxt
    st.hidden, st.hidden_start = hidden, L.clone()
    st.last = L + n + 1
    return n, nxt, logits


def verify_solo(model, st: SpecState, drafts: torch.Tensor, draft_probs: torch.Tensor | None, temperature: float,
                top_p: float, generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`verify` for a batch of one: the main cache is rolled back by truncation (slot t = position t), so
    positions and mask are a table slice and a plain causal block instead of being built from validity masks."""
    L, k = int(st.last[0]), drafts.shape[1]
    end = L + k + 1
    main = st.main
    main.length = L
    with engine_attention(model, drafts.device):
        out = model.model(input_ids=st.tokens[:, L:end], attention_mask=_causal(L, end, drafts.device),
                          position_ids=st.rope.positions[None, L:end], cache=main, use_cache=True)
    logits = model.lm_head(out.last_hidden_state)  # (1, k+1, V)
    if temperature <= 0:
        n, nxt = accept_greedy(drafts, logits.argmax(dim=-1))
    else:
        n, nxt = accept_sampled(drafts, draft_probs, probs_from_logits(logits, temperature, top_p), generator)
    m = int(n[0])
    main.length = L + m + 1  # keep x_L and the accepted drafts
    st.tokens[:, L + 1 + m] = nxt
    st.hidden, st.hidden_start = model.model.mtp_source(out), st.last
    st.last = st.last + (m + 1)
    return n, nxt, logits


def speculative_step(model, st: SpecState, k: int, temperature: float, top_p: float, generator,
                     stats: GenerationStats | None = None):
    """Draft, verify, accept: returns ``(drafts (B, k), n_accepted (B,), next_token (B,), target logits
    (B, k+1, V))``.  With ``stats``, adds the wall time of drafting and of verifying (their ratio bounds the
    speedup: see mimo.infer.bench)."""
    t0 = time.perf_counter()
    drafts, q = (draft_solo if st.solo is not None else draft)(model, st, k, temperature, top_p, generator)
    t1 = time.perf_counter()
    n, nxt, logits = (verify_solo if st.solo is not None else verify)(model, st, drafts, q, temperature, top_p,
                                                                       generator)
    if stats is not None:
        stats.draft_seconds += t1 - t0
        stats.verify_seconds += time.perf_counter() - t1
    return drafts, n, nxt, logits


def _token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float) -> list:
    """log softmax(logits / T) of ``tokens``: logits (B, m, V), tokens (B, m) -> nested lists (B, m)."""
    lp = torch.log_softmax(logits.float() / (temperature if temperature > 0 else 1.0), dim=-1)
    return lp.gather(-1, tokens[..., None])[..., 0].tolist()


# ------------------------------------------------------------------------------------------ depth by batch size

# Draft depth by batch size: ``(largest batch, depth)`` in order; 0 = decode plainly.  A verification of k+1
# tokens per row costs about one decode step only while a step is bound by dispatch and weight reads; as batches
# grow, each step is more arithmetic and drafting pays less, and the sooner the fewer main layers share the cost
# of an MTP layer.  The defaults are the fastest depth per batch size at T=0.6, one CPU thread
# (``benchmarks/specdec.py --batches 1,4,8,16,32,64``, see the README), on two shapes: the 16-layer benchmark
# model (for models of 8 main layers or more) and the 4-layer tiny shape (below 8).  Another machine or model has
# its own, which ``benchmarks/specdec.py --save-depths`` writes into the model's config as ``mtp_draft_depths``.
DRAFT_DEPTHS: tuple[tuple[int, tuple[tuple[int, int], ...]], ...] = (
    (8, ((15, 3), (31, 2), (63, 1), (1 << 30, 0))),  # (fewest main layers, table)
    (0, ((3, 2), (8, 1), (1 << 30, 0))),
)


def auto_num_draft(model, batch: int) -> int:
    """The draft depth for a batch of ``batch`` rows (0: no drafting), at most the model's MTP layers."""
    table = getattr(model.config, "mtp_draft_depths", None)
    if not table:
        layers = model.config.num_hidden_layers
        table = next(t for fewest, t in DRAFT_DEPTHS if layers >= fewest)
    for largest, depth in table:
        if batch <= int(largest):
            return min(int(depth), model.num_mtp_layers)
    return 0


# ---------------------------------------------------------------------------------------------------- the loop


@torch.inference_mode()
def speculative_generate(model, input_ids: list[list[int]], max_new_tokens: int, temperature: float = 0.0,
                         top_p: float = 1.0, seed: int | None = None, stop_ids: list[int] | None = None,
                         num_draft: int | None = None, stats: GenerationStats | None = None, on_token=None,
                         cache_slack: int | None = None, abort=None,
                         logprobs: list[list[float]] | None = None, fast_draft: bool = True) -> list[list[int]]:
    """Like :func:`mimo.infer.engine.generate` (same arguments, same output contract) with MTP drafting.

    ``num_draft``: draft depth k (default: every MTP layer of the model).  ``cache_slack``: extra KV slots beyond
    ``prompt + max_new_tokens + one chunk`` before holes are compacted (default: a quarter of max_new_tokens).
    ``abort()`` is polled before every round (True: raise GenerationAborted); ``logprobs`` receives each emitted
    token's log-prob under softmax(logits / T) of the main model, as in plain decoding.  ``fast_draft``: draft with
    :class:`FastMTPLayer` (fp32 SDPA models; others always take the module path).
    """
    t0 = time.perf_counter()
    n_layers = model.num_mtp_layers
    k = n_layers if num_draft is None else int(num_draft)
    if not 1 <= k <= n_layers:
        raise ValueError(f"num_draft must be in [1, {n_layers}] (the model's MTP layers), got {num_draft}")
    stops = stop_set(stop_ids, model)
    param = next(model.parameters())
    device, dtype = param.device, param.dtype
    generator = torch.Generator(device=device)
    generator.manual_seed(0 if seed is None else seed)
    B = len(input_ids)
    out: list[list[int]] = [[] for _ in range(B)]
    if B == 0 or max_new_tokens <= 0:
        return out
    if any(len(p) == 0 for p in input_ids):
        raise ValueError("empty prompt")
    longest = max(len(p) for p in input_ids)
    slack = max(2 * (k + 1), max_new_tokens // 4) if cache_slack is None else cache_slack
    max_slots = longest + max_new_tokens + k + 1 + slack
    main = KVCache.for_model(model.config, B, max_slots, dtype=dtype, device=device)
    mtp = [KVCache.for_model(model.config, B, max_slots, num_layers=1, dtype=dtype, device=device) for _ in range(k)]
    last_logits, _, hidden, lengths = prefill(model, main, input_ids)
    first = sample_logits(last_logits, temperature, top_p, generator)
    tokens = torch.zeros(B, longest + max_new_tokens + 2 * k + 2, dtype=torch.long, device=device)
    for b, p in enumerate(input_ids):
        tokens[b, : len(p)] = torch.tensor(p, dtype=torch.long)
    tokens[torch.arange(B, device=device), lengths] = first
    H = hidden.shape[-1]
    st = SpecState(main=main, mtp=mtp, tokens=tokens, last=lengths.clone(), hidden=hidden,
                   hidden_start=torch.zeros(B, dtype=torch.long, device=device),
                   carry=[torch.zeros(B, H, dtype=hidden.dtype, device=device) for _ in range(k)])
    if fast_draft and dtype == torch.float32 and model.config._attn_implementation == "sdpa":
        st.layers = [FastMTPLayer(model.model.mtp_layers[i], model.config) for i in range(k)]
        st.rope = RopeTable(model, max_slots + 1, hidden)
        if B == 1:
            st.solo = [0] * k
    accepted, drafted = [0] * k, [0] * k
    passes = 1
    rows = list(range(B))  # original index of each live row

    def emit(b: int, t: int) -> bool:
        """Append one token to sequence b; True when b is finished."""
        out[b].append(t)
        if on_token is not None:
            on_token(b, t)
        return t in stops or len(out[b]) >= max_new_tokens

    if logprobs is not None:
        logprobs[:] = _token_logprobs(last_logits[:, None], first[:, None], temperature)  # [[lp_1], ...]
    done = [emit(b, t) for b, t in zip(rows, first.tolist())]
    while True:
        if any(done):
            keep = [i for i, d in enumerate(done) if not d]
            if not keep:
                break
            st.select(torch.tensor(keep, device=device))
            rows = [rows[i] for i in keep]
        if abort is not None and abort():
            raise GenerationAborted()
        drafts, n, nxt, logits = speculative_step(model, st, k, temperature, top_p, generator, stats)
        passes += 1
        emitted = torch.cat([drafts, nxt[:, None]], dim=1)  # (B, k+1): row b emits emitted[b, :n] + [nxt]
        emitted[torch.arange(len(rows), device=device), n] = nxt
        lps = _token_logprobs(logits, emitted, temperature) if logprobs is not None else None
        n_list, e_list = n.tolist(), emitted.tolist()  # one device sync per round
        done = []
        for r, b in enumerate(rows):
            for i in range(k):
                drafted[i] += 1
                accepted[i] += int(n_list[r] > i)
            finished = False
            for j, t in enumerate(e_list[r][: n_list[r] + 1]):
                if lps is not None:
                    logprobs[b].append(lps[r][j])
                finished = emit(b, t)
                if finished:
                    break
            done.append(finished)
    if stats is not None:
        stats.prompt_tokens += sum(len(p) for p in input_ids)
        stats.new_tokens += sum(len(o) for o in out)
        stats.forward_passes += passes
        stats.seconds += time.perf_counter() - t0
        if len(stats.accepted) < k:
            stats.accepted += [0] * (k - len(stats.accepted))
            stats.drafted += [0] * (k - len(stats.drafted))
        for i in range(k):
            stats.accepted[i] += accepted[i]
            stats.drafted[i] += drafted[i]
    return out
