"""Extraction keeps every formula, code block and forum reply of the hand-written test pages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lxml import etree

from mimo.data.extract import EXTRACTORS, extract, html_to_text, missing_items
from mimo.data.mathml import mathml_to_latex

PAGES = Path(__file__).parent / "fixtures" / "html"
EXPECTED = json.loads((PAGES / "expected.json").read_text())


@pytest.mark.parametrize("extractor", EXTRACTORS)
@pytest.mark.parametrize("page", sorted(EXPECTED))
def test_every_formula_code_block_and_reply_survives(page, extractor):
    result = extract((PAGES / page).read_text(), extractor=extractor)
    assert missing_items(result.text, EXPECTED[page]) == []
    assert result.lost == []  # no placeholder was dropped by the main-content extractor


def test_math_is_delimited_and_rendered_duplicates_are_gone():
    text = html_to_text((PAGES / "mathjax_v2.html").read_text(), url="https://x.org/cs")
    assert "$u, v \\in \\mathbb{R}^n$" in text
    assert "$$\\left| \\langle u, v \\rangle \\right| \\le \\|u\\| \\, \\|v\\|$$" in text
    assert "|⟨u,v⟩|≤‖u‖‖v‖" not in text  # MathJax's rendered copy is not kept next to the TeX
    katex = html_to_text((PAGES / "katex.html").read_text())
    assert "P(D∣+)=P(+∣D)" not in katex and "$P(D \\mid +)$" in katex
    assert "All rights reserved" not in text and "Popular" not in text  # footer and sidebar still go


def test_code_blocks_keep_tabs_indentation_and_language_and_drop_line_numbers():
    text = html_to_text((PAGES / "code.html").read_text())
    assert "```makefile\nall: build\n\tgcc -O2 -o main main.c\n" in text
    assert "        d, u = heapq.heappop(heap)\n" in text
    assert "1\n2\n3\n4" not in text  # the line-number gutter is not code
    assert "Inline code such as heapq.heappush stays inline." in text


def test_plain_trafilatura_loses_what_the_pre_pass_keeps():
    """The reason for the pre-pass (docs/design.md §2), measured on the same pages: see benchmarks/extract.py."""
    trafilatura = pytest.importorskip("trafilatura")
    lost = {p: missing_items(trafilatura.extract((PAGES / p).read_text()) or "", EXPECTED[p]) for p in EXPECTED}
    assert len(lost["mathjax_v2.html"]) == len(EXPECTED["mathjax_v2.html"])  # every MathJax script dropped
    assert lost["mathml.html"] and lost["wiki_mathml.html"] and lost["forum.html"]


@pytest.mark.parametrize("mathml, latex", [
    ("<math><mfrac><mn>1</mn><msqrt><mi>x</mi></msqrt></mfrac></math>", r"\frac{1}{\sqrt{x}}"),
    ("<math><msubsup><mi>x</mi><mi>i</mi><mn>2</mn></msubsup></math>", r"x_{i}^{2}"),
    ("<math><mroot><mi>y</mi><mn>3</mn></mroot><mo>≤</mo><mi>α</mi></math>", r"\sqrt[3]{y}\leq\alpha"),
    ("<math><mi>sin</mi><mo>&#x2061;</mo><mi>θ</mi></math>", r"\sin\theta"),
    ("<math><mover accent='true'><mi>v</mi><mo>→</mo></mover></math>", r"\vec{v}"),
    ("<math><munder><mi>lim</mi><mrow><mi>n</mi><mo>→</mo><mi>∞</mi></mrow></munder></math>", r"\lim_{n\to\infty}"),
    ("<math><mfenced><mi>a</mi><mi>b</mi></mfenced></math>", "(a,b)"),
    ("<math><mtext>if </mtext><mi>x</mi></math>", r"\text{if}x"),
    ("<math alttext='\\pi r^2'><mi>π</mi></math>", r"\pi r^2"),
])
def test_mathml_to_latex(mathml, latex):
    assert mathml_to_latex(etree.fromstring(mathml)) == latex


def test_degenerate_input():
    assert html_to_text("") == ""
    assert html_to_text("   ") == ""
    assert "hello world" in html_to_text("<p>hello world, this is a sentence long enough to be content.</p>")
