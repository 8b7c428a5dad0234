"""Decoding primitives that plain (:mod:`.engine`) and speculative (:mod:`.speculative`) generation share: the
slot KV cache, a forward pass over a chunk, ``prefill``, ``decode_step``, temperature/top-p sampling, and the
statistics both report.

The cache is *slot-based*: every sequence of the batch writes its k-th new token into the same slot index, and a
per-sequence ``valid`` mask says which slots hold real tokens.  Prompts of different lengths are simply
right-padded (pad slots invalid) and each sequence keeps its own RoPE position counter, so no left-padding and no
per-sequence cache offsets are needed.  Speculative decoding rolls back by marking rejected slots invalid -- a
sequence's rejected drafts become holes that no later query attends to.  Attention is order-free apart from RoPE,
which is applied with the true positions before keys are cached, so holes change nothing (tested: cached greedy
equals uncached greedy token for token).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS


@dataclass(frozen=True)
class SamplingParams:
    """How to sample a response: what the engine, the rollout backends and the eval backends are handed."""

    max_new_tokens: int = 128
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    stop_ids: tuple[int, ...] = ()  # tokens that end a response (included in it)
    seed: int | None = None  # None: the caller's per-request seed


class GenerationAborted(Exception):
    """Raised by :func:`generate` when its ``abort`` callback returns True (rollout early termination)."""


# ------------------------------------------------------------------------------------------- attention kernel
# transformers' "sdpa" attention expands K/V to every query head (repeat_kv: a copy of the whole cache, per layer
# and step) whenever a mask is passed, and the engine always passes one (padding, rollback holes).  At RL batch
# sizes those copies are tens of MB each: glibc hands such blocks back to the OS on free, so every decode step
# page-faults them in again (~60k faults and ~120 ms of kernel time per step at batch 256 on the 30M shape; see the
# README).  CPU SDPA takes the masked GQA layout directly (enable_gqa) and gives bit-identical outputs (tested), so
# the engine's forward passes switch to it on CPU.
ENGINE_ATTENTION = "mimo_engine_sdpa"


def _engine_sdpa(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
                 **kwargs):
    if attention_mask is None:  # not an engine call: transformers' own path (causal kernel, crop, ...)
        return ALL_ATTENTION_FUNCTIONS["sdpa"](module, query, key, value, attention_mask, dropout=dropout,
                                               scaling=scaling, **kwargs)
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, dropout_p=dropout,
                                         scale=scaling, enable_gqa=key.shape[1] != query.shape[1])
    return out.transpose(1, 2).contiguous(), None


ALL_ATTENTION_FUNCTIONS.register(ENGINE_ATTENTION, _engine_sdpa)


@contextmanager
def engine_attention(model, device: torch.device):
    """Run the model's attention through :func:`_engine_sdpa` for the duration (CPU and "sdpa" models only: on
    CUDA a masked GQA call would fall back to SDPA's math kernel, and eager/flash models are left alone).  The
    switch is the attention modules' shared config attribute; it is always put back to "sdpa", so overlapping uses
    cannot leave it switched."""
    config = model.config
    if device.type != "cpu" or config._attn_implementation != "sdpa":
        yield
        return
    config._attn_implementation = ENGINE_ATTENTION
    try:
        yield
    finally:
        config._attn_implementation = "sdpa"


# ------------------------------------------------------------------------------------------------- the cache


class KVCache:
    """Preallocated keys/values for ``num_layers`` attention layers, slot-indexed (see module docstring).

    ``update(k, v, layer_idx)`` is the only method the transformers attention calls: it writes the new chunk at
    slots ``[length, length + q)`` and returns views of all slots so far.  ``advance(q)`` commits the chunk after
    the forward pass (all layers write the same slots).
    """

    def __init__(self, num_layers: int, batch: int, max_slots: int, num_kv_heads: int, head_dim: int,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"):
        shape = (batch, num_kv_heads, max_slots, head_dim)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.valid = torch.zeros(batch, max_slots, dtype=torch.bool, device=device)
        self.pos = torch.zeros(batch, dtype=torch.long, device=device)  # next RoPE position per sequence
        self.length = 0  # slots used (shared by the batch)
        self.max_slots = max_slots

    @classmethod
    def for_model(cls, config, batch: int, max_slots: int, num_layers: int | None = None,
                  dtype: torch.dtype = torch.float32, device="cpu") -> KVCache:
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        n = config.num_hidden_layers if num_layers is None else num_layers
        return cls(n, batch, max_slots, config.num_key_value_heads, head_dim, dtype, device)

    @property
    def batch(self) -> int:
        return self.valid.shape[0]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.length

    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int, *args, **kwargs):
        # key/value: (B, Hkv, q, D) with RoPE applied
        q = key.shape[2]
        end = self.length + q
        if end > self.max_slots:
            raise RuntimeError(f"KV cache full ({self.max_slots} slots)")
        self.k[layer_idx][:, :, self.length:end] = key
        self.v[layer_idx][:, :, self.length:end] = value
        return self.k[layer_idx][:, :, :end], self.v[layer_idx][:, :, :end]

    def chunk(self, new_valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Prepare a chunk of q slots: marks them valid per ``new_valid`` (B, q) and returns
        ``(position_ids (B, q), mask (B, 1, q, length + q))`` for the forward pass."""
        q = new_valid.shape[1]
        end = self.length + q
        self.valid[:, self.length:end] = new_valid
        positions = self.pos[:, None] + torch.cumsum(new_valid.long(), dim=1) - 1
        positions = positions.clamp(min=0)  # pad slots get a dummy position; nobody attends to them
        slots = torch.arange(end, device=self.valid.device)
        causal = slots[None, :] <= (self.length + torch.arange(q, device=slots.device))[:, None]  # (q, end)
        mask = self.valid[:, None, None, :end] & causal[None, None]
        if not bool(new_valid.all()):  # (sync) padded chunks only
            # a query on an invalid slot may see nothing valid -> NaN in softmax; let it see itself (output ignored)
            own = torch.zeros_like(mask)
            own[:, 0, torch.arange(q), self.length + torch.arange(q)] = True
            mask = mask | (own & ~new_valid[:, None, :, None])
        return positions, mask

    def advance(self, new_valid: torch.Tensor) -> None:
        self.length += new_valid.shape[1]
        self.pos += new_valid.sum(dim=1)

    def invalidate(self, start: int, keep: torch.Tensor) -> None:
        """Roll back: of slots ``[start, length)`` keep per sequence only the first ``keep[b]`` (as valid), and
        rewind the RoPE positions of the dropped ones.  (B,) ``keep``."""
        n = self.length - start
        idx = torch.arange(n, device=keep.device)[None, :]
        region = self.valid[:, start:self.length]
        drop = region & (idx >= keep[:, None])
        self.pos -= drop.sum(dim=1)
        self.valid[:, start:self.length] = region & ~drop

    def select(self, rows: torch.Tensor) -> None:
        """Keep only the given batch rows (drop finished sequences)."""
        self.k = [k.index_select(0, rows) for k in self.k]
        self.v = [v.index_select(0, rows) for v in self.v]
        self.valid = self.valid.index_select(0, rows)
        self.pos = self.pos.index_select(0, rows)

    def compact(self) -> None:
        """Squeeze out the holes: move every sequence's valid slots to the front, in order.

        Rollbacks leave holes; speculative decoding calls this when the next chunk would not fit, so the cache needs
        ``prompt + new tokens + one chunk`` slots rather than ``new tokens * chunk``.  Order-preserving, so the
        slot-causal mask keeps its meaning; RoPE was applied before caching, so positions are unaffected."""
        n = self.length
        valid = self.valid[:, :n]
        counts = valid.sum(dim=1)  # (B,)
        new_len = int(counts.max()) if counts.numel() else 0
        slots = torch.arange(n, device=valid.device)
        order = ((~valid).long() * n + slots[None, :]).argsort(dim=1)[:, :new_len]  # (B, new_len) valid slots first
        for kv in (self.k, self.v):
            for layer, t in enumerate(kv):
                idx = order[:, None, :, None].expand(t.shape[0], t.shape[1], new_len, t.shape[3])
                kv[layer][:, :, :new_len] = t[:, :, :n].gather(2, idx)
        self.valid[:, :n] = False
        self.valid[:, :new_len] = slots[None, :new_len] < counts[:, None]
        self.length = new_len


def forward_chunk(model, cache: KVCache, tokens: torch.Tensor, new_valid: torch.Tensor | None = None):
    """Run the main model on a chunk of tokens (B, q), appending to ``cache``.  Returns ``(logits (B, q, V), mtp
    hidden (B, q, H), position_embeddings)``: the hidden state MTP layer 0 reads, for speculative drafting."""
    if new_valid is None:
        new_valid = torch.ones_like(tokens, dtype=torch.bool)
    positions, mask = cache.chunk(new_valid)
    with engine_attention(model, tokens.device):
        out = model.model(input_ids=tokens, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True)
    cache.advance(new_valid)
    logits = model.lm_head(out.last_hidden_state)
    return logits, model.model.mtp_source(out), out.position_embeddings


@torch.inference_mode()
def prefill(model, cache: KVCache, prompts: list[list[int]]):
    """Right-pad ``prompts`` into one chunk and run it.  Returns ``(last_logits (B, V), chunk_logits, hidden,
    lengths)`` where ``last_logits[b]`` are the logits after the last prompt token of sequence b."""
    device = cache.valid.device
    lengths = torch.tensor([len(p) for p in prompts], device=device)
    width = int(lengths.max())
    tokens = torch.zeros(len(prompts), width, dtype=torch.long, device=device)
    for b, p in enumerate(prompts):
        tokens[b, : len(p)] = torch.tensor(p, dtype=torch.long)
    valid = torch.arange(width, device=device)[None, :] < lengths[:, None]
    logits, hidden, _ = forward_chunk(model, cache, tokens, valid)
    last = logits[torch.arange(len(prompts), device=device), lengths - 1]
    return last, logits, hidden, lengths


@torch.inference_mode()
def decode_step(model, cache: KVCache, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One new token per sequence (B,) -> ``(logits (B, V), hidden (B, H))``."""
    logits, hidden, _ = forward_chunk(model, cache, tokens[:, None])
    return logits[:, 0], hidden[:, 0]


def probs_from_logits(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """Sampling distribution (…, V) after temperature and nucleus (top-p) filtering."""
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        cum = sorted_p.cumsum(dim=-1)
        drop = cum - sorted_p > top_p  # keep the smallest prefix whose mass reaches top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


def sample_logits(logits: torch.Tensor, temperature: float = 0.0, top_p: float = 1.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, V) -> (B,) token ids; temperature 0 is greedy (argmax, deterministic)."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = probs_from_logits(logits, temperature, top_p)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    new_tokens: int = 0
    forward_passes: int = 0
    seconds: float = 0.0
    accepted: list[int] = field(default_factory=list)  # speculative: accepted drafts per MTP depth
    drafted: list[int] = field(default_factory=list)  # drafts made per depth (= rounds x rows, every depth)
    draft_seconds: float = 0.0  # speculative: time in the MTP drafting ...
    verify_seconds: float = 0.0  # ... and in the main model's verification

    def add_drafts(self, accepted: list[int], drafted: list[int]) -> None:
        """Add the drafts accepted and made per MTP depth (another run's, possibly of another depth)."""
        k = max(len(drafted), len(self.drafted))
        self.accepted += [0] * (k - len(self.accepted))
        self.drafted += [0] * (k - len(self.drafted))
        for i, (a, n) in enumerate(zip(accepted, drafted)):
            self.accepted[i] += a
            self.drafted[i] += n

    def acceptance(self) -> list[float]:
        """Per MTP layer i: the fraction of its drafts accepted among those that were checked, i.e. given that the
        drafts of layers < i were accepted (verification stops at the first rejection)."""
        reached = [self.drafted[0]] + self.accepted[:-1] if self.drafted else []
        return [a / r if r else 0.0 for a, r in zip(self.accepted, reached)]

    def acceptance_unconditional(self) -> list[float]:
        """Per MTP layer i: the fraction of all rounds in which its draft was accepted."""
        return [a / d if d else 0.0 for a, d in zip(self.accepted, self.drafted)]

    def mean_accepted_length(self) -> float:
        """Tokens per main-model verification: 1 + accepted drafts per round (the speedup if drafting were free)."""
        return 1.0 + sum(self.accepted) / self.drafted[0] if self.drafted and self.drafted[0] else 1.0


def stop_set(stop_ids, model) -> set[int]:
    if stop_ids is None:
        eos = getattr(model.config, "eos_token_id", None)
        stop_ids = [eos] if isinstance(eos, int) else (eos or [])
    return set(int(s) for s in stop_ids)
