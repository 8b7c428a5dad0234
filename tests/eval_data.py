"""Small benchmark files in the public formats that are not available offline (LiveCodeBench code_generation_lite,
GPQA-Diamond), written by the tests that need them."""

from __future__ import annotations

import base64
import csv
import json
import pickle
import zlib
from pathlib import Path


def lcb_private(tests: list[dict]) -> str:
    """LiveCodeBench's encoding of private tests: base64(zlib(pickle(json string)))."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()


# (question_id, contest_date, kind, correct solution, wrong solution)
LCB_PROBLEMS = [
    ("abc001_a", "2024-08-03T00:00:00", "stdin",
     "n = int(input())\nprint(sum(map(int, input().split())) * n)\n", "print(0)\n"),
    ("3100", "2024-09-15T00:00:00", "functional",
     "class Solution:\n    def maxSum(self, nums: List[int], k: int) -> int:\n"
     "        return sum(sorted(nums)[-k:])\n",
     "class Solution:\n    def maxSum(self, nums: List[int], k: int) -> int:\n        return 0\n"),
    ("abc390_b", "2025-02-10T00:00:00", "stdin",
     "print(input()[::-1])\n", "print(input())\n"),
    ("abc300_a", "2023-04-29T00:00:00", "stdin", "print(1)\n", "print(2)\n"),  # before v5: never loaded
]


def lcb_record(qid: str, date: str, kind: str) -> dict:
    if kind == "stdin":
        if qid == "abc390_b":
            public = [{"input": "abc\n", "output": "cba\n", "testtype": "stdin"}]
            private = [{"input": "xyz\n", "output": "zyx\n", "testtype": "stdin"},
                       {"input": "a\n", "output": "a\n", "testtype": "stdin"}]
        else:
            public = [{"input": "2\n1 2\n", "output": "6\n", "testtype": "stdin"}]
            private = [{"input": "3\n1 1 1\n", "output": "9\n", "testtype": "stdin"},
                       {"input": "1\n5\n", "output": "5\n", "testtype": "stdin"}]
        meta, starter = "{}", ""
    else:
        public = [{"input": "[1, 5, 3]\n2", "output": "8", "testtype": "functional"}]
        private = [{"input": "[4]\n1", "output": "4", "testtype": "functional"},
                   {"input": "[-1, -2, 7, 7]\n3", "output": "13", "testtype": "functional"}]
        meta = json.dumps({"func_name": "maxSum"})
        starter = "class Solution:\n    def maxSum(self, nums: List[int], k: int) -> int:\n        "
    return {"question_title": qid, "question_content": f"Problem {qid}: do the thing.", "platform": "atcoder",
            "question_id": qid, "contest_id": qid.split("_")[0], "contest_date": date, "starter_code": starter,
            "difficulty": "easy", "public_test_cases": json.dumps(public), "private_test_cases": lcb_private(private),
            "metadata": meta}


def write_lcb(folder: Path) -> Path:
    """A hub-snapshot-like folder: the release files test.jsonl and test2.jsonl (with one problem in both)."""
    snap = folder / "datasets--livecodebench--code_generation_lite" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    recs = [lcb_record(qid, date, kind) for qid, date, kind, _, _ in LCB_PROBLEMS]
    with open(snap / "test.jsonl", "w") as f:
        for r in recs[:2] + recs[3:]:
            f.write(json.dumps(r) + "\n")
    with open(snap / "test2.jsonl", "w") as f:
        for r in recs[1:3]:
            f.write(json.dumps(r) + "\n")
    return folder


GPQA_ROWS = [
    ("rec01", "Which particle carries the electromagnetic force?", "photon", "gluon", "W boson", "graviton"),
    ("rec02", "What is the pH of pure water at 25 C?", "7", "0", "14", "1"),
    ("rec03", "Which organelle makes ATP?", "mitochondrion", "ribosome", "nucleus", "Golgi apparatus"),
    ("rec04", "What is the SI unit of inductance?", "henry", "tesla", "weber", "farad"),
]


def write_gpqa(path: Path) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Pre-Revision Question", "Question", "Correct Answer", "Incorrect Answer 1",
                    "Incorrect Answer 2", "Incorrect Answer 3", "Record ID", "Subdomain"])
        for rid, q, good, *bad in GPQA_ROWS:
            w.writerow([q, q, good, *bad, rid, "physics"])
    return path
