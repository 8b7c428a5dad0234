"""KV-cached batched generation as small functions: ``prefill``, ``decode_step``, ``sample_logits``, ``generate``.

The cache is *slot-based*: every sequence of the batch writes its k-th new token into the same slot index, and a
per-sequence ``valid`` mask says which slots hold real tokens.  Prompts of different lengths are simply
right-padded (pad slots invalid) and each sequence keeps its own RoPE position counter, so no left-padding and no
per-sequence cache offsets are needed.  Speculative decoding rolls back by marking rejected slots invalid -- a
sequence's rejected drafts become holes that no later query attends to.  Attention is order-free apart from RoPE,
which is applied with the true positions before keys are cached, so holes change nothing (tested: cached greedy
equals uncached greedy token for token).
"""

from __future__ import annotations

import os

from dataclasses import dataclass, field

import torch

NEG_POS = -1


class GenerationAborted(Exception):
    """Raised by :func:`generate` when its ``abort`` callback returns True (rollout early termination)."""


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


def _stop_set(stop_ids, model) -> set[int]:
    if stop_ids is None:
        eos = getattr(model.config, "eos_token_id", None)
        stop_ids = [eos] if isinstance(eos, int) else (eos or [])
    return set(int(s) for s in stop_ids)


@torch.inference_mode()
def generate(model, input_ids: list[list[int]], max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
             speculative: bool = False, seed: int | None = None, stop_ids: list[int] | None = None,
             num_draft: int | None = None, stats: GenerationStats | None = None, on_token=None,
             abort=None, logprobs: list[list[float]] | None = None) -> list[list[int]]:
    """New tokens per prompt (a stop token, when produced, ends the list and is included).

    ``speculative`` drafts with the model's MTP layers (:mod:`mimo.infer.speculative`); the output distribution is
    unchanged (identical under greedy).  ``on_token(b, token)`` streams tokens as they are accepted.
    ``abort()`` is polled before every decode step; when it returns True, :class:`GenerationAborted` is raised.
    ``logprobs``, when a list, receives per prompt the log-prob of each sampled token under
    ``softmax(logits / temperature)`` (before top-p), which RL uses as the rollout policy's log-probs.
    """
    if speculative and getattr(model, "num_mtp_layers", 0) > 0:
        from mimo.infer.speculative import speculative_generate

        return speculative_generate(model, input_ids, max_new_tokens, temperature, top_p, seed, stop_ids,
                                    num_draft, stats, on_token, abort=abort, logprobs=logprobs)
    import time

    t0 = time.perf_counter()
    stops = _stop_set(stop_ids, model)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device)
    generator.manual_seed(0 if seed is None else seed)
    B = len(input_ids)
    out: list[list[int]] = [[] for _ in range(B)]
    if B == 0 or max_new_tokens <= 0:
        return out
    if any(len(p) == 0 for p in input_ids):
        raise ValueError("empty prompt")
    max_slots = max(len(p) for p in input_ids) + max_new_tokens
    cache = KVCache.for_model(model.config, B, max_slots, device=device, dtype=next(model.parameters()).dtype)
    logits, _, _, _ = prefill(model, cache, input_ids)
    rows = torch.arange(B, device=device)  # original index of each live row
    passes = 1
    if logprobs is not None:
        logprobs[:] = [[] for _ in range(B)]
    for step in range(max_new_tokens):
        tok = sample_logits(logits, temperature, top_p, generator)
        if logprobs is not None:
            lp = torch.log_softmax(logits.float() / (temperature if temperature > 0 else 1.0), dim=-1)
            lp = lp.gather(-1, tok[:, None])[:, 0].tolist()
        done = torch.zeros(len(rows), dtype=torch.bool)
        for i, (b, t) in enumerate(zip(rows.tolist(), tok.tolist())):
            out[b].append(t)
            if logprobs is not None:
                logprobs[b].append(lp[i])
            if on_token is not None:
                on_token(b, t)
            if t in stops or len(out[b]) >= max_new_tokens:
                done[i] = True
        if bool(done.all()):
            break
        if bool(done.any()):
            keep = (~done).nonzero()[:, 0].to(device)
            cache.select(keep)
            rows, tok = rows[keep], tok[keep]
        if abort is not None and abort():
            raise GenerationAborted()
        logits, _ = decode_step(model, cache, tok)
        passes += 1
    if stats is not None:
        stats.prompt_tokens += sum(len(p) for p in input_ids)
        stats.new_tokens += sum(len(o) for o in out)
        stats.forward_passes += passes
        stats.seconds += time.perf_counter() - t0
    return out


# Below this many parameters a decode step is a few hundred small kernels, dispatch-bound: more threads only add
# OpenMP fork/join cost.  Above it, threads help only on cores nobody else is using: on a shared 2-core machine
# under load 1 thread won at every size we measured (benchmarks/threads.py, table in the README).
SMALL_MODEL_PARAMS = 20_000_000


def inference_threads(model: torch.nn.Module, requested: int = 0) -> int:
    """CPU threads for generation: ``requested`` if > 0; else 1 for a small model, else the cores not already
    busy (cores minus the 1-minute load average, at least 1)."""
    if requested > 0:
        return requested
    if sum(p.numel() for p in model.parameters()) < SMALL_MODEL_PARAMS:
        return 1
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        cores = max(1, os.cpu_count() or 1)
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    return max(1, min(cores, round(cores - busy)))


def load_for_inference(model_dir: str, device: str = "auto", threads: int = 0, num_draft: int | None = None):
    """The model and tokenizer of a checkpoint, in eval mode, for ``mimo generate`` / ``chat`` / ``serve``.

    ``threads > 0`` sets torch's CPU threads; ``num_draft`` (if given) must fit the model's MTP layers.  Raises
    :class:`~mimo.errors.MimoError` with a one-line message for anything the user can fix."""
    from mimo.errors import MimoError
    from mimo.train.checkpoint import load_model_dir
    from mimo.train.dist import resolve_device

    if not model_dir:
        raise MimoError("--model is required")
    model, tok = load_model_dir(model_dir, device=resolve_device(device))
    torch.set_num_threads(inference_threads(model, threads))
    if tok is None:
        raise MimoError(f"{model_dir}: no tokenizer in the model directory")
    if num_draft is not None and not 1 <= num_draft <= model.num_mtp_layers:
        raise MimoError(f"--num_draft must be in [1, {model.num_mtp_layers}] (the model's MTP layers)")
    model.eval()
    return model, tok
