"""Where things live: the shared evaluation-data folder."""

from __future__ import annotations

import os
from pathlib import Path


def eval_data_dir() -> Path | None:
    """The evaluation-data folder (MATH-500, AIME, LiveCodeBench prompts, HumanEval): ``$MIMO_EVAL_DATA``, else
    ``shared/data`` in this checkout's folder or one of its ancestors (a clone that sits beside a ``shared/``
    folder finds it); None when absent."""
    env = os.environ.get("MIMO_EVAL_DATA")
    if env:
        return Path(env) if Path(env).is_dir() else None
    for start in (Path.cwd(), Path(__file__).resolve()):
        for parent in [start, *start.parents]:
            cand = parent / "shared" / "data"
            if (cand / "math500_test.jsonl").is_file():
                return cand
    return None
