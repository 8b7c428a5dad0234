"""Which RL problems cannot be scored by a rule-based reward: proofs and multiple choice (rules, plus an LLM).

MiMo drops math problems that ask for a proof (no final answer for Math-Verify to check) and multiple-choice
problems (a 1-in-4 guess is rewarded as often as reasoning, which teaches guessing).  Two passes:

* rules (this module's functions), cheap and explainable -- each returns the reason it fired, or None:

  - :func:`proof_reason` -- the gold answer is a proof marker ("proof", "QED", "see proof", a paragraph of
    argument), or the problem asks for a proof ("prove", "show that", "verify that", ...) and asks for no value
    ("find", "compute", "how many", ...): "Prove that n^2 + n is even" goes, "Find the minimum and prove it is
    attained" stays, its answer being checkable;
  - :func:`multiple_choice_reason` -- the problem lists options A, B, C (``(A)``, ``A.``, ``A)``, AMC's
    ``\\textbf{(A)}``), or lists A and B and its gold answer is an option letter.  Lower-case ``(a) (b)`` are the
    parts of a multi-part problem, and ``P(A)`` is a probability, neither counts.

* :func:`answer_reason` -- a gold answer that is none at all (missing, "N/A", a sentence), before Math-Verify
  is asked whether it parses.

* :class:`LLMClassifier` -- any OpenAI-compatible endpoint asked for ``{"proof": bool, "multiple_choice": bool}``,
  for what the rules miss (a proof asked for in other words, options written in prose).  A reply that cannot be
  read leaves the problem in place and is counted in the report (never a silent drop).

Departure from the paper: its classifier is not published; these rules are ours, tuned to keep false drops rare
(the LLM pass is the recall net).
"""

from __future__ import annotations

import json
import re

_PROOF_ASK = re.compile(
    r"\bprov(?:e|ing)\b|\bdisprove\b|\bproof\b"
    r"|\b(?:show|demonstrate|verify|justify|establish|deduce|explain why)\b[^.?!]{0,40}?\b(?:that|why|whether)\b",
    re.I)
_VALUE_ASK = re.compile(
    r"\b(?:find|compute|calculate|determine|evaluate|solve|simplify|express|estimate|count|list)\b"
    r"|\bwhat (?:is|are|was|were|will|would)\b|\bhow (?:many|much|long|far|often)\b"
    r"|\b(?:the (?:value|minimum|maximum|number|sum|product|area|length|probability) of)\b.*\?",
    re.I)
_PROOF_ANSWERS = frozenset({
    "proof", "qed", "q.e.d", "see proof", "see the proof", "see solution", "see the solution", "proven", "proved",
    "shown", "\\blacksquare", "\\square", "\\box", "∎", "□",
})
_NO_ANSWERS = frozenset({"", "none", "null", "n/a", "na", "nan", "-", "?", "unknown", "not found", "notfound"})
_ARGUMENT_WORDS = re.compile(r"\b(?:therefore|thus|hence|since|because|proof|qed|contradiction|follows)\b", re.I)

# An option marker: "(A)", "\textbf{(A)}", "( B )" anywhere not glued to a word (P(A) is a probability), or
# "A." / "A)" / "A:" at the start of a line or after white space, followed by white space.
_OPTION = re.compile(
    r"(?<![A-Za-z0-9_])\(\s*([A-E])\s*\)"
    r"|(?:^|(?<=[\s$]))([A-E])\s*[.):](?=\s)",
    re.M)
_LETTER_ANSWER = re.compile(r"^\(?\s*([A-E])\s*\)?(?:\s*[.:)]?\s*.*)?$", re.S)
_WRAPPERS = re.compile(r"\\(?:boxed|text|textbf|mathrm|mathbf|rm|bf)\s*\{|[{}$]|\\[()\[\]]")


def _plain(answer) -> str:
    """The answer without LaTeX wrappers, delimiters and outer white space, in lower case.

    >>> _plain("$\\\\boxed{\\\\text{(B)}}$"), _plain("  Proof. ")
    ('(b)', 'proof.')
    """
    return _WRAPPERS.sub("", str(answer if answer is not None else "")).strip().lower()


def proof_reason(problem: str, answer=None) -> str | None:
    """Why this looks like a proof problem (None when it does not).

    >>> proof_reason("Prove that $n^2+n$ is even for every integer $n$.", "n(n+1)")
    "asks for a proof ('Prove') and for no value"
    >>> proof_reason("Show that the sum of two odd numbers is even.", "see proof")
    "answer is a proof marker ('see proof')"
    >>> proof_reason("Find the least $n$ with $n^2 > 50$, and prove it is the least.", "8") is None
    True
    >>> proof_reason("What is $2+3$? Show your work.", "5") is None
    True
    """
    plain = _plain(answer)
    if answer is not None and plain.rstrip(".") in _PROOF_ANSWERS:
        return f"answer is a proof marker ({plain!r})"
    words = plain.split()
    if len(words) >= 15 and _ARGUMENT_WORDS.search(plain):
        return f"answer is an argument ({len(words)} words), not a value"
    ask = _PROOF_ASK.search(problem)
    if ask and not _VALUE_ASK.search(problem):
        return f"asks for a proof ({ask.group(0).split()[0]!r}) and for no value"
    return None


def answer_reason(answer) -> str | None:
    """Why ``answer`` is no gold answer at all, before Math-Verify is asked (None when it may be one): missing,
    not a string or number, a placeholder ("N/A", "none"), or a sentence (three or more words of three letters or
    more, no digit and no LaTeX besides ``\\text``) -- Math-Verify reads "a red car" as the product
    ``a*r*e*d*c*a*r``, which no rollout should be rewarded for matching.

    >>> answer_reason("N/A"), answer_reason(None), answer_reason("\\frac{7}{8}"), answer_reason(12)
    ("a placeholder ('n/a')", 'missing', None, None)
    >>> answer_reason("\\text{the answer is in the figure}")
    'a sentence, not a mathematical answer'
    >>> answer_reason("\\text{Sunday}") is None, answer_reason("no solution") is None
    (True, True)
    """
    if answer is None:
        return "missing"
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
        return f"not a string or number ({type(answer).__name__})"
    plain = _plain(answer)
    if plain.rstrip(".") in _NO_ANSWERS:
        return f"a placeholder ({plain!r})"
    if not re.search(r"\d|\\(?!text)[A-Za-z]", plain) and len(re.findall(r"[a-z]{3,}", plain)) >= 3:
        return "a sentence, not a mathematical answer"
    return None


def option_letters(problem: str) -> list[str]:
    """Option letters A-E in the order they first appear as option markers.

    >>> option_letters("$\\\\textbf{(A)}\\\\ 2 \\\\qquad \\\\textbf{(B)}\\\\ 3 \\\\qquad \\\\textbf{(C)}\\\\ 5$")
    ['A', 'B', 'C']
    >>> option_letters("Options:\\nA. 12\\nB. 15\\nC) 18")
    ['A', 'B', 'C']
    >>> option_letters("Events A and B have P(A) = 0.3 and P(B) = 0.5. Find P(A or B).")
    []
    """
    seen: list[str] = []
    for m in _OPTION.finditer(problem):
        letter = m.group(1) or m.group(2)
        if letter not in seen:
            seen.append(letter)
    return seen


def _ordered(letters: list[str], wanted: str) -> bool:
    """Whether every letter of ``wanted`` is among ``letters`` and they first appear in that order."""
    pos = [letters.index(c) for c in wanted if c in letters]
    return len(pos) == len(wanted) and pos == sorted(pos)


def multiple_choice_reason(problem: str, answer=None) -> str | None:
    """Why this looks like a multiple-choice problem (None when it does not).

    >>> multiple_choice_reason("Which is prime? (A) 4 (B) 6 (C) 7 (D) 9", "C")
    'lists options A, B, C, D'
    >>> multiple_choice_reason("Pick one.\\nA. 3\\nB. 4", "$\\\\text{(B)}$")
    "lists options A, B and the answer is option 'B'"
    >>> multiple_choice_reason("(a) Find x. (b) Find y.", "2") is None
    True
    """
    letters = option_letters(problem)
    if _ordered(letters, "ABC"):
        return "lists options " + ", ".join(letters)
    m = _LETTER_ANSWER.match(_plain(answer).upper()) if answer is not None else None
    if _ordered(letters, "AB") and m and (len(_plain(answer)) <= 3 or _plain(answer)[1:2] in ".:) "):
        return f"lists options {', '.join(letters)} and the answer is option {m.group(1)!r}"
    return None


# --------------------------------------------------------------------------------------------- LLM classifier

LLM_PROMPT = (
    "You label math problems for reinforcement learning with automatically checked final answers.\n"
    "Reply with one JSON object only, no prose: "
    '{{"proof": true|false, "multiple_choice": true|false}}\n'
    "proof: the problem asks to prove, show or justify a statement rather than for a final answer that can be "
    "checked.\nmultiple_choice: the problem offers answer options to choose from.\n\nProblem:\n{problem}"
)


def parse_llm_labels(reply: str | None) -> dict | None:
    """The labels in a classifier reply (its first JSON object), or None when unusable.

    >>> parse_llm_labels('Here: {"proof": false, "multiple_choice": true}')
    {'proof': False, 'multiple_choice': True}
    >>> parse_llm_labels('{"proof": "maybe"}') is None
    True
    """
    m = re.search(r"\{.*?\}", reply or "", re.S)
    if not m:
        return None
    try:
        data = json.loads(m.group(0))
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    labels = {k: data.get(k) for k in ("proof", "multiple_choice")}
    if not all(isinstance(v, bool) for v in labels.values()):
        return None
    return labels


class LLMClassifier:
    """Proof / multiple-choice labels from an OpenAI-compatible chat model (:class:`mimo.infer.client.ChatClient`).

    ``classify(problems)`` returns one ``{"proof": bool, "multiple_choice": bool}`` per problem, or None where the
    request failed or the reply could not be read."""

    def __init__(self, client, max_chars: int = 4000, concurrency: int = 8):
        self.client, self.max_chars, self.concurrency = client, max_chars, concurrency

    def classify(self, problems: list[str]) -> list[dict | None]:
        convs = [[{"role": "user", "content": LLM_PROMPT.format(problem=p[:self.max_chars])}] for p in problems]
        replies = self.client.complete_many(convs, concurrency=self.concurrency, temperature=0.0, max_tokens=64)
        return [parse_llm_labels(r) for r in replies]
