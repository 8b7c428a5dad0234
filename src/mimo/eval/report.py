"""The evaluation report: ``results.json``, a markdown table, pass@k curves as PNG, per-problem outcomes.

Files (``out/`` is the evaluation folder):

* ``out/results.json`` -- ``{"<benchmark>": {"pass@1", "stderr", "n_problems", "n_samples", "pass@k": {"1": ...},
  ...}}``, merged with the benchmarks an earlier run in the same folder evaluated;
* ``out/results.md`` -- one row per benchmark (pass@1 = avg@n in %, its standard error, pass@n, the published
  MiMo-7B-RL number where the paper gives one, docs/design.md §1.7);
* ``out/<benchmark>/pass_at_k.png`` -- the unbiased pass@k for k = 1..n (log-2 k axis), and ``out/pass_at_k.png``
  with every benchmark of the folder;
* ``out/<benchmark>/problems.jsonl`` -- samples, correct samples and mean score per problem.

:func:`plot_pass_at_k` draws any set of curves (e.g. several models on one benchmark, as ``mimo demo`` does).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mimo.eval.benchmarks import paper_score, title
from mimo.utils.io import write_json, write_jsonl


def plot_pass_at_k(curves: dict[str, dict], path: str | Path, heading: str = "pass@k") -> Path | None:
    """One PNG with a pass@k curve (``{"1": 0.4, "2": 0.55, ...}``, fractions) per label; None (and a warning)
    when matplotlib is not installed (``pip install 'mimo[eval]'``)."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        print("[mimo eval] warning: matplotlib not installed, no pass@k plot (pip install 'mimo[eval]')",
              file=sys.stderr)
        return None
    fig, ax = plt.subplots(figsize=(7.2 if len(curves) > 1 else 6.0, 4.0), dpi=100)
    try:
        top = 1
        for label, curve in curves.items():
            ks = sorted(int(k) for k in curve)
            if not ks:
                continue
            top = max(top, ks[-1])
            ax.plot(ks, [100 * curve[str(k)] for k in ks], marker="o" if len(ks) < 20 else None, ms=3, label=label)
        ax.set_xscale("log", base=2)
        ticks = sorted({2 ** i for i in range(top.bit_length()) if 2 ** i <= top} | {top})
        ax.set_xticks(ticks, [str(k) for k in ticks])
        ax.set_xlim(0.8, top * 1.25)
        ax.set_xlabel("k (samples)")
        ax.set_ylabel("pass@k (%)")
        ax.set_ylim(0, 102)
        ax.set_title(heading)
        ax.grid(True, alpha=0.3)
        if len(curves) > 1:  # beside the axes, where it cannot cover a line
            ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def write_benchmark_report(bdir: Path, bench, metrics: dict, per_problem: list[dict], plots: bool = True) -> None:
    write_jsonl(bdir / "problems.jsonl", per_problem)
    if plots and metrics["pass@k"]:
        plot_pass_at_k({bench.name: metrics["pass@k"]}, bdir / "pass_at_k.png",
                       f"{title(bench.name)}: pass@k ({metrics['n_problems']} problems, n = {metrics['n_samples']})")


def markdown_table(results: dict[str, dict]) -> str:
    """The results as a markdown table (numbers in %).

    >>> print(markdown_table({"aime24": {"pass@1": 0.5, "stderr": 0.05, "n_problems": 30, "n_samples": 2,
    ...                                  "pass@k": {"1": 0.5, "2": 0.6}}}))
    | benchmark | problems | samples | pass@1 (avg@n) | s.e. | pass@n | MiMo-7B-RL (paper) |
    |---|---:|---:|---:|---:|---:|---:|
    | AIME 2024 | 30 | 2 | 50.0 | 5.0 | 60.0 | 68.2 |
    """
    lines = ["| benchmark | problems | samples | pass@1 (avg@n) | s.e. | pass@n | MiMo-7B-RL (paper) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, m in results.items():
        n = m.get("n_samples", 0)
        top = m["pass@k"].get(str(n)) if n else None
        paper = paper_score(name)
        lines.append(f"| {title(name)} | {m['n_problems']} | {n} | {100 * m['pass@1']:.1f} | {100 * m['stderr']:.1f} "
                     f"| {'-' if top is None else f'{100 * top:.1f}'} | {'-' if paper is None else f'{paper:.1f}'} |")
    return "\n".join(lines)


def grading_table(results: dict[str, dict]) -> str:
    """Samples graded, failed to grade and timed out per benchmark (results written before these counts: -).

    >>> print(grading_table({"aime24": {"graded": 58, "failed_to_grade": 0, "timed_out": 2}}))
    | benchmark | graded | failed to grade | timed out |
    |---|---:|---:|---:|
    | AIME 2024 | 58 | 0 | 2 |
    """
    lines = ["| benchmark | graded | failed to grade | timed out |", "|---|---:|---:|---:|"]
    for name, m in results.items():
        cells = [str(m.get(k, "-")) for k in ("graded", "failed_to_grade", "timed_out")]
        lines.append(f"| {title(name)} | {' | '.join(cells)} |")
    return "\n".join(lines)


def write_report(out: Path, results: dict[str, dict], plots: bool = True) -> dict:
    """Merge ``results`` into ``out/results.json`` and rewrite the markdown table and the combined plot."""
    path = out / "results.json"
    merged: dict[str, dict] = {}
    if path.is_file():
        try:
            merged = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            merged = {}
    merged.update(results)
    write_json(path, merged)
    (out / "results.md").write_text(markdown_table(merged) + "\n\n" + grading_table(merged) + "\n",
                                    encoding="utf-8")
    if plots:
        curves = {title(k): v["pass@k"] for k, v in merged.items() if v.get("pass@k")}
        if curves:
            plot_pass_at_k(curves, out / "pass_at_k.png", "pass@k")
    return merged
