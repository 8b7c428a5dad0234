"""MTP speculative decoding vs plain decoding, side by side on one model and one prompt set.

    python benchmarks/specdec.py --model runs/tiny/mtp/final --json specdec.json

Rows: plain and MTP-speculative decoding at temperature 0 (greedy) and 0.6, plus transformers' greedy ``generate``
and its prompt-lookup decoding as peers; acceptance per MTP layer; decode tokens/s (batch 1 by default, the
latency setting speculative decoding targets).  Prompts are held-out toy math problems, the kind of text the tiny
model was trained on.  The model comes from ``mimo pretrain --preset tiny`` then ``mimo train-mtp --preset tiny``;
without one, a random-init model stands in (acceptance ~0: a smoke run, not a measurement).
The measuring code lives in :mod:`mimo.infer.bench` (the demo calls it too).

``--shape deep`` (no ``--model``) builds, or reuses, its own benchmark model: 16 layers at hidden 128, so one MTP
layer is a small part of a decode step (on the 4-layer tiny shape it is ~45%), pretrained on the toy corpus with
``mimo pretrain`` and grown to 3 MTP layers with ``mimo train-mtp --targets model``.  It is cached under
``--cache`` (default ``~/.cache/mimo/specdec``) by a hash of its recipe; building it takes ~15 min on 2 cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

# The deep benchmark model: the tiny preset's width, 4x its depth, and a two-stage pretraining schedule.
DEEP_MODEL = {"hidden_size": 128, "intermediate_size": 384, "num_hidden_layers": 16, "num_attention_heads": 4,
              "num_key_value_heads": 2, "max_position_embeddings": 1024, "rope_theta": 10000.0,
              "num_nextn_predict_layers": 1}
DEEP_STAGES = [{"name": "stage1-general", "steps": 120, "seq_len": 128, "rope_theta": 10000.0, "lr": 3.0e-3,
                "mtp_loss_weight": 0.3},
               {"name": "stage2-math-code", "steps": 120, "seq_len": 128, "rope_theta": 10000.0, "lr": 2.0e-3,
                "mtp_loss_weight": 0.1}]
DEEP_MTP = ["--num_mtp_layers", "3", "--train_first", "true", "--targets", "model", "--steps", "300",
            "--seq_len", "128", "--decay_steps", "40", "--accept_prompts", "0"]


def build_deep(cache: Path, threads: int) -> Path:
    """The deep benchmark model's directory, built (pretrain, then train-mtp) unless its recipe is cached."""
    recipe = json.dumps([DEEP_MODEL, DEEP_STAGES, DEEP_MTP], sort_keys=True)
    root = cache.expanduser() / f"deep-L{DEEP_MODEL['num_hidden_layers']}-H{DEEP_MODEL['hidden_size']}-" \
                                 f"{hashlib.sha256(recipe.encode()).hexdigest()[:10]}"
    final = root / "mtp" / "final"
    if (final / "config.json").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    cfg = root / "pretrain.yaml"
    cfg.write_text(json.dumps({"model": DEEP_MODEL, "pretrain": {
        "out_dir": str(root / "pretrain"), "toy": {"vocab_size": 512, "docs_per_source": 20000}, "stages": DEEP_STAGES,
        "batch_size": 32, "batch_size_start": 8, "batch_warmup_steps": 30, "micro_batch_size": 16,
        "warmup_steps": 20, "decay_steps": 60, "eval_every": 0, "save_every": 60, "log_every": 20}}, indent=1))
    print(f"[specdec] building the deep benchmark model in {root} (~15 min on 2 cores, once)", flush=True)
    mimo = [sys.executable, "-c", "import sys; from mimo.cli import main; sys.exit(main())"]
    resume = ["--resume"] if any((root / "pretrain" / "checkpoints").glob("*")) else ["--overwrite"]
    steps = [mimo + ["pretrain", "--config", str(cfg), "--threads", str(threads)] + resume,
             mimo + ["train-mtp", "--init_from", str(root / "pretrain" / "final"), "--out_dir", str(root / "mtp"),
                     "--threads", str(threads), "--overwrite"] + DEEP_MTP]
    for cmd in steps:
        if subprocess.run(cmd).returncode != 0:
            raise SystemExit(f"[specdec] building the deep model failed: {' '.join(cmd[3:5])} (command: "
                             f"{' '.join(cmd)})")
    return final


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="model directory with MTP layers (default: the --shape model)")
    ap.add_argument("--shape", choices=("deep", "tiny"), default="deep",
                    help="without --model: deep = the cached 16-layer benchmark model (built when absent), tiny = "
                         "runs/tiny/mtp/final")
    ap.add_argument("--cache", default="~/.cache/mimo/specdec", help="where the deep benchmark model is cached")
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
    if args.model is not None:
        model_dir = Path(args.model)
    elif args.shape == "deep":
        model_dir = build_deep(Path(args.cache), max(args.threads, 2))
    else:
        model_dir = Path("runs/tiny/mtp/final")
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
