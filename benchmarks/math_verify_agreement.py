"""How often mimo's math reward agrees with Math-Verify's own test cases.

    .venv/bin/python benchmarks/math_verify_agreement.py --tests PATH/TO/Math-Verify/tests [--json FILE]

Reads the ``@pytest.mark.parametrize`` tables of Math-Verify's test files (their literal ``(gold, pred, expected)``
rows, with ``ast``: nothing of theirs is imported or copied) and scores every row with
``math_reward(pred, gold)`` through a :class:`~mimo.rewards.pool.RewardPool` (worker processes, wall-clock kill).
A row agrees when the score is 1 exactly when Math-Verify's test expects a match.  Their tests call Math-Verify
with per-test settings (LaTeX-only or expression-only extraction, precision, strict, set relations), mimo always
with one setting, so some disagreement is expected: the script lists every disagreement, per file.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
from pathlib import Path

GOLD_NAMES, PRED_NAMES, WANT_NAMES = ("gold",), ("pred",), ("expected", "result")


def parametrize_rows(path: Path) -> list[dict]:
    """The literal (gold, pred, expected) rows of every parametrize decorator in ``path``."""
    rows = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            if not (isinstance(deco, ast.Call) and getattr(deco.func, "attr", "") == "parametrize"
                    and len(deco.args) >= 2 and isinstance(deco.args[0], ast.Constant)):
                continue
            names = [n.strip() for n in deco.args[0].value.split(",")]
            if not isinstance(deco.args[1], (ast.List, ast.Tuple)):
                continue
            values = []
            for element in deco.args[1].elts:
                try:
                    values.append(ast.literal_eval(element))
                except ValueError:  # a row built from expressions: not a literal, skipped
                    pass
            gold = next((names.index(n) for n in GOLD_NAMES if n in names), None)
            pred = next((names.index(n) for n in PRED_NAMES if n in names), None)
            want = next((names.index(n) for n in WANT_NAMES if n in names), None)
            if gold is None or pred is None or want is None:
                continue
            for row in values:
                if isinstance(row[gold], str) and isinstance(row[pred], str):
                    rows.append({"file": path.name, "test": node.name, "line": deco.lineno, "gold": row[gold],
                                 "pred": row[pred], "expected": bool(row[want])})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", required=True, help="Math-Verify's tests/ folder")
    parser.add_argument("--workers", type=int, default=0, help="reward workers (0: one per CPU)")
    parser.add_argument("--json", default=None, help="write the counts and disagreements here")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="wall-clock seconds per row (generous: a loaded machine must not turn rows into timeouts)")
    args = parser.parse_args()
    folder = Path(args.tests)
    files = sorted(folder.glob("test_*.py"))
    if not files:
        sys.exit(f"math_verify_agreement.py: no test_*.py in {folder}")
    os.environ.setdefault("MIMO_LIGHT_IMPORT", "1")
    from mimo.rewards.pool import RewardPool, default_workers

    rows = [r for f in files for r in parametrize_rows(f)]
    with RewardPool(workers=args.workers or default_workers(), math_timeout=args.timeout) as pool:
        results = pool.map("math", [r["pred"] for r in rows], [r["gold"] for r in rows])
    for r, res in zip(rows, results):
        r["mimo"], r["reason"] = res.score == 1.0, res.reason
    agree = sum(r["mimo"] == r["expected"] for r in rows)
    per_file: dict[str, list[int]] = {}
    for r in rows:
        per_file.setdefault(r["file"], [0, 0])
        per_file[r["file"]][0] += r["mimo"] == r["expected"]
        per_file[r["file"]][1] += 1
    print(f"mimo math_reward vs Math-Verify's own test cases: {agree} of {len(rows)} agree\n")
    for name, (a, n) in per_file.items():
        print(f"  {name:<24} {a:>4} / {n}")
    print("\ndisagreements (file:line test | gold | pred | Math-Verify expects | mimo):")
    bad = [r for r in rows if r["mimo"] != r["expected"]]
    for r in bad:
        print(f"- {r['file']}:{r['line']} {r['test']} | `{r['gold']}` | `{r['pred']}` | "
              f"{'match' if r['expected'] else 'no match'} | {'match' if r['mimo'] else r['reason'] or 'no match'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"agree": agree, "total": len(rows), "per_file": per_file,
                                               "disagreements": bad}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
