"""Speculative-decoding measurements shared by ``benchmarks/specdec.py``, ``mimo train-mtp`` and the demo.

:func:`measure` runs one configuration (plain or speculative, greedy or sampled) over a prompt set and returns
tokens/s and acceptance per MTP layer; :func:`specdec_benchmark` runs the side-by-side set (same model, same
prompts): plain vs speculative at temperature 0 and 0.6, plus transformers' own greedy ``generate`` and its
prompt-lookup decoding as peers.  Timings are wall-clock on whatever else the machine is doing: rerun on a quiet
machine before quoting them.  Acceptance is deterministic under greedy decoding.
"""

from __future__ import annotations

import time

import torch

from mimo.infer.decoding import GenerationStats
from mimo.infer.engine import generate
from mimo.tasks import ToyTaskSpec


def heldout_prompts(tokenizer, n: int, tasks: ToyTaskSpec | None = None, seed: int = 0,
                    fmt: str = "chat") -> list[list[int]]:
    """Token ids of ``n`` held-out toy math problems (never in any training split), asking for the worked steps:
    ``fmt="chat"`` -> a ChatML user turn (the model answers with a ``<think>`` trace), ``"text"`` ->
    ``Question: ...\\nAnswer:`` (the pretraining format)."""
    tasks = tasks or ToyTaskSpec()
    gen = tasks.math(seed + 4242, min_steps=max(2, tasks.min_steps))
    problems = gen.sample(n, "heldout")
    if fmt == "chat":
        return [tokenizer.chat_prompt(p.prompt_text()) for p in problems]
    if fmt != "text":
        raise ValueError(f"fmt must be 'text' or 'chat', got {fmt!r}")
    return [tokenizer.encode(f"Question: {p.prompt_text()}\nAnswer:") for p in problems]


def measure(model, prompts: list[list[int]], max_new_tokens: int, speculative: bool, temperature: float = 0.0,
            top_p: float = 1.0, num_draft: int | None = None, stop_ids: list[int] | None = None,
            batch_size: int = 1, seed: int = 0) -> dict:
    """One configuration over all prompts, ``batch_size`` at a time (speculative: ``num_draft`` drafts, default
    every MTP layer).  Returns tokens, seconds, tokens_per_s, the outputs and, when speculative, acceptance per MTP
    layer (conditional and unconditional, see GenerationStats)
    and the mean accepted length (tokens per main-model forward)."""
    if speculative and num_draft is None:  # every MTP layer: generate(num_draft=None) would pick by batch size
        num_draft = model.num_mtp_layers
    stats = GenerationStats()
    outs: list[list[int]] = []
    cpu = time.process_time()
    with torch.inference_mode():
        for i in range(0, len(prompts), batch_size):
            outs += generate(model, prompts[i:i + batch_size], max_new_tokens, temperature, top_p,
                             speculative=speculative, seed=seed + i, stop_ids=stop_ids, num_draft=num_draft,
                             stats=stats)
    cpu = time.process_time() - cpu
    res = {"tokens": stats.new_tokens, "seconds": stats.seconds, "cpu_seconds": cpu,
           "tokens_per_s": stats.new_tokens / max(stats.seconds, 1e-9),
           "tokens_per_cpu_s": stats.new_tokens / max(cpu, 1e-9), "outputs": outs}
    if speculative and stats.drafted:
        rounds = stats.drafted[0]
        res.update(acceptance=stats.acceptance(), acceptance_unconditional=stats.acceptance_unconditional(),
                   mean_accepted_length=stats.mean_accepted_length(),
                   draft_cost=stats.draft_seconds / max(stats.verify_seconds, 1e-9),
                   ms_per_verify=1e3 * stats.verify_seconds / rounds, ms_per_round=1e3 * stats.seconds / rounds,
                   ms_per_draft_layer=1e3 * stats.draft_seconds / rounds / len(stats.drafted))
    else:  # one decode step per token after the first (prefill)
        res["ms_per_step"] = 1e3 * stats.seconds / max(stats.forward_passes, 1)
    return res


def _hf_generate(model, prompts, max_new_tokens, stop_ids, prompt_lookup: int | None) -> dict:
    """transformers' ``generate`` (greedy), one prompt at a time; ``prompt_lookup``: prompt-lookup decoding with
    that many draft tokens (n-gram matches in the context, no draft model)."""
    tokens, seconds, cpu, outs = 0, 0.0, 0.0, []
    pad = stop_ids[0] if stop_ids else 0
    with torch.inference_mode():
        for p in prompts:
            x = torch.tensor([p], device=next(model.parameters()).device)
            t0, c0 = time.perf_counter(), time.process_time()
            y = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=max_new_tokens,
                               do_sample=False, eos_token_id=stop_ids or None, pad_token_id=pad,
                               prompt_lookup_num_tokens=prompt_lookup)
            seconds += time.perf_counter() - t0
            cpu += time.process_time() - c0
            new = y[0, len(p):].tolist()
            if stop_ids:  # transformers pads finished rows; cut after the first stop token
                for j, t in enumerate(new):
                    if t in stop_ids:
                        new = new[: j + 1]
                        break
            tokens += len(new)
            outs.append(new)
    return {"tokens": tokens, "seconds": seconds, "cpu_seconds": cpu, "tokens_per_s": tokens / max(seconds, 1e-9),
            "tokens_per_cpu_s": tokens / max(cpu, 1e-9), "outputs": outs}


def specdec_benchmark(model, prompts: list[list[int]], max_new_tokens: int = 128, stop_ids: list[int] | None = None,
                      temperatures: tuple[float, ...] = (0.0, 0.6), top_p: float = 1.0, num_draft: int | None = None,
                      batch_size: int = 1, peers: bool = True, repeats: int = 1, depths: tuple[int, ...] = (),
                      log=print) -> dict:
    """Side by side on the same model and prompts: plain vs MTP-speculative decoding per temperature (greedy
    first), and transformers' greedy ``generate`` and prompt-lookup decoding as peers.  ``depths``: extra greedy
    rows drafting with only the first d MTP layers.  Every configuration runs ``repeats`` times, interleaved (so
    a slow spell of the machine hits all of them), and its fastest run counts, as ``timeit`` does; outputs are
    identical across repeats (fixed seeds).

    Returns ``{"acceptance": [per MTP layer, greedy], "tokens_per_s_plain", "tokens_per_s_speculative",
    "speedup"}`` (greedy) plus ``rows`` (one per configuration) and details."""
    model.eval()
    num_draft = num_draft or model.num_mtp_layers  # explicit: generate(num_draft=None) would pick by batch size
    measure(model, prompts[:1], 8, speculative=False, stop_ids=stop_ids)  # warm-up (allocator, kernels)
    measure(model, prompts[:1], 8, speculative=True, stop_ids=stop_ids, num_draft=num_draft)
    configs: list[tuple[str, float, int, object]] = []  # (method, temperature, draft depth, run) in table order
    for temp in temperatures:
        configs.append(("plain", temp, 0, lambda t=temp: measure(model, prompts, max_new_tokens, False, t, top_p,
                                                                 stop_ids=stop_ids, batch_size=batch_size)))
        configs.append(("mtp-speculative", temp, num_draft, lambda t=temp: measure(
            model, prompts, max_new_tokens, True, t, top_p, num_draft=num_draft, stop_ids=stop_ids,
            batch_size=batch_size)))
        for d in depths:
            configs.append((f"mtp-speculative, {d} draft{'s' if d > 1 else ''}", temp, d, lambda t=temp, d=d: measure(
                model, prompts, max_new_tokens, True, t, top_p, num_draft=d, stop_ids=stop_ids,
                batch_size=batch_size)))
    if peers:
        for name, lookup in (("transformers generate", None), ("transformers prompt-lookup", 10)):
            configs.append((name, 0.0, 0, lambda lk=lookup: _hf_generate(model, prompts, max_new_tokens, stop_ids,
                                                                         lk)))
    best: dict[int, dict] = {}
    failed: set[int] = set()
    for _ in range(max(1, repeats)):
        for i, (name, _, _, run) in enumerate(configs):
            if i in failed:
                continue
            try:
                r = run()
            except Exception as e:  # a peer failing must not sink the benchmark; say why
                if not name.startswith("transformers"):
                    raise
                log(f"{name}: skipped ({type(e).__name__}: {e})")
                failed.add(i)
                continue
            if i not in best or r["seconds"] < best[i]["seconds"]:
                best[i] = r
    rows: list[dict] = []
    peer_rows: list[dict] = []
    plain_at: dict[float, dict] = {}
    for i, (name, temp, depth, _) in enumerate(configs):
        if i not in best:
            continue
        r = best[i]
        if name == "plain":
            plain_at[temp] = r
        row = _row(name, temp, r, plain_at.get(temp))
        if not name.startswith("transformers"):  # the row format of benchmarks/specdec.py --json
            row.update(engine="mimo", mode="plain" if depth == 0 else "speculative", batch=batch_size,
                       draft_layers=depth, acceptance=[])
        for key in ("acceptance", "acceptance_unconditional", "mean_accepted_length", "draft_cost", "ms_per_verify",
                    "ms_per_draft_layer", "ms_per_step", "ms_per_round"):
            if key in r:
                row[key] = r[key]
        if name.startswith("transformers") and 0.0 in plain_at:
            row["same_tokens_as_plain"] = r["outputs"] == plain_at[0.0]["outputs"]
        (peer_rows if name.startswith("transformers") else rows).append(row)
        log(_row_text(row))
    result = {"rows": rows, "peer_rows": peer_rows, "num_prompts": len(prompts), "max_new_tokens": max_new_tokens,
              "batch_size": batch_size, "num_draft": num_draft,
              "threads": torch.get_num_threads(), "repeats": repeats}
    greedy = {c[0]: best[i] for i, c in enumerate(configs) if c[1] <= 0 and i in best}
    if "plain" in greedy and "mtp-speculative" in greedy:
        plain, spec = greedy["plain"], greedy["mtp-speculative"]
        result.update(acceptance=spec.get("acceptance", []),
                      acceptance_unconditional=spec.get("acceptance_unconditional", []),
                      mean_accepted_length=spec.get("mean_accepted_length", 1.0),
                      draft_cost=spec.get("draft_cost"), ms_per_step_plain=plain["ms_per_step"],
                      ms_per_verify=spec.get("ms_per_verify"), ms_per_draft_layer=spec.get("ms_per_draft_layer"),
                      ms_per_round=spec.get("ms_per_round"),
                      tokens_per_s_plain=plain["tokens_per_s"], tokens_per_s_speculative=spec["tokens_per_s"],
                      speedup=spec["tokens_per_s"] / plain["tokens_per_s"],
                      speedup_cpu_time=spec["tokens_per_cpu_s"] / plain["tokens_per_cpu_s"],
                      greedy_identical=plain["outputs"] == spec["outputs"], greedy_outputs=plain["outputs"])
    return result


def _row(method: str, temperature: float, r: dict, plain: dict | None) -> dict:
    """One table row; speedups relative to plain decoding at the same temperature, by wall and by CPU time."""
    row = {"method": method, "temperature": temperature, "tokens": r["tokens"], "seconds": round(r["seconds"], 3),
           "cpu_seconds": round(r["cpu_seconds"], 3), "tokens_per_s": r["tokens_per_s"],
           "tokens_per_cpu_s": r["tokens_per_cpu_s"]}
    if plain is not None:
        row["speedup"] = r["tokens_per_s"] / plain["tokens_per_s"]
        row["speedup_cpu_time"] = r["tokens_per_cpu_s"] / plain["tokens_per_cpu_s"]
    return row


def _row_text(row: dict) -> str:
    text = (f"{row['method']:<28} T={row['temperature']:<4} {row['tokens_per_s']:8.1f} tok/s "
            f"({row['tokens_per_cpu_s']:.1f} per CPU-s)")
    if row.get("speedup") is not None:
        text += f"  x{row['speedup']:.2f} (CPU time x{row['speedup_cpu_time']:.2f})"
    if row.get("acceptance"):
        text += "  acceptance " + " ".join(f"{a:.0%}" for a in row["acceptance"])
        text += (f"  (tokens/verify {row['mean_accepted_length']:.2f}; verify {row['ms_per_verify']:.2f} ms, "
                 f"draft {row['ms_per_draft_layer']:.2f} ms per MTP layer)")
    elif "ms_per_step" in row:
        text += f"  ({row['ms_per_step']:.2f} ms per step)"
    return text


def markdown_table(result: dict) -> str:
    """The benchmark rows as a Markdown table (for the README)."""
    lines = ["| method | temperature | tokens/s (wall) | speedup (wall) | tokens per CPU-s | speedup (CPU time) "
             "| acceptance per MTP layer | tokens per verify |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"] + result.get("peer_rows", []):
        acc = " / ".join(f"{a:.0%}" for a in r.get("acceptance", [])) or "-"
        mal = f"{r['mean_accepted_length']:.2f}" if "mean_accepted_length" in r else "-"
        sp = f"{r['speedup']:.2f}x" if r.get("speedup") is not None else "-"
        spc = f"{r['speedup_cpu_time']:.2f}x" if r.get("speedup_cpu_time") is not None else "-"
        lines.append(f"| {r['method']} | {r['temperature']} | {r['tokens_per_s']:.0f} | {sp} | "
                     f"{r['tokens_per_cpu_s']:.0f} | {spc} | {acc} | {mal} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------ vLLM


def _vllm_counters(llm) -> dict:
    """vLLM's speculative-decoding counters now: drafts, draft tokens, accepted tokens, accepted per position."""
    out = {"drafts": 0, "draft_tokens": 0, "accepted": 0, "per_pos": []}
    names = {"vllm:spec_decode_num_drafts": "drafts", "vllm:spec_decode_num_draft_tokens": "draft_tokens",
             "vllm:spec_decode_num_accepted_tokens": "accepted"}
    for m in llm.get_metrics():
        if m.name in names:
            out[names[m.name]] += m.value
        elif m.name == "vllm:spec_decode_num_accepted_tokens_per_pos":
            vals = list(m.values)
            out["per_pos"] = [a + b for a, b in zip(vals, out["per_pos"] + [0] * len(vals))]
    return out


def vllm_rows(model_dir: str, prompts: list[list[int]], max_new_tokens: int, stop_ids: list[int],
              temperatures: tuple[float, ...], batch_sizes: tuple[int, ...], top_p: float = 1.0,
              speculative_tokens: tuple[int, ...] = (1,), threads: int = 1, repeats: int = 1,
              reference: dict | None = None, prompts_per_batch: dict[int, int] | None = None,
              log=print) -> list[dict]:
    """vLLM on the same checkpoint and prompts: plain and MTP-speculative (``num_speculative_tokens`` = each of
    ``speculative_tokens``; vLLM drafts with MTP layer 1 only, chained on itself) per temperature and batch size.

    One engine per configuration (the speculative config is fixed at start-up), bound to ``threads`` cores
    (``VLLM_CPU_OMP_THREADS_BIND``), fp32, greedy/seeded sampling with mimo's stop set.  Rows use the JSON row
    format of ``benchmarks/specdec.py --json``; acceptance is vLLM's per-position acceptance (position i accepted given
    positions < i were).  ``reference``: ``{batch: mimo greedy plain outputs}``, to report whether vLLM's greedy
    tokens equal mimo's.  ``prompts_per_batch``: how many of the prompts each batch size runs (default all)."""
    import os

    from vllm import LLM, SamplingParams

    saved = {k: os.environ.get(k) for k in ("VLLM_CPU_KVCACHE_SPACE", "VLLM_CPU_OMP_THREADS_BIND")}
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = "0" if threads <= 1 else f"0-{threads - 1}"
    try:
        return _vllm_rows(LLM, SamplingParams, model_dir, prompts, max_new_tokens, stop_ids, temperatures,
                          batch_sizes, top_p, speculative_tokens, repeats, reference, prompts_per_batch, log)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _vllm_rows(LLM, SamplingParams, model_dir, prompts, max_new_tokens, stop_ids, temperatures, batch_sizes, top_p,
               speculative_tokens, repeats, reference, prompts_per_batch, log) -> list[dict]:
    rows: list[dict] = []
    for spec in (0,) + tuple(speculative_tokens):
        kwargs = {"speculative_config": {"method": "mtp", "num_speculative_tokens": spec}} if spec else {}
        llm = LLM(model=model_dir, dtype="float32", max_model_len=max(len(p) for p in prompts) + max_new_tokens + 8,
                  disable_log_stats=False, seed=0, **kwargs)
        try:
            llm.generate([{"prompt_token_ids": prompts[0]}], SamplingParams(max_tokens=8), use_tqdm=False)  # warm-up
            for temp in temperatures:
                for bs in batch_sizes:
                    use = prompts[:(prompts_per_batch or {}).get(bs, len(prompts))]
                    best = None
                    for _ in range(max(1, repeats)):
                        before = _vllm_counters(llm)
                        outs, t0 = [], time.perf_counter()
                        for i in range(0, len(use), bs):
                            params = [SamplingParams(temperature=temp, top_p=top_p if temp > 0 else 1.0,
                                                     max_tokens=max_new_tokens, seed=i + j, ignore_eos=True,
                                                     stop_token_ids=stop_ids, detokenize=False)
                                      for j in range(len(use[i:i + bs]))]
                            res = llm.generate([{"prompt_token_ids": p} for p in use[i:i + bs]], params,
                                               use_tqdm=False)
                            outs += [list(r.outputs[0].token_ids) for r in res]
                        seconds = time.perf_counter() - t0
                        if best is None or seconds < best[0]:
                            best = (seconds, outs, before, _vllm_counters(llm))
                    seconds, outs, before, after = best
                    tokens = sum(len(o) for o in outs)
                    per_pos = [a - b for a, b in zip(after["per_pos"], before["per_pos"] + [0] * len(after["per_pos"]))]
                    drafts = after["drafts"] - before["drafts"]
                    reached = [drafts] + per_pos[:-1]
                    row = {"engine": "vllm", "mode": "speculative" if spec else "plain", "temperature": temp,
                           "batch": bs, "draft_layers": 1 if spec else 0, "num_speculative_tokens": spec,
                           "tokens_per_s": tokens / max(seconds, 1e-9), "tokens": tokens,
                           "seconds": round(seconds, 3),
                           "acceptance": [a / r if r else 0.0 for a, r in zip(per_pos, reached)] if spec else []}
                    if spec and drafts:
                        row["mean_accepted_length"] = 1 + (after["accepted"] - before["accepted"]) / drafts
                    if temp <= 0 and reference is not None and bs in reference:
                        row["same_tokens_as_mimo"] = outs == reference[bs]
                    rows.append(row)
                    log(f"vllm {row['mode']:<11} k={spec} T={temp:<4} batch {bs:<3} {row['tokens_per_s']:8.1f} tok/s"
                        + (f"  acceptance {' '.join(f'{a:.0%}' for a in row['acceptance'])}" if spec else ""))
        finally:
            shutdown = getattr(getattr(llm.llm_engine, "engine_core", None), "shutdown", None)
            if shutdown is not None:
                shutdown()
            del llm
    return rows
