"""`mimo data mix`: the three pretraining stages as token shards, with per-source token shares.

MiMo's schedule (docs/design.md §1.2): stage 1 uses every source except synthetic responses, down-sampling ads, news and
job posts and up-sampling high-value domains; stage 2 raises math + code to ~70%; stage 3 adds ~10% synthetic
reasoning responses and moves from 8K context / RoPE base 10,000 to 32K / 640,000.  Each stage here is a token
budget split over sources by ``weights`` (token shares); within a source, documents are drawn epoch by epoch,
each epoch holding every eligible document ``domain_weights[domain]`` times in expectation (0.1 keeps one ad in
ten, 2.0 repeats a math page twice), so tags move the composition inside a source while the source's share of
the stage stays what the config says.  A document is added while it brings the source closer to its budget,
so a source's realised tokens are within half a document of its target (the 2% tolerance the tests check).

Output: ``out_dir/stage1/``, ``stage2/``, ``stage3/`` in the :mod:`mimo.data.shards` format that ``mimo pretrain``
reads (with exact resume); each ``index.json`` ``meta`` records the stage's ``seq_len`` and ``rope_theta`` and per
source ``tokens``, ``docs``, ``share``, ``target_share`` and ``epochs``.  Departure from the paper: its mixture
weights and token counts (~25T) are not published per source; the defaults below follow the stated ratios.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from pathlib import Path

import numpy as np

from mimo.config import F
from mimo.data.executor import input_files
from mimo.data.shards import ShardWriter
from mimo.errors import MimoError
from mimo.tokenizer import Tokenizer, train_bpe
from mimo.utils.io import iter_jsonl, write_json


@dataclasses.dataclass
class StageConfig:
    name: str = F("stage1", "stage directory name")
    tokens: int = F(1_000_000, "token budget of the stage (documents plus their EOS)")
    weights: dict[str, float] = F(factory=dict, help="source -> share of the stage's tokens (normalised)")
    domain_weights: dict[str, float] = F(factory=dict, help="tagged domain -> sampling multiplier within a source")
    min_quality: float = F(0.0, "drop tagged documents with quality below this")
    seq_len: int = F(8192, "context length pretraining uses for this stage")
    rope_theta: float = F(10000.0, "RoPE base for this stage")


def default_stages() -> list[StageConfig]:
    """The paper's three stages at toy scale: sources web, math, code, synthetic."""
    down = {"ads": 0.1, "news": 0.5, "jobs": 0.1, "math": 2.0, "code": 2.0, "science": 1.5}
    return [
        StageConfig("stage1", 1_000_000, {"web": 0.6, "math": 0.2, "code": 0.2}, dict(down), 0.0, 8192, 10000.0),
        StageConfig("stage2", 1_000_000, {"web": 0.3, "math": 0.35, "code": 0.35}, dict(down), 0.0, 8192, 10000.0),
        StageConfig("stage3", 500_000, {"web": 0.2, "math": 0.35, "code": 0.35, "synthetic": 0.1}, dict(down), 0.0,
                    32768, 640000.0),
    ]


@dataclasses.dataclass
class MixConfig:
    sources: dict[str, str] = F(factory=dict, help="source name -> JSONL file(s) or directory (records with text)")
    stages: list[StageConfig] = F(factory=default_stages, help="the pretraining stages, in order")
    tokenizer: str = F("", "tokenizer directory (Hugging Face format)")
    tokenizer_vocab: int = F(0, "train a byte-level BPE of this size into --tokenizer if it does not exist yet")
    output: str = F("", "output directory: one shard directory per stage")
    field: str = F("text", "record field holding the text")
    seed: int = F(0, "sampling and shuffling seed")
    shard_tokens: int = F(1 << 24, "tokens per shard file")


@dataclasses.dataclass
class _Source:
    """A tokenized source: token arrays and tags per document."""

    name: str
    ids: list[np.ndarray]
    domains: list[str | None]
    qualities: list[float | None]

    def lengths(self) -> np.ndarray:
        return np.fromiter((a.size + 1 for a in self.ids), dtype=np.int64, count=len(self.ids))  # +1: EOS


def _records(spec: str, field: str):
    for path in input_files(spec):
        for line, rec in enumerate(iter_jsonl(path), start=1):
            if not isinstance(rec.get(field), str):
                raise MimoError(f"{path}:{line}: record has no string field {field!r}")
            yield rec


def load_source(name: str, spec: str, tokenizer, field: str = "text", batch: int = 512) -> _Source:
    src = _Source(name, [], [], [])
    texts: list[str] = []

    def flush():
        src.ids.extend(np.asarray(ids, dtype=np.int64) for ids in tokenizer.encode_batch(texts))
        texts.clear()

    for rec in _records(spec, field):
        texts.append(rec[field])
        src.domains.append(rec.get("domain"))
        q = rec.get("quality")
        src.qualities.append(float(q) if isinstance(q, (int, float)) else None)
        if len(texts) >= batch:
            flush()
    if texts:
        flush()
    return src


def _epoch(rng: random.Random, eligible: list[int], mult: list[float]) -> list[int]:
    """One pass over a source: document i appears floor(m_i) times plus once more with probability frac(m_i)."""
    out = []
    for i, m in zip(eligible, mult):
        k = int(m) + (rng.random() < m - int(m))
        out.extend([i] * k)
    rng.shuffle(out)
    return out


def select(src: _Source, stage: StageConfig, target: int, rng: random.Random) -> tuple[list[int], int, float]:
    """Documents of ``src`` filling ``target`` tokens: (doc indices, tokens, epochs used)."""
    lengths = src.lengths()
    eligible, mult = [], []
    for i, (d, q) in enumerate(zip(src.domains, src.qualities)):
        if q is not None and q < stage.min_quality:
            continue
        m = stage.domain_weights.get(d, 1.0) if d is not None else 1.0
        if m > 0:
            eligible.append(i)
            mult.append(m)
    if not eligible or sum(mult[j] * lengths[i] for j, i in enumerate(eligible)) <= 0:
        raise MimoError(f"{stage.name}: source {src.name!r} has no eligible documents (check tags/min_quality)")
    chosen, total, epochs = [], 0, 0
    while total < target:
        order = _epoch(rng, eligible, mult)
        epochs += 1
        if not order:
            continue
        for pos, i in enumerate(order):
            n = int(lengths[i])
            if total + n > target and (total + n - target) > (target - total):
                return chosen, total, epochs - 1 + pos / len(order)
            chosen.append(i)
            total += n
            if total >= target:
                return chosen, total, epochs - 1 + (pos + 1) / len(order)
    return chosen, total, float(epochs)


def build_stage(stage: StageConfig, sources: dict[str, _Source], tokenizer, out_dir: str | Path, seed: int,
                shard_tokens: int = 1 << 24) -> dict:
    """Sample, shuffle and write one stage; returns its index (with the per-source accounting in ``meta``)."""
    t0 = time.perf_counter()
    if not stage.weights:
        raise MimoError(f"{stage.name}: no source weights")
    unknown = sorted(set(stage.weights) - set(sources))
    if unknown:
        raise MimoError(f"{stage.name}: weight for unknown source {unknown[0]!r} (sources: {', '.join(sources)})")
    norm = sum(w for w in stage.weights.values() if w > 0)
    if norm <= 0:
        raise MimoError(f"{stage.name}: source weights must have a positive sum")
    rng = random.Random(f"{seed}/{stage.name}")
    picks: list[tuple[str, int]] = []
    per_source = {}
    for name, w in stage.weights.items():
        if w <= 0:
            continue
        target = round(stage.tokens * w / norm)
        idx, got, epochs = select(sources[name], stage, target, rng)
        picks += [(name, i) for i in idx]
        per_source[name] = {"tokens": got, "docs": len(idx), "target_share": round(w / norm, 6),
                            "epochs": round(epochs, 3)}
    rng.shuffle(picks)
    total = sum(s["tokens"] for s in per_source.values())
    for s in per_source.values():
        s["share"] = round(s["tokens"] / max(total, 1), 6)
    meta = {"stage": stage.name, "seq_len": stage.seq_len, "rope_theta": stage.rope_theta, "seed": seed,
            "sources": per_source, "domain_weights": stage.domain_weights, "min_quality": stage.min_quality}
    writer = ShardWriter(Path(out_dir) / stage.name, vocab_size=len(tokenizer), eos_id=tokenizer.eos_id,
                         shard_tokens=shard_tokens, meta=meta)
    for name, i in picks:
        writer.add(sources[name].ids[i])
    index = writer.close()
    dt = time.perf_counter() - t0
    shares = ", ".join(f"{k} {v['share']:.1%}" for k, v in per_source.items())
    print(f"[mimo data mix/{stage.name}] {len(picks)} docs, {index['total_tokens']} tokens in {dt:.1f}s = "
          f"{len(picks) / max(dt, 1e-9):.0f} docs/s ({shares}); seq_len {stage.seq_len}, rope_theta "
          f"{stage.rope_theta:g}", flush=True)
    return index


def build_stages(cfg: MixConfig, tokenizer, out_dir: str | Path | None = None) -> list[dict]:
    """Tokenize every source once and write every stage; returns the stages' indexes (Python API for the demo)."""
    out_dir = Path(out_dir or cfg.output)
    if not cfg.sources:
        raise MimoError("mix: no sources (sources: {name: path, ...})")
    names = [n for n in cfg.sources if any(s.weights.get(n, 0) > 0 for s in cfg.stages)]
    t0 = time.perf_counter()
    sources = {n: load_source(n, cfg.sources[n], tokenizer, cfg.field) for n in names}
    n_docs = sum(len(s.ids) for s in sources.values())
    dt = time.perf_counter() - t0
    print(f"[mimo data mix/tokenize] {n_docs} docs in {dt:.1f}s = {n_docs / max(dt, 1e-9):.0f} docs/s", flush=True)
    indexes = [build_stage(st, sources, tokenizer, out_dir, cfg.seed, cfg.shard_tokens) for st in cfg.stages]
    write_json(out_dir / "mix.json", {"stages": [ix["meta"] | {"total_tokens": ix["total_tokens"]} for ix in indexes],
                                      "sources": cfg.sources})
    return indexes


def _tokenizer(cfg: MixConfig):
    if not cfg.tokenizer:
        raise MimoError("mix: --tokenizer DIR is required")
    path = Path(cfg.tokenizer)
    if (path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file():
        return Tokenizer.load(path)
    if cfg.tokenizer_vocab <= 0:
        raise MimoError(f"{path}: not a tokenizer directory (pass --tokenizer_vocab N to train one)")
    texts = (rec[cfg.field] for spec in cfg.sources.values() for rec in _records(spec, cfg.field))
    return train_bpe(texts, cfg.tokenizer_vocab, path)


def main(cfg: MixConfig) -> list[dict]:
    if not cfg.output:
        raise MimoError("mix: --output DIR is required")
    return build_stages(cfg, _tokenizer(cfg), cfg.output)


def realised_shares(index: dict) -> dict[str, float]:
    """Per-source token shares recorded in a stage's index (for checks and reports)."""
    return {k: v["share"] for k, v in index["meta"]["sources"].items()}


def math_code_share(index: dict, groups: tuple[str, ...] = ("math", "code")) -> float:
    return math.fsum(v for k, v in realised_shares(index).items() if k in groups)
