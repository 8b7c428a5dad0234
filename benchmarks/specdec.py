"""MTP speculative decoding vs plain decoding, side by side on one model and one prompt set.

    python benchmarks/specdec.py --model runs/tiny/mtp/final --json specdec.json

Rows: plain and MTP-speculative decoding at temperature 0 (greedy) and 0.6, plus transformers' greedy ``generate``
and its prompt-lookup decoding as peers; acceptance per MTP layer; decode tokens/s (batch 1 by default, the
latency setting speculative decoding targets).  Prompts are held-out toy math problems, the kind of text the tiny
model was trained on.  The model comes from ``mimo pretrain --preset tiny`` then ``mimo train-mtp --preset tiny``;
without one, a random-init model stands in (acceptance ~0: a smoke run, not a measurement).
The measuring code lives in :mod:`mimo.infer.bench` (the demo calls it too).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="runs/tiny/mtp/final", help="model directory with MTP layers")
    ap.add_argument("--json", default=None, metavar="FILE", help="write the results as JSON")
    ap.add_argument("--prompts", type=int, default=16, help="held-out toy problems")
    ap.add_argument("--format", choices=("chat", "text"), default="chat", help="prompt format")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--num-draft", type=int, default=None, help="draft depth (default: all MTP layers)")
    ap.add_argument("--temperatures", default="0,0.6", help="comma-separated; 0 (greedy) is the headline")
    ap.add_argument("--no-peers", action="store_true", help="skip transformers' generate / prompt lookup")
    ap.add_argument("--repeats", type=int, default=3, help="runs per configuration; the fastest counts")
    ap.add_argument("--depths", default="", help="comma-separated extra greedy draft depths, e.g. 1,2")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)

    import torch

    from mimo.infer.bench import heldout_prompts, markdown_table, specdec_benchmark

    torch.set_num_threads(args.threads)
    model_dir = Path(args.model)
    if (model_dir / "config.json").is_file():
        from mimo.model.io import load_model_dir

        model, tok = load_model_dir(model_dir, device=args.device)
        prompts = heldout_prompts(tok, args.prompts, fmt=args.format)
        stop_ids, source = tok.stop_ids, str(model_dir)
    else:
        from mimo.model import MiMoForCausalLM, ModelSpec

        print(f"[specdec] {model_dir}: no model there; using a random-init tiny model (build one with "
              "`mimo pretrain --preset tiny && mimo train-mtp --preset tiny`)", file=sys.stderr)
        torch.manual_seed(0)
        model = MiMoForCausalLM(ModelSpec(vocab_size=512, num_nextn_predict_layers=3).to_hf()).to(args.device)
        g = torch.Generator().manual_seed(0)
        prompts = [torch.randint(1, 512, (32,), generator=g).tolist() for _ in range(args.prompts)]
        stop_ids, source = [], "random-init (no trained model found)"
    model.eval()
    temps = tuple(float(t) for t in args.temperatures.split(","))
    print(f"[specdec] {source}: {model.num_mtp_layers} MTP layers, {len(prompts)} prompts, "
          f"{args.max_new_tokens} new tokens, batch {args.batch_size}, {torch.get_num_threads()} threads", flush=True)
    res = specdec_benchmark(model, prompts, args.max_new_tokens, stop_ids, temps, num_draft=args.num_draft,
                            batch_size=args.batch_size, peers=not args.no_peers, repeats=args.repeats,
                            depths=tuple(int(d) for d in args.depths.split(",") if d))
    res["model"] = source
    print()
    print(markdown_table(res))
    if "speedup" in res:
        print(f"\ngreedy: acceptance per MTP layer {' / '.join(f'{a:.1%}' for a in res['acceptance'])} "
              f"(unconditional {' / '.join(f'{a:.1%}' for a in res['acceptance_unconditional'])}), "
              f"{res['mean_accepted_length']:.2f} tokens per verify, speedup {res['speedup']:.2f}x "
              f"(CPU time {res['speedup_cpu_time']:.2f}x); a plain step {res['ms_per_step_plain']:.2f} ms, a "
              f"verification {res['ms_per_verify']:.2f} ms, drafting {res['ms_per_draft_layer']:.2f} ms per MTP layer; "
              f"outputs identical to plain: {res['greedy_identical']}")
    if "speedup" in res:
        # What the same acceptance buys where decode is memory-bound and an MTP layer is one block of many: the
        # 7B has 36 main layers, each MTP layer is one more block, and verifying k+1 tokens costs about one step.
        k = len(res["acceptance"])
        res["speedup_projected_7b"] = res["mean_accepted_length"] / (1 + k / 36)
        print(f"projected at 7B shape (verify ~ one decode step, one MTP layer ~ 1/36 of it): "
              f"{res['speedup_projected_7b']:.2f}x -- arithmetic on the measured acceptance, not a measurement")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
