"""RL problems: loading ``{id, kind, problem, answer | tests, levels}`` JSONL, and the built-in toy sets.

The file format is what ``mimo data curate-rl`` writes: math records carry ``problem`` and ``answer``; code
records carry ``problem``, ``tests`` (the judge's LiveCodeBench shape) and optionally ``levels`` (test difficulty
levels from ``mimo rewards levels``) and ``fn_name``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mimo.config import F
from mimo.errors import MimoError
from mimo.rl.engine import RLProblem
from mimo.tasks import HELDOUT_SEED, ToyTaskSpec
from mimo.tasks.spec import harder
from mimo.utils.io import iter_jsonl


@dataclasses.dataclass
class ToyRL:
    """The built-in RL and held-out sets (toy math and code tasks)."""

    seed: int = F(7, "generator seed for training problems")
    math_problems: int = F(2000, "training math problems")
    code_problems: int = F(0, "training code problems")
    tasks: ToyTaskSpec = F(factory=harder, help="difficulty (math harder than SFT's, to leave RL headroom)")
    heldout_math: int = F(200, "held-out math problems for validation")
    heldout_code: int = F(0, "held-out code problems for validation")
    heldout_seed: int = F(HELDOUT_SEED, "seed of the held-out problems (their split is disjoint by construction)")


def _prompt(tok, text: str) -> tuple[int, ...]:
    return tuple(tok.chat_prompt(text))


def toy_problems(spec: ToyRL, tok, split: str) -> list[RLProblem]:
    train = split == "train"
    seed = spec.seed if train else spec.heldout_seed
    n_math = spec.math_problems if train else spec.heldout_math
    n_code = spec.code_problems if train else spec.heldout_code
    out: list[RLProblem] = []
    if n_math:
        gen = spec.tasks.math(seed)
        out += [RLProblem(p.id, "math", _prompt(tok, p.prompt_text()), p.answer, p.prompt_text())
                for p in gen.sample(n_math, split)]
    if n_code:
        gen = spec.tasks.code(seed)
        out += [RLProblem(p.id, "code", _prompt(tok, p.prompt_text()),
                          {"tests": list(p.tests), "fn_name": p.fn_name, "levels": None}, p.prompt_text())
                for p in gen.sample(n_code, split)]
    return out


def problem_from_record(rec: dict, tok, where: str, default_id: str) -> RLProblem:
    """One RL problem from a record of the JSONL format; a bad record raises naming ``where`` and the field."""
    kind = rec.get("kind") or ("code" if "tests" in rec else "math")
    if not isinstance(rec.get("problem"), str):
        raise MimoError(f"{where}: 'problem' must be a string")
    pid = str(rec.get("id", default_id))
    if kind == "math":
        if "answer" not in rec:
            raise MimoError(f"{where}: math problem without 'answer'")
        ref = str(rec["answer"])
    elif kind == "code":
        if not isinstance(rec.get("tests"), list) or not rec["tests"]:
            raise MimoError(f"{where}: code problem without 'tests'")
        ref = {"tests": rec["tests"], "levels": rec.get("levels"), "fn_name": rec.get("fn_name")}
    else:
        raise MimoError(f"{where}: kind must be 'math' or 'code', got {kind!r}")
    return RLProblem(pid, kind, _prompt(tok, rec["problem"]), ref, rec["problem"])


def load_problems(path: str | Path, tok) -> list[RLProblem]:
    """RL problems from JSONL; a bad record raises naming ``file:line`` and the field."""
    out = []
    seen: set[str] = set()
    for lineno, rec in iter_jsonl(path, with_lineno=True):
        where = f"{path}:{lineno}"
        problem = problem_from_record(rec, tok, where, f"line{lineno}")
        if problem.id in seen:
            raise MimoError(f"{where}: duplicate id {problem.id!r}")
        seen.add(problem.id)
        out.append(problem)
    if not out:
        raise MimoError(f"{path}: no problems")
    return out
