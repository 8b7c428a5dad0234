"""A generated toy web: labelled pages of every domain the tagger knows, with math, code and duplicates.

Nothing may be downloaded here, so the pipeline's end-to-end check, the tagger's seed data and the toy runs use
pages made from templates.  Each page has a URL, HTML (navigation and footer boilerplate around the content;
math pages carry MathJax scripts, KaTeX or MathML, code pages ``<pre>`` blocks) and its labels: ``domain``,
``quality`` (0..1) and ``reasoning`` depth (0..1).  :func:`web_pages` can add exact-URL duplicates and
near-duplicates (a mirrored copy with one added line) for the dedup stage to find.
"""

from __future__ import annotations

import random

DOMAINS = ("math", "code", "science", "general", "ads", "news", "jobs")

_WORDS = {
    "science": "energy particle cell protein orbit planet molecule reaction enzyme gravity photon climate fossil "
               "species neuron gene atom electron magnetic field experiment hypothesis measurement".split(),
    "general": "garden kitchen weekend travel family coffee morning music holiday village friend book movie "
               "recipe walk river evening window city park market neighbour".split(),
    "news": "officials council minister election parliament police court report spokesperson budget economy "
            "protest agreement summit inflation committee investigation".split(),
    "ads": "discount offer sale free shipping deal price buy order coupon premium exclusive guarantee bonus "
           "limited bestseller cheap".split(),
    "jobs": "engineer manager analyst nurse developer designer accountant technician salary benefits remote "
            "experience degree apply position team candidate".split(),
}
_CITIES = "Lyon Osaka Denver Quito Leeds Pune Perth Bergen Tucson Busan Accra Graz".split()
_FUNCS = "parse merge scan build index rank fold split count encode decode route cache".split()


def _sentences(rng: random.Random, domain: str, n: int) -> list[str]:
    vocab = _WORDS[domain]
    out = []
    for _ in range(n):
        w = rng.sample(vocab, 4)
        if domain == "science":
            out.append(f"The {w[0]} of a {w[1]} depends on the {w[2]}, which explains why {w[3]} changes "
                       f"by {rng.randint(2, 99)} percent when the {w[0]} doubles.")
        elif domain == "news":
            out.append(f"{rng.choice(_CITIES)} {w[0]} said on Monday that the {w[1]} would review the {w[2]} "
                       f"after {rng.randint(2, 900)} people attended the {w[3]}.")
        elif domain == "ads":
            out.append(f"{w[0].upper()}! Get {rng.randint(10, 90)}% off every {w[1]} today, {w[2]} and {w[3]} "
                       f"included, order now!")
        elif domain == "jobs":
            out.append(f"We are hiring a {w[0]} in {rng.choice(_CITIES)} with {rng.randint(1, 9)} years of "
                       f"{w[1]}; {w[2]} and {w[3]} offered, apply today.")
        else:
            out.append(f"My {w[0]} near the {w[1]} was quiet this {w[2]}, so we spent {rng.randint(2, 9)} hours "
                       f"talking about the {w[3]}.")
    return out


def _math(rng: random.Random) -> tuple[list[str], list[str]]:
    """(paragraphs as plain text, the same as HTML with formulas in MathJax/KaTeX/MathML form)."""
    a, b, c = rng.randint(2, 99), rng.randint(2, 99), rng.randint(2, 9)
    s = a + b
    text = [f"Problem: find the value of $({a} + {b}) \\times {c}$ and check it with the distributive law.",
            f"Solution: first $${a} + {b} = {s}$$ and then $${s} \\times {c} = {s * c}$$.",
            f"Check: ${a} \\times {c} + {b} \\times {c} = {a * c} + {b * c} = {s * c}$, so the answer is "
            f"$\\boxed{{{s * c}}}$."]
    style = rng.randrange(3)
    if style == 0:  # MathJax scripts
        html = [f'<p>Problem: find the value of <script type="math/tex">({a} + {b}) \\times {c}</script> and check '
                f'it with the distributive law.</p>',
                f'<p>Solution: first</p><script type="math/tex; mode=display">{a} + {b} = {s}</script><p>and then</p>'
                f'<script type="math/tex; mode=display">{s} \\times {c} = {s * c}</script>']
    elif style == 1:  # KaTeX
        html = [f'<p>Problem: find the value of <span class="katex"><span class="katex-mathml"><math><semantics>'
                f'<mrow></mrow><annotation encoding="application/x-tex">({a} + {b}) \\times {c}</annotation>'
                f'</semantics></math></span><span class="katex-html" aria-hidden="true">({a}+{b})×{c}</span></span>'
                f' and check it with the distributive law.</p>',
                f"<p>Solution: first $${a} + {b} = {s}$$ and then $${s} \\times {c} = {s * c}$$.</p>"]
    else:  # raw LaTeX in the text
        html = [f"<p>{t}</p>" for t in text[:2]]
    html.append(f"<p>{text[2]}</p>")
    return text, html


def _code(rng: random.Random) -> tuple[list[str], list[str]]:
    f, k = rng.choice(_FUNCS), rng.randint(2, 9)
    code = (f"def {f}_{k}(items):\n    out = []\n    for i, x in enumerate(items):\n        if i % {k} == 0:\n"
            f"            out.append(x * {rng.randint(2, 99)})\n    return out")
    intro = f"The helper {f}_{k} keeps every {k}-th item and scales it; note the modulo test inside the loop."
    outro = f"Calling {f}_{k} on a list of {rng.randint(10, 99)} numbers returns a shorter list in one pass."
    text = [intro, "```python\n" + code + "\n```", outro]
    esc = code.replace("&", "&amp;").replace("<", "&lt;")
    return text, [f"<p>{intro}</p>", f'<pre><code class="language-python">{esc}</code></pre>', f"<p>{outro}</p>"]


def document(rng: random.Random, domain: str) -> dict:
    """One labelled page: ``{"url", "html", "text", "domain", "quality", "reasoning"}`` (``text`` = expected)."""
    if domain == "math":
        text, body = _math(rng)
        quality, reasoning = 0.9, 0.9
    elif domain == "code":
        text, body = _code(rng)
        quality, reasoning = 0.8, 0.7
    else:
        text = _sentences(rng, domain, rng.randint(3, 7))
        body = [f"<p>{t}</p>" for t in text]
        quality = {"science": 0.8, "general": 0.5, "news": 0.6, "ads": 0.1, "jobs": 0.3}[domain]
        reasoning = {"science": 0.6, "general": 0.1, "news": 0.2, "ads": 0.0, "jobs": 0.0}[domain]
    uid = rng.getrandbits(48)
    title = f"{domain} page {uid:x}"
    html = ("<html><head><title>" + title + "</title></head><body><nav><a href='/'>Home</a> <a href='/about'>About"
            "</a></nav><main><h1>" + title + "</h1>" + "".join(body) + "</main><footer>Copyright. Privacy. Terms."
            "</footer></body></html>")
    return {"url": f"https://{domain}.example.org/p/{uid:x}", "html": html, "text": "\n".join(text),
            "domain": domain, "quality": quality, "reasoning": reasoning}


def near_duplicate(rng: random.Random, text: str, fraction: float = 0.01) -> str:
    """``text`` with about ``fraction`` of its words replaced (at least one)."""
    words = text.split(" ")
    for i in rng.sample(range(len(words)), max(1, round(len(words) * fraction))):
        words[i] = "edited" + str(rng.randint(0, 9999))
    return " ".join(words)


def web_pages(n: int, seed: int = 0, url_dup_rate: float = 0.05, near_dup_rate: float = 0.05,
              weights: dict[str, float] | None = None) -> list[dict]:
    """``n`` pages of mixed domains, plus URL duplicates and near-duplicates (marked ``dup_of``), shuffled."""
    rng = random.Random(seed)
    weights = weights or {"math": 0.2, "code": 0.15, "science": 0.15, "general": 0.2, "ads": 0.1, "news": 0.1,
                          "jobs": 0.1}
    names, probs = list(weights), list(weights.values())
    pages = [document(rng, rng.choices(names, probs)[0]) for _ in range(n)]
    for i, p in enumerate(pages):
        p["id"] = f"page{i}"
    extra = []
    for p in rng.sample(pages, int(n * url_dup_rate)):
        url = p["url"].replace("https://", "http://www.")  # the same URL once normalised
        extra.append({**p, "id": p["id"] + "-urldup", "dup_of": p["id"], "url": url})
    for p in rng.sample(pages, int(n * near_dup_rate)):
        extra.append({**p, "id": p["id"] + "-near", "dup_of": p["id"], "url": p["url"] + "?copy=1",
                      "html": p["html"].replace("</h1>", "</h1><p>Mirrored copy.</p>")})
    out = pages + extra
    rng.shuffle(out)
    return out


def seed_documents(n: int = 700, seed: int = 1) -> list[dict]:
    """Labelled plain-text seed data for the tagger: ``{"text", "domain", "quality", "reasoning"}``."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        d = document(rng, DOMAINS[i % len(DOMAINS)])
        docs.append({k: d[k] for k in ("text", "domain", "quality", "reasoning")})
    return docs
