"""The built-in toy corpus: a tokenizer and three pretraining stages generated from the verifiable task generators.

MiMo's pretraining raises reasoning density stage by stage (DESIGN.md section 1).  The toy corpus mirrors that
with generated sources instead of web dumps:

* ``text``        short general sentences from a template grammar (the "web" of the toy world);
* ``math_answer`` arithmetic problems with the answer only (low reasoning density);
* ``math_cot``    the same kind of problems with worked steps (high reasoning density);
* ``synthetic``   ChatML reasoning traces (``<think>`` steps ``</think>`` answer) -- stage 3's synthetic data.

Stage weights come from :class:`ToyCorpus`.  Only *train*-split problems appear; held-out problems never do.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

from mimo.config import F
from mimo.data.shards import ShardWriter
from mimo.data.tasks.math import MathTaskGenerator
from mimo.tokenizer import IM_END, Tokenizer, train_bpe

SOURCES = ("text", "math_answer", "math_cot", "synthetic")

_SUBJECTS = ("The river", "A small town", "The old library", "My neighbour", "The market", "A quiet student",
             "The garden", "Our teacher", "The train", "A red bird")
_VERBS = ("opens", "closes", "waits", "sings", "grows", "moves", "shines", "rests", "changes", "returns")
_TAILS = ("in the morning", "after the rain", "before noon", "every winter", "near the hill", "at night",
          "on weekends", "with a smile", "without a sound", "for a while")


def _sentence(rng: random.Random) -> str:
    return f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_TAILS)}."


@dataclasses.dataclass
class ToyCorpus:
    """Sizes and mixture of the built-in toy corpus."""

    seed: int = F(0, "corpus seed")
    vocab_size: int = F(512, "BPE vocabulary size")
    docs_per_stage: int = F(20000, "documents generated per stage")
    min_steps: int = F(1, "fewest arithmetic steps per problem")
    max_steps: int = F(3, "most arithmetic steps per problem")
    max_digits: int = F(2, "operand digits")
    stage_weights: list[dict[str, float]] = F(
        factory=lambda: [
            {"text": 0.4, "math_answer": 0.4, "math_cot": 0.2},
            {"text": 0.3, "math_answer": 0.35, "math_cot": 0.35},
            {"text": 0.2, "math_answer": 0.3, "math_cot": 0.4, "synthetic": 0.1},
        ],
        help="per stage: source -> document share (sources: text, math_answer, math_cot, synthetic)",
    )


def _documents(source: str, n: int, gen: MathTaskGenerator, rng: random.Random) -> list[str]:
    if source == "text":
        return [" ".join(_sentence(rng) for _ in range(rng.randint(2, 5))) for _ in range(n)]
    if n == 0:
        return []
    problems = gen.sample(n, "train", unique=False)
    if source == "math_answer":
        return [p.pretrain_text(with_reasoning=False) for p in problems]
    if source == "math_cot":
        return [p.pretrain_text(with_reasoning=True) for p in problems]
    if source == "synthetic":
        return [p.chat_prompt() + p.chat_response() + IM_END for p in problems]
    raise ValueError(f"unknown toy source {source!r} (known: {', '.join(SOURCES)})")


def stage_documents(spec: ToyCorpus, stage: int) -> list[tuple[str, str]]:
    """``(source, text)`` documents of a stage, shuffled, with source counts matching the weights."""
    weights = spec.stage_weights[min(stage, len(spec.stage_weights) - 1)]
    rng = random.Random(spec.seed * 1000 + stage)
    gen = MathTaskGenerator(seed=spec.seed * 1000 + stage, min_steps=spec.min_steps, max_steps=spec.max_steps,
                            max_digits=spec.max_digits)
    total_w = sum(weights.values())
    docs: list[tuple[str, str]] = []
    for source, w in weights.items():
        n = round(spec.docs_per_stage * w / total_w)
        docs += [(source, d) for d in _documents(source, n, gen, rng)]
    rng.shuffle(docs)
    return docs


def build_tokenizer(spec: ToyCorpus, out_dir: str | Path) -> Tokenizer:
    """Train the toy BPE on a sample of every source of every stage."""
    texts = [t for s in range(len(spec.stage_weights)) for _, t in stage_documents(
        dataclasses.replace(spec, docs_per_stage=min(spec.docs_per_stage, 4000)), s)]
    return train_bpe(texts, spec.vocab_size, out_dir)


def build_stage_shards(spec: ToyCorpus, tokenizer: Tokenizer, stage: int, out_dir: str | Path) -> dict:
    """Tokenize stage ``stage``'s documents into a shard directory; index meta records tokens per source."""
    docs = stage_documents(spec, stage)
    writer = ShardWriter(out_dir, tokenizer.vocab_size, tokenizer.eos_id, meta={"stage": stage + 1, "toy": True})
    counts: dict[str, int] = {}
    ids = tokenizer.encode_batch([t for _, t in docs])
    for (source, _), toks in zip(docs, ids):
        counts[source] = counts.get(source, 0) + writer.add(toks)
    writer.meta["source_tokens"] = counts
    return writer.close()


def build_heldout_shards(spec: ToyCorpus, tokenizer: Tokenizer, out_dir: str | Path, n: int = 500) -> dict:
    """Held-out problems with worked steps (never seen in training), for held-out loss / MTP accuracy."""
    gen = MathTaskGenerator(seed=spec.seed + 99991, min_steps=spec.min_steps, max_steps=spec.max_steps,
                            max_digits=spec.max_digits)
    writer = ShardWriter(out_dir, tokenizer.vocab_size, tokenizer.eos_id, meta={"heldout": True})
    for p in gen.sample(n, "heldout"):
        writer.add(tokenizer.encode(p.pretrain_text(with_reasoning=True)))
    return writer.close()
