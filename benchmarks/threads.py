"""CPU threads for generation: decode tokens/s of models of several sizes at 1, 2, ... threads, side by side.

The default of ``mimo generate/chat/serve/eval`` (``--threads 0``) is 1 thread below
``mimo.infer.engine.SMALL_MODEL_PARAMS`` parameters and every core above; this prints the measurements behind
it.  Each model is randomly initialised (speed does not depend on the weights), batch 1, greedy, fixed length.

    python benchmarks/threads.py                      # 1, 2 and all-core threads
    python benchmarks/threads.py --threads 1,4,16 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from mimo.infer.engine import generate
from mimo.model import MiMoForCausalLM
from mimo.model.config import ModelSpec

SIZES = {  # name -> (hidden, intermediate, layers, heads, kv heads, vocab)
    "1M (demo)": (128, 384, 4, 4, 2, 512),
    "8M": (256, 768, 8, 4, 2, 4096),
    "30M": (512, 1536, 8, 8, 4, 8192),
    "110M": (768, 2304, 12, 12, 4, 32000),
}


def tokens_per_s(model, threads: int, new_tokens: int, repeats: int) -> float:
    torch.set_num_threads(threads)
    prompt = [[1, 2, 3, 4, 5, 6, 7, 8]]
    generate(model, prompt, 4)  # warm up
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = generate(model, prompt, new_tokens, stop_ids=[])
        best = max(best, len(out[0]) / (time.perf_counter() - t0))
    return best


def main() -> None:
    cores = len(os.sched_getaffinity(0))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", default=",".join(str(t) for t in sorted({1, 2, cores})), help="thread counts")
    p.add_argument("--sizes", default=",".join(SIZES), help="model sizes")
    p.add_argument("--new_tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", default="", help="also write the table as JSON here")
    args = p.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    rows = []
    for name in args.sizes.split(","):
        h, i, layers, heads, kv, vocab = SIZES[name]
        cfg = ModelSpec(hidden_size=h, intermediate_size=i, num_hidden_layers=layers, num_attention_heads=heads,
                          num_key_value_heads=kv, vocab_size=vocab)
        torch.manual_seed(0)
        model = MiMoForCausalLM(cfg.to_hf()).eval()
        params = sum(x.numel() for x in model.parameters())
        speeds = {t: tokens_per_s(model, t, args.new_tokens, args.repeats) for t in threads}
        rows.append({"model": name, "params": params, "tok_per_s": speeds})
        print(f"{name:>10} {params / 1e6:7.1f}M params | " + " | ".join(f"{t} thr {v:8.1f} tok/s"
                                                                    for t, v in speeds.items()), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cores": cores, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
