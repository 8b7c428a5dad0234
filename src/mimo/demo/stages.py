"""The stages of ``mimo demo``, each a thin call into the real stage code with demo-sized budgets.

Every stage writes into its own folder and is skipped when that folder already holds a finished model made with
the same configuration (so an interrupted demo continues where it stopped).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import multiprocessing
from pathlib import Path

import yaml

from mimo.config import from_dict, resolve_config, to_dict
from mimo.errors import MimoError
from mimo.eval import EvalProtocol, evaluate, toy_benchmark
from mimo.eval.benchmarks import Benchmark
from mimo.eval.report import plot_pass_at_k
from mimo.infer.bench import specdec_benchmark
from mimo.model.io import load_model_dir
from mimo.rewards.pool import PoolConfig, RewardPool
from mimo.rl import trainer as rl_stage
from mimo.tasks import HELDOUT_SEED
from mimo.tasks.spec import harder
from mimo.train import mtp as mtp_stage
from mimo.train import pretrain as pretrain_stage
from mimo.train import sft as sft_stage
from mimo.utils.io import write_json


def _done(stage_dir: Path, section: str, cfg, init: Path | None = None) -> bool:
    """The stage already finished with this very config and (``init``) from these very starting weights: a stage
    whose start was rebuilt (e.g. SFT with other steps) runs again although its own config is unchanged."""
    saved = stage_dir / "config.yaml"
    if not (stage_dir / "final" / "model.safetensors").is_file() or not saved.is_file():
        return False
    return (yaml.safe_load(saved.read_text()) or {}).get(section) == to_json(cfg) and _same_start(stage_dir, init)


def _same_start(stage_dir: Path, init: Path | None) -> bool:
    mark = stage_dir / "init.sha1"
    return init is None or (mark.is_file() and mark.read_text().strip() == weights_digest(init))


def _mark_start(stage_dir: Path, init: Path) -> None:
    """Record the digest of the weights a stage started from (read by :func:`_done`)."""
    stage_dir.mkdir(parents=True, exist_ok=True)
    (stage_dir / "init.sha1").write_text(weights_digest(init))


def _tiny(cls, section: str, **overrides):
    """A stage config from the tiny preset with Python-valued overrides (dotted keys for nested fields).

    Stages overwrite their folder: the demo itself skips a stage that finished with the same config and reruns
    one whose config changed, so its folders are a cache rather than runs to protect."""
    cfg = resolve_config(cls, section, preset="tiny")
    if "overwrite" in {f.name for f in dataclasses.fields(cls)} and not overrides.get("resume"):
        overrides = {"overwrite": True, **overrides}
    nested: dict = {}
    for key, value in overrides.items():
        d = nested
        parts = key.split(".")
        for p in parts[:-1]:
            d = d.setdefault(p, {})
        d[parts[-1]] = value
    return from_dict(cls, nested, f"demo:{section}", base=cfg)


def run_pretrain(cfg, out: Path) -> tuple[Path, bool]:
    base = _tiny(pretrain_stage.PretrainConfig, "pretrain")
    stages = [dict(to_dict(s), steps=n) for s, n in zip(base.stages, cfg.pretrain_steps)]
    pc = _tiny(pretrain_stage.PretrainConfig, "pretrain", out_dir=str(out / "pretrain"), stages=stages, seed=cfg.seed,
               threads=cfg.threads, eval_every=max(1, sum(cfg.pretrain_steps) // 4),
               save_every=sum(cfg.pretrain_steps), decay_steps=max(1, cfg.pretrain_steps[-1] // 2),
               warmup_steps=max(1, min(20, cfg.pretrain_steps[0] // 4)),
               batch_warmup_steps=max(1, min(30, cfg.pretrain_steps[0] // 3)),
               **{"toy.seed": cfg.seed, "toy.docs_per_source": 2000 if cfg.quick else 8000})
    ran = not _done(out / "pretrain", "pretrain", pc)
    if ran:
        pretrain_stage.main(pc)
    return out / "pretrain" / "final", ran


def sft_config(cfg, out: Path, init: Path, name: str = "sft", steps: int | None = None, lr: float | None = None):
    kw = {"init_from": str(init), "out_dir": str(out / name), "seed": cfg.seed, "threads": cfg.threads,
          "steps": steps if steps is not None else cfg.sft_steps, "decontaminate_toy_heldout": max(1000, cfg.eval_math),
          "toy.seed": cfg.seed + 1, "toy.problems": 600 if cfg.quick else 3000,
          "toy.code_problems": 100 if cfg.quick else 1000}
    if lr is not None:
        kw["lr"], kw["decay_steps"] = lr, 0
    return _tiny(sft_stage.SFTConfig, "sft", **kw)


def run_sft(cfg, out: Path, base: Path) -> tuple[Path, bool]:
    sc = sft_config(cfg, out, base)
    ran = not _done(out / "sft", "sft", sc, base)
    if ran:
        sft_stage.main(sc)
        _mark_start(out / "sft", base)
    return out / "sft" / "final", ran


def control_save_every(cfg, steps: int) -> int:
    """The control's checkpoint interval: one checkpoint per ``curve_every`` RL steps' worth of compute."""
    return max(1, round(steps * cfg.curve_every / max(1, cfg.rl_steps)))


def run_control(cfg, out: Path, sft: Path, steps: int) -> tuple[Path, bool]:
    """SFT continued on the same data, at the SFT run's final (low) learning rate, for RL's compute; with a
    checkpoint per ``curve_every`` RL steps' worth of compute for the held-out curve."""
    base = sft_config(cfg, out, sft)
    low = base.lr * base.min_lr_ratio if base.decay_steps else base.lr
    steps = max(1, steps)
    every = control_save_every(cfg, steps)
    sc = sft_config(cfg, out, sft, name="control", steps=steps, lr=low)
    sc = dataclasses.replace(sc, save_every=every, keep_checkpoints=steps // every + 1)
    ran = not _done(out / "control", "sft", sc, sft)
    if ran:
        sft_stage.main(sc)
        _mark_start(out / "control", sft)
    return out / "control" / "final", ran


def rl_config(cfg, out: Path, init: Path, name: str, steps: int, code_scheme: str = "strict", code_only: bool = False):
    """An RL run of the demo: checkpoints every ``curve_every`` steps (all kept) for the held-out curves;
    ``code_only``: the toy code problems alone (the code-reward comparison), half the batch, a checkpoint every
    quarter of the run."""
    quick = {"scheduler.batch_size": 2, "scheduler.group_size": 4, "rollout.max_new_tokens": 64,
             "rewards.level_rollouts": 2, "actor.mini_batch_groups": 2} if cfg.quick else {}
    if code_only:
        every = max(1, steps // 4)
        batch = 2 if cfg.quick else 4
        quick = {**quick, "scheduler.batch_size": batch, "actor.mini_batch_groups": max(1, batch // 2)}
    else:
        every = max(1, min(cfg.curve_every, steps))
        batch = 2 if cfg.quick else 8
    n_math = 0 if code_only else 200 if cfg.quick else 2000
    n_code = 24 if cfg.quick else 48
    return _tiny(rl_stage.RLConfig, "rl", init_from=str(init), out_dir=str(out / name), steps=steps, seed=cfg.seed,
                 threads=1, eval_every=0, save_every=every, keep_checkpoints=steps // every + 1, **{
                     "toy.seed": cfg.seed + 7, "toy.heldout_math": 0, "toy.heldout_code": 0,
                     "toy.math_problems": n_math, "toy.code_problems": n_code, "rewards.code_scheme": code_scheme,
                     # a code-only run whose reward gives no signal stalls after 10 batches' worth of tasks
                     "scheduler.max_tasks_per_step": 10 * batch if code_only else 0,
                     "rollout.backend": cfg.rollout_backend, **quick,
                     # all-or-nothing needs no test levels: skip the starting model's pass matrix
                     **({"rewards.level_rollouts": 0} if code_scheme == "vanilla" else {})})


def run_rl(cfg, out: Path, init: Path, name: str, steps: int, code_scheme: str = "strict",
           code_only: bool = False) -> tuple[Path, list[dict], bool]:
    """One RL run; returns (its model, its metrics per step, whether it ran now).

    ``code_only`` runs (the code-reward comparison) may *stall*: under the all-or-nothing reward no group of a
    weak start may be informative, and dynamic sampling then cannot fill a batch -- the sparse-reward failure the
    comparison is there to show.  The stall is recorded in ``stalled.json`` (step and message) and the run's model
    is its last checkpoint (or its start), instead of the demo stopping."""
    rc = rl_config(cfg, out, init, name, steps, code_scheme, code_only)
    stall = out / name / "stalled.json"
    stalled = (code_only and stall.is_file() and json.loads(stall.read_text()).get("config") == to_json(rc)
               and _same_start(out / name, init))
    ran = not stalled and not _done(out / name, "rl", rc, init)
    if ran:
        stall.unlink(missing_ok=True)
        try:
            rl_stage.main(rc)
        except MimoError as e:
            if not code_only or "informative groups" not in str(e):
                raise
            print(f"[demo] {name}: stalled: {e}", flush=True)
            write_json(stall, {"error": str(e), "config": to_json(rc)})
        _mark_start(out / name, init)
    path = out / name / "metrics.jsonl"
    metrics = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    final = out / name / "final"
    if not (final / "model.safetensors").is_file():
        final = checkpoints(out / name)[-1][1] if checkpoints(out / name) else init
    return final, [m for m in metrics if m.get("step", 0) > 0], ran


def stalled_runs(out: Path, names) -> dict[str, str]:
    """The runs of ``names`` that stalled (name -> message)."""
    found = {}
    for name in names:
        path = out / name / "stalled.json"
        if path.is_file():
            found[name] = json.loads(path.read_text())["error"]
    return found


def to_json(cfg) -> dict:
    return json.loads(json.dumps(to_dict(cfg)))


def compute_control_steps(rl_metrics: list[dict], cfg) -> int:
    """SFT steps with the compute of the RL run: a decoded token costs a forward (2N FLOPs), a trained token a
    forward and a backward (6N); an SFT step trains batch_size x seq_len tokens."""
    sc = sft_config(cfg, Path("."), Path("."))
    rl_flops = sum(2 * m.get("gen_tokens", 0) + 6 * m.get("train_tokens", 0) for m in rl_metrics)
    return max(1, math.ceil(rl_flops / (6 * sc.batch_size * sc.seq_len)))


def run_mtp(cfg, out: Path, model: Path) -> tuple[Path, bool]:
    mc = _tiny(mtp_stage.MtpConfig, "mtp", init_from=str(model), out_dir=str(out / "mtp"),
               num_mtp_layers=cfg.mtp_layers, steps=cfg.mtp_steps, seed=cfg.seed, threads=cfg.threads, accept_prompts=0,
               decay_steps=max(1, cfg.mtp_steps // 3), warmup_steps=max(1, min(20, cfg.mtp_steps // 5)),
               eval_every=cfg.mtp_steps, save_every=cfg.mtp_steps,
               **{"toy.seed": cfg.seed, "toy.docs_per_source": 2000 if cfg.quick else 8000})
    ran = not _done(out / "mtp", "mtp", mc, model)
    if ran:
        mtp_stage.main(mc)
        _mark_start(out / "mtp", model)
    return out / "mtp" / "final", ran


def heldout_problems(cfg) -> tuple[list, list]:
    math_p = harder().math(HELDOUT_SEED).sample(cfg.eval_math, "heldout")
    code_p = harder().code(HELDOUT_SEED).sample(cfg.eval_code, "heldout")
    return math_p, code_p


def benchmarks(cfg) -> dict[str, Benchmark]:
    """The demo's held-out benchmarks: the family table's (``eval_*`` problems x ``eval_samples``), the pass@k
    subsets (the first ``passk_problems`` / ``passk_code_problems``, ``passk_samples`` samples) and the curve
    subsets (the first ``curve_problems`` math and ``curve_code_problems`` code problems, evaluated at every
    checkpoint)."""
    math_p, code_p = heldout_problems(cfg)
    k, n, nc = cfg.passk_samples, cfg.passk_problems, cfg.passk_code_problems
    return {
        "toy_math": toy_benchmark("toy_math", math_p, samples=cfg.eval_samples, max_new_tokens=96),
        "toy_code": toy_benchmark("toy_code", code_p, samples=cfg.eval_samples, max_new_tokens=128),
        "toy_math_passk": toy_benchmark("toy_math_passk", math_p[:n], samples=k, max_new_tokens=96),
        "toy_code_passk": toy_benchmark("toy_code_passk", code_p[:nc], samples=k, max_new_tokens=128),
        "toy_math_curve": toy_benchmark("toy_math_curve", math_p[:cfg.curve_problems], samples=1, max_new_tokens=96),
        "toy_code_curve": toy_benchmark("toy_code_curve", code_p[:cfg.curve_code_problems], samples=2,
                                        max_new_tokens=128),
    }


def weights_digest(model_dir: Path) -> str:
    h = hashlib.sha1()
    with open(model_dir / "model.safetensors", "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """``(step, model dir)`` of a run's numbered checkpoints, by step."""
    found = []
    for d in (run_dir / "checkpoints").glob("step_*"):
        if (d / "model.safetensors").is_file() and d.name[5:].isdigit():
            found.append((int(d.name[5:]), d))
    return sorted(found)


class Evaluator:
    """Evaluates model directories under MiMo's protocol into ``out/eval/<label>/``, spread over ``cfg.threads``
    processes (a 1M-parameter model's generation is single-threaded and dispatch-bound, so a second process uses
    the second core); each process has one reward worker.

    A folder remembers the digest of the weights it was made with: the same weights reuse its finished results
    (``results.json``) or resume its samples; other weights start it over.  Every evaluation is deterministic
    (seeded per batch), so which process runs it does not change its numbers."""

    def __init__(self, cfg, out: Path):
        self.cfg, self.root = cfg, out / "eval"
        self.tasks: dict[str, tuple[Path, list[str]]] = {}
        self.results: dict[str, dict] = {}
        self.fresh = 0

    def add(self, label: str, model_dir: Path, benches: list[str]) -> str:
        self.tasks[label] = (model_dir, benches)
        return label

    def _cached(self, label: str, model_dir: Path, benches: list[str]) -> dict | None:
        folder = self.root / label
        mark, done = folder / "weights.sha1", folder / "results.json"
        if mark.is_file() and done.is_file() and mark.read_text().strip() == weights_digest(model_dir):
            cached = json.loads(done.read_text())
            if set(cached) == set(benches):
                return cached
        return None

    def run(self) -> dict[str, dict]:
        todo = []
        for label, (model_dir, benches) in self.tasks.items():
            cached = self._cached(label, model_dir, benches)
            if cached is None:
                todo.append((label, str(model_dir), benches))
            else:
                self.results[label] = cached
        self.fresh = len(todo)
        if todo:
            procs = max(1, min(self.cfg.threads, len(todo)))
            ctx = multiprocessing.get_context("spawn")
            queue = ctx.Queue()
            for task in todo:
                queue.put(task)
            for _ in range(procs):
                queue.put(None)
            workers = [ctx.Process(target=_eval_worker, args=(self.cfg, str(self.root), queue), daemon=False)
                       for _ in range(procs)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            bad = [w.exitcode for w in workers if w.exitcode != 0]
            if bad:
                raise MimoError(f"demo: an evaluation process failed (exit code {bad[0]}); its traceback is above")
            for label, model_dir, benches in todo:
                res = self._cached(label, Path(model_dir), benches)
                if res is None:
                    raise MimoError(f"demo: evaluation {label} left no results in {self.root / label}")
                self.results[label] = res
        return self.results


def _eval_worker(cfg, root: str, queue) -> None:
    """One evaluation process: takes ``(label, model dir, benchmark names)`` tasks until ``None``."""
    import torch

    torch.set_num_threads(1)
    benches = benchmarks(cfg)
    protocol = EvalProtocol(temperature=0.6, top_p=0.95, seed=cfg.seed)  # each benchmark's own sample count
    with RewardPool(PoolConfig(workers=1)) as pool:
        while (task := queue.get()) is not None:
            label, model_dir, names = task
            folder = Path(root) / label
            digest, mark = weights_digest(Path(model_dir)), folder / "weights.sha1"
            stale = not mark.is_file() or mark.read_text().strip() != digest
            folder.mkdir(parents=True, exist_ok=True)
            mark.write_text(digest)
            model, tok = load_model_dir(model_dir)
            results = evaluate((model, tok), [benches[n] for n in names], protocol, out_dir=folder, pool=pool,
                               overwrite=stale, batch_size=cfg.eval_batch, show_progress=False, plots=False)
            write_json(folder / "results.json", results)
            line = ", ".join(f"{n} {100 * r['pass@1']:.1f} +- {100 * r['stderr']:.1f}" for n, r in results.items())
            print(f"[demo/eval] {label}: {line}", flush=True)


def evaluate_family(cfg, out: Path, models: dict[str, Path], curve_runs: dict[str, tuple[Path, str, str]],
                    code_runs: dict[str, Path]) -> tuple[dict, dict, dict, bool]:
    """Every model on the same held-out problems under MiMo's protocol: the family table and pass@k subsets
    (``models``), held-out curves over each run's checkpoints (``curve_runs``: name -> (run dir, name of the
    start model in ``models``, "math" | "code")), and the code-reward comparison's final models on held-out code
    (``code_runs``).

    Returns ``(results, curves, code_results, evaluated_anything)``; ``curves[name]`` is ``[(step, accuracy,
    stderr), ...]`` from step 0 (the start model)."""
    ev = Evaluator(cfg, out)
    family = ["toy_math", "toy_code", "toy_math_passk", "toy_code_passk"]
    for name, path in models.items():
        ev.add(name, path, family)
    for name, path in code_runs.items():
        ev.add(name, path, ["toy_code"])
    curve_labels: dict[str, list[tuple[int, str, str]]] = {}
    for name, (run_dir, start, kind) in curve_runs.items():
        bench = f"toy_{kind}_curve"
        curve_labels[name] = [(0, ev.add(f"curves/{start}_{kind}", models[start], [bench]), bench)]
        curve_labels[name] += [(step, ev.add(f"curves/{name}/step_{step:05d}", path, [bench]), bench)
                               for step, path in checkpoints(run_dir) if step > 0]
    done = ev.run()
    results = {name: done[name] for name in models}
    code_results = {name: done[name]["toy_code"] for name in code_runs}
    curves = {name: [(step, done[label][bench]["pass@1"], done[label][bench]["stderr"])
                     for step, label, bench in points] for name, points in curve_labels.items()}
    for name, pts in curves.items():
        print(f"[demo/eval] {name} curve: " + ", ".join(f"{s}: {100 * a:.1f}" for s, a, _ in pts), flush=True)
    for kind, n in (("math", cfg.passk_problems), ("code", cfg.passk_code_problems)):
        plot_pass_at_k({m: r[f"toy_{kind}_passk"]["pass@k"] for m, r in results.items()},
                       out / "plots" / f"pass_at_k_toy_{kind}.png",
                       f"pass@k, first {n} held-out toy {kind} problems, {cfg.passk_samples} samples")
    return results, curves, code_results, ev.fresh > 0


def measure_specdec(cfg, out: Path, model_dir: Path) -> tuple[dict, bool]:
    """Speculative vs plain decoding on the MTP model; reused from ``specdec.json`` while the model is the same."""
    math_p, _ = heldout_problems(cfg)
    key = {"weights": weights_digest(model_dir), "prompts": cfg.specdec_prompts, "quick": cfg.quick, "depths": "all"}
    saved = out / "specdec.json"
    if saved.is_file():
        old = json.loads(saved.read_text())
        if old.get("key") == key:
            return old, False
    model, tok = load_model_dir(model_dir)
    prompts = [tok.chat_prompt(p.prompt_text()) for p in math_p[: cfg.specdec_prompts]]
    # every draft depth, so the report can say which one pays (if any) at each temperature
    res = specdec_benchmark(model, prompts, max_new_tokens=96, stop_ids=tok.stop_ids, temperatures=(0.0, 0.6),
                            top_p=0.95, peers=False, repeats=1 if cfg.quick else 2,
                            depths=tuple(range(1, model.num_mtp_layers)), log=lambda s: print(f"[demo/specdec] {s}"))
    res["key"] = key
    write_json(saved, res)
    return res, True


def measure_rollout(rl_metrics: list[dict], rlzero_metrics: list[dict]) -> dict:
    rows = rl_metrics + rlzero_metrics

    def mean(key):
        vals = [m[key] for m in rows if key in m]
        return sum(vals) / len(vals) if vals else 0.0

    return {"idle_ratio": mean("idle_ratio"), "waste_ratio": mean("waste_ratio"), "rollout_s": mean("rollout_s"),
            "reward_s": mean("reward_s"), "train_s": mean("train_s"), "informative_groups": mean("informative_groups"),
            "launched_groups": mean("launched_groups"), "steps": len(rows)}
