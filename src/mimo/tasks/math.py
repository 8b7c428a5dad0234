"""Arithmetic-chain word problems with step-by-step solutions and ``\\boxed{}`` answers.

A problem is a chain of ``steps`` operations on small integers, e.g. ``Compute (2 + 3) * 2 - 4.`` with the
solution ``2 + 3 = 5`` / ``5 * 2 = 10`` / ``10 - 4 = 6`` / ``The answer is \\boxed{6}.``  Knobs: number of
steps, operand digits, operators, and ``max_value``, a bound every intermediate result stays within (operands are
chosen so that it holds; ``None``: unbounded).  Multiplication uses a one-digit factor.  The defaults -- one-digit
operands, every value up to 10 (~150 distinct facts) -- make each step a fact a ~1M-parameter model learns on a
CPU in minutes, while chains of up to four steps stay hard (per-step errors compound).  The split (``train`` /
``heldout``) is a hash of the canonical expression: ``heldout_fraction`` of all possible problems are held
out, for every seed.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from mimo.tokenizer import assistant_text, format_chat

PHRASINGS = ("Compute {e}.", "What is {e}?", "Evaluate {e}.", "Calculate {e}.")
INSTRUCTION = "Put the final answer in \\boxed{}."


@dataclass(frozen=True)
class MathProblem:
    id: str
    expression: str  # canonical, fully parenthesised left to right: "(23 + 45) * 3 - 17"
    question: str
    answer: str
    steps: tuple[str, ...]

    @property
    def difficulty(self) -> int:
        return len(self.steps)

    def reasoning(self) -> str:
        return "\n".join(self.steps)

    def final_answer(self) -> str:
        return f"The answer is \\boxed{{{self.answer}}}."

    def prompt_text(self) -> str:
        """The user message."""
        return f"{self.question} {INSTRUCTION}"

    def chat_prompt(self) -> str:
        """ChatML prompt ending in the assistant header (what the model is asked)."""
        return format_chat([{"role": "user", "content": self.prompt_text()}])

    def chat_response(self, with_reasoning: bool = True) -> str:
        """Reference assistant turn in MiMo's format (``<think>`` steps ``</think>`` answer)."""
        return assistant_text(self.reasoning() if with_reasoning else None, self.final_answer())

    def teacher_steps(self, rng: random.Random, slip_rate: float = 0.0, mul_bias: float = 0.0,
                      skip_bias: float = 0.0) -> tuple[tuple[str, ...], str]:
        """Worked steps as an *imperfect teacher* writes them, and its final answer.

        ``mul_bias``: per multiplication step, the probability of a systematic slip -- multiplying by one more
        (``7 * 3 = 28``).  ``slip_rate``: per response, the probability of one random arithmetic slip (off by a
        little) at a random step.  Later steps carry a wrong value on correctly, so the final answer is wrong.
        ``skip_bias``: per problem of two or more steps, the probability that the teacher stops one step short and
        answers the intermediate value (a habit a student copies: a behaviour, not a fact, which RL with a
        verifiable reward can unlearn and more imitation cannot).
        """
        chain = self.steps
        if skip_bias > 0 and len(chain) > 1 and rng.random() < skip_bias:
            chain = chain[:-1]
        k = rng.randrange(len(chain)) if rng.random() < slip_rate else -1
        out, carry = [], None
        for i, step in enumerate(chain):
            lhs, _ = step.split(" = ")
            a, op, b = lhs.split(" ")
            a = int(a) if carry is None else carry
            b = int(b)
            value = a + b if op == "+" else a - b if op == "-" else a * b
            if op == "*" and rng.random() < mul_bias:
                value = a * (b + 1)
            if i == k:
                value += rng.choice([-10, -2, -1, 1, 2, 10])
            out.append(f"{a} {op} {b} = {value}")
            carry = value
        return tuple(out), str(carry)

    def teacher_response(self, rng: random.Random, slip_rate: float = 0.0, mul_bias: float = 0.0,
                         skip_bias: float = 0.0) -> str:
        """The assistant turn of an imperfect teacher (see :meth:`teacher_steps`)."""
        steps, answer = self.teacher_steps(rng, slip_rate, mul_bias, skip_bias)
        return assistant_text("\n".join(steps), f"The answer is \\boxed{{{answer}}}.")

    def pretrain_text(self, with_reasoning: bool = True) -> str:
        """A plain-text document for pretraining: question, worked steps (optional), boxed answer."""
        body = f"{self.reasoning()}\n{self.final_answer()}" if with_reasoning else self.final_answer()
        return f"Question: {self.prompt_text()}\nAnswer: {body}"

    def reference(self) -> str:
        """Gold answer for :func:`mimo.rewards.math.math_reward`."""
        return self.answer

    def to_dict(self) -> dict:
        return {"id": self.id, "kind": "math", "problem": self.prompt_text(), "answer": self.answer,
                "expression": self.expression, "steps": list(self.steps)}


def split_of(expression: str, heldout_fraction: float) -> str:
    h = int(hashlib.sha1(expression.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "heldout" if h < heldout_fraction else "train"


class MathTaskGenerator:
    """Seeded generator of :class:`MathProblem` (see module docstring)."""

    def __init__(self, seed: int = 0, min_steps: int = 1, max_steps: int = 3, max_digits: int = 1,
                 ops: str = "+-*", heldout_fraction: float = 0.2, allow_negative: bool = False,
                 max_value: int | None = 10):
        if not 1 <= min_steps <= max_steps:
            raise ValueError("need 1 <= min_steps <= max_steps")
        if not set(ops) <= set("+-*") or not ops:
            raise ValueError("ops must be a non-empty subset of '+-*'")
        self.rng = random.Random(seed)
        self.min_steps, self.max_steps, self.max_digits = min_steps, max_steps, max_digits
        self.ops, self.heldout_fraction, self.allow_negative = ops, heldout_fraction, allow_negative
        self.max_value = max_value

    def _number(self) -> int:
        digits = self.rng.randint(1, self.max_digits)
        return self.rng.randint(1 if digits == 1 else 10 ** (digits - 1), 10**digits - 1)

    def _operand(self, op: str, value: int) -> int | None:
        """An operand for ``value op operand`` within the knobs, or None when ``op`` cannot be applied."""
        hi = 10**self.max_digits - 1
        lo = 1 if self.max_digits == 1 else 10 ** (self.max_digits - 1)
        cap = self.max_value
        if op == "*":
            if value == 0:  # 0 * k teaches nothing
                return None
            top = 9 if cap is None else min(9, cap // value)
            return self.rng.randint(2, top) if top >= 2 else None
        if op == "-" and not self.allow_negative:
            top = min(hi, value)
            return self.rng.randint(min(lo, top), top) if top >= 1 else None
        top = hi if cap is None or op == "-" else min(hi, cap - value)
        return self.rng.randint(min(lo, top), top) if top >= 1 else None

    def _one(self) -> MathProblem:
        n_steps = self.rng.randint(self.min_steps, self.max_steps)
        value = self._number()
        expr = str(value)
        steps = []
        for i in range(n_steps):
            choices = [(op, k) for op in self.ops if (k := self._operand(op, value)) is not None]
            if not choices:  # e.g. 0 with only "-" and "*": restart the chain
                return self._one()
            op, operand = self.rng.choice(choices)
            new = value + operand if op == "+" else value - operand if op == "-" else value * operand
            steps.append(f"{value} {op} {operand} = {new}")
            # left-to-right chain; parentheses only where precedence would otherwise change the order
            needs_paren = op == "*" and i > 0 and any(o in expr for o in "+-")
            expr = f"({expr}) {op} {operand}" if needs_paren else f"{expr} {op} {operand}"
            value = new
        question = self.rng.choice(PHRASINGS).format(e=expr)
        pid = "math-" + hashlib.sha1(expr.encode()).hexdigest()[:12]
        return MathProblem(pid, expr, question, str(value), tuple(steps))

    def sample(self, n: int, split: str = "train", unique: bool = True) -> list[MathProblem]:
        """``n`` problems of ``split`` ("train" or "heldout"); ``unique`` avoids repeating an expression."""
        if split not in ("train", "heldout"):
            raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
        out: list[MathProblem] = []
        seen: set[str] = set()
        tries = 0
        while len(out) < n:
            tries += 1
            if tries > 200 * n + 10000:
                raise ValueError(f"could not find {n} unique {split} problems with these knobs")
            p = self._one()
            if split_of(p.expression, self.heldout_fraction) != split:
                continue
            if unique and p.expression in seen:
                continue
            seen.add(p.expression)
            out.append(p)
        return out
