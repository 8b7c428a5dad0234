"""Plain KV-cached batched generation (``generate``) and loading a checkpoint for inference.

The decoding primitives (slot KV cache, ``prefill``, ``decode_step``, sampling) live in :mod:`.decoding`, shared
with MTP speculative decoding (:mod:`.speculative`), which ``generate(speculative=True)`` hands over to.
"""

from __future__ import annotations

import os
import time

import torch

from mimo.errors import MimoError
from mimo.infer.decoding import (
    GenerationAborted,
    GenerationStats,
    KVCache,
    SamplingParams,
    decode_step,
    prefill,
    sample_logits,
    stop_set,
)
from mimo.infer.speculative import auto_num_draft, speculative_generate
from mimo.model.io import load_model_dir, resolve_device


@torch.inference_mode()
def generate(model, input_ids: list[list[int]], max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
             speculative: bool = False, seed: int | None = None, stop_ids: list[int] | None = None,
             num_draft: int | None = None, stats: GenerationStats | None = None, on_token=None,
             abort=None, logprobs: list[list[float]] | None = None) -> list[list[int]]:
    """New tokens per prompt (a stop token, when produced, ends the list and is included).

    ``speculative`` drafts with the model's MTP layers (:mod:`mimo.infer.speculative`); the output distribution is
    unchanged (identical under greedy).  ``num_draft``: the draft depth; None picks it by batch size
    (:func:`~mimo.infer.speculative.auto_num_draft`, which turns drafting off for large batches).
    ``on_token(b, token)`` streams tokens as they are accepted.
    ``abort()`` is polled before every decode step; when it returns True, :class:`GenerationAborted` is raised.
    ``logprobs``, when a list, receives per prompt the log-prob of each sampled token under
    ``softmax(logits / temperature)`` (before top-p), which RL uses as the rollout policy's log-probs.
    """
    if speculative and getattr(model, "num_mtp_layers", 0) > 0:
        depth = auto_num_draft(model, len(input_ids)) if num_draft is None else num_draft
        if depth > 0:
            return speculative_generate(model, input_ids, max_new_tokens, temperature, top_p, seed, stop_ids,
                                        depth, stats, on_token, abort=abort, logprobs=logprobs)
    t0 = time.perf_counter()
    stops = stop_set(stop_ids, model)
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
    for _ in range(max_new_tokens):
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


def sample(model, input_ids: list[list[int]], params: SamplingParams, seed: int | None = None, **kwargs):
    """:func:`generate` with the knobs of ``params`` (``seed`` overrides ``params.seed``); ``kwargs`` as there."""
    return generate(model, input_ids, params.max_new_tokens, params.temperature, params.top_p,
                    seed=params.seed if seed is None else seed, stop_ids=list(params.stop_ids), **kwargs)
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
