"""One decode step of mimo's engine at RL batch sizes, two attention paths side by side: transformers' ``sdpa``
(K/V expanded per query head with ``repeat_kv``, a fresh copy of the cache per layer and step) and the engine's
grouped-query SDPA (:func:`mimo.infer.decoding.engine_attention`).

    .venv/bin/python benchmarks/decode_step.py [--batches 64,256] [--threads 2] [--shape 30M]

Random MiMo model of ``benchmarks/generate.py``'s shapes, prompts of 32 tokens, 20 decode steps of warm-up, then
the mean over ``--steps`` timed steps (the cache holds ~55 slots by then).  Per step: wall time, tokens/s, minor
page faults and kernel (sys) CPU time of this process (``getrusage``).  The two paths' logits are compared too
(they are bit-identical).  On a shared machine, compare the rows of one run, not runs with each other.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import resource
import time

SHAPES = {
    "1M": dict(hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4,
               num_key_value_heads=2),
    "30M": dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=8, num_attention_heads=8,
                num_key_value_heads=4),
}


def step_stats(model, batch: int, steps: int, engine: bool) -> tuple[dict, object]:
    import torch

    import mimo.infer.decoding as decoding

    real = decoding.engine_attention
    if not engine:
        decoding.engine_attention = lambda model, device: contextlib.nullcontext()
    try:
        rng = random.Random(0)
        prompts = [[rng.randrange(10, model.config.vocab_size) for _ in range(32)] for _ in range(batch)]
        with torch.inference_mode():
            cache = decoding.KVCache.for_model(model.config, batch, 32 + 20 + steps + 1)
            logits, *_ = decoding.prefill(model, cache, prompts)
            tok = logits.argmax(-1)
            for _ in range(20):
                logits, _ = decoding.decode_step(model, cache, tok)
                tok = logits.argmax(-1)
            r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            for _ in range(steps):
                logits, _ = decoding.decode_step(model, cache, tok)
                tok = logits.argmax(-1)
            dt, r1 = (time.perf_counter() - t0) / steps, resource.getrusage(resource.RUSAGE_SELF)
    finally:
        decoding.engine_attention = real
    return {"ms": dt * 1e3, "tok_s": batch / dt, "faults": (r1.ru_minflt - r0.ru_minflt) / steps,
            "sys_ms": (r1.ru_stime - r0.ru_stime) / steps * 1e3}, logits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", default="64,256")
    ap.add_argument("--shape", default="30M", choices=sorted(SHAPES))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    import torch

    from mimo.model import MiMoForCausalLM, ModelSpec

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = MiMoForCausalLM(ModelSpec(vocab_size=512, max_position_embeddings=512, num_nextn_predict_layers=1,
                                      **SHAPES[args.shape]).to_hf()).eval()
    print("| batch | attention | ms / step | tok/s | page faults / step | sys ms / step |\n|---|---|---|---|---|---|")
    for b in (int(x) for x in args.batches.split(",")):
        logits = {}
        for engine, name in ((False, "transformers sdpa (repeat_kv)"), (True, "grouped-query SDPA (engine)")):
            s, logits[engine] = step_stats(model, b, args.steps, engine)
            print(f"| {b} | {name} | {s['ms']:.1f} | {s['tok_s']:.0f} | {s['faults']:.0f} | {s['sys_ms']:.1f} |",
                  flush=True)
        print(f"| {b} | logits bit-identical: {torch.equal(logits[False], logits[True])} | | | | |")


if __name__ == "__main__":
    main()
