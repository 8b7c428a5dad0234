"""Inference: KV-cached batched sampling (``generate``), its building blocks, and MTP speculative decoding."""

from mimo.infer.engine import KVCache, decode_step, generate, prefill, sample_logits

__all__ = ["KVCache", "prefill", "decode_step", "sample_logits", "generate"]
