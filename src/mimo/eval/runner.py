"""The evaluation loop: generate what is missing, grade as samples arrive, measure, report -- resumably.

``evaluate(model_or_backend, benchmarks, protocol, out_dir)`` is the one entry point (``mimo eval`` and
``mimo demo`` both call it).  Per benchmark it keeps, under ``out_dir/<benchmark>/``:

* ``completions.jsonl`` -- every sample, appended the moment the backend returns it
  (``{"benchmark", "problem_id", "sample", "completion", "tokens", "finish", "prompt_sha"}``; replayable as is);
* ``grades.jsonl`` -- ``{"problem_id", "sample", "score", "reason", "ref_sha"}``, appended as grades finish;
* ``run.json`` -- the backend and sampling settings the samples were made with;
* ``problems.jsonl``, ``pass_at_k.png`` -- written by the report at the end.

Resuming: a second run over the same folder reads both files (a line cut short by a kill is dropped), generates
only the samples that are missing, grades only the completions without a grade, and refuses to mix samples made
with other settings (``overwrite=True`` starts the benchmark afresh).  A request for samples ``s..`` of problem
``p`` is seeded with ``crc32(seed:benchmark:p) + s`` (:func:`sample_seed`), so a resumed run draws from the same
distribution, and reproduces an uninterrupted run exactly where the backend batches the same way (the local
backend with ``batch_size=1``, tested).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sys
import tempfile
import time
import zlib
from collections import Counter
from pathlib import Path

from mimo.config import F
from mimo.errors import MimoError
from mimo.eval import grading
from mimo.eval.backends import EvalBackend, EvalRequest, LocalBackend, Sampling
from mimo.eval.benchmarks import Benchmark, LoadOptions, load_benchmark
from mimo.eval.metrics import benchmark_metrics
from mimo.eval.report import write_benchmark_report, write_report
from mimo.model.io import load_model_dir
from mimo.rewards import passed
from mimo.rewards.pool import RewardPool
from mimo.utils.io import append_jsonl, iter_jsonl, write_json
from mimo.utils.logging import format_seconds, progress


@dataclasses.dataclass
class EvalProtocol:
    """How samples are drawn (defaults: MiMo's evaluation protocol, docs/design.md §1.7)."""

    temperature: float = F(0.6, "sampling temperature")
    top_p: float = F(0.95, "nucleus sampling mass")
    n: int = F(0, "samples per problem for every benchmark (0: each benchmark's protocol count, e.g. AIME 32)")
    samples: dict[str, int] = F(factory=dict, help="samples per problem for some benchmarks, e.g. {aime24: 64}")
    max_new_tokens: int = F(0, "new tokens per sample for every benchmark (0: each benchmark's budget, 32768)")
    system_prompt: str = F("", "system prompt (MiMo evaluates with an empty one)")
    seed: int = F(0, "base sampling seed")

    def samples_of(self, bench: Benchmark) -> int:
        return self.samples.get(bench.name) or self.n or bench.samples

    def budget_of(self, bench: Benchmark) -> int:
        return self.max_new_tokens or bench.max_new_tokens

    def sampling(self) -> Sampling:
        return Sampling(self.temperature, self.top_p, self.system_prompt)


def sample_seed(seed: int, bench: str, problem_id: str, sample: int) -> int:
    """The seed of sample ``sample`` of a problem; consecutive samples get consecutive seeds, so a request for
    samples ``s .. s + n - 1`` (or any part of it a backend splits off) is seeded by its first sample."""
    return (zlib.crc32(f"{seed}:{bench}:{problem_id}".encode()) + sample) % (1 << 32)


# --------------------------------------------------------------------------------------------------- state


def _read_tail_safe(path: Path) -> list[dict]:
    """Records of an append-only JSONL file; a last line cut short by a kill is removed from the file."""
    if not path.is_file():
        return []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with open(path, "r+b") as f:
            f.truncate(cut)
    return list(iter_jsonl(path))


class _Grader:
    """Submits grades to a reward pool created on first use (choice-only runs never start one)."""

    def __init__(self, pool, pool_cfg):
        self.pool, self.cfg, self.owned = pool, pool_cfg, False

    def submit(self, item, completion: str):
        if self.pool is None and item.grader != "choice":
            self.pool, self.owned = RewardPool(self.cfg), True
        return grading.submit(self.pool, item.grader, completion, item.reference)

    def close(self) -> None:
        if self.owned:
            self.pool.close()
            self.pool, self.owned = None, False


def _settings(backend: EvalBackend, protocol: EvalProtocol, bench: Benchmark) -> dict:
    return {**backend.describe(), "temperature": protocol.temperature, "top_p": protocol.top_p,
            "max_new_tokens": protocol.budget_of(bench), "system_prompt": protocol.system_prompt,
            "seed": protocol.seed}


def _check_settings(bdir: Path, settings: dict, overwrite: bool) -> None:
    path = bdir / "run.json"
    if overwrite and bdir.exists():
        shutil.rmtree(bdir)
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        diff = [k for k in sorted(set(old) | set(settings)) if old.get(k) != settings.get(k)]
        if diff:
            k = diff[0]
            raise MimoError(f"{bdir}: its samples were made with {k}={old.get(k)!r}, this run has "
                            f"{settings.get(k)!r}; use another --out or --overwrite true")
    bdir.mkdir(parents=True, exist_ok=True)
    write_json(path, settings)


# ---------------------------------------------------------------------------------------------------- running


def _digest(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def _runs(samples: list[int]) -> list[list[int]]:
    """Consecutive runs: [0, 1, 3, 4, 5] -> [[0, 1], [3, 4, 5]] (one request each)."""
    runs: list[list[int]] = []
    for s in samples:
        if runs and runs[-1][-1] == s - 1:
            runs[-1].append(s)
        else:
            runs.append([s])
    return runs


class _BenchmarkRun:
    """One benchmark in one output folder: the saved samples and grades, what is missing, and the metrics.

    Each completion record carries the hash of the prompt it answered (a sample made for another prompt -- another
    GPQA shuffle, an edited file -- is refused) and each grade the hash of the reference it was checked against
    (grades against another reference are dropped and redone)."""

    def __init__(self, bench: Benchmark, protocol: EvalProtocol, bdir: Path, backend: EvalBackend):
        self.bench, self.protocol, self.bdir = bench, protocol, bdir
        self.comp_path, self.grade_path = bdir / "completions.jsonl", bdir / "grades.jsonl"
        self.items = {it.id: it for it in bench.items}
        self.prompt_sha = {it.id: _digest([protocol.system_prompt, it.prompt]) for it in bench.items}
        self.ref_sha = {it.id: _digest([it.grader, it.reference]) for it in bench.items}
        self.completions: dict[tuple[str, int], dict] = {}
        for rec in _read_tail_safe(self.comp_path):
            pid = rec["problem_id"]
            if pid not in self.items:
                continue  # e.g. a run with a larger --max_problems
            if rec.get("prompt_sha") != self.prompt_sha[pid]:
                raise MimoError(f"{self.comp_path}: sample {rec['sample']} of {pid!r} answered another prompt "
                                "(changed data or settings); use another --out or --overwrite true")
            self.completions[(pid, rec["sample"])] = rec
        self.grades = {(r["problem_id"], r["sample"]): r for r in _read_tail_safe(self.grade_path)
                       if (r["problem_id"], r["sample"]) in self.completions
                       and r.get("ref_sha") == self.ref_sha[r["problem_id"]]}
        self.resumed, self.generated = len(self.completions), 0
        self.target = {}
        for it in bench.items:
            fixed = backend.samples_for(bench.name, it.id)
            self.target[it.id] = protocol.samples_of(bench) if fixed is None else fixed
        self.pending: dict[tuple[str, int], object] = {}

    def requests(self) -> list[EvalRequest]:
        out = []
        for it in self.bench.items:
            missing = [s for s in range(self.target[it.id]) if (it.id, s) not in self.completions]
            out += [EvalRequest(self.bench.name, it.id, it.prompt, len(r), r[0], self.protocol.budget_of(self.bench),
                               sample_seed(self.protocol.seed, self.bench.name, it.id, r[0])) for r in _runs(missing)]
        return out

    def add(self, req: EvalRequest, gens: list, grader: _Grader) -> int:
        """Save a backend's samples at once, then send them to be graded."""
        gens = gens[:req.n]
        for j, g in enumerate(gens):
            key = (req.problem_id, req.first + j)
            rec = {"benchmark": self.bench.name, "problem_id": req.problem_id, "sample": req.first + j,
                   "completion": g.text, "tokens": g.tokens, "finish": g.finish,
                   "prompt_sha": self.prompt_sha[req.problem_id]}
            append_jsonl(self.comp_path, rec)
            self.completions[key] = rec
            self.generated += 1
            self.grade(key, grader)
        return len(gens)

    def grade(self, key: tuple[str, int], grader: _Grader) -> None:
        self.pending[key] = grader.submit(self.items[key[0]], self.completions[key]["completion"])

    def drain(self, block: bool, failed_ok: bool = False) -> None:
        """Save the grades that are ready (all of them with ``block``)."""
        for key, fut in list(self.pending.items()):
            if not (block or fut.done()):
                continue
            if failed_ok and fut.exception() is not None:
                continue
            res = fut.result()
            rec = {"problem_id": key[0], "sample": key[1], "score": res.score, "reason": res.reason,
                   "ref_sha": self.ref_sha[key[0]]}
            append_jsonl(self.grade_path, rec)
            self.grades[key] = rec
            del self.pending[key]

    def measure(self) -> tuple[dict, list[dict]]:
        scores, per_problem = [], []
        for it in self.bench.items:
            s = [self.grades[(it.id, k)]["score"] for k in range(self.target[it.id]) if (it.id, k) in self.grades]
            if s and len(s) == self.target[it.id]:
                scores.append(s)
                per_problem.append({"problem_id": it.id, "n": len(s), "correct": sum(passed(v) for v in s),
                                    "mean_score": sum(s) / len(s)})
        metrics = benchmark_metrics(scores)
        keys = [(p["problem_id"], k) for p in per_problem for k in range(p["n"])]
        used = [self.completions[k] for k in keys]
        tokens = [r["tokens"] for r in used if isinstance(r.get("tokens"), int) and r["tokens"] >= 0]
        metrics.update({
            "samples_per_problem": self.protocol.samples_of(self.bench),
            "max_new_tokens": self.protocol.budget_of(self.bench),
            "n_missing": len(self.bench.items) - metrics["n_problems"], "generated": self.generated,
            "resumed": self.resumed, "mean_tokens": sum(tokens) / len(tokens) if tokens else None,
            "truncated": sum(r.get("finish") == "length" for r in used) / len(used) if used else 0.0,
            "outcomes": dict(Counter(self.grades[k]["reason"] or "passed" for k in keys).most_common(8)),
            **grading_counts([self.grades[k]["reason"] for k in keys]),
        })
        return metrics, per_problem


def grading_counts(reasons: list) -> dict[str, int]:
    """Samples graded, failed to grade (the worker died) and timed out (the grader ran out of time), apart: a
    sample the grader never judged is not a wrong answer, and must not pass for one silently.

    >>> grading_counts([None, "wrong_answer", "timeout", "worker_died", "timeout"])
    {'graded': 2, 'failed_to_grade': 1, 'timed_out': 2}
    """
    failed = sum(r == "worker_died" for r in reasons)
    timed_out = sum(r == "timeout" for r in reasons)
    return {"graded": len(reasons) - failed - timed_out, "failed_to_grade": failed, "timed_out": timed_out}


def run_benchmark(backend: EvalBackend, bench: Benchmark, protocol: EvalProtocol, out_dir: Path, grader: _Grader,
                  overwrite: bool = False, show_progress: bool | None = None, plots: bool = True) -> dict:
    """Generate, grade and measure one benchmark (see the module docstring); returns its metrics."""

    t0 = time.perf_counter()
    bdir = out_dir / bench.name
    _check_settings(bdir, _settings(backend, protocol, bench), overwrite)
    run = _BenchmarkRun(bench, protocol, bdir, backend)
    for key in run.completions:
        if key not in run.grades:
            run.grade(key, grader)
    requests = run.requests()
    bar = progress(total=sum(r.n for r in requests), desc=f"eval {bench.name}", unit="sample",
                   disable=None if show_progress is None else not show_progress)
    try:
        if requests:
            for req, gens in backend.generate(requests, protocol.sampling()):
                bar.update(run.add(req, gens, grader))
                run.drain(block=False)
        run.drain(block=True)
    finally:
        bar.close()
        run.drain(block=False, failed_ok=True)  # interrupted: keep the grades that did finish
    metrics, per_problem = run.measure()
    metrics["seconds"] = round(time.perf_counter() - t0, 2)
    write_benchmark_report(bdir, bench, metrics, per_problem, plots)
    if metrics["n_missing"]:
        print(f"[mimo eval] warning: {bench.name}: {metrics['n_missing']} problems have no (complete) samples and "
              "are left out", file=sys.stderr)
    print(f"[mimo eval] {bench.name}: pass@1 {100 * metrics['pass@1']:.1f} ± {100 * metrics['stderr']:.1f} "
          f"({metrics['n_problems']} problems, n = {metrics['n_samples']}; {run.generated} new samples, "
          f"{run.resumed} resumed) in {format_seconds(metrics['seconds'])}; graded {metrics['graded']}, "
          f"failed to grade {metrics['failed_to_grade']}, timed out {metrics['timed_out']}", file=sys.stderr,
          flush=True)
    return metrics


def make_backend(model_or_backend, tokenizer=None, batch_size: int = 32) -> EvalBackend:
    """A backend from an :class:`EvalBackend`, a ``(model, tokenizer)`` pair, a model (with ``tokenizer=``) or a
    model directory."""
    if isinstance(model_or_backend, EvalBackend):
        return model_or_backend
    if isinstance(model_or_backend, tuple) and len(model_or_backend) == 2:
        model_or_backend, tokenizer = model_or_backend
    if isinstance(model_or_backend, (str, Path)):
        model, tok = load_model_dir(model_or_backend)
        return LocalBackend(model, tokenizer or tok, batch_size=batch_size, label=str(model_or_backend))
    return LocalBackend(model_or_backend, tokenizer, batch_size=batch_size)


def evaluate(model_or_backend, benchmarks: list, protocol: EvalProtocol | None = None,
             out_dir: str | Path | None = None, *, tokenizer=None, load: LoadOptions | None = None, pool=None,
             pool_cfg=None, batch_size: int = 32, overwrite: bool = False, plots: bool = True,
             show_progress: bool | None = None) -> dict:
    """Evaluate one model on ``benchmarks`` (names or :class:`Benchmark` objects) under ``protocol``; returns
    ``{benchmark: {"pass@1", "stderr", "n_problems", "n_samples", "pass@k": {"1": ...}, ...}}`` and writes the
    report to ``out_dir`` (a temporary folder, deleted afterwards, when None).

    ``model_or_backend``: an :class:`~mimo.eval.backends.EvalBackend`, a ``(model, tokenizer)`` pair or a model
    directory.  ``pool``: a :class:`~mimo.rewards.pool.RewardPool` to grade with (one is started, and closed, when
    needed otherwise, from ``pool_cfg``)."""

    protocol = protocol or EvalProtocol()
    load = load or (protocol if isinstance(protocol, LoadOptions) else LoadOptions())
    benches = [b if isinstance(b, Benchmark) else load_benchmark(b, load) for b in benchmarks]
    names = [b.name for b in benches]
    if len(set(names)) != len(names):
        raise MimoError(f"benchmark listed twice: {names}")
    backend = make_backend(model_or_backend, tokenizer, batch_size)
    backend.prepare(benches)
    tmp = tempfile.TemporaryDirectory(prefix="mimo-eval-") if out_dir is None else None
    out = Path(tmp.name if tmp else out_dir)
    out.mkdir(parents=True, exist_ok=True)
    grader = _Grader(pool, pool_cfg)
    results: dict[str, dict] = {}
    try:
        for bench in benches:
            results[bench.name] = run_benchmark(backend, bench, protocol, out, grader, overwrite, show_progress,
                                                plots)
        write_report(out, results, plots=plots)
    finally:
        grader.close()
        if tmp:
            tmp.cleanup()
    return results
