"""MathML -> LaTeX, for pages that ship bare MathML (no ``alttext``, no TeX ``<annotation>``).

Web extractors drop ``<math>`` elements or flatten them into glyph soup (``eiπ+1=0``), so the DOM pre-pass in
:mod:`mimo.data.extract` rewrites each one into LaTeX first.  Pages that carry the author's TeX (``alttext`` or an
``annotation encoding="application/x-tex"``) use it verbatim; only bare presentation MathML comes here.  The
conversion covers the presentation elements that real pages use (tokens, scripts, fractions, roots, under/over
scripts, fences, tables, ``menclose``); content MathML and layout-only attributes are ignored -- the aim is a
faithful, readable formula for a language model, not a round-trippable one.

>>> from lxml import etree
>>> mathml_to_latex(etree.fromstring('<math><mfrac><mn>1</mn><msqrt><mi>x</mi></msqrt></mfrac></math>'))
'\\\\frac{1}{\\\\sqrt{x}}'
"""

from __future__ import annotations

import re

GREEK = {
    "α": r"\alpha", "β": r"\beta", "γ": r"\gamma", "δ": r"\delta", "ε": r"\varepsilon", "ϵ": r"\epsilon",
    "ζ": r"\zeta", "η": r"\eta", "θ": r"\theta", "ϑ": r"\vartheta", "ι": r"\iota", "κ": r"\kappa",
    "λ": r"\lambda", "μ": r"\mu", "ν": r"\nu", "ξ": r"\xi", "π": r"\pi", "ρ": r"\rho", "σ": r"\sigma",
    "τ": r"\tau", "υ": r"\upsilon", "φ": r"\varphi", "ϕ": r"\phi", "χ": r"\chi", "ψ": r"\psi", "ω": r"\omega",
    "Γ": r"\Gamma", "Δ": r"\Delta", "Θ": r"\Theta", "Λ": r"\Lambda", "Ξ": r"\Xi", "Π": r"\Pi",
    "Σ": r"\Sigma", "Φ": r"\Phi", "Ψ": r"\Psi", "Ω": r"\Omega",
}

OPERATORS = {
    "×": r"\times", "·": r"\cdot", "⋅": r"\cdot", "±": r"\pm", "∓": r"\mp", "÷": r"\div", "−": "-",
    "≤": r"\leq", "≥": r"\geq", "≠": r"\neq", "≈": r"\approx", "≡": r"\equiv", "∼": r"\sim", "≅": r"\cong",
    "∝": r"\propto", "→": r"\to", "←": r"\leftarrow", "↔": r"\leftrightarrow", "⇒": r"\Rightarrow",
    "⇐": r"\Leftarrow", "⇔": r"\Leftrightarrow", "↦": r"\mapsto", "∞": r"\infty", "∑": r"\sum", "∏": r"\prod",
    "∫": r"\int", "∮": r"\oint", "∂": r"\partial", "∇": r"\nabla", "∈": r"\in", "∉": r"\notin", "∋": r"\ni",
    "⊂": r"\subset", "⊆": r"\subseteq", "⊃": r"\supset", "⊇": r"\supseteq", "∪": r"\cup", "∩": r"\cap",
    "∅": r"\emptyset", "∀": r"\forall", "∃": r"\exists", "¬": r"\neg", "∧": r"\wedge", "∨": r"\vee",
    "∘": r"\circ", "…": r"\ldots", "⋯": r"\cdots", "′": "'", "″": "''", "°": r"^\circ", "⊥": r"\perp",
    "∥": r"\parallel", "∠": r"\angle", "ℝ": r"\mathbb{R}", "ℕ": r"\mathbb{N}", "ℤ": r"\mathbb{Z}",
    "ℚ": r"\mathbb{Q}", "ℂ": r"\mathbb{C}", "⌊": r"\lfloor", "⌋": r"\rfloor", "⌈": r"\lceil", "⌉": r"\rceil",
    "⟨": r"\langle", "⟩": r"\rangle", "{": r"\{", "}": r"\}", "%": r"\%", "#": r"\#", "&": r"\&",
    "\u2061": "", "\u2062": "", "\u2063": ",", "\u2064": "+",  # invisible function application/times/separator/plus
}

# Accents written with <mover accent="true">: the over-script glyph -> the LaTeX accent command.
ACCENTS = {"^": r"\hat", "ˆ": r"\hat", "¯": r"\bar", "‾": r"\overline", "→": r"\vec", "⃗": r"\vec",
           "~": r"\tilde", "˜": r"\tilde", "˙": r"\dot", "¨": r"\ddot", "⏞": r"\overbrace", "︷": r"\overbrace"}
UNDER_ACCENTS = {"_": r"\underline", "‾": r"\underline", "¯": r"\underline", "⏟": r"\underbrace", "︸": r"\underbrace"}

# Multi-letter identifiers that LaTeX has a command for.
FUNCTIONS = {"sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
             "log", "ln", "lg", "exp", "lim", "max", "min", "sup", "inf", "det", "gcd", "deg", "dim", "ker", "arg",
             "Pr", "mod", "liminf", "limsup"}

# Big operators take limits as _{}^{} rather than \underset/\overset.
BIG_OPERATORS = {r"\sum", r"\prod", r"\int", r"\oint", r"\lim", r"\max", r"\min", r"\sup", r"\inf", r"\bigcup",
                 r"\bigcap", r"\liminf", r"\limsup"}

FENCES = {"(": "(", ")": ")", "[": "[", "]": "]", "{": r"\{", "}": r"\}", "|": "|", "‖": r"\|",
          "⟨": r"\langle", "⟩": r"\rangle", "⌊": r"\lfloor", "⌋": r"\rfloor", "⌈": r"\lceil", "⌉": r"\rceil", "": "."}

SKIP = {"annotation", "annotation-xml", "mphantom", "none", "mprescripts", "maligngroup", "malignmark"}


def local_name(el) -> str:
    """Tag name without namespace or prefix (``{http://www.w3.org/1998/Math/MathML}mi``, ``m:mi`` -> ``mi``)."""
    tag = el.tag if isinstance(el.tag, str) else ""
    return tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1].lower()


def _text(el) -> str:
    return re.sub(r"\s+", " ", "".join(el.itertext())).strip()


def _symbols(text: str) -> str:
    out = []
    for ch in text:
        if ch in GREEK:
            out.append(GREEK[ch] + " ")
        elif ch in OPERATORS:
            cmd = OPERATORS[ch]
            out.append(cmd + " " if cmd.startswith("\\") and cmd[-1].isalpha() else cmd)
        else:
            out.append(ch)
    return "".join(out).rstrip() if out and out[-1].endswith(" ") else "".join(out)


def _group(latex: str) -> str:
    """Brace a multi-symbol operand so scripts and fractions bind correctly."""
    if len(latex) == 1 or re.fullmatch(r"\\[A-Za-z]+", latex) or (latex.startswith("{") and latex.endswith("}")
                                                                    and latex.count("{") == 1):
        return latex
    return "{" + latex + "}"


def _children(el) -> list:
    return [c for c in el if isinstance(c.tag, str) and local_name(c) not in SKIP]


def _join(parts: list[str]) -> str:
    """Concatenate converted siblings, inserting a space where a command would swallow the next letter."""
    out = ""
    for p in parts:
        if not p:
            continue
        if out and re.search(r"\\[A-Za-z]+$", out) and p[0].isalpha():
            out += " "
        out += p
    return out


def _mi(el) -> str:
    text = _text(el)
    if len(text) > 1 and text in FUNCTIONS:
        return "\\" + text
    if len(text) > 1 and not any(ch in GREEK for ch in text):
        return r"\mathrm{" + text + "}"
    if el.get("mathvariant") == "double-struck" and text.isalpha():
        return r"\mathbb{" + text + "}"
    if el.get("mathvariant") == "bold":
        return r"\mathbf{" + text + "}"
    return _symbols(text)


def _mover(el, kids: list) -> str:
    base, over = convert(kids[0]), kids[1]
    glyph = _text(over)
    if glyph in ACCENTS and (el.get("accent") == "true" or local_name(over) == "mo"):
        return ACCENTS[glyph] + "{" + base + "}"
    if base in BIG_OPERATORS:
        return base + "^{" + convert(over) + "}"
    return r"\overset{" + convert(over) + "}{" + base + "}"


def _munder(el, kids: list) -> str:
    base, under = convert(kids[0]), kids[1]
    glyph = _text(under)
    if glyph in UNDER_ACCENTS:
        return UNDER_ACCENTS[glyph] + "{" + base + "}"
    if base in BIG_OPERATORS:
        return base + "_{" + convert(under) + "}"
    return r"\underset{" + convert(under) + "}{" + base + "}"


def _mfenced(el, kids: list) -> str:
    open_, close = el.get("open", "("), el.get("close", ")")
    seps = (el.get("separators", ",") or "").replace(" ", "")
    parts = []
    for i, k in enumerate(kids):
        if i:
            parts.append(seps[min(i - 1, len(seps) - 1)] if seps else "")
        parts.append(convert(k))
    return FENCES.get(open_, open_) + "".join(parts) + FENCES.get(close, close)


def _mtable(el, kids: list) -> str:
    rows = []
    for row in kids:
        cells = [convert(c) for c in _children(row) if local_name(c) == "mtd"]
        rows.append(" & ".join(cells))
    return r"\begin{matrix} " + r" \\ ".join(rows) + r" \end{matrix}"


def convert(el) -> str:
    """LaTeX for one MathML element (recursive)."""
    name = local_name(el)
    kids = _children(el)
    if name in SKIP:
        return ""
    if name == "semantics":
        return convert(kids[0]) if kids else ""
    if name == "mi":
        return _mi(el)
    if name == "mn":
        return _text(el)
    if name == "mo":
        return _symbols(_text(el))
    if name == "mtext":
        text = _text(el)
        return r"\text{" + text + "}" if text else " "
    if name == "ms":
        return r'\text{"' + _text(el) + '"}'
    if name == "mspace":
        return r"\ "
    if name in ("msup", "msub") and len(kids) >= 2:
        op = "^" if name == "msup" else "_"
        return _group(convert(kids[0])) + op + "{" + convert(kids[1]) + "}"
    if name == "msubsup" and len(kids) >= 3:
        return _group(convert(kids[0])) + "_{" + convert(kids[1]) + "}^{" + convert(kids[2]) + "}"
    if name == "mfrac" and len(kids) >= 2:
        if el.get("linethickness") in ("0", "0px", "0em"):
            return r"\binom{" + convert(kids[0]) + "}{" + convert(kids[1]) + "}"
        return r"\frac{" + convert(kids[0]) + "}{" + convert(kids[1]) + "}"
    if name == "msqrt":
        return r"\sqrt{" + _join([convert(k) for k in kids]) + "}"
    if name == "mroot" and len(kids) >= 2:
        return r"\sqrt[" + convert(kids[1]) + "]{" + convert(kids[0]) + "}"
    if name == "mover" and len(kids) >= 2:
        return _mover(el, kids)
    if name == "munder" and len(kids) >= 2:
        return _munder(el, kids)
    if name == "munderover" and len(kids) >= 3:
        base = convert(kids[0])
        if base in BIG_OPERATORS:
            return base + "_{" + convert(kids[1]) + "}^{" + convert(kids[2]) + "}"
        return r"\overset{" + convert(kids[2]) + r"}{\underset{" + convert(kids[1]) + "}{" + base + "}}"
    if name == "mfenced":
        return _mfenced(el, kids)
    if name == "mtable":
        return _mtable(el, kids)
    if name == "menclose":
        inner = _join([convert(k) for k in kids])
        return r"\boxed{" + inner + "}" if "box" in (el.get("notation") or "") else inner
    if name == "mmultiscripts" and kids:
        return _join([convert(k) for k in kids])
    # math, mrow, mstyle, mpadded, merror, mtd, unknown containers: the children in order
    if not kids:
        return _symbols(_text(el))
    return _join([convert(k) for k in kids])


def tex_annotation(math_el) -> str | None:
    """The author's TeX, when the MathML carries it (``alttext`` or a TeX ``<annotation>``)."""
    alt = (math_el.get("alttext") or "").strip()
    if alt:
        return alt
    for el in math_el.iter():
        if local_name(el) == "annotation" and "tex" in (el.get("encoding") or "").lower():
            text = (el.text or "").strip()
            if text:
                return text
    return None


def mathml_to_latex(math_el) -> str:
    """LaTeX for a ``<math>`` element: its TeX annotation if any, else converted from presentation MathML."""
    tex = tex_annotation(math_el)
    if tex is not None:
        return tex
    return convert(math_el).strip()
