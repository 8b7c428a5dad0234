"""HTML -> text that keeps the math, the code and the forum replies (`mimo data extract`).

MiMo's pretraining data starts from web pages, and the paper's point is that generic extractors throw away
exactly the reasoning-dense parts: formulas and code.  Measured on the pages in ``tests/fixtures/html``
(``benchmarks/extract.py``): trafilatura drops MathJax ``<script type="math/tex">`` and bare MathML outright, and
Resiliparse flattens MathML/KaTeX into glyph soup (``eiπ+1=0``, ``yy = mx + c``).  So before either extractor runs,
a DOM pre-pass rewrites every formula into LaTeX and protects it and every ``<pre>`` block behind a placeholder
word; the extractor then only decides *which* blocks are main content, and the placeholders are swapped back for
the exact LaTeX (``$...$`` inline, ``$$...$$`` display) and the exact code (fenced, indentation and tabs kept).

Formula sources, in the order the pre-pass handles them:

- MathJax v2 ``<script type="math/tex[; mode=display]">`` (its rendered ``.MathJax*`` siblings are removed);
- KaTeX ``.katex`` / ``.katex-display`` (the TeX ``<annotation>``; the rendered ``.katex-html`` is dropped);
- MathJax v3 ``<mjx-container>`` and MediaWiki ``.mwe-math-element`` (their MathML; fallback images dropped);
- any other ``<math>``: ``alttext`` or a TeX ``<annotation>``, else converted by :mod:`mimo.data.mathml`;
- ``<img class="...tex/latex/math...">`` whose ``alt`` is the TeX source;
- raw ``$...$``, ``\\(...\\)``, ``\\[...\\]`` in the text already survive both extractors and are left alone.

Forum threads: both extractors are called in their comment-keeping modes (Resiliparse ``comments=True``,
trafilatura ``include_comments=True, favor_recall=True``); with its defaults trafilatura drops replies and comments
(``tests/fixtures/html/forum.html``, ``phpbb.html``).

Departure from the paper: MiMo does not publish its extractor; this is our reconstruction of the behaviour it
describes (keep math, code and forum content), built on Resiliparse (default, fast) or trafilatura.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from lxml import html as lxml_html

from mimo.config import F
from mimo.data.executor import (
    DocumentMap,
    ExecutorConfig,
    JsonlSink,
    JsonlSource,
    count_records,
    input_files,
    make_executor,
    output_files,
    run_stages,
)
from mimo.data.mathml import local_name, mathml_to_latex
from mimo.errors import MimoError
from mimo.utils.io import write_jsonl

EXTRACTORS = ("resiliparse", "trafilatura")

# Rendered duplicates of a formula whose TeX source sits next to them.
_MATHJAX_RENDERED = re.compile(r"\b(MathJax_Preview|MathJax|MathJax_Display|MathJax_CHTML|MathJax_SVG|MathJax_MathML|"
                               r"MJX_Assistive_MathML)\b")
_TEX_IMG = re.compile(r"\b(tex|latex|math|equation|formula)", re.I)
_LANG = re.compile(r"\b(?:language|lang|highlight-source)-([\w+#-]+)")
_GUTTER = re.compile(r"\b(linenos|lineno|line-numbers|gutter|linenodiv)\b")
_DISPLAYSTYLE = re.compile(r"^\{\\(?:displaystyle|textstyle)\s*(.*)\}$", re.S)


@dataclass
class Extraction:
    """The text of one page plus what the pre-pass protected (and whether any of it was lost)."""

    text: str
    n_math: int = 0
    n_code: int = 0
    lost: list[str] = field(default_factory=list)


class _Protector:
    """Swaps formulas and code blocks for unique placeholder words, and back after extraction."""

    def __init__(self):
        self.tag = "mimo" + secrets.token_hex(3)
        self.items: dict[str, tuple[str, str]] = {}  # placeholder -> (kind, replacement text)

    def add(self, kind: str, text: str) -> str:
        key = f"{self.tag}x{len(self.items)}q"
        self.items[key] = (kind, text)
        return key

    def restore(self, text: str) -> tuple[str, list[str]]:
        lost = []
        for key, (kind, value) in self.items.items():
            if key not in text:
                lost.append(f"{kind}: {value[:60]}")
                continue
            if kind in ("display", "code"):
                # Blocks own their lines: drop spaces the extractor left around the placeholder.
                text = re.sub(rf"[ \t]*{key}[ \t]*", lambda _m, v=value: "\n" + v + "\n", text)
            else:
                text = text.replace(key, value)
        return re.sub(r"\n{3,}", "\n\n", text).strip(), lost


def _clean_tex(tex: str) -> str:
    tex = tex.strip()
    m = _DISPLAYSTYLE.match(tex)
    return m.group(1).strip() if m else tex


def _replace(el, new_text: str, block: bool) -> None:
    """Put ``new_text`` where ``el`` was (keeping ``el``'s tail), as inline text or as its own block."""
    parent = el.getparent()
    if parent is None:
        return
    tail = el.tail or ""
    if block:
        div = lxml_html.Element("div")
        div.text = new_text
        div.tail = tail
        parent.replace(el, div)
        return
    prev = el.getprevious()
    if prev is not None:
        prev.tail = (prev.tail or "") + new_text + tail
    else:
        parent.text = (parent.text or "") + new_text + tail
    parent.remove(el)


def _math(p: _Protector, el, tex: str, display: bool) -> None:
    tex = _clean_tex(tex)
    if not tex:
        _replace(el, "", block=False)
        return
    if display:
        _replace(el, p.add("display", f"$${tex}$$"), block=True)
    else:
        _replace(el, p.add("math", f"${tex}$"), block=False)


def _classes(el) -> str:
    return (el.get("class") or "") + " " + (el.get("id") or "")


def _find_math(el):
    for sub in el.iter():
        if local_name(sub) == "math":
            return sub
    return None


def _is_display(el) -> bool:
    return (el.get("display") or "").lower() in ("block", "true") or "display" in (el.get("class") or "")


def _attached(el, root) -> bool:
    """Still in the document (not inside a subtree an earlier rewrite removed)?"""
    last = el
    for last in el.iterancestors():  # noqa: B007 -- we want the last ancestor
        pass
    return last is root


def prepare_dom(root) -> _Protector:
    """The pre-pass: rewrite formulas to LaTeX and shield them and ``<pre>`` blocks behind placeholders."""
    p = _Protector()
    scripts = [s for s in root.iter("script") if (s.get("type") or "").lower().startswith("math/tex")]
    if scripts:
        for el in [e for e in root.iter() if isinstance(e.tag, str) and _MATHJAX_RENDERED.search(e.get("class") or "")]:
            if el.getparent() is not None:
                _replace(el, "", block=False)
    for s in scripts:
        _math(p, s, s.text or "", display="mode=display" in (s.get("type") or "").lower())
    for el in list(root.iter()):
        if not isinstance(el.tag, str) or not _attached(el, root):
            continue
        cls = el.get("class") or ""
        name = local_name(el)
        if "katex-display" in cls or "katex" in cls.split():
            math = _find_math(el)
            if math is not None:
                _math(p, el, mathml_to_latex(math), display="katex-display" in cls or _is_display(math))
        elif name == "mjx-container" or "mwe-math-element" in cls:
            math = _find_math(el)
            if math is not None:
                _math(p, el, mathml_to_latex(math), display=_is_display(el) or _is_display(math))
    for el in [e for e in root.iter() if isinstance(e.tag, str) and local_name(e) == "math"]:
        if el.getparent() is not None:
            _math(p, el, mathml_to_latex(el), display=_is_display(el))
    for el in list(root.iter("img")):
        alt = (el.get("alt") or "").strip()
        if alt and _TEX_IMG.search(_classes(el)) and el.getparent() is not None:
            _math(p, el, alt, display="display" in _classes(el))
    for el in [e for e in root.iter() if isinstance(e.tag, str) and _GUTTER.search(e.get("class") or "")]:
        if el.getparent() is not None:
            _replace(el, "", block=False)
    for pre in list(root.iter("pre")):
        code = pre.text_content().strip("\n")
        if not code.strip():
            continue
        lang = _LANG.search(" ".join(_classes(e) for e in [pre, *pre.iter("code"), pre.getparent()] if e is not None))
        fence = "```" + (lang.group(1) if lang else "")
        key = p.add("code", f"{fence}\n{code}\n```")
        for child in list(pre):
            pre.remove(child)
        pre.text = key
    return p


def _run_extractor(page: str, url: str | None, extractor: str, main_content: bool) -> str:
    if extractor == "resiliparse":
        from resiliparse.extract.html2text import extract_plain_text

        return extract_plain_text(page, preserve_formatting=True, main_content=main_content, list_bullets=True,
                                  alt_texts=False, links=False, comments=True)
    if extractor == "trafilatura":
        import trafilatura

        out = trafilatura.extract(page, url=url, include_comments=True, include_tables=True, favor_recall=True,
                                  no_fallback=not main_content, deduplicate=False)
        return out or ""
    raise ValueError(f"unknown extractor {extractor!r} (choose from {', '.join(EXTRACTORS)})")


def extract(page: str, url: str | None = None, extractor: str = "resiliparse", main_content: bool = True) -> Extraction:
    """Text of one HTML page with its formulas and code intact, and counts of what was protected or lost."""
    if not page or not page.strip():
        return Extraction("")
    try:
        root = lxml_html.document_fromstring(page)
    except (ValueError, lxml_html.etree.ParserError):
        return Extraction("")
    p = prepare_dom(root)
    prepared = lxml_html.tostring(root, encoding="unicode")
    raw = _run_extractor(prepared, url, extractor, main_content)
    raw = "\n".join(line.rstrip() for line in raw.splitlines())
    text, lost = p.restore(raw)
    n_math = sum(kind in ("math", "display") for kind, _ in p.items.values())
    n_code = sum(kind == "code" for kind, _ in p.items.values())
    return Extraction(text, n_math=n_math, n_code=n_code, lost=lost)


def html_to_text(html: str, url: str | None = None, extractor: str = "resiliparse") -> str:
    """Main text of an HTML page, keeping LaTeX/MathJax/MathML/KaTeX formulas, code blocks and forum replies."""
    return extract(html, url, extractor=extractor).text


# ------------------------------------------------------------------------------------ survival checks


def _squash(s: str) -> str:
    return re.sub(r"\s+", "", s)


def missing_items(text: str, items: list[dict]) -> list[dict]:
    """The expected items (``{"kind": "math"|"code"|"reply", "value": ...}``) that ``text`` lost.

    Formulas match ignoring whitespace (delimiters may differ); code must appear verbatim, indentation and tabs
    included; replies match with whitespace collapsed.
    """
    squashed = _squash(text)
    spaced = re.sub(r"\s+", " ", text)
    lost = []
    for item in items:
        value = item["value"]
        if item["kind"] == "math":
            ok = _squash(value) in squashed
        elif item["kind"] == "code":
            ok = value in text
        else:
            ok = re.sub(r"\s+", " ", value).strip() in spaced
        if not ok:
            lost.append(item)
    return lost


# ------------------------------------------------------------------------------------------- the stage


@dataclasses.dataclass
class ExtractConfig:
    input: str = F("", "input: JSONL file(s)/directory of records with html (and url), or a directory of .html files")
    output: str = F("", "output directory: JSONL records with text (one file per task)")
    html_field: str = F("html", "record field holding the HTML")
    extractor: str = F("resiliparse", "main-content extractor after the pre-pass: resiliparse or trafilatura")
    main_content: bool = F(True, "keep only main content (drop navigation, footers, sidebars)")
    min_chars: int = F(20, "drop pages whose extracted text is shorter than this")
    executor: ExecutorConfig = F(factory=ExecutorConfig, help="datatrove executor")


def extract_document(doc, extractor: str = "resiliparse", main_content: bool = True, min_chars: int = 20):
    """datatrove map function: the document's HTML (``doc.text``) -> its text; None (dropped) when too short."""
    url = doc.metadata.get("url")
    result = extract(doc.text, url if isinstance(url, str) else None, extractor=extractor, main_content=main_content)
    if len(result.text) < min_chars:
        return None
    doc.text = result.text
    doc.metadata.update(n_math=result.n_math, n_code=result.n_code, n_lost=len(result.lost))
    return doc


def _html_files_to_jsonl(folder: Path, dest: Path, field: str) -> Path:
    """A directory of ``.html`` pages as one JSONL file (url = the file name), so the stage reads one format."""

    pages = sorted([*folder.glob("*.html"), *folder.glob("*.htm")])
    write_jsonl(dest, ({"id": p.stem, "url": p.name, field: p.read_text(encoding="utf-8", errors="replace")}
                       for p in pages))
    return dest


def main(cfg: ExtractConfig) -> dict:
    from functools import partial


    if not cfg.output:
        raise MimoError("extract: --output DIR is required")
    if cfg.extractor not in EXTRACTORS:
        raise MimoError(f"--extractor: expected one of {', '.join(EXTRACTORS)}, got {cfg.extractor!r}")
    out = Path(cfg.output)
    src = Path(cfg.input)
    if src.is_dir() and not any(src.glob("*.jsonl")) and any(src.glob("*.htm*")):
        files = [_html_files_to_jsonl(src, out / ".work" / "pages.jsonl", cfg.html_field)]
    else:
        files = input_files(cfg.input)
    for stale in output_files(out):
        stale.unlink()
    fn = partial(extract_document, extractor=cfg.extractor, main_content=cfg.main_content, min_chars=cfg.min_chars)
    pipeline = [JsonlSource(files, text_field=cfg.html_field), DocumentMap(fn, "mimo extract"), JsonlSink(out)]
    n_in = count_records(files)
    stats = run_stages("extract", [make_executor(pipeline, cfg.executor, out / ".work" / "logs")], n_docs=n_in)
    stats["kept"] = count_records(output_files(out))
    return stats
