"""16-gram decontamination against evaluation benchmarks (`mimo data decontaminate`), shared by SFT data,
RL-data curation and evaluation.

MiMo drops every training query that shares a 16-gram with an evaluation benchmark.  Texts are normalised to
word tokens (Unicode NFKC, lower case, ``\\w+`` runs -- punctuation and LaTeX backslashes vanish, digits stay), each
word is hashed to 64 bits, and every n-gram becomes one 64-bit polynomial hash computed with NumPy over a sliding
window, so checking a document is a vectorised ``searchsorted`` against the sorted index (hundreds of thousands of
documents per minute on one core).  A hit maps back to the benchmark items that hold that n-gram.

Benchmark items shorter than n words (a few AIME answers-only prompts, tiny toy problems) would otherwise never
match; they are indexed whole instead (an item of ``k >= min_words`` words matches a document containing those k
words in a row).  Departure from the paper: it does not say how it tokenises; we use normalised words, the common
choice (e.g. OpenAI's and Llama's contamination studies), and document that 64-bit hash collisions are ignored.
"""

from __future__ import annotations

import dataclasses
import json
import re
import unicodedata
from collections import defaultdict
from pathlib import Path

import numpy as np
import xxhash

from mimo.config import F
from mimo.data.executor import input_files
from mimo.errors import MimoError
from mimo.eval.benchmarks import REGISTRY, LoadOptions
from mimo.eval.benchmarks import load_benchmark as load_eval_benchmark
from mimo.utils.io import iter_jsonl, open_text, write_json, write_jsonl
from mimo.utils.paths import eval_data_dir  # noqa: F401  (re-exported)

_WORD = re.compile(r"\w+|[-+*/=<>^]")  # words, and the operators that tell math problems apart
_MULT = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier of the rolling hash
_BITMAP_BITS = 22

# name -> (file in the shared evaluation-data folder, fields holding the text)
BENCHMARKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "math500": ("math500_test.jsonl", ("problem",)),
    "aime24": ("aime24_test.jsonl", ("problem",)),
    "aime25": ("aime25_qwq.jsonl", ("prompt",)),
    "livecodebench": ("livecodebench_v5_prompts_qwq.jsonl", ("prompt",)),
    "humaneval": ("HumanEval.jsonl.gz", ("prompt",)),
}


def words(text: str) -> list[str]:
    """Normalised word tokens; arithmetic operators count as words (``3 + 4`` and ``3 - 4`` differ).

    >>> words("Let $f(x)=\\\\frac{1}{2}x$. Find f(10)!")
    ['let', 'f', 'x', '=', 'frac', '1', '2', 'x', 'find', 'f', '10']
    """
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def _word_hashes(tokens: list[str]) -> np.ndarray:
    return np.fromiter((xxhash.xxh3_64_intdigest(w) for w in tokens), dtype=np.uint64, count=len(tokens))


class _Powers:
    """P^j and P^-j mod 2^64 for j < size (P odd, hence invertible), grown on demand."""

    def __init__(self):
        self.up = np.ones(1, dtype=np.uint64)
        self.down = np.ones(1, dtype=np.uint64)

    def get(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        if self.up.size < size:
            size = max(size, 2 * self.up.size)
            inv = np.uint64(pow(int(_MULT), -1, 1 << 64))
            one = np.ones(1, dtype=np.uint64)
            with np.errstate(over="ignore"):
                self.up = np.concatenate([one, np.multiply.accumulate(np.full(size - 1, _MULT, dtype=np.uint64))])
                self.down = np.concatenate([one, np.multiply.accumulate(np.full(size - 1, inv, dtype=np.uint64))])
        return self.up, self.down


_POWERS = _Powers()


def ngram_hashes(tokens: list[str] | np.ndarray, *ns: int) -> np.ndarray:
    """64-bit hashes of every n-gram of ``tokens`` (words, or their :func:`_word_hashes`), for each n in ``ns``,
    concatenated (lengths above the token count contribute nothing).

    hash(i, n) = sum_k w[i+k] P^(n-1-k) mod 2^64 = (C[i+n] - C[i]) P^(i+n-1) with C the prefix sums of w[j] P^-j,
    so the prefix is computed once and every n costs one vectorised pass however long the n-gram.
    """
    w = tokens if isinstance(tokens, np.ndarray) else _word_hashes(tokens)
    up, down = _POWERS.get(w.size + 1)
    with np.errstate(over="ignore"):
        c = np.concatenate([np.zeros(1, dtype=np.uint64), np.cumsum(w * down[:w.size], dtype=np.uint64)])  # (N+1,)
        parts = [(c[n:] - c[:-n]) * up[n - 1:w.size] for n in ns if 0 < n <= w.size]  # (N-n+1,) each, mod 2^64
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64)


def load_benchmark(spec: str, data_dir: str | Path | None = None) -> list[str]:
    """Texts of one benchmark: a known name (:data:`BENCHMARKS`), another benchmark ``mimo eval`` knows (``lcb_v5``,
    ``lcb_v6``, ``gpqa_diamond``: their prompts, read from ``data_dir`` by :mod:`mimo.eval.loaders`),
    ``FILE.jsonl[:field]`` or a text file (one item per line)."""
    if spec not in BENCHMARKS and ":" not in spec and not Path(spec).is_file():
        if spec in REGISTRY:
            return [it.prompt for it in load_eval_benchmark(spec, LoadOptions(data=str(data_dir or ""))).items]
    if spec in BENCHMARKS:
        root = Path(data_dir) if data_dir else eval_data_dir()
        if root is None:
            raise MimoError(f"benchmark {spec!r}: evaluation data folder not found (set MIMO_EVAL_DATA)")
        name, fields = BENCHMARKS[spec]
        path, keys = root / name, fields
    else:
        file, _, field = spec.partition(":")
        path, keys = Path(file), (field or "text",)
        if not path.is_file():
            raise MimoError(f"{spec}: not a known benchmark ({', '.join(BENCHMARKS)}) nor a file")
        if not (path.name.endswith(".jsonl") or path.name.endswith(".jsonl.gz")):
            with open_text(path) as f:
                return [line.strip() for line in f if line.strip()]
    texts = []
    for i, rec in enumerate(iter_jsonl(path), start=1):
        text = next((rec[k] for k in keys if isinstance(rec.get(k), str)), None)
        if text is None:
            raise MimoError(f"{path}: record {i} has none of the fields {list(keys)}")
        texts.append(text)
    return texts


class NgramIndex:
    """n-gram hashes of benchmark items -> which items hold them."""

    def __init__(self, n: int = 16, min_words: int = 8, max_owners: int = 5):
        self.n, self.min_words, self.max_owners = n, min_words, max_owners
        self.items: list[str] = []  # "benchmark:index" per item
        self._owners: dict[int, list[int]] = defaultdict(list)
        self._lengths: set[int] = {n}  # n, plus the word counts of items shorter than n (indexed whole)
        self._bitmap = np.zeros(1, dtype=bool)
        self.skipped = 0  # items too short to index
        self.template_ngrams = 0  # n-grams dropped as shared prompt template

    def add(self, texts: list[str], name: str = "custom") -> NgramIndex:
        """Index ``texts`` as items ``name:0, name:1, ...``.  An n-gram found in more than ``max_owners`` items of
        one call is prompt-template text ("You will be given a question ... Python program"), not a problem, and
        would flag every document that quotes the template: it is left out."""
        first = len(self.items)
        for i, text in enumerate(texts):
            item = len(self.items)
            self.items.append(f"{name}:{i}")
            toks = words(text)
            if len(toks) >= self.n:
                for h in set(ngram_hashes(toks, self.n).tolist()):
                    self._owners[h].append(item)
            elif len(toks) >= self.min_words:
                (h,) = ngram_hashes(toks, len(toks)).tolist()
                self._owners[h].append(item)
                self._lengths.add(len(toks))
            else:
                self.skipped += 1
        template = [h for h, owners in self._owners.items()
                    if sum(o >= first for o in owners) > self.max_owners]
        for h in template:
            del self._owners[h]
        self.template_ngrams += len(template)
        # Prefilter: one bit per 2^42-wide hash bucket (4 MB); a document's n-grams are looked up in the dict only
        # when their bucket holds a benchmark n-gram (~2-3% of them), which keeps memory access linear.
        self._bitmap = np.zeros(1 << _BITMAP_BITS, dtype=bool)
        if self._owners:
            self._bitmap[np.fromiter(self._owners, dtype=np.uint64) >> np.uint64(64 - _BITMAP_BITS)] = True
        return self

    @classmethod
    def from_benchmarks(cls, specs: list[str], n: int = 16, data_dir: str | Path | None = None,
                        extra: list[str] | None = None) -> NgramIndex:
        index = cls(n=n)
        for spec in specs:
            index.add(load_benchmark(spec, data_dir), name=Path(spec).stem if spec not in BENCHMARKS else spec)
        if extra:
            index.add(extra, name="extra")
        return index

    def __len__(self) -> int:
        return len(self._owners)

    def matches(self, text: str) -> list[str]:
        """The benchmark items (``"name:index"``) sharing an n-gram with ``text`` (sorted, unique)."""
        toks = words(text)
        hit: set[int] = set()
        w = _word_hashes(toks)
        if self._owners:
            # all window lengths in one lookup (64-bit hashes of different lengths do not collide in practice)
            h = ngram_hashes(w, *self._lengths)
            for value in set(h[self._bitmap[h >> np.uint64(64 - _BITMAP_BITS)]].tolist()):
                hit.update(self._owners.get(value, ()))
        return [self.items[i] for i in sorted(hit)]

    def contaminated(self, text: str) -> bool:
        return bool(self.matches(text))


@dataclasses.dataclass
class DecontamConfig:
    input: str = F("", "input JSONL file(s) or directory")
    output: str = F("", "output JSONL file: the records without benchmark overlap")
    field: str = F("text", "record field to check (e.g. problem, prompt, text)")
    benchmarks: list[str] = F(factory=lambda: list(BENCHMARKS),
                              help="benchmarks: names, FILE.jsonl[:field] or text files (one item per line)")
    n: int = F(16, "n-gram length in normalised words")
    data_dir: str = F("", "evaluation data folder (default: $MIMO_EVAL_DATA, else shared/data nearby)")
    report: str = F("", "optional JSON report: counts and the dropped records' ids with the items they overlap")


def main(cfg: DecontamConfig) -> dict:
    """Filter ``cfg.input`` to ``cfg.output``; returns the report."""
    import time

    if not cfg.input or not cfg.output:
        raise MimoError("decontaminate: --input FILE and --output FILE are required")
    index = NgramIndex.from_benchmarks(cfg.benchmarks, n=cfg.n, data_dir=cfg.data_dir or None)
    kept, dropped, per_bench = [], [], defaultdict(int)
    t0 = time.perf_counter()
    if Path(cfg.input).is_file():
        files = [Path(cfg.input)]
    else:  # a directory or a comma list (the datatrove glue is only needed then)

        files = input_files(cfg.input)
    records = ((f, line, rec) for f in files for line, rec in enumerate(iter_jsonl(f), start=1))
    for path, line, rec in records:
        text = rec.get(cfg.field)
        if not isinstance(text, str):
            raise MimoError(f"{path}:{line}: record has no string field {cfg.field!r}")
        hits = index.matches(text)
        if hits:
            dropped.append({"file": str(path), "line": line, "id": rec.get("id"), "matches": hits[:20]})
            for b in {h.split(":")[0] for h in hits}:
                per_bench[b] += 1
        else:
            kept.append(rec)
    dt = time.perf_counter() - t0
    write_jsonl(cfg.output, kept)
    n = len(kept) + len(dropped)
    report = {"input": n, "kept": len(kept), "dropped": len(dropped), "per_benchmark": dict(per_bench),
              "n": cfg.n, "index_ngrams": len(index), "benchmark_items": len(index.items),
              "items_too_short": index.skipped,
              "template_ngrams_ignored": index.template_ngrams, "docs_per_s": round(n / max(dt, 1e-9), 1),
              "dropped_records": dropped}
    if cfg.report:
        write_json(cfg.report, report)
    print(f"[mimo data decontaminate] {n} docs, {len(dropped)} contaminated "
          f"({json.dumps(dict(per_bench))}), {n / max(dt, 1e-9):.0f} docs/s")
    return report
