"""Draft acceptance of MTP layer 0 with one draft token: mimo's speculative decoding vs vLLM's ``mtp`` method, side
by side on one checkpoint and one prompt set (greedy; trains nothing).

    VLLM_CPU_KVCACHE_SPACE=1 .venv/bin/python benchmarks/mtp_acceptance.py --model DIR [--json FILE]

``DIR`` is a mimo checkpoint with >= 1 trained MTP layer (e.g. ``mimo pretrain --preset tiny``'s ``final``; vLLM's
CPU attention needs head_dim in {32, 64, 80, ...}).  Prompts are held-out toy math problems (``--format text``: the
pretraining format, ``chat``: a ChatML user turn).  Rows:

- ``mimo``: :func:`mimo.infer.generate` with ``speculative=True, num_draft=1``, drafting as the model was trained
  (``mtp_zero_first_position`` as in its config);
- ``mimo, position 0 zeroed``: the same with ``mtp_zero_first_position`` forced on at inference: the MTP layer's
  token embedding at position 0 is zeroed, which is what vLLM's MiMo drafter always does;
- ``vllm``: ``vllm.LLM(..., speculative_config={"method": "mtp", "num_speculative_tokens": 1})``, acceptance from
  its counters ``vllm:spec_decode_num_accepted_tokens`` / ``vllm:spec_decode_num_draft_tokens``
  (``llm.get_metrics()``, with ``disable_log_stats=False``).

Acceptance = accepted drafts / drafts.  Both sides count one draft per sequence per verification step; vLLM also
drafts after the prefill and mimo after its first token, so the counts can differ by a draft per prompt.  The
script also checks that the emitted greedy tokens are equal across all rows (drafting never changes them).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def run_mimo(model_dir: str, prompts: list[list[int]], stop_ids: list[int], new: int, zero_first: bool | None,
             threads: int) -> dict:
    import torch

    from mimo.infer.decoding import GenerationStats
    from mimo.infer.engine import generate
    from mimo.model.io import load_model_dir

    torch.set_num_threads(threads)
    model, _ = load_model_dir(model_dir)
    model.eval()
    if zero_first is not None:
        model.config.mtp_zero_first_position = zero_first
    stats = GenerationStats()
    outs = generate(model, prompts, new, speculative=True, num_draft=1, stop_ids=stop_ids, stats=stats)
    return {"drafted": stats.drafted[0], "accepted": stats.accepted[0],
            "acceptance": stats.accepted[0] / max(1, stats.drafted[0]), "outputs": outs}


def run_vllm(model_dir: str, prompts: list[list[int]], stop_ids: list[int], new: int) -> dict:
    from vllm import LLM, SamplingParams, TokensPrompt

    llm = LLM(model=model_dir, dtype="float32", enforce_eager=True, max_model_len=1024, seed=0,
              trust_remote_code=True, disable_log_stats=False,
              speculative_config={"method": "mtp", "num_speculative_tokens": 1})
    sp = SamplingParams(max_tokens=new, temperature=0.0, stop_token_ids=stop_ids, skip_special_tokens=False)
    res = llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], sp, use_tqdm=False)
    counters = {m.name: m.value for m in llm.get_metrics() if hasattr(m, "value")}
    drafted = int(counters.get("vllm:spec_decode_num_draft_tokens", 0))
    accepted = int(counters.get("vllm:spec_decode_num_accepted_tokens", 0))
    outs = [list(r.outputs[0].token_ids) for r in res]
    llm.llm_engine.engine_core.shutdown()
    return {"drafted": drafted, "accepted": accepted, "acceptance": accepted / max(1, drafted), "outputs": outs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="mimo checkpoint directory with >= 1 MTP layer")
    ap.add_argument("--prompts", type=int, default=32, help="held-out toy problems")
    ap.add_argument("--format", choices=("text", "chat"), default="text")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2, help="torch threads for mimo")
    ap.add_argument("--engines", default="mimo,mimo-zero0,vllm")
    ap.add_argument("--json", default="", metavar="FILE")
    args = ap.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

    from mimo.infer.bench import heldout_prompts
    from mimo.model.io import load_model_dir

    _, tok = load_model_dir(args.model)
    prompts = heldout_prompts(tok, args.prompts, fmt=args.format)
    stop_ids = list(tok.stop_ids)
    rows = {}
    for engine in args.engines.split(","):
        if engine == "mimo":
            rows[engine] = run_mimo(args.model, prompts, stop_ids, args.max_new_tokens, None, args.threads)
        elif engine == "mimo-zero0":
            rows[engine] = run_mimo(args.model, prompts, stop_ids, args.max_new_tokens, True, args.threads)
        elif engine == "vllm":
            rows[engine] = run_vllm(args.model, prompts, stop_ids, args.max_new_tokens)
        else:
            raise SystemExit(f"unknown engine {engine!r}")
        r = rows[engine]
        print(f"[mtp_acceptance] {engine}: {r['accepted']} / {r['drafted']} drafts accepted "
              f"({r['acceptance']:.1%})", flush=True)
    names = {"mimo": "mimo (as trained)", "mimo-zero0": "mimo, position 0 zeroed (vLLM's drafter input)",
             "vllm": "vLLM `mtp`, 1 speculative token"}
    print(f"\n{len(prompts)} held-out {args.format} prompts, {args.max_new_tokens} new tokens, greedy, 1 draft\n")
    print("| drafter | drafts | accepted | acceptance |\n|---|---|---|---|")
    for engine, r in rows.items():
        print(f"| {names[engine]} | {r['drafted']} | {r['accepted']} | {r['acceptance']:.1%} |")
    outs = [r["outputs"] for r in rows.values()]
    same = all(o == outs[0] for o in outs)
    print(f"\ngreedy outputs identical across rows: {same}")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "prompts": len(prompts), "identical": same,
                                               "rows": {k: {kk: vv for kk, vv in v.items() if kk != "outputs"}
                                                        for k, v in rows.items()}}, indent=2) + "\n")


if __name__ == "__main__":
    main()
