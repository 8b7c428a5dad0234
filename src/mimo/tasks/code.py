"""Toy code tasks: small Python functions a tiny model can learn, each with many tests from easy to hard.

Two families:

* piecewise arithmetic -- ``f(x)`` returns ``x * 3 + 2`` if ``x > 5`` else ``x - 1`` (1 to 3 pieces).  Tests far
  from a threshold are easy; tests *at* a threshold are hard (they catch ``>`` vs ``>=`` slips), so test pass
  rates over rollouts really differ and the test-difficulty-driven reward has levels to find;
* string transforms -- ``g(s)`` composes ``reversed``, ``upper``, ``lower``, ``doubled``,
  ``without spaces``; edge-case strings (empty, short) are the hard tests.

Tests use LiveCodeBench's functional shape (``{"input": <one JSON value per line>, "output": <JSON>,
"testtype": "functional", "fn_name": ...}``) and are computed by our own Python (never by executing generated
code).  A completion answers with a fenced ``python`` block after ``</think>``, read by
:func:`mimo.rewards.code.extract_code`.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass, field

from mimo.tokenizer import assistant_text, format_chat

INSTRUCTION = "Answer with the function in a ```python block."
_OPS = ("+", "-", "*")
_STRING_OPS = {
    "reversed": lambda s: s[::-1],
    "upper-cased": lambda s: s.upper(),
    "lower-cased": lambda s: s.lower(),
    "doubled": lambda s: s + s,
    "without spaces": lambda s: s.replace(" ", ""),
}
_STRING_CODE = {
    "reversed": "s = s[::-1]",
    "upper-cased": "s = s.upper()",
    "lower-cased": "s = s.lower()",
    "doubled": "s = s + s",
    "without spaces": 's = s.replace(" ", "")',
}
_WORDS = ("ab", "Cat", "hello", "x y", "Moon", "dog run", "a", "Zed", "blue sky", "ok")


@dataclass(frozen=True)
class CodeProblem:
    id: str
    family: str  # "piecewise" | "string"
    fn_name: str
    spec: str  # the behaviour, in words
    solution: str  # reference implementation
    tests: tuple[dict, ...] = field(repr=False)
    hard: tuple[bool, ...] = field(repr=False)  # which tests are edge cases (for analysis; levels come from rollouts)

    def prompt_text(self) -> str:
        return f"Write a Python function {self.spec} {INSTRUCTION}"

    def chat_prompt(self) -> str:
        return format_chat([{"role": "user", "content": self.prompt_text()}])

    def reasoning(self) -> str:
        return self.spec

    def chat_response(self, code: str | None = None) -> str:
        return assistant_text(self.reasoning(), f"```python\n{code or self.solution}```")

    def pretrain_text(self) -> str:
        return f"# {self.spec}\n{self.solution}"

    def reference(self) -> dict:
        """Reference for the code reward: the tests (levels are added from rollouts)."""
        return {"tests": list(self.tests)}

    def to_dict(self) -> dict:
        return {"id": self.id, "kind": "code", "problem": self.prompt_text(), "tests": list(self.tests),
                "solution": self.solution, "fn_name": self.fn_name}


def _test(fn: str, arg, out) -> dict:
    return {"input": json.dumps(arg), "output": json.dumps(out), "testtype": "functional", "fn_name": fn}


def _apply(op: str, x: int, k: int) -> int:
    return x + k if op == "+" else x - k if op == "-" else x * k


class CodeTaskGenerator:
    """Seeded generator of :class:`CodeProblem`; split by a hash of the spec, like the math tasks."""

    def __init__(self, seed: int = 0, min_pieces: int = 1, max_pieces: int = 2, families: str = "piecewise,string",
                 heldout_fraction: float = 0.2, tests_per_problem: int = 10):
        self.rng = random.Random(seed)
        self.min_pieces, self.max_pieces = min_pieces, max_pieces
        self.families = [f for f in families.split(",") if f]
        if not set(self.families) <= {"piecewise", "string"}:
            raise ValueError("families must be a subset of 'piecewise,string'")
        self.heldout_fraction = heldout_fraction
        self.tests_per_problem = tests_per_problem

    def _expr(self) -> tuple[str, int, int]:
        op = self.rng.choice(_OPS)
        k = self.rng.randint(2, 9) if op == "*" else self.rng.randint(1, 20)
        return op, k, self.rng.randint(0, 1)

    def _piecewise(self) -> CodeProblem:
        n = self.rng.randint(self.min_pieces, self.max_pieces)
        thresholds = sorted(self.rng.sample(range(-5, 30), n - 1))[::-1]  # descending: checked top-down
        pieces = [self._expr()[:2] for _ in range(n)]
        name = "f"
        body, words = [], []
        for t, (op, k) in zip(thresholds, pieces):
            body += [f"    if x > {t}:", f"        return x {op} {k}"]
            words.append(f"x {op} {k} if x > {t}")
        op, k = pieces[-1]
        body.append(f"    return x {op} {k}")
        words.append(f"x {op} {k} otherwise" if thresholds else f"x {op} {k}")
        spec = f"{name}(x) that returns " + ", ".join(words) + "."
        solution = f"def {name}(x):\n" + "\n".join(body) + "\n"

        def ref(x: int) -> int:
            for t, (o, kk) in zip(thresholds, pieces):
                if x > t:
                    return _apply(o, x, kk)
            return _apply(pieces[-1][0], x, pieces[-1][1])

        xs: list[tuple[int, bool]] = [(t, True) for t in thresholds] + [(t + 1, True) for t in thresholds]
        while len(xs) < self.tests_per_problem:
            x = self.rng.randint(-20, 50)
            if x not in thresholds and x - 1 not in thresholds:
                xs.append((x, False))
        xs = xs[: self.tests_per_problem]
        tests = tuple(_test(name, x, ref(x)) for x, _ in xs)
        return CodeProblem("", "piecewise", name, spec, solution, tests, tuple(h for _, h in xs))

    def _string(self) -> CodeProblem:
        n = self.rng.randint(self.min_pieces, self.max_pieces)
        ops = self.rng.sample(sorted(_STRING_OPS), n)
        name = "g"
        spec = f"{name}(s) that returns s " + ", then ".join(ops) + "."
        solution = f"def {name}(s):\n" + "".join(f"    {_STRING_CODE[o]}\n" for o in ops) + "    return s\n"

        def ref(s: str) -> str:
            for o in ops:
                s = _STRING_OPS[o](s)
            return s

        inputs = [("", True), ("a", True), ("A b", True)]
        while len(inputs) < self.tests_per_problem:
            inputs.append((self.rng.choice(_WORDS) + self.rng.choice(["", " ", "!"]) + self.rng.choice(_WORDS),
                           False))
        inputs = inputs[: self.tests_per_problem]
        tests = tuple(_test(name, s, ref(s)) for s, _ in inputs)
        return CodeProblem("", "string", name, spec, solution, tests, tuple(h for _, h in inputs))

    def _one(self) -> CodeProblem:
        fam = self.rng.choice(self.families)
        p = self._piecewise() if fam == "piecewise" else self._string()
        pid = "code-" + hashlib.sha1(p.spec.encode()).hexdigest()[:12]
        return CodeProblem(pid, p.family, p.fn_name, p.spec, p.solution, p.tests, p.hard)

    def sample(self, n: int, split: str = "train", unique: bool = True) -> list[CodeProblem]:
        from mimo.tasks.math import split_of

        if split not in ("train", "heldout"):
            raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
        out, seen, tries = [], set(), 0
        while len(out) < n:
            tries += 1
            if tries > 200 * n + 10000:
                raise ValueError(f"could not find {n} unique {split} code problems with these knobs")
            p = self._one()
            if split_of(p.spec, self.heldout_fraction) != split or (unique and p.spec in seen):
                continue
            seen.add(p.spec)
            out.append(p)
        return out

    def teacher_solution(self, p: CodeProblem, rng: random.Random, slip_rate: float = 0.0,
                         boundary_bias: float = 0.0) -> str:
        """A solution as an *imperfect teacher* writes it.  ``boundary_bias``: for piecewise problems, the
        probability of the systematic boundary bug (``>=`` for every ``>``), which only the tests at the thresholds
        catch.  ``slip_rate``: the probability of one other slip (a wrong constant, a dropped string operation)."""
        code = p.solution
        if p.family == "piecewise" and rng.random() < boundary_bias:
            code = code.replace(" > ", " >= ")
        if rng.random() < slip_rate:
            m = list(re.finditer(r"(?<=[+\-*] )(\d+)", code))
            if m:
                hit = rng.choice(m)
                code = code[: hit.start()] + str(int(hit.group()) + 1) + code[hit.end():]
            elif "s[::-1]" in code:
                code = code.replace("s[::-1]", "s", 1)
            else:
                code = code.replace("upper", "lower", 1) if "upper" in code else code.replace("lower", "upper", 1)
        return code
