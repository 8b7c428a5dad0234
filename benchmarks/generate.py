"""Generation throughput, mimo's engine vs vLLM, side by side in one run: rollout-shaped decoding (random prompts of
32 tokens, 64 new tokens each, temperature 1.0, no stop token) at two model sizes and three batch sizes.

    .venv/bin/python benchmarks/generate.py [--json runs/generate.json] [--batches 1,64,256] [--threads 2]

Models are random MiMo checkpoints written to a temporary folder (throughput does not depend on the weights):
``1M`` (hidden 128, 4 layers, the tiny preset's shape) and ``30M`` (hidden 512, 8 layers).  Both engines run fp32
with the same threads; vLLM is ``vllm.LLM`` in eager mode (no CUDA graphs on CPU), its KV cache
``VLLM_CPU_KVCACHE_SPACE`` GiB (default 2 here).  Each cell is timed after one warm-up run of the same shape, and
the best of ``--repeats`` runs is kept (on a shared machine the slow runs are other processes' time).
``tokens_per_s`` counts new tokens only.  ``--json FILE`` writes
``{"rows": [{"engine", "params", "batch", "new_tokens", "tokens_per_s"}, ...]}``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

SHAPES = {  # name -> MiMo shape (head_dim 32 / 64: sizes vLLM's CPU attention supports)
    "1M": dict(hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4,
               num_key_value_heads=2),
    "30M": dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=8, num_attention_heads=8,
                num_key_value_heads=4),
}
VOCAB, PROMPT_LEN = 512, 32


def write_model(root: Path, name: str) -> tuple[Path, int]:
    import random

    import torch

    from mimo.model import MiMoForCausalLM, ModelSpec
    from mimo.model.io import save_model_dir
    from mimo.tokenizer import format_chat, train_bpe

    texts = [format_chat([{"role": "user", "content": f"Compute {a} + {b}."}]) + str(a + b)
             for a in range(30) for b in range(30)]
    # random words give BPE enough merges to fill all VOCAB rows (the model loader rejects a tokenizer that leaves
    # 128 or more rows unused, and the sums alone stop at ~290 tokens)
    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randrange(3, 7))) for _ in range(400)]
    texts += [" ".join(words[i:i + 8]) for i in range(0, len(words), 4)] * 2
    tok = train_bpe(texts, VOCAB, root / f"{name}_tok")
    assert tok.vocab_size == VOCAB, tok.vocab_size
    torch.manual_seed(0)
    model = MiMoForCausalLM(ModelSpec(vocab_size=VOCAB, max_position_embeddings=512, num_nextn_predict_layers=1,
                                      **SHAPES[name]).to_hf()).eval()
    params = sum(p.numel() for n, p in model.named_parameters() if "mtp_layers" not in n)
    save_model_dir(root / name, model, tok)
    return root / name, params


def prompts(batch: int, seed: int) -> list[list[int]]:
    import random

    rng = random.Random(seed)
    return [[rng.randrange(10, VOCAB) for _ in range(PROMPT_LEN)] for _ in range(batch)]


def time_mimo(path: Path, batches: list[int], new: int, repeats: int) -> dict[int, float]:
    from mimo.infer.engine import generate
    from mimo.model.io import load_model_dir

    model, _ = load_model_dir(path)
    model.eval()
    out = {}
    for b in batches:
        generate(model, prompts(b, 1), new, temperature=1.0, seed=0, stop_ids=[])  # warm-up
        for r in range(repeats):
            t0 = time.perf_counter()
            res = generate(model, prompts(b, 2 + r), new, temperature=1.0, seed=r, stop_ids=[])
            out[b] = max(out.get(b, 0.0), sum(len(x) for x in res) / (time.perf_counter() - t0))
    return out


def time_vllm(path: Path, batches: list[int], new: int, repeats: int) -> dict[int, float]:
    from vllm import LLM, SamplingParams, TokensPrompt

    llm = LLM(model=str(path), dtype="float32", enforce_eager=True, max_num_seqs=max(batches), max_model_len=512,
              seed=0, trust_remote_code=True)
    sp = SamplingParams(max_tokens=new, temperature=1.0, ignore_eos=True, seed=None)
    out = {}
    for b in batches:
        llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts(b, 1)], sp, use_tqdm=False)  # warm-up
        for r in range(repeats):
            t0 = time.perf_counter()
            res = llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts(b, 2 + r)], sp, use_tqdm=False)
            out[b] = max(out.get(b, 0.0), sum(len(x.outputs[0].token_ids) for x in res) / (time.perf_counter() - t0))
    llm.llm_engine.engine_core.shutdown()
    del llm
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", default="", help="write the rows here")
    ap.add_argument("--batches", default="1,64,256")
    ap.add_argument("--shapes", default="1M,30M")
    ap.add_argument("--engines", default="mimo,vllm")
    ap.add_argument("--new_tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per cell (the best is kept)")
    args = ap.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    import torch

    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.shapes.split(","):
            path, params = write_model(Path(tmp), shape)
            for engine in args.engines.split(","):
                speeds = (time_mimo if engine == "mimo" else time_vllm)(path, batches, args.new_tokens, args.repeats)
                for b in batches:
                    rows.append({"engine": engine, "params": params, "batch": b, "new_tokens": args.new_tokens,
                                 "tokens_per_s": round(speeds[b], 1)})
                    print(f"[generate] {engine:5s} {shape:>4s} ({params / 1e6:.1f}M) batch {b:4d}: "
                          f"{speeds[b]:9.1f} tok/s", flush=True)
                if args.json:  # after every engine: a run cut short keeps what it measured
                    write_json(args.json, rows)
    print("\n| params | batch | mimo tok/s | vLLM tok/s | vLLM / mimo |\n|---|---|---|---|---|")
    for params in sorted({r["params"] for r in rows}):
        for b in batches:
            cell = {r["engine"]: r["tokens_per_s"] for r in rows if r["params"] == params and r["batch"] == b}
            m, v = cell.get("mimo"), cell.get("vllm")
            ratio = f"{v / m:.2f}x" if m and v else "-"
            print(f"| {params / 1e6:.1f}M | {b} | {m or '-'} | {v or '-'} | {ratio} |")


def write_json(path: str, rows: list[dict]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
