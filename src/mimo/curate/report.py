"""The curation report: every dropped problem under its reason, the malformed lines, and a markdown summary.

JSON (``--report FILE``)::

    {"input": FILE, "records": 40, "kept": 31,
     "dropped": {"proof": ["m3", ...], "multiple_choice": [...], ...},     # every reason, [] when none
     "counts": {"proof": 2, ...},
     "kinds": {"math": {"input": 30, "kept": 24}, "code": {...}},
     "malformed_lines": [{"line": 7, "reason": "malformed JSON (...)"}],
     "dropped_records": [{"id": "m3", "line": 4, "kind": "math", "reason": "proof", "detail": "..."}, ...],
     "notes": {...}, "seconds": {"rules": 0.01, ...}}

Entries of ``golden_fails``/``judge_error`` also carry the golden solution's per-test ``verdicts``; difficulty drops
carry ``pass_rate`` / ``reference_pass_rate``.  A markdown summary goes beside the JSON (same name, ``.md``).  A
problem is dropped for the first reason that applies, in the order the stages run (:data:`REASONS`).
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

from mimo.utils.io import atomic_open, write_json

# reason -> what it means; in the order the stages run
REASONS: dict[str, str] = {
    "bad_record": "not a usable problem record (no 'problem' text, unknown kind)",
    "duplicate_id": "an id already used by an earlier record",
    "proof": "asks for a proof: no final answer to check (rules or the LLM classifier)",
    "multiple_choice": "multiple choice: a guess scores as often as reasoning (rules or the LLM classifier)",
    "no_tests": "code problem without tests",
    "bad_tests": "tests not in the judge's format",
    "contaminated": "shares an n-gram (16 words) with an evaluation benchmark item",
    "unparsable_answer": "gold answer missing, a placeholder or a sentence, or not parsed by Math-Verify",
    "golden_fails": "the golden solution fails at least one of its tests in the sandboxed judge",
    "judge_error": "the judge itself failed on the golden solution (sandbox error): not verifiable",
    "duplicate": "near-duplicate of an earlier kept problem (global n-gram dedup)",
    "rollout_failed": "the difficulty rollouts of this problem did not come back",
    "unsolved_by_reference": "the reference (stronger) model never solves it",
    "too_easy": "the policy model solves it too often (math: pass rate above the limit; code: every rollout)",
}


@dataclasses.dataclass
class Candidate:
    """One input problem on its way through the stages."""

    line: int
    raw: str  # the input line, verbatim (without its line break)
    rec: dict
    id: str
    kind: str
    added: dict = dataclasses.field(default_factory=dict)  # fields this run adds to the output record

    @property
    def text(self) -> str:
        return self.rec.get("problem", "")

    def output_line(self) -> str:
        """The record for the output file: the input line verbatim plus the added fields (appended before its
        closing brace, so that the original bytes stay as they were); re-serialised only when an added field
        replaces one the record already had."""
        if not self.added:
            return self.raw.strip()
        extra = self.added
        if any(k in self.rec for k in extra):
            return json.dumps({**self.rec, **extra}, ensure_ascii=False)
        body = self.raw.strip()
        assert body.endswith("}") and self.rec, "output_line: the raw line must be a non-empty JSON object"
        return body[:-1].rstrip() + ", " + json.dumps(extra, ensure_ascii=False)[1:-1] + "}"


class CurationReport:
    """Collects drops, malformed lines, notes and stage timings; writes the JSON and the markdown summary."""

    def __init__(self, input_path: str):
        self.input = input_path
        self.records = 0
        self.kinds_in: Counter = Counter()
        self.dropped: list[dict] = []
        self.malformed: list[dict] = []
        self.notes: dict = {}
        self.seconds: dict[str, float] = {}

    def drop(self, item: Candidate, reason: str, detail: str = "", **extra) -> None:
        """Record a drop; ``extra`` (e.g. the golden solution's ``verdicts``, a ``pass_rate``) goes into its entry."""
        if reason not in REASONS:
            raise ValueError(f"unknown drop reason {reason!r}")
        self.dropped.append({"id": item.id, "line": item.line, "kind": item.kind, "reason": reason,
                             "detail": detail, **extra})

    def bad_line(self, line: int, reason: str) -> None:
        self.malformed.append({"line": line, "reason": reason})

    def to_dict(self, kept: list[Candidate]) -> dict:
        by_reason: dict[str, list[str]] = {r: [] for r in REASONS}
        for d in self.dropped:
            by_reason[d["reason"]].append(d["id"])
        kinds = {k: {"input": n, "kept": sum(i.kind == k for i in kept)} for k, n in sorted(self.kinds_in.items())}
        return {"input": self.input, "records": self.records, "kept": len(kept), "dropped": by_reason,
                "counts": {r: len(ids) for r, ids in by_reason.items()}, "kinds": kinds,
                "malformed_lines": self.malformed, "dropped_records": sorted(self.dropped, key=lambda d: d["line"]),
                "notes": self.notes, "seconds": {k: round(v, 3) for k, v in self.seconds.items()}}

    def write(self, path: str | Path, kept: list[Candidate]) -> tuple[Path, Path]:
        """Write the JSON report and its markdown summary (``.md`` beside it); returns both paths."""
        path = Path(path)
        data = self.to_dict(kept)
        write_json(path, data)
        md = path.with_suffix(".md") if path.suffix != ".md" else path.with_name(path.name + ".summary.md")
        with atomic_open(md, "w", encoding="utf-8") as f:
            f.write(markdown(data))
        return path, md


def markdown(report: dict, examples: int = 5) -> str:
    """A short markdown summary of a report dict: totals, one row per reason that dropped something."""
    total_dropped = sum(report["counts"].values())
    lines = [f"# RL data curation: {report['input']}", "",
             f"{report['records']} problems read, **{report['kept']} kept**, {total_dropped} dropped, "
             f"{len(report['malformed_lines'])} malformed lines skipped.", ""]
    if report["kinds"]:
        lines += ["| kind | input | kept |", "|---|---:|---:|"]
        lines += [f"| {k} | {v['input']} | {v['kept']} |" for k, v in report["kinds"].items()]
        lines.append("")
    rows = [(r, ids) for r, ids in report["dropped"].items() if ids]
    if rows:
        lines += ["| reason | dropped | meaning | e.g. |", "|---|---:|---|---|"]
        for reason, ids in rows:
            shown = ", ".join(f"`{i}`" for i in ids[:examples]) + (" ..." if len(ids) > examples else "")
            lines.append(f"| {reason} | {len(ids)} | {REASONS[reason]} | {shown} |")
        lines.append("")
    if report["malformed_lines"]:
        shown = ", ".join(str(m["line"]) for m in report["malformed_lines"][:20])
        lines += [f"Malformed lines (skipped): {shown}" + (" ..." if len(report["malformed_lines"]) > 20 else ""),
                  ""]
    for key, value in report["notes"].items():
        lines.append(f"- {key}: {value}")
    if report["notes"]:
        lines.append("")
    lines.append("Details per problem: `dropped_records` in the JSON report.")
    return "\n".join(lines) + "\n"
