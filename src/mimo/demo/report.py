"""``mimo demo``'s report: ``report.json`` (the schema other tools read), ``report.md`` and PNG plots.

The family table is laid out like the paper's (rows: benchmarks; columns: Base, RL-Zero, SFT, RL), every number
``pass@1 (avg@k) +- its standard error over problems``, with the compute-matched supervised control beside it.
Each claimed ordering gives its gap in two units: the combined standard error ``sqrt(se_a^2 + se_b^2)``
(independent samples; conservative) and the paired standard error of the per-problem differences (both models
answer the same held-out problems, so this is the standard error of the gap itself).  A claim holds when the gap
is at least 3 of the *combined* standard errors (every claim: the bar a result must pass to hold on another seed and
another machine).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from mimo.demo.stages import stalled_runs
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


def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def plot_training(out: Path) -> str | None:
    """Pretraining (its three data stages marked) and SFT followed by the supervised control, train and held-out
    loss against the optimizer step."""
    plt = _plt()
    if plt is None:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3), dpi=100)
    pre = _records(out / "pretrain" / "metrics.jsonl")
    ax = axes[0]
    if pre:
        ax.plot([r["step"] for r in pre if "loss" in r], [r["loss"] for r in pre if "loss" in r], lw=1,
                label="train loss (main + MTP)")
        ev = [r for r in pre if "eval_loss" in r]
        if ev:
            ax.plot([r["step"] for r in ev], [r["eval_loss"] for r in ev], marker="o", ms=3, label="held-out loss")
        starts = [r["step"] for a, r in zip(pre, pre[1:]) if "stage" in r and r.get("stage") != a.get("stage")]
        for i, x in enumerate(starts):
            ax.axvline(x - 0.5, color="grey", ls="--", lw=0.8)
            ax.text(x, ax.get_ylim()[1], f" data stage {i + 2}", va="top", fontsize=7, color="grey")
    ax.set_title("Base: pretraining with MTP")
    sft, ctl = _records(out / "sft" / "metrics.jsonl"), _records(out / "control" / "metrics.jsonl")
    ax2 = axes[1]
    if sft:
        ax2.plot([r["step"] for r in sft if "loss" in r], [r["loss"] for r in sft if "loss" in r], lw=1,
                 label="SFT train loss")
    if ctl:
        end = max((r["step"] for r in sft), default=0)
        ax2.plot([end + r["step"] for r in ctl if "loss" in r], [r["loss"] for r in ctl if "loss" in r], lw=1,
                 label="control (more SFT, RL's compute)")
        ax2.axvline(end + 0.5, color="grey", ls="--", lw=0.8)
        ax2.text(end, ax2.get_ylim()[1], " control starts", va="top", fontsize=7, color="grey")
    ax2.set_title("SFT, then the supervised control")
    for a in axes:
        a.set_xlabel("optimizer step")
        a.set_yscale("log")
        a.grid(True, alpha=0.3)
        a.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    fig.tight_layout()
    (out / "plots").mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "plots" / "training_curves.png")
    plt.close(fig)
    return "plots/training_curves.png"


def plot_curves(out: Path, curves: dict[str, list], names: list[str], x_scale: dict[str, float], ylabel: str,
                title: str, filename: str) -> str | None:
    """Held-out accuracy (± one standard error) at each checkpoint of the named runs; legend beside the axes."""
    plt = _plt()
    if plt is None or not any(curves.get(n) for n in names):
        return None
    fig, ax = plt.subplots(figsize=(7.6, 4.0), dpi=100)
    for name in names:
        pts = curves.get(name) or []
        if not pts:
            continue
        xs = [s * x_scale.get(name, 1.0) for s, _, _ in pts]
        ys = [100 * a for _, a, _ in pts]
        es = [100 * e for _, _, e in pts]
        line = ax.plot(xs, ys, marker="o", ms=3, label=name)[0]
        ax.fill_between(xs, [y - e for y, e in zip(ys, es)], [y + e for y, e in zip(ys, es)],
                        color=line.get_color(), alpha=0.15, lw=0)
    ax.set_xlabel("RL step (control: SFT steps at the same compute)" if "control" in names else "RL step")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    (out / "plots").mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "plots" / filename)
    plt.close(fig)
    return f"plots/{filename}"


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


def best_speculative(rows: list[dict]) -> dict:
    """Per temperature, the speculative row with the most tokens/s (any draft depth) against plain decoding:
    ``{"0.6": {"depth", "tokens_per_s", "plain_tokens_per_s", "speedup", "acceptance"}, ...}``."""
    plain = {r["temperature"]: r["tokens_per_s"] for r in rows if r.get("mode") == "plain"}
    best: dict[str, dict] = {}
    for r in rows:
        t = r["temperature"]
        if r.get("mode") != "speculative" or t not in plain:
            continue
        cur = best.get(str(t))
        if cur is None or r["tokens_per_s"] > cur["tokens_per_s"]:
            best[str(t)] = {"depth": r["draft_layers"], "tokens_per_s": r["tokens_per_s"],
                            "plain_tokens_per_s": plain[t], "speedup": r["tokens_per_s"] / plain[t],
                            "acceptance": r.get("acceptance", [])}
    return best


def write_report(out: Path, cfg, results: dict, specdec: dict, rollout: dict, control_steps: int,
                 curves: dict[str, list], code_results: dict[str, dict], stage_seconds: dict[str, float],
                 invocation: dict[str, float], reused: list[str], invocation_seconds: float) -> dict:
    """``report.json`` and ``report.md``.  ``stage_seconds``: each stage's time when it did its work (a re-run
    keeps them); ``invocation``: this invocation's own times, ``reused`` the stages it did not redo."""
    family = {m: {k: _cell(results[m][b]) for k, b in BENCH.items()} for m in FAMILY}
    control = {k: _cell(results["control"][b]) for k, b in BENCH.items()}
    checks = []
    for a, b, bench in CLAIMS:
        pts, z = gap(results, a, b, bench)
        zp = paired_gap(out, a, b, bench)
        checks.append({"claim": f"{a} > {b} on {bench}", "points": round(pts, 2), "z": round(z, 2),
                       "z_paired": round(zp, 2) if math.isfinite(zp) else None, "holds": z >= 3.0})
    passk = {kind: {m: r[f"toy_{kind}_passk"]["pass@k"] for m, r in results.items()} for kind in ("math", "code")}
    start_code = family["SFT"]["code"]
    report = {
        "family": family,
        "control": control,
        "control_sft_steps": control_steps,
        "pass_at_k": passk,
        "curves": {name: [{"step": s, "accuracy": a, "stderr": e} for s, a, e in pts] for name, pts in curves.items()},
        "code_rewards": {"start (SFT)": start_code, **{k.removeprefix("code_"): _cell(v)
                                                        for k, v in code_results.items()}},
        "code_rewards_stalled": {k.removeprefix("code_"): v for k, v in stalled_runs(out, code_results).items()},
        "mtp": {"acceptance": specdec.get("acceptance", []), "speedup": specdec.get("speedup", 0.0),
                "tokens_per_s_plain": specdec.get("tokens_per_s_plain"),
                "tokens_per_s_speculative": specdec.get("tokens_per_s_speculative"),
                "best": best_speculative(specdec.get("rows", []))},
        "rollout": {"idle_ratio": rollout["idle_ratio"], "waste_ratio": rollout["waste_ratio"], **rollout},
        "checks": checks,
        "quick": bool(cfg.quick),
        "stage_seconds": {k: round(v, 1) for k, v in stage_seconds.items()},
        "seconds": round(sum(stage_seconds.values()), 1),
        "invocation_seconds": round(invocation_seconds, 1),
        "invocation_stage_seconds": {k: round(v, 1) for k, v in invocation.items()},
        "reused_stages": list(reused),
        "config": dataclasses.asdict(cfg),
    }
    scale = {"control": cfg.rl_steps / max(1, control_steps)}
    plots = [p for p in (
        plot_training(out),
        plot_curves(out, curves, ["RL", "RL-Zero", "control"], scale, "held-out math accuracy (%)",
                    f"Held-out accuracy during training (first {cfg.curve_problems} held-out math problems, "
                    "T=0.6)", "heldout_curves.png"),
        plot_curves(out, {k.removeprefix("code_"): v for k, v in curves.items() if k.startswith("code_")},
                    list(cfg.code_rewards), {}, "held-out code pass rate (%)",
                    f"Code RL from SFT: reward schemes (first {cfg.curve_code_problems} held-out code "
                    "problems, T=0.6)", "code_rewards.png"),
    ) if p]
    write_json(out / "report.json", report)
    (out / "report.md").write_text(markdown(report, plots), encoding="utf-8")
    return report


def code_verdict(cr: dict) -> str:
    """One sentence on the code-reward comparison: the best scheme against each other one (gap in points and in
    combined standard errors), and plainly when no scheme wins at 3 standard errors."""
    schemes = {k: v for k, v in cr.items() if k != "start (SFT)"}
    best = max(schemes, key=lambda k: schemes[k]["pass@1"])
    parts, wins = [], True
    for other, c in schemes.items():
        if other == best:
            continue
        se = math.hypot(schemes[best]["stderr"], c["stderr"])
        z = (schemes[best]["pass@1"] - c["pass@1"]) / se if se > 0 else 0.0
        wins &= z >= 3.0
        parts.append(f"{100 * (schemes[best]['pass@1'] - c['pass@1']):+.1f} points over {other} ({z:.1f} s.e.)")
    head = f"**{best}** is ahead: " if wins else f"No reward wins at 3 s.e.; {best} is highest: "
    return head + "; ".join(parts) + "."


def _pct(c: dict) -> str:
    return f"{100 * c['pass@1']:.1f} ± {100 * c['stderr']:.1f}"


def markdown(report: dict, plots: list[str]) -> str:
    fam, ctl = report["family"], report["control"]
    cfg = report["config"]
    k = cfg["eval_samples"]
    lines = ["# mimo demo: the MiMo family at toy scale", ""]
    if report.get("quick"):
        lines += ["> **Smoke test (`--quick`).** Every stage ran, with budgets cut to a few minutes: the numbers "
                  "below are too small to mean anything and the claimed orderings are **not expected to hold**. "
                  "Run `mimo demo` (no `--quick`) for the real table.", ""]
    built = f"Built in {report['seconds'] / 60:.1f} minutes (each stage's time when it ran)"
    if report.get("reused_stages"):
        built += (f"; this invocation took {report['invocation_seconds']:.0f} s and reused "
                  f"{', '.join(report['reused_stages'])} from an earlier one")
    lines += [
        f"{built}. Held-out problems never seen in training; MiMo's protocol: temperature 0.6, top-p 0.95, "
        f"pass@1 = avg@{k} in %, ± one standard error over problems.",
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
    lines += ["", "A claim holds when its gap is at least 3 combined standard errors.", "",
              "| Claim (paper's ordering) | gap (points) | gap / combined s.e. | gap / paired s.e. | holds |",
              "|---|---|---|---|---|"]
    for c in report["checks"]:
        zp = f"{c['z_paired']:+.1f}" if c.get("z_paired") is not None else "-"
        lines.append(f"| {c['claim']} | {c['points']:+.1f} | {c['z']:+.1f} | {zp} | {'yes' if c['holds'] else 'NO'} |")
    cr = report.get("code_rewards") or {}
    if len(cr) > 1:
        lines += ["", f"## Code reward schemes (RL from SFT on the toy code problems, {cfg['code_rl_steps']} steps "
                  "each, same seed)", "",
                  "| held-out code | " + " | ".join(cr) + " |", "|---" * (len(cr) + 1) + "|",
                  f"| {cr['start (SFT)']['n']} problems, pass@1 | " + " | ".join(_pct(c) for c in cr.values()) + " |",
                  "", "vanilla: 1 only when every test passes; strict: a difficulty level counts when it and every "
                  "easier level pass; soft: each passed test's share of its level (levels from SFT's pass matrix). "
                  f"RL-Zero uses the {cfg['rlzero_code_scheme']} reward."]
        lines += ["", code_verdict(cr)]
        for scheme, why in (report.get("code_rewards_stalled") or {}).items():
            lines += ["", f"**{scheme} stalled**: {why.split(': ', 1)[-1]} -- no batch could be filled, so its "
                      "column is its last checkpoint (or SFT itself)."]
    mtp, ro = report["mtp"], report["rollout"]
    lines += [
        "",
        "## MTP speculative decoding (RL model with the extra MTP layers, chat prompts, batch 1, best draft depth)",
        "",
        "| temperature | plain tok/s | best depth | speculative tok/s | speedup | acceptance per MTP layer |",
        "|---|---|---|---|---|---|",
    ]
    best = mtp.get("best") or {}
    for temp, b in best.items():
        acc = " / ".join(f"{100 * a:.0f}%" for a in b["acceptance"])
        lines.append(f"| {temp} | {b['plain_tokens_per_s']:.0f} | {b['depth']} | {b['tokens_per_s']:.0f} | "
                     f"{b['speedup']:.2f}x | {acc} |")
    lines += ["", "On this run " + "; ".join(
        f"at T={temp} speculative decoding {'pays' if b['speedup'] > 1.0 else '**does not pay**'} "
        f"({b['speedup']:.2f}x with {b['depth']} draft layer{'s' if b['depth'] > 1 else ''})"
        for temp, b in best.items()) + "." if best else ""]
    if best and min(b["speedup"] for b in best.values()) <= 1.0:
        lines += ["", "Where it does not pay, a decode step of this small model is dispatch-bound, so each MTP layer "
                  "costs a large share of a step; `python benchmarks/specdec.py` measures a deeper model."]
    lines += [
        "",
        "## Seamless Rollout Engine (RL and RL-Zero runs, mean per step)",
        "",
        "| worker idle ratio | sample waste ratio | rollout s | reward s | train s | groups launched / informative |",
        "|---|---|---|---|---|---|",
        f"| {100 * ro['idle_ratio']:.1f}% | {100 * ro['waste_ratio']:.1f}% | {ro['rollout_s']:.1f} | "
        f"{ro['reward_s']:.1f} | {ro['train_s']:.1f} | {ro['launched_groups']:.1f} / {ro['informative_groups']:.1f} |",
        "",
        "## Time per stage (s, when the stage ran)",
        "",
        "| " + " | ".join(report["stage_seconds"]) + " |",
        "|" + "---|" * len(report["stage_seconds"]),
        "| " + " | ".join(f"{v:.0f}" for v in report["stage_seconds"].values()) + " |",
        "",
        "## Plots",
        "",
    ]
    lines += [f"![{p}]({p})" for p in plots]
    lines += ["![pass@k math](plots/pass_at_k_toy_math.png)", "![pass@k code](plots/pass_at_k_toy_code.png)", ""]
    return "\n".join(lines)
