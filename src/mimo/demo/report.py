"""``mimo demo``'s report: ``report.json`` (the schema other tools read), ``report.md`` and PNG plots.

The family table is laid out like the paper's (rows: benchmarks; columns: Base, RL-Zero, SFT, RL), every number
``pass@1 (avg@k) +- its standard error over problems``, with the compute-matched supervised control beside it.
Each claimed ordering gives its gap in two units: the combined standard error ``sqrt(se_a^2 + se_b^2)``
(independent samples; conservative) and the paired standard error of the per-problem differences (both models
answer the same held-out problems, so this is the standard error of the gap itself).  A claim holds when the gap
exceeds 3 of the *combined* standard errors for SFT > Base and RL > SFT on math, and when it is positive for
RL-Zero > Base, RL > Base on code and RL > its compute-matched control (the orderings the demo is asked to show).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from mimo.utils.io import write_json

FAMILY = ("Base", "RL-Zero", "SFT", "RL")
BENCH = {"math": "toy_math", "code": "toy_code"}
CLAIMS = (  # (better, worse, benchmark): the paper's ordering, checked on the held-out sets
    ("SFT", "Base", "math"), ("RL", "SFT", "math"), ("RL-Zero", "Base", "math"), ("RL", "Base", "code"),
    ("RL", "control", "math"),
)


def _cell(r: dict) -> dict:
    return {"pass@1": r["pass@1"], "stderr": r["stderr"], "n": r["n_problems"], "pass@k": r.get("pass@k", {})}


def gap(results: dict, a: str, b: str, bench: str) -> tuple[float, float]:
    """(difference in points, difference / combined standard error)."""
    ra, rb = results[a][BENCH[bench]], results[b][BENCH[bench]]
    diff = ra["pass@1"] - rb["pass@1"]
    se = math.sqrt(ra["stderr"] ** 2 + rb["stderr"] ** 2)
    return 100 * diff, diff / se if se > 0 else (math.inf if diff > 0 else -math.inf if diff < 0 else 0.0)


def _plot_curves(out: Path, rl_metrics: list[dict], rlzero_metrics: list[dict]) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made = []
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
    for ax, name, key in ((axes[0], "pretrain", "loss"), (axes[1], "sft", "loss")):
        path = out / name / "metrics.jsonl"
        if not path.is_file():
            continue
        recs = [json.loads(line) for line in path.read_text().splitlines()]
        ax.plot([r["step"] for r in recs if key in r], [r[key] for r in recs if key in r], label="train loss")
        ev = [r for r in recs if "eval_loss" in r]
        if ev:
            ax.plot([r["step"] for r in ev], [r["eval_loss"] for r in ev], marker="o", ms=3, label="held-out loss")
        ax.set_title(f"{name} (Base)" if name == "pretrain" else name.upper())
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    (out / "plots").mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "plots" / "training_curves.png")
    plt.close(fig)
    made.append("plots/training_curves.png")
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    for label, recs in (("RL (from SFT)", rl_metrics), ("RL-Zero (from Base)", rlzero_metrics)):
        if recs:
            ax.plot([r["step"] for r in recs], [r["reward"] for r in recs], marker="o", ms=3, label=label)
    ax.set_xlabel("RL step")
    ax.set_ylabel("mean reward of the trained groups")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "plots" / "rl_reward.png")
    plt.close(fig)
    made.append("plots/rl_reward.png")
    return made


def paired_gap(out: Path, a: str, b: str, bench: str) -> float:
    """Gap / standard error of the mean per-problem difference, from the evaluation folders (nan if missing)."""
    def scores(model: str) -> dict[str, float]:
        path = out / "eval" / model / BENCH[bench] / "problems.jsonl"
        if not path.is_file():
            return {}
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return {r["problem_id"]: r["mean_score"] for r in rows}

    sa, sb = scores(a), scores(b)
    common = sorted(set(sa) & set(sb))
    if len(common) < 2:
        return math.nan
    d = [sa[p] - sb[p] for p in common]
    mean = sum(d) / len(d)
    se = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1) / len(d))
    return mean / se if se > 0 else (math.inf if mean > 0 else -math.inf if mean < 0 else 0.0)


def write_report(out: Path, cfg, results: dict, specdec: dict, rollout: dict, rl_metrics: list[dict],
                 rlzero_metrics: list[dict], control_steps: int, stage_times: dict, seconds: float) -> dict:
    family = {m: {k: _cell(results[m][b]) for k, b in BENCH.items()} for m in FAMILY}
    control = {k: _cell(results["control"][b]) for k, b in BENCH.items()}
    checks = []
    for a, b, bench in CLAIMS:
        pts, z = gap(results, a, b, bench)
        zp = paired_gap(out, a, b, bench)
        checks.append({"claim": f"{a} > {b} on {bench}", "points": round(pts, 2), "z": round(z, 2),
                       "z_paired": round(zp, 2) if math.isfinite(zp) else None,
                       "holds": z > 3.0 if (a, b) in (("SFT", "Base"), ("RL", "SFT")) else z > 0})
    report = {
        "family": family,
        "control": control,
        "control_sft_steps": control_steps,
        "mtp": {"acceptance": specdec.get("acceptance", []), "speedup": specdec.get("speedup", 0.0),
                "tokens_per_s_plain": specdec.get("tokens_per_s_plain"),
                "tokens_per_s_speculative": specdec.get("tokens_per_s_speculative")},
        "rollout": {"idle_ratio": rollout["idle_ratio"], "waste_ratio": rollout["waste_ratio"], **rollout},
        "checks": checks,
        "stage_seconds": {k: round(v, 1) for k, v in stage_times.items()},
        "seconds": seconds,
        "config": dataclasses.asdict(cfg),
    }
    plots = _plot_curves(out, rl_metrics, rlzero_metrics)
    write_json(out / "report.json", report)
    (out / "report.md").write_text(markdown(report, plots), encoding="utf-8")
    return report


def _pct(c: dict) -> str:
    return f"{100 * c['pass@1']:.1f} ± {100 * c['stderr']:.1f}"


def markdown(report: dict, plots: list[str]) -> str:
    fam, ctl = report["family"], report["control"]
    k = report["config"]["eval_samples"]
    lines = [
        "# mimo demo: the MiMo family at toy scale",
        "",
        f"Finished in {report['seconds'] / 60:.1f} minutes. Held-out problems never seen in training; MiMo's "
        f"protocol: temperature 0.6, top-p 0.95, pass@1 = avg@{k} in %, ± one standard error over problems.",
        "",
        "## Family",
        "",
        "| Benchmark | Base | RL-Zero | SFT | RL | control (SFT + more SFT, RL's compute) |",
        "|---|---|---|---|---|---|",
    ]
    for key, title in (("math", "toy math (1-4 steps)"), ("code", "toy code (functions, hidden tests)")):
        n = fam["Base"][key]["n"]
        lines.append(f"| {title}, {n} problems | " + " | ".join(_pct(fam[m][key]) for m in FAMILY) +
                     f" | {_pct(ctl[key])} |")
    lines += ["", "| Claim (paper's ordering) | gap (points) | gap / combined s.e. | gap / paired s.e. | holds |",
              "|---|---|---|---|---|"]
    for c in report["checks"]:
        zp = f"{c['z_paired']:+.1f}" if c.get("z_paired") is not None else "-"
        lines.append(f"| {c['claim']} | {c['points']:+.1f} | {c['z']:+.1f} | {zp} | {'yes' if c['holds'] else 'NO'} |")
    mtp, ro = report["mtp"], report["rollout"]
    acc = ", ".join(f"layer {i + 1}: {100 * a:.0f}%" for i, a in enumerate(mtp["acceptance"]))
    lines += [
        "",
        "## MTP speculative decoding (RL model with the extra MTP layers, greedy)",
        "",
        "| acceptance per MTP layer | plain tok/s | speculative tok/s | speedup |",
        "|---|---|---|---|",
        f"| {acc} | {mtp['tokens_per_s_plain'] or 0:.0f} | {mtp['tokens_per_s_speculative'] or 0:.0f} | "
        f"{mtp['speedup']:.2f}x |",
        "",
        "## Seamless Rollout Engine (RL and RL-Zero runs, mean per step)",
        "",
        "| worker idle ratio | sample waste ratio | rollout s | reward s | train s | groups launched / informative |",
        "|---|---|---|---|---|---|",
        f"| {100 * ro['idle_ratio']:.1f}% | {100 * ro['waste_ratio']:.1f}% | {ro['rollout_s']:.1f} | "
        f"{ro['reward_s']:.1f} | {ro['train_s']:.1f} | {ro['launched_groups']:.1f} / {ro['informative_groups']:.1f} |",
        "",
        "## Time per stage (s)",
        "",
        "| " + " | ".join(report["stage_seconds"]) + " |",
        "|" + "---|" * len(report["stage_seconds"]),
        "| " + " | ".join(f"{v:.0f}" for v in report["stage_seconds"].values()) + " |",
        "",
    ]
    if plots or True:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [
            "![pass@k math](plots/pass_at_k_toy_math.png)", "![pass@k code](plots/pass_at_k_toy_code.png)", ""]
    return "\n".join(lines)
