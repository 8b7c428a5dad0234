"""Math reward: Math-Verify with the pitfalls handled, every shared gold answer verified in another valid form,
hanging inputs scored "timeout" within the wall limit while the pool keeps answering."""

from __future__ import annotations

import doctest
import json
import re
import threading
import time

import pytest

import mimo.rewards.math as math_mod
from mimo.rewards.math import answer_text, gold_text, math_reward
from mimo.rewards.pool import RewardPool

HANG = "The answer is $\\boxed{5^{5^{5^{5^{5}}}}}$"  # sympy grinds on the tower of powers for minutes


def test_doctests():
    assert doctest.testmod(math_mod).failed == 0


# --------------------------------------------------------------------- another valid form of a gold answer
def _split_terms(expr):
    """Top-level +/- terms of expr as (sign, text); None when it is not a plain sum."""
    depth, terms, cur, sign = 0, [], "", "+"
    i = 0
    while i < len(expr):
        c = expr[i]
        if c in "({[":
            depth += 1
        elif c in ")}]":
            depth -= 1
        if depth == 0 and c in "+-" and cur.strip() and not cur.rstrip().endswith(("^", "\\pm", "e")):
            terms.append((sign, cur.strip()))
            sign, cur = c, ""
        elif depth == 0 and c in "+-" and not cur.strip():
            sign = "-" if (c == "-") != (sign == "-") else "+"
        else:
            cur += c
        i += 1
    if cur.strip():
        terms.append((sign, cur.strip()))
    return terms if len(terms) > 1 else None

def another_form(gold: str) -> str:
    g = str(gold).strip()
    g2 = re.sub(r"\\\$|\\(?:text|mbox)\{\s*(?:cents|inches|cm|degrees)\s*\}(\^2)?", "", g).strip()
    if g2 != g:  # currency / units dropped: the bare number
        return another_form(g2) if g2 else g2
    if re.fullmatch(r"-?\d{1,3}((,\\!\s?|,)\d{3})+", g):    # thousands separators -> plain digits
        return re.sub(r"[^\d-]", "", g)
    if re.fullmatch(r"-?\d+", g):
        return f"\\frac{{{2 * int(g)}}}{{2}}"
    if re.fullmatch(r"-?\d*\.\d+", g):
        whole, frac = g.lstrip("-").split(".")
        return ("-" if g.startswith("-") else "") + f"\\frac{{{int((whole or '0') + frac)}}}{{{10 ** len(frac)}}}"
    if re.fullmatch(r"\d+_\{?\d+\}?", g):                    # base subscripts
        digits, base = g.replace("{", "").replace("}", "").split("_")
        return f"{digits}_{{{base}}}" if "{" not in g else f"{digits}_{base}"
    if g.startswith("\\text{") and g.endswith("}"):
        return g[6:-1].strip()                                # plain word / (C)
    if "pmatrix" in g:
        return g.replace("pmatrix", "bmatrix")
    if g.startswith("\\{"):
        return "\\{" + ", ".join(p.strip() for p in g[2:-2].split(",")[::-1]) + "\\}"   # set, other order
    m = re.fullmatch(r"(\d+)\^\\circ", g)
    if m:
        return m.group(1)                                      # degrees without the symbol
    m = re.fullmatch(r"(\d+)\\frac\{(\d+)\}\{(\d+)\}", g)
    if m:                                                      # mixed number -> improper fraction
        a, b, c = map(int, m.groups())
        return f"\\frac{{{a * c + b}}}{{{c}}}"
    m = re.fullmatch(r"(-?)\\sqrt\{(\d+)\}", g)
    if m:
        return f"{m.group(1)}{m.group(2)}^{{\\frac{{1}}{{2}}}}"
    m = re.fullmatch(r"(\([^()]+\))(\([^()]+\))", g)
    if m:                                                      # factors in the other order
        return m.group(2) + m.group(1)
    if "\\pm" in g:
        g = re.sub(r"(\d)\s*\\sqrt", r"\1 \\cdot \\sqrt", g)
        return re.sub(r"\\sqrt\{(\d+)\}", r"\1^{\\frac{1}{2}}", g)
    if "\\left(" in g or "\\right)" in g or "\\right]" in g:
        return re.sub(r"\\(left|right)\s*", "", g)
    if re.fullmatch(r"-?[\w.\\{}]+(\s*,\s*-?[\w.\\{}]+)+", g):            # a list of solutions: other order
        return ", ".join(p.strip() for p in g.split(",")[::-1])
    if g.startswith("x \\in "):
        return g[len("x \\in "):]
    if re.fullmatch(r"[\(\[].*[\)\]]", g) and "," in g and "\\cup" not in g:   # tuple / interval
        return "\\left" + g[0] + " " + ", ".join(p.strip() for p in g[1:-1].split(",")) + " \\right" + g[-1]
    if "\\cup" in g:
        return " \\cup ".join(p.strip() for p in g.split("\\cup")[::-1])     # union in the other order
    if "=" in g:
        lhs, rhs = g.split("=", 1)
        terms = _split_terms(rhs)
        if terms:
            return lhs.strip() + " = " + _join(terms[::-1])
        terms = _split_terms(lhs)
        if terms:
            return _join(terms[::-1]) + " = " + rhs.strip()
        return rhs.strip() if re.fullmatch(r"\s*[a-z]\s*", lhs) else g.replace("=", " = ")
    h = re.sub(r"\\[dt]frac", r"\\frac", g)
    h = re.sub(r"\\frac\s*(\d)\s*(\d)", r"\\frac{\1}{\2}", h)
    h = re.sub(r"\\frac\s*(\d)\s*\{", r"\\frac{\1}{", h)
    h = re.sub(r"\\frac\{(\d+)\}(\d)", r"\\frac{\1}{\2}", h)
    if h != g:
        return h
    if "\\frac{" in g:
        return g.replace("\\frac{", "\\dfrac{")
    terms = _split_terms(g)
    if terms:
        return _join(terms[::-1])
    h = re.sub(r"(\d)\s*(\\sqrt|\\pi|[a-zA-Z])", r"\1 \\cdot \2", g)   # explicit products
    if h != g:
        return h
    if "," in g:
        return ", ".join(p.strip() for p in g.split(",")[::-1])     # a list of solutions, other order
    if g == "\\pi":
        return "\\frac{2\\pi}{2}"
    if g == "\\cot x":
        return "\\frac{\\cos x}{\\sin x}"
    return "(" + g + ")"

def _join(terms):
    out = ""
    for sign, t in terms:
        out += (("- " if sign == "-" else "+ ") if out else ("-" if sign == "-" else "")) + t + " "
    return out.strip()


def _golds(data) -> list[str]:
    golds = [json.loads(line)["answer"] for line in open(data / "math500_test.jsonl")]
    golds += [str(json.loads(line)["answer"]) for line in open(data / "aime24_test.jsonl")]
    golds += [str(json.loads(line)["answer"]) for line in open(data / "aime25_qwq.jsonl")]
    return golds


def test_every_gold_verifies_against_itself_in_another_form(shared_data):
    golds = _golds(shared_data)
    assert len(golds) == 560
    forms = [another_form(g) for g in golds]
    same = [g for g, f in zip(golds, forms) if f.replace(" ", "") == g.replace(" ", "")]
    assert not same, f"the rewriting left these unchanged: {same[:5]}"
    completions = [f"<think>\nworking...\n</think>\nSo the final answer is $\\boxed{{{f}}}$." for f in forms]
    some = golds[::4]  # and a wrong answer is still wrong (a reward that always says 1 would pass the first half)
    wrong = ["<think>\n...\n</think>\nThe answer is $\\boxed{-987654.321}$." for _ in some]
    with RewardPool(workers=2, math_timeout=20) as pool:
        right = pool.map("math", completions, golds)
        wrongs = pool.map("math", wrong, some)
    failed = [(g, f, r.reason) for g, f, r in zip(golds, forms, right) if r.score != 1.0]
    assert not failed, f"{len(failed)} gold answers did not verify: {failed[:10]}"
    assert all(r.score == 0.0 for r in wrongs), [g for g, r in zip(some, wrongs) if r.score][:5]


# --------------------------------------------------------------------------------------- pitfalls, directly

@pytest.mark.parametrize("completion, gold, score, reason", [
    ("<think>x</think> so $\\boxed{\\dfrac{14}{3}}$", "\\frac{14}{3}", 1.0, ""),   # bare LaTeX gold
    ("$\\boxed{4.0}$", 4, 1.0, ""),                                                # integer gold (AIME)
    ("<think>The answer is \\boxed{7}</think> The answer is $\\boxed{8}$", "7", 0.0, "wrong_answer"),
    ("<think>The answer is \\boxed{7} and I keep thinking", "7", 0.0, "no_answer"),  # truncated rollout
    ("I give up.", "7", 0.0, "no_answer"),
    ("$\\boxed{1-\\frac{1}{e}}$", "1-\\frac{1}{e}", 1.0, ""),
    ("$\\boxed{x}$", "", 0.0, "bad_gold"),
])
def test_math_reward_cases(completion, gold, score, reason):
    r = math_reward(completion, gold)
    assert (r.score, r.reason) == (score, reason)


def test_gold_goes_first_and_answer_after_think():
    assert answer_text("<think>a</think>b</think>c") == "c"
    assert gold_text("\\$36") == "$\\$36$"  # an escaped dollar is currency, not a delimiter


def test_signal_timeouts_refused_off_the_main_thread():
    errors = []

    def work():
        try:
            math_reward("$\\boxed{1}$", "1", timeout_s=1)
        except RuntimeError as e:
            errors.append(e)
        errors.append(math_reward("$\\boxed{1}$", "1"))  # no signals: fine in any thread

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert isinstance(errors[0], RuntimeError) and errors[1].score == 1.0


# ------------------------------------------------------------------------------------------------- hangs

def test_hang_is_killed_at_the_wall_limit_and_the_pool_answers_the_next_item():
    # Math-Verify's own alarm off: only the parent's wall clock can stop the worker.
    with RewardPool(workers=1, math_timeout=2.0, math_inner_timeout=0) as pool:
        assert pool.submit("math", "$\\boxed{1}$", "1").result().score == 1.0  # worker warm
        start = time.monotonic()
        hung = pool.submit("math", HANG, "4")
        nxt = pool.submit("math", "The answer is $\\boxed{\\frac{1}{2}}$", "0.5")
        r = hung.result()
        elapsed = time.monotonic() - start
        assert (r.score, r.reason) == (0.0, "timeout")
        assert 2.0 <= elapsed < 3.5, elapsed  # the wall limit, plus the parent noticing on a loaded machine
        assert nxt.result(timeout=60).score == 1.0
        assert pool.stats["timeouts"] == 1


def test_known_hanging_input_times_out_with_default_settings():
    with RewardPool(workers=1, math_timeout=4.0) as pool:
        start = time.monotonic()
        futures = [pool.submit("math", "The answer is 5^(5^(5^(5^5)))", "4"), pool.submit("math", HANG, "4"),
                   pool.submit("math", "$\\boxed{3}$", "3")]
        results = [f.result() for f in futures]
    assert [r.reason for r in results] == ["timeout", "timeout", ""]
    assert time.monotonic() - start < 2 * 4.0 + 10  # two walls at most, plus one worker restart


def test_an_answer_read_only_in_part_scores_zero():
    # Math-Verify reads these as their base (the brackets defeat its LaTeX parser; a smaller match then parses)
    for answer, gold in [("$5^(5^(5^(5^5)))$", "5"), ("$2^(2^(2^2))$", "2"), ("$10^(10^(10))$", "10")]:
        r = math_reward(f"<think>x</think> {answer}", gold, timeout_s=5)
        assert (r.score, r.reason) == (0.0, "no_answer"), answer
    # still read: braces, a single bracketed exponent, and a value from a separate earlier answer
    assert math_reward("$5^{5^{5}}$", "5^{5^5}", timeout_s=5).score == 1.0
    assert math_reward("$2^(3)$", "8", timeout_s=5).score == 1.0
    assert math_reward("The answer is $x$. Also $\\frac{1}{$", "x", timeout_s=5).score == 1.0


def test_decimal_comma_gold():
    assert math_reward("1.22", "1,22").score == 1.0 and math_reward("$1.22$", "1,22").score == 1.0
    assert math_reward("$\\{1, 22\\}$", "1,22").score == 1.0  # the pair reading stays correct
    assert math_reward("$1.21$", "1,22").score == 0.0
    assert math_reward("$1000$", "1,000").score == 1.0 and math_reward("$-2.1$", "-2,1").score == 0.0
