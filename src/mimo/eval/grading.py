"""Per-benchmark answer rules on top of :mod:`mimo.rewards`: every sample becomes one reward task.

The checking itself is the rewards package's: Math-Verify (``math``) and the sandboxed judge (``code``/``judge``),
run by a :class:`~mimo.rewards.pool.RewardPool` so that samples are graded in parallel, with wall-clock kills, while
generation goes on.  What this module adds is how each benchmark's completion becomes the checked text:

* ``math`` -- the completion as is (``math_reward`` reads after ``</think>``);
* ``code`` -- the completion as is (``code_reward`` takes its last fenced Python block after ``</think>``);
* ``lcb`` -- that block as the program, graded by the judge's LiveCodeBench rules (its comparisons and its import
  prelude, :data:`mimo.rewards.runner.PRELUDE`, which the judge puts before every stdin/functional program -- in
  the RL code reward too, so that a solution relying on a bare ``sqrt`` or ``Counter`` scores the same in both);
* ``humaneval`` -- the prompt's code first (its imports and helpers), then the completion's code: a full function
  redefines the prompt's stub, a bare body (base-model style, no fence) continues it;
* ``choice`` -- the letter after ``</think>`` (:func:`choice_letter`), compared here (no worker needed).

Unfinished reasoning (``<think>`` never closed) scores 0 with reason ``no_answer``/``no_code`` everywhere.
"""

from __future__ import annotations

import re
from concurrent.futures import Future

from mimo.rewards import RewardResult
from mimo.rewards.code import extract_code
from mimo.rewards.math import answer_text

_BOXED_LETTER = re.compile(r"\\boxed\{\s*(?:\\text(?:bf)?\{)?\s*\(?([A-D])\)?\s*\}?\s*\}")
_SAID_LETTER = re.compile(r"(?i:answer)\s*(?:(?i:is)\s*)?[:=]?\s*(?:\*\*)?\s*\(?([A-D])\)?(?![A-Za-z0-9])")


def choice_letter(completion: str) -> str | None:
    """The chosen letter: the last ``\\boxed{X}`` after ``</think>``, else the last "answer is X" / "Answer: X";
    None when there is none or the reasoning is unfinished.

    >>> choice_letter("<think>A or B?</think> So the answer is \\\\boxed{B}.")
    'B'
    >>> choice_letter("Answer: (C)"), choice_letter("The answer is a bit unclear")
    ('C', None)
    >>> choice_letter("<think>it is (A)") is None
    True
    """
    text = answer_text(completion)
    if text is None:
        return None
    for pattern in (_BOXED_LETTER, _SAID_LETTER):
        found = pattern.findall(text)
        if found:
            return found[-1]
    return None


def choice_reward(completion: str, gold: str) -> RewardResult:
    """1.0 when the chosen letter is ``gold``.

    >>> choice_reward("**Answer: D**", "D").score, choice_reward("\\\\boxed{A}", "D").reason
    (1.0, 'wrong_answer')
    """
    letter = choice_letter(completion)
    if letter is None:
        return RewardResult(0.0, "no_answer")
    return RewardResult(1.0, "") if letter == gold.strip().upper() else RewardResult(0.0, "wrong_answer")


def humaneval_program(completion: str, prompt: str) -> str | None:
    """The program HumanEval's ``check`` runs: the prompt's code, then the completion's code (see module doc).

    >>> humaneval_program("```python\\ndef f(x):\\n    return x\\n```", "def f(x):\\n    '''id'''\\n")
    "def f(x):\\n    '''id'''\\n\\ndef f(x):\\n    return x\\n"
    >>> humaneval_program("    return x\\n", "def f(x):\\n    '''id'''\\n")
    "def f(x):\\n    '''id'''\\n    return x\\n"
    """
    text = answer_text(completion)
    if text is None:
        return None
    code = extract_code(completion)
    if code is None:  # no fence: a continuation of the prompt (base-model style)
        return prompt + text.lstrip("\n")
    return prompt + "\n" + code


def _done(result: RewardResult) -> Future:
    f: Future = Future()
    f.set_result(result)
    return f


def submit(pool, grader: str, completion: str, reference) -> Future:
    """Grade one sample; the future's result is a :class:`~mimo.rewards.RewardResult`."""
    if grader == "math":
        return pool.submit("math", completion, reference)
    if grader == "code":
        return pool.submit("code", completion, reference)
    if grader == "lcb":
        code = extract_code(completion)
        if code is None:
            return _done(RewardResult(0.0, "no_code"))
        return pool.submit("judge", code, reference)  # the judge adds the prelude
    if grader == "humaneval":
        program = humaneval_program(completion, reference["prompt"])
        if program is None:
            return _done(RewardResult(0.0, "no_code"))
        return pool.submit("judge", program, {"tests": reference["tests"]})
    if grader == "choice":
        return _done(choice_reward(completion, reference))
    raise ValueError(f"unknown grader {grader!r}")
