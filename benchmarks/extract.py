"""Side by side: what plain extractors keep of the test pages' formulas, code blocks and forum replies, and
what our pre-pass keeps (``mimo.data.extract``).  Prints a Markdown table (the README copies it).

    .venv/bin/python benchmarks/extract.py

Pages and their expected items: ``tests/fixtures/html`` (written by hand for the tests, one page per way formulas
and code appear on the web: MathJax v2 scripts, MathJax v3 containers, MathML with and without TeX, KaTeX,
MediaWiki math, raw LaTeX, highlighted code with tabs and line numbers, a Q&A thread, a phpBB thread).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from mimo.data.extract import extract, missing_items

PAGES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "html"
KINDS = ("math", "code", "reply")


def plain_trafilatura(page: str) -> str:
    import trafilatura

    return trafilatura.extract(page) or ""


def plain_resiliparse(page: str) -> str:
    from resiliparse.extract.html2text import extract_plain_text

    return extract_plain_text(page, preserve_formatting=True, main_content=True)


METHODS = {
    "trafilatura (defaults)": plain_trafilatura,
    "resiliparse (main content)": plain_resiliparse,
    "mimo pre-pass + trafilatura": lambda p: extract(p, extractor="trafilatura").text,
    "mimo pre-pass + resiliparse": lambda p: extract(p, extractor="resiliparse").text,
}


def main() -> None:
    expected = json.loads((PAGES / "expected.json").read_text())
    pages = {name: (PAGES / name).read_text() for name in sorted(expected)}
    totals = {k: sum(i["kind"] == k for items in expected.values() for i in items) for k in KINDS}
    header = ["page"] + list(METHODS)
    rows, summary = [], {m: {k: 0 for k in KINDS} | {"ms": 0.0} for m in METHODS}
    for name, html in pages.items():
        row = [f"`{name}` ({len(expected[name])})"]
        for method, fn in METHODS.items():
            t0 = time.perf_counter()
            text = fn(html)
            summary[method]["ms"] += (time.perf_counter() - t0) * 1000
            lost = missing_items(text, expected[name])
            for k in KINDS:
                summary[method][k] += sum(i["kind"] == k for i in expected[name]) - sum(i["kind"] == k for i in lost)
            row.append(f"{len(expected[name]) - len(lost)}/{len(expected[name])}")
        rows.append(row)
    for k in KINDS:
        rows.append([f"**{k} kept** ({totals[k]})"] + [f"**{summary[m][k]}/{totals[k]}**" for m in METHODS])
    rows.append(["ms for all pages"] + [f"{summary[m]['ms']:.0f}" for m in METHODS])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
