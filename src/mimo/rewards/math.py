"""The math reward: Math-Verify on the final answer, with the pitfalls of docs/design.md §2 handled.

``math_reward(completion, gold)`` scores 1 when the answer written after ``</think>`` (the whole completion when
there is no reasoning block) is mathematically equal to ``gold``, else 0 with a reason:

* ``no_answer`` -- the reasoning never closed (``<think>`` without ``</think>``: a truncated rollout) or nothing
  parseable was found in the answer;
* ``wrong_answer`` -- parsed, not equal;
* ``timeout`` -- Math-Verify ran out of time (only when ``timeout_s`` is given, see below);
* ``bad_gold`` -- the gold answer itself does not parse (a data problem, reported rather than scored as wrong).

``gold_check(gold)`` asks the question data curation needs: does Math-Verify turn this gold answer into a
mathematical object at all (not only its fallback, the raw string, which it then compares as text)?

Pitfalls handled here: the gold goes first (``verify(gold, pred)``; the comparison is not symmetric); bare LaTeX
gold (``\\frac{14}{3}``, no ``$``/``\\boxed``) parses to nothing, so it is wrapped in ``$...$`` -- except that a
bare ``1,22`` is also read as Math-Verify reads plain text, with a decimal comma (:func:`gold_readings`); an
answer Math-Verify could only read in part (``$5^(5^(5^(5^5)))$`` read as its base ``5``) is unparsable
(:func:`_parse_whole`); every (gold, prediction) pair is compared separately so that one timing-out pair cannot
hide a match found by another.

Timeouts: Math-Verify's own timeouts use ``signal.alarm`` -- whole seconds, main thread only (elsewhere it raises
or silently scores 0), and some inputs (towers of powers, ``5^(5^(5^(5^5)))``) hang inside C code where no signal
is delivered.  So ``math_reward`` uses no signals unless asked (``timeout_s``), which only
:mod:`mimo.rewards.worker` does, on the main thread of a worker process; the hard limit is the wall-clock kill of
that worker by :class:`mimo.rewards.pool.RewardPool`, which scores the item 0 with reason ``timeout``.  Call
``math_reward`` directly only on trusted input or under such a pool.

Departure from the paper: none in the rule (Math-Verify, binary reward, no format or length reward); rollouts
whose reasoning is unfinished score 0 like wrong ones.
"""

from __future__ import annotations

import functools
import itertools
import logging
import re
import threading

from mimo.rewards import RewardResult

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
_DELIMITED = re.compile(r"(?<!\\)\$|\\boxed|\\\(|\\\[|\\begin\{equation")  # an escaped \$ is currency


def answer_text(completion: str) -> str | None:
    """The part of a completion that holds the final answer; None when the reasoning is unfinished.

    >>> answer_text("<think>\\nmaybe 3?\\n</think>\\nThe answer is $4$.")
    '\\nThe answer is $4$.'
    >>> answer_text("<think>\\nstill going") is None
    True
    >>> answer_text("no reasoning block: 4")
    'no reasoning block: 4'
    """
    if THINK_CLOSE in completion:
        return completion.rsplit(THINK_CLOSE, 1)[1]
    if THINK_OPEN in completion:
        return None
    return completion


def gold_text(gold: str | int | float) -> str:
    """Gold answers as Math-Verify wants them: bare LaTeX wrapped in ``$...$`` (it parses to nothing otherwise).

    >>> gold_text("\\\\frac{14}{3}"), gold_text(70), gold_text("$x=5$"), gold_text("\\\\$36")
    ('$\\\\frac{14}{3}$', '$70$', '$x=5$', '$\\\\$36$')
    """
    text = str(gold).strip()
    if _DELIMITED.search(text):
        return text
    return f"${text}$"


# 1,22 -- not 1,000 (a thousands group) and not -2,1 (in MATH-style golds one digit after a comma is a list)
_DECIMAL_COMMA = re.compile(r"-?[0-9]+,(?:[0-9]{2}|[0-9]{4,})")


def gold_readings(gold: str | int | float) -> list[str]:
    """The texts to parse for a gold answer: :func:`gold_text`, and for a bare ``1,22`` also the text itself, which
    Math-Verify reads with a decimal comma (1.22) where ``$1,22$`` is the pair {1, 22}.  Either reading is accepted:
    the gold is ambiguous, and the pair stays correct too.

    >>> gold_readings("1,22"), gold_readings("1,000"), gold_readings("-2,1")
    (['$1,22$', '1,22'], ['$1,000$'], ['$-2,1$'])
    """
    text = str(gold).strip()
    return [gold_text(gold)] + ([text] if _DECIMAL_COMMA.fullmatch(text) else [])


def _is_math(x) -> bool:
    return not isinstance(x, str)


def _parse_whole(parse, text: str, timeout_s: int | None) -> list:
    """``parse(text)``, but nothing when the value came from a piece of an answer that itself failed to parse.

    Math-Verify tries its candidate matches from the last one back and keeps the first that parses; when the
    answer it should read fails (``$5^(5^(5^(5^5)))$``: the brackets defeat its LaTeX parser), a smaller match
    inside it (the leading ``5``) parses instead, and the answer scores as if the model had written ``5``.  So when
    the first candidate does not parse and the value found is part of that candidate's text, the answer counts as
    unparsable.  (A value from a separate, earlier answer is kept: that is Math-Verify's intent.)
    """
    found = parse(text, parsing_timeout=timeout_s, raise_on_error=True)
    values = [re.sub(r"\s+", "", str(x)) for x in found if _is_math(x)]
    strings = [x for x in found if not _is_math(x)]  # the first candidate's text, parsed or not
    if not values or not strings:
        return found
    first_text = re.sub(r"\s+", "", strings[0])
    if not all(v in first_text and v != first_text for v in values):
        return found  # not a piece of the first candidate: nothing to check (and no second parse to pay for)
    first = parse(text, parsing_timeout=timeout_s, raise_on_error=True, extraction_mode="first_match")
    if any(_is_math(x) for x in first) or not first:
        return found  # the first candidate itself parsed (to a value that happens to be a piece of its text)
    return []


@functools.lru_cache(maxsize=1)
def _math_verify():
    """Import Math-Verify (sympy: about a second) on first use, and quiet its per-item timeout warnings."""
    import math_verify
    from math_verify.errors import TimeoutException

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    return math_verify.parse, math_verify.verify, TimeoutException


def math_reward(completion: str, gold: str | int | float, *, timeout_s: int | None = None) -> RewardResult:
    """1.0 when the final answer equals ``gold`` (Math-Verify), else 0.0 with a reason (module docstring).

    ``timeout_s``: Math-Verify's signal-based timeout per parse/comparison, in whole seconds; only on the main
    thread of a process you own (the reward workers pass it).  None: no signals, no timeout.

    >>> math_reward("<think>so 2+2</think> The answer is $\\\\boxed{4}$.", "4").score
    1.0
    >>> r = math_reward("The answer is \\\\boxed{\\\\frac{1}{2}}", "0.6"); (r.score, r.reason)
    (0.0, 'wrong_answer')
    >>> math_reward("<think>4 or 5 ...", "4").reason
    'no_answer'
    """
    answer = answer_text(completion)
    if answer is None or not answer.strip():
        return RewardResult(0.0, "no_answer")
    parse, verify, timeout_error = _math_verify()
    if timeout_s is not None:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("math_reward(timeout_s=...) uses signal.alarm: call it on the main thread only")
        timeout_s = max(1, int(timeout_s))
    golds = []
    for reading in gold_readings(gold):
        try:
            golds += _parse_whole(parse, reading, timeout_s)
        except timeout_error:
            return RewardResult(0.0, "timeout")
        except Exception:  # noqa: BLE001 -- Math-Verify raises many kinds; the gold is unusable either way
            pass
    if not golds:
        return RewardResult(0.0, "bad_gold")
    try:
        preds = _parse_whole(parse, answer, timeout_s)
    except timeout_error:
        return RewardResult(0.0, "timeout")
    except Exception:  # noqa: BLE001
        preds = []
    if not preds:
        return RewardResult(0.0, "no_answer")
    timed_out = False
    for g, p in itertools.product(golds, preds):
        try:
            if verify(g, p, timeout_seconds=timeout_s, raise_on_error=True):
                return RewardResult(1.0, "")
        except timeout_error:
            timed_out = True
        except Exception:  # noqa: BLE001 -- an incomparable pair is not a match
            continue
    return RewardResult(0.0, "timeout" if timed_out else "wrong_answer")


def gold_check(gold: str | int | float, *, timeout_s: int | None = None) -> RewardResult:
    """Whether ``gold`` is usable as a gold answer: 1.0 when Math-Verify parses it to a mathematical object, else
    0.0 with reason ``bad_gold`` (nothing parsed), ``not_math`` (only Math-Verify's fallback, the raw string:
    ``\\frac{1}{``, ``???``) or ``timeout``.  ``timeout_s`` as in :func:`math_reward` (main thread only).

    >>> gold_check("\\frac{7}{8}").score, gold_check(391).score, gold_check("\\frac{1}{").reason
    (1.0, 1.0, 'not_math')
    """
    parse, _, timeout_error = _math_verify()
    if timeout_s is not None:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("gold_check(timeout_s=...) uses signal.alarm: call it on the main thread only")
        timeout_s = max(1, int(timeout_s))
    try:
        parsed = _parse_whole(parse, gold_text(gold), timeout_s)
    except timeout_error:
        return RewardResult(0.0, "timeout")
    except Exception:  # noqa: BLE001 -- Math-Verify raises many kinds; unusable either way
        parsed = []
    if not parsed:
        return RewardResult(0.0, "bad_gold")
    if all(isinstance(x, str) for x in parsed):
        return RewardResult(0.0, "not_math")
    return RewardResult(1.0, "")
