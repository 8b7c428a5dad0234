#!/usr/bin/env python
"""The RL policy update, padded vs packed (``--actor.packed``), side by side on the same rollouts.

    python benchmarks/rl_update.py [--shapes 1M,30M] [--rounds 5] [--json FILE] [--cache ~/.cache/mimo/peers]
                                   [--sft DIR]

The setting of ``benchmarks/peers.py`` (whose helpers it uses): the demo's SFT checkpoint (built and cached there,
or ``--sft``), and at ``30M`` the same model widened without changing its function; 8 toy-math prompts x 8
responses sampled by mimo's engine at T = 1 with 64 new tokens (stopping at the end of the answer), scored by the
math reward; one optimizer step over the 64 (mini-batch 8 groups, one micro-batch of 64), AdamW lr 5e-5, clip
0.2 / 0.28, fp32, 2 threads.  Each round times ``update_policy`` once per layout, each from the same weights and a
fresh optimizer, the layouts alternating first; the table gives the median seconds, the padding share of the
positions run (``pad_frac``) and the largest weight difference between the two updates (float rounding only).
``--json`` writes ``{"rows": [{"shape", "layout", "rows", "pad_frac", "s_median", "s_min"}, ...]}``.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peers  # noqa: E402  (the comparison's model, prompts and settings)


def rollouts(model, tok, seed: int = 0):
    """8 prompts x 8 sampled responses with their log-probs, scored: the update's input."""
    from mimo.infer.engine import generate
    from mimo.rewards.math import math_reward
    from mimo.rl.actor import Group, Sample

    probs = peers.problems_of(tok)[: peers.PROMPTS_PER_STEP]
    groups = []
    for i, p in enumerate(probs):
        lps: list = []
        outs = generate(model.eval(), [list(p.prompt_ids)] * peers.GROUP, peers.NEW_TOKENS, temperature=1.0,
                        seed=seed + i, stop_ids=list(tok.stop_ids), logprobs=lps)
        groups.append(Group(p.id, [Sample(list(p.prompt_ids), o, lp, reward=math_reward(tok.decode(o),
                                                                                        p.reference).score)
                                   for o, lp in zip(outs, lps)]))
    return groups


def time_update(model, groups, packed: bool, pad_id: int):

    from mimo.rl.actor import ActorConfig, update_policy
    from mimo.train.loop import make_optimizer

    m = copy.deepcopy(model)
    opt = make_optimizer(m, peers.LR, 0.0)
    cfg = ActorConfig(lr=peers.LR, mini_batch_groups=peers.PROMPTS_PER_STEP,
                      micro_batch_size=peers.GROUP * peers.PROMPTS_PER_STEP, eps_low=peers.EPS_LOW,
                      eps_high=peers.EPS_HIGH, packed=packed)
    start = time.perf_counter()
    metrics = update_policy(m, opt, groups, cfg, pad_id=pad_id, temperature=1.0)
    seconds = time.perf_counter() - start
    return seconds, metrics, {n: p.detach().clone() for n, p in m.named_parameters()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", default="1M,30M")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", default=None)
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "mimo" / "peers"))
    ap.add_argument("--sft", default=None, help="an SFT model directory to use instead of building the demo's")
    args = ap.parse_args(argv)
    import torch

    from mimo.model.io import load_model_dir
    from mimo.rl.actor import pack_rows

    torch.set_num_threads(peers.THREADS)
    sft = Path(args.sft) if args.sft else peers.build_sft(Path(args.cache))
    rows = []
    for shape in args.shapes.split(","):
        if shape not in peers.SHAPES:
            sys.exit(f"rl_update.py: --shapes: unknown shape {shape!r} (known: {', '.join(peers.SHAPES)})")
        model, tok = load_model_dir(sft)
        if peers.SHAPES[shape] is not None:
            model = peers.widen(model, *peers.SHAPES[shape])
        groups = rollouts(model, tok)
        lengths = [len(s.prompt_ids) + len(s.response_ids) for g in groups for s in g.samples]
        n_rows = {False: len(lengths), True: pack_rows(lengths)[1]}
        times: dict[bool, list[float]] = {False: [], True: []}
        gap = 0.0
        for r in range(args.rounds):
            params = {}
            for packed in ((False, True) if r % 2 == 0 else (True, False)):
                seconds, metrics, params[packed] = time_update(model, groups, packed, tok.pad_id)
                times[packed].append(seconds)
            gap = max(gap, max(float((params[False][n] - params[True][n]).abs().max()) for n in params[False]))
        for packed in (False, True):
            rows.append({"shape": shape, "layout": "packed" if packed else "padded", "rows": n_rows[packed],
                         "tokens": sum(lengths), "positions": n_rows[packed] * max(lengths),
                         "pad_frac": 1 - sum(lengths) / (n_rows[packed] * max(lengths)),
                         "s_median": statistics.median(times[packed]), "s_min": min(times[packed])})
        print(f"[rl_update] {shape}: {len(lengths)} sequences of {min(lengths)}-{max(lengths)} tokens, max |weight "
              f"difference| padded vs packed {gap:.1e}", flush=True)
    print(f"\n{'shape':5s} | {'layout':6s} | {'rows x len':>10s} | {'pad_frac':>8s} | {'s median':>8s} | "
          f"{'s min':>6s} | vs padded")
    for row in rows:
        base = next(r for r in rows if r["shape"] == row["shape"] and r["layout"] == "padded")
        print(f"{row['shape']:5s} | {row['layout']:6s} | {row['rows']:>4d} x {row['positions'] // row['rows']:<3d} | "
              f"{row['pad_frac']:8.2f} | {row['s_median']:8.3f} | {row['s_min']:6.3f} | "
              f"{base['s_median'] / row['s_median']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
