"""Inference: KV-cached batched sampling (``generate``), its building blocks, and MTP speculative decoding."""

from mimo.infer.decoding import KVCache, decode_step, prefill, sample_logits
from mimo.infer.engine import generate

__all__ = ["KVCache", "prefill", "decode_step", "sample_logits", "generate"]
