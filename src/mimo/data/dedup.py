"""`mimo data dedup`: URL exact dedup, then MinHash near-duplicate removal, on datatrove's stages.

MiMo deduplicates by URL and by MinHash across all dumps.  Both passes are datatrove's distributed dedup stages
(signatures per task -> find duplicates -> filter), so they scale out unchanged on Ray or Slurm:

1. URL: ``ExactDedupSignature/ExactFindDedups/ExactDedupFilter`` with the normalised URL as the content
   (scheme, ``www.``, fragment, trailing slash and tracking parameters dropped).  Among pages with the same URL
   the one with the longest text survives.  Records without a URL are never URL duplicates.
2. MinHash: ``MinhashDedupSignature/Buckets/Cluster/Filter`` on word 5-grams, 14 bands x 8 rows (a document pair
   of Jaccard similarity s is caught with probability 1-(1-s^8)^14: 0.9998 at s=0.9, 0.03 at s=0.5).

Two departures from datatrove's defaults, both from docs/design.md §2: a whitespace word tokenizer (the default one
needs spaCy models) and ``norm_numbers=False`` -- datatrove replaces every number by 0 before shingling, which
merges math pages that differ only in their numbers (distinct problems) into one cluster.

Keeping digits is not enough on its own: two problems made from one template that happen to share some of their
numbers still share most word 5-grams (of ~990 distinct problems from the template in ``tests/test_dedup.py``,
39-47 were removed without the guard, 0 with it, over three seeds).  So we add
a *number guard* between datatrove's bucket and cluster stages: the signature stage also sketches each document's
set of numbers (a 64-hash MinHash), and a candidate pair whose number sets overlap less than ``number_guard``
(Jaccard) is dropped before clustering -- true near-duplicates (mirrors, re-crawls, small edits) share their numbers;
distinct problems do not.  This guard is ours, not the paper's.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import numpy as np
import xxhash
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.dedup import (
    ExactDedupConfig,
    ExactDedupFilter,
    ExactDedupSignature,
    ExactFindDedups,
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)
from datatrove.utils.hashing import HashConfig
from datatrove.utils.text import TextNormConfig
from datatrove.utils.word_tokenizers import WordTokenizer

from mimo.config import F
from mimo.data.executor import (
    ExecutorConfig,
    JsonlSink,
    JsonlSource,
    count_records,
    input_files,
    is_async,
    make_executor,
    output_files,
    run_stages,
)
from mimo.errors import MimoError
from mimo.utils.io import write_json

_TRACKING = re.compile(r"^(utm_\w+|fbclid|gclid|ref|source|sessionid|sid|phpsessid)$", re.I)


@dataclasses.dataclass
class DedupConfig:
    input: str = F("", "input JSONL file(s) or directory (records with text and url)")
    output: str = F("", "output directory (deduplicated JSONL, one file per task, plus dedup_report.json)")
    url: bool = F(True, "drop exact URL duplicates (keeping the longest text)")
    minhash: bool = F(True, "drop MinHash near-duplicates")
    url_field: str = F("url", "record field holding the page URL")
    n_grams: int = F(5, "MinHash shingle size in words")
    num_buckets: int = F(14, "MinHash LSH bands")
    hashes_per_bucket: int = F(8, "MinHash rows per band")
    seed: int = F(1, "MinHash permutation seed (same on every worker)")
    number_guard: float = F(0.6, "keep a MinHash pair apart when their sets of numbers overlap (Jaccard) less "
                            "than this: distinct problems from one template (0 disables)")
    executor: ExecutorConfig = F(factory=ExecutorConfig, help="datatrove executor")


class WhitespaceTokenizer(WordTokenizer):
    """Words = whitespace-separated tokens.  Needs no model, and keeps LaTeX/code tokens whole."""

    def __init__(self):
        super().__init__("whitespace")

    def word_tokenize(self, text: str) -> list[str]:
        return text.split()

    def sent_tokenize(self, text: str) -> list[str]:
        return [s for s in text.split("\n") if s.strip()]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in re.finditer(r"[^\n]+", text)]


def normalize_url(url: str) -> str:
    """Canonical form of a URL for exact dedup.

    >>> normalize_url("HTTPS://www.Example.com/a/b/?utm_source=x&q=1#top")
    'example.com/a/b?q=1'
    """
    url = url.strip()
    if not url:
        return ""
    parts = urlsplit(url if "://" in url else "http://" + url)
    host = (parts.hostname or "").lower().removeprefix("www.")
    if parts.port and parts.port not in (80, 443):
        host += f":{parts.port}"
    query = urlencode(sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                             if not _TRACKING.match(k)))
    path = parts.path.rstrip("/")
    return host + path + ("?" + query if query else "")


def url_key(doc: Document) -> str:
    """URL-dedup content; a record without a URL gets a key of its own (never a duplicate)."""
    url = doc.metadata.get("url")
    key = normalize_url(url) if isinstance(url, str) else ""
    return key or f"\0no-url:{doc.id}"


def longest_first(doc: Document) -> int:
    """Priority for URL duplicates: datatrove keeps the highest (range 1..65535), here the longest text."""
    return 1 + min(len(doc.text) // 16, 65534)


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_SKETCH = 64
_PRIME = (1 << 61) - 1
SENTINEL = (1 << 32) - 1


def number_sketch(text: str) -> np.ndarray:
    """A 64-value MinHash of the set of numbers in ``text`` (all ``2^61-1`` when it has none)."""
    nums = set(_NUMBER.findall(text))
    if not nums:
        return np.full(_SKETCH, _PRIME, dtype=np.uint64)
    h = np.fromiter((xxhash.xxh3_64_intdigest(n) % _PRIME for n in nums), dtype=np.uint64)[:, None]  # (N, 1)
    rng = np.random.RandomState(7)
    a = rng.randint(1, 1 << 30, size=(1, _SKETCH)).astype(np.uint64)
    b = rng.randint(0, 1 << 30, size=(1, _SKETCH)).astype(np.uint64)
    with np.errstate(over="ignore"):
        return ((h * a + b) % np.uint64(_PRIME)).min(axis=0)  # (64,)


class NumberSketches(PipelineStep):
    """Passes documents through, saving each one's :func:`number_sketch` by its index in this task."""

    name = "mimo number sketches"
    type = "DEDUP"

    def __init__(self, folder: str):
        super().__init__()
        self.folder = folder

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        sketches = []
        for doc in data:
            with self.track_time():
                sketches.append(number_sketch(doc.text))
            yield doc
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        np.save(Path(self.folder) / f"{rank:05d}.npy", np.array(sketches, dtype=np.uint64).reshape(-1, _SKETCH))


class NumberGuard(PipelineStep):
    """Rewrites the bucket stage's duplicate pairs, dropping pairs whose number sets differ (see module doc)."""

    name = "mimo number guard"
    type = "DEDUP"

    def __init__(self, dups_folder: str, sketch_folder: str, threshold: float):
        super().__init__()
        self.dups_folder, self.sketch_folder, self.threshold = dups_folder, sketch_folder, threshold

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        sketches = {int(p.stem): np.load(p) for p in Path(self.sketch_folder).glob("*.npy")}
        for path in sorted(Path(self.dups_folder).glob("*.dups")):
            raw = np.fromfile(path, dtype="<u4").reshape(-1, 4)  # (pairs, 4): file1, doc1, file2, doc2
            keep = np.ones(len(raw), dtype=bool)
            for i, (f1, d1, f2, d2) in enumerate(raw.tolist()):
                if SENTINEL in (f1, f2):
                    continue  # a match against an index: not ours to judge
                same = float(np.mean(sketches[f1][d1] == sketches[f2][d2]))
                keep[i] = same >= self.threshold
            self.stat_update("pairs", value=len(raw))
            self.stat_update("pairs_split_by_numbers", value=int((~keep).sum()))
            raw[keep].astype("<u4").tofile(path)
        return
        yield


def minhash_config(cfg: DedupConfig) -> MinhashConfig:
    return MinhashConfig(n_grams=cfg.n_grams, num_buckets=cfg.num_buckets, hashes_per_bucket=cfg.hashes_per_bucket,
                         seed=cfg.seed, norm_config=TextNormConfig(norm_numbers=False),
                         hash_config=HashConfig(precision=64))


def _url_executors(cfg: DedupConfig, files: list[Path] | str, work: Path, out: Path) -> list:
    ucfg = ExactDedupConfig(content_getter=url_key, document_priority=longest_first)
    ex = cfg.executor
    return [
        make_executor([JsonlSource(files), ExactDedupSignature(str(work / "url_sigs"), ucfg)], ex, work / "logs/url1"),
        make_executor([ExactFindDedups(str(work / "url_sigs"), str(work / "url_dups"), ucfg)], ex, work / "logs/url2",
                      tasks=1),
        make_executor([JsonlSource(files), ExactDedupFilter(str(work / "url_dups"), ucfg), JsonlSink(out)], ex,
                      work / "logs/url3"),
    ]


def _minhash_executors(cfg: DedupConfig, files: list[Path] | str, work: Path, out: Path) -> list:
    mcfg, ex = minhash_config(cfg), cfg.executor
    sig = MinhashDedupSignature(str(work / "mh_sigs"), config=mcfg, language=WhitespaceTokenizer())
    sketch, guard = str(work / "mh_numbers"), str(work / "mh_buckets")
    executors = [
        make_executor([JsonlSource(files), NumberSketches(sketch), sig], ex, work / "logs/mh1"),
        make_executor([MinhashDedupBuckets(str(work / "mh_sigs"), str(work / "mh_buckets"), config=mcfg)], ex,
                      work / "logs/mh2", tasks=cfg.num_buckets),
        make_executor([MinhashDedupCluster(str(work / "mh_buckets"), str(work / "mh_remove"), config=mcfg)], ex,
                      work / "logs/mh3", tasks=1),
        make_executor([JsonlSource(files), MinhashDedupFilter(str(work / "mh_remove")), JsonlSink(out)], ex,
                      work / "logs/mh4"),
    ]
    if cfg.number_guard > 0:
        executors.insert(2, make_executor([NumberGuard(guard, sketch, cfg.number_guard)], ex, work / "logs/mh_guard",
                                          tasks=1))
    return executors


def main(cfg: DedupConfig) -> dict:
    """Run the configured dedup passes; returns (and writes) the report of documents in/out per pass."""

    if not cfg.output:
        raise MimoError("dedup: --output DIR is required")
    files = input_files(cfg.input)
    out = Path(cfg.output)
    work = out / ".work"
    if work.exists() and not cfg.executor.resume:
        shutil.rmtree(work)
    for stale in output_files(out):
        stale.unlink()
    passes = [("url", _url_executors)] if cfg.url else []
    passes += [("minhash", _minhash_executors)] if cfg.minhash else []
    if is_async(cfg.executor) and passes:  # Slurm: every pass as one chain of dependent jobs
        chain, current = [], files
        for i, (name, build) in enumerate(passes):
            dest = out if i == len(passes) - 1 else work / f"{name}_out"
            chain += build(cfg, current, work, dest)
            current = str(dest)
        return run_stages("dedup", chain)
    n_in = count_records(files)
    t0 = time.perf_counter()
    report: dict = {"stage": "dedup", "input_docs": n_in, "docs": n_in, "passes": []}
    current = files
    for i, (name, build) in enumerate(passes):
        last = i == len(passes) - 1
        dest = out if last else work / f"{name}_out"
        stats = run_stages(f"dedup/{name}", build(cfg, current, work, dest), n_docs=count_records(current))
        current = output_files(dest)
        stats["kept"] = count_records(current)
        report["passes"].append(stats)
    if not passes:  # nothing to do: copy through
        make_executor([JsonlSource(files), JsonlSink(out)], cfg.executor, work / "logs/copy").run()
        current = output_files(out)
    report["output_docs"] = report["kept"] = count_records(current)
    report["removed"] = n_in - report["output_docs"]
    report["docs_per_s"] = round(n_in / max(time.perf_counter() - t0, 1e-9), 1)
    write_json(out / "dedup_report.json", report)
    print(f"[mimo data dedup] {n_in} -> {report['output_docs']} documents ({report['removed']} removed)")
    return report
