"""Global n-gram deduplication of RL problems: the first of each group of near-identical problems is kept.

A problem is a duplicate of an earlier kept one when

* their sets of token n-grams (``n`` = 5 by default) have a Jaccard similarity of at least ``threshold`` (0.7), and
* they hold the same numbers, in the same order.

Tokens are the decontamination index's words (:mod:`mimo.data.decontam`: NFKC, lower case, ``\\w+`` runs) plus the
math operators, which its ``\\w+`` drops: "What is 23 + 45?" and "What is 23 - 45?" are different problems, so
``+ - * / = < > ^ ! | ( ) [ ]`` (and their Unicode forms) are tokens here, while other punctuation is not (copies of
a problem often differ in a full stop or a ``$``).  n-grams are hashed by the same
:func:`mimo.data.decontam.ngram_hashes`.  Problems shorter than ``n`` tokens are one n-gram of their own length (an
exact match after normalisation).  The number rule is ours: templated problem sets ("A bag holds 4 red and 6 blue
marbles ...", "A bag holds 5 red and 6 blue marbles ...") share most n-grams but are different problems with
different answers -- the reason datatrove's digit-normalising MinHash is wrong for math (docs/design.md §2).  A
known limit of any n-gram dedup remains: two long problems that differ in one word ("sum" / "product") and not in
their numbers look alike.

Candidates come from an inverted index n-gram -> kept problems, so a check costs the problems that share an
n-gram with it, not the whole set.  An n-gram held by more than ``max_postings`` kept problems is boilerplate ("Put
your final answer in \\boxed{}"): it stops gaining postings, which bounds the cost; whole-text duplicates are found
by an exact hash first whatever their boilerplate.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from mimo.data.decontam import ngram_hashes

_TOKEN = re.compile(r"\w+|[-+*/=<>^!|()\[\]≤≥≠±]")
_SAME_OPERATOR = str.maketrans({"−": "-", "×": "*", "·": "*", "÷": "/"})


def tokens(text: str) -> list[str]:
    """Normalised words and math operators.

    >>> tokens("What is $23+45$?"), tokens("what is 23 − 45 × 2")
    (['what', 'is', '23', '+', '45'], ['what', 'is', '23', '-', '45', '*', '2'])
    """
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).lower().translate(_SAME_OPERATOR))


class NearDuplicates:
    """``check_add(key, text) -> key of the kept problem it duplicates, or None`` (then it is kept and indexed)."""

    def __init__(self, n: int = 5, threshold: float = 0.7, max_postings: int = 64):
        if n < 1 or not 0.0 < threshold <= 1.0:
            raise ValueError(f"dedup: need n >= 1 and 0 < threshold <= 1, got n={n}, threshold={threshold}")
        self.n, self.threshold, self.max_postings = n, threshold, max_postings
        self.keys: list[str] = []
        self.sizes: list[int] = []  # distinct n-grams per kept problem
        self.numbers: list[tuple[str, ...]] = []
        self.exact: dict[int, int] = {}  # hash of the whole normalised text -> kept problem
        self.postings: dict[int, list[int]] = {}  # n-gram hash -> kept problems holding it

    def _shingles(self, toks: list[str]) -> tuple[int, set[int]]:
        if not toks:
            return 0, {0}
        (whole,) = ngram_hashes(toks, len(toks)).tolist()
        grams = set(ngram_hashes(toks, self.n).tolist()) if len(toks) >= self.n else {whole}
        return whole, grams

    def check(self, text: str) -> tuple[str, float] | None:
        """The kept problem ``text`` duplicates and their similarity, or None."""
        toks = tokens(text)
        return self._find(toks, *self._shingles(toks))

    def _find(self, toks: list[str], whole: int, grams: set[int]) -> tuple[str, float] | None:
        nums = _numbers(toks)
        hit = self.exact.get(whole)
        if hit is not None:
            return self.keys[hit], 1.0
        shared: Counter = Counter()
        for g in grams:
            shared.update(self.postings.get(g, ()))
        best: tuple[float, int] | None = None
        for other, common in shared.items():
            if self.numbers[other] != nums:
                continue
            sim = common / (len(grams) + self.sizes[other] - common)
            if sim >= self.threshold and (best is None or sim > best[0] or sim == best[0] and other < best[1]):
                best = (sim, other)
        return (self.keys[best[1]], round(best[0], 4)) if best else None

    def add(self, key: str, text: str) -> None:
        toks = tokens(text)
        self._add(key, toks, *self._shingles(toks))

    def _add(self, key: str, toks: list[str], whole: int, grams: set[int]) -> None:
        i = len(self.keys)
        self.keys.append(key)
        self.sizes.append(len(grams))
        self.numbers.append(_numbers(toks))
        self.exact.setdefault(whole, i)
        for g in grams:
            owners = self.postings.setdefault(g, [])
            if len(owners) < self.max_postings:
                owners.append(i)

    def check_add(self, key: str, text: str) -> tuple[str, float] | None:
        """Check ``text``; index it under ``key`` when it is not a duplicate."""
        toks = tokens(text)
        whole, grams = self._shingles(toks)
        found = self._find(toks, whole, grams)
        if found is None:
            self._add(key, toks, whole, grams)
        return found


def _numbers(toks: list[str]) -> tuple[str, ...]:
    """The tokens holding digits, in order (``3x`` counts: it is 3 times x).

    >>> _numbers(["find", "f", "10", "if", "f", "x", "3x", "2"])
    ('10', '3x', '2')
    """
    return tuple(t for t in toks if any(c.isdigit() for c in t))
