"""The built-in toy corpus: generated sources, a tokenizer, and MiMo's three pretraining stages via the mixer.

MiMo's pretraining raises reasoning density stage by stage (docs/design.md §1.2).  The toy corpus mirrors that
with generated sources instead of web dumps, written as JSONL and mixed by :func:`mimo.data.mix.build_stages`
(token shares per source per stage, exactly as for real data):

* ``text``        short general sentences from a template grammar (the "web" of the toy world);
* ``math_answer`` arithmetic problems with the answer only (low reasoning density);
* ``math_cot``    the same kind of problems with worked steps (high reasoning density);
* ``code``        small Python functions under a comment stating what they do (:mod:`mimo.tasks.code`);
* ``synthetic``   ChatML reasoning traces (``<think>`` steps ``</think>`` answer) -- stage 3's synthetic data.

Only *train*-split problems appear; held-out problems never do.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

from mimo.config import F
from mimo.data.shards import ShardWriter
from mimo.tasks import ToyTaskSpec
from mimo.tokenizer import IM_END, Tokenizer, train_bpe
from mimo.utils.io import write_jsonl

SOURCES = ("text", "math_answer", "math_cot", "code", "synthetic")

_SUBJECTS = ("The river", "A small town", "The old library", "My neighbour", "The market", "A quiet student",
             "The garden", "Our teacher", "The train", "A red bird")
_VERBS = ("opens", "closes", "waits", "sings", "grows", "moves", "shines", "rests", "changes", "returns")
_TAILS = ("in the morning", "after the rain", "before noon", "every winter", "near the hill", "at night",
          "on weekends", "with a smile", "without a sound", "for a while")


def _sentence(rng: random.Random) -> str:
    return f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_TAILS)}."


@dataclasses.dataclass
class ToyCorpus:
    """Sources and mixture of the built-in toy corpus."""

    seed: int = F(0, "corpus seed")
    vocab_size: int = F(512, "BPE vocabulary size")
    docs_per_source: int = F(20000, "documents generated per source (stages sample from them, with repeats)")
    tasks: ToyTaskSpec = F(factory=ToyTaskSpec, help="difficulty of the generated math and code problems")
    stage_tokens: list[int] = F(factory=lambda: [1_000_000, 1_000_000, 600_000],
                                help="token budget of each stage's shards (the stream repeats when trained longer)")
    stage_weights: list[dict[str, float]] = F(
        factory=lambda: [
            {"text": 0.2, "math_answer": 0.2, "math_cot": 0.4, "code": 0.2},
            {"text": 0.1, "math_answer": 0.15, "math_cot": 0.5, "code": 0.25},
            {"text": 0.05, "math_answer": 0.1, "math_cot": 0.4, "code": 0.25, "synthetic": 0.2},
        ],
        help="per stage: source -> token share (sources: text, math_answer, math_cot, code, synthetic)",
    )


def source_documents(spec: ToyCorpus, source: str, n: int | None = None) -> list[str]:
    """``n`` generated documents of one source (train split only)."""
    n = spec.docs_per_source if n is None else n
    rng = random.Random(f"{spec.seed}/{source}")
    seed = spec.seed * 1000 + SOURCES.index(source)
    if source == "text":
        return [" ".join(_sentence(rng) for _ in range(rng.randint(2, 5))) for _ in range(n)]
    if source == "code":
        gen = spec.tasks.code(seed)
        return [p.pretrain_text() for p in gen.sample(n, "train", unique=False)]
    problems = spec.tasks.math(seed).sample(n, "train", unique=False)
    if source == "math_answer":
        return [p.pretrain_text(with_reasoning=False) for p in problems]
    if source == "math_cot":
        return [p.pretrain_text(with_reasoning=True) for p in problems]
    if source == "synthetic":
        return [p.chat_prompt() + p.chat_response() + IM_END for p in problems]
    raise ValueError(f"unknown toy source {source!r} (known: {', '.join(SOURCES)})")


def used_sources(spec: ToyCorpus) -> list[str]:
    return [s for s in SOURCES if any(w.get(s, 0) > 0 for w in spec.stage_weights)]


def write_sources(spec: ToyCorpus, out_dir: str | Path) -> dict[str, str]:
    """One JSONL file per used source (``{"text": ...}`` records); returns ``{source: path}``."""
    out = {}
    for source in used_sources(spec):
        path = Path(out_dir) / f"{source}.jsonl"
        if not path.is_file():
            write_jsonl(path, ({"text": t} for t in source_documents(spec, source)))
        out[source] = str(path)
    return out


def build_tokenizer(spec: ToyCorpus, out_dir: str | Path) -> Tokenizer:
    """Train the toy BPE on a sample of every used source."""
    texts = [t for s in used_sources(spec) for t in source_documents(spec, s, min(spec.docs_per_source, 3000))]
    return train_bpe(texts, spec.vocab_size, out_dir)


def build_stages(spec: ToyCorpus, tokenizer: Tokenizer, out_dir: str | Path,
                 stage_shapes: list[tuple[int, float]] | None = None) -> list[dict]:
    """Write ``out_dir/stage{1,2,3}`` token shards with :func:`mimo.data.mix.build_stages`.  ``stage_shapes``:
    ``(seq_len, rope_theta)`` per stage, recorded in each index (the pretraining config decides them)."""
    from mimo.data.mix import MixConfig, StageConfig
    from mimo.data.mix import build_stages as mix_stages

    out_dir = Path(out_dir)
    sources = write_sources(spec, out_dir / "sources")
    shapes = stage_shapes or [(256, 10000.0)] * len(spec.stage_weights)
    stages = [StageConfig(f"stage{i + 1}", spec.stage_tokens[min(i, len(spec.stage_tokens) - 1)], dict(w), {},
                          0.0, shapes[min(i, len(shapes) - 1)][0], shapes[min(i, len(shapes) - 1)][1])
              for i, w in enumerate(spec.stage_weights)]
    return mix_stages(MixConfig(sources=sources, stages=stages, seed=spec.seed), tokenizer, out_dir)


def build_stage_shards(spec: ToyCorpus, tokenizer: Tokenizer, stage: int, out_dir: str | Path,
                       shape: tuple[int, float] = (256, 10000.0)) -> dict:
    """Only stage ``stage`` (0-based) of the toy corpus, into ``out_dir`` (e.g. for ``mimo train-mtp``)."""
    from mimo.data.mix import StageConfig, build_stage, load_source

    out_dir = Path(out_dir)
    weights = spec.stage_weights[stage]
    paths = write_sources(spec, out_dir.parent / "sources")
    sources = {n: load_source(n, paths[n], tokenizer) for n in weights if weights[n] > 0}
    cfg = StageConfig(out_dir.name, spec.stage_tokens[min(stage, len(spec.stage_tokens) - 1)], dict(weights), {},
                      0.0, shape[0], shape[1])
    return build_stage(cfg, sources, tokenizer, out_dir.parent, spec.seed)


def build_heldout_shards(spec: ToyCorpus, tokenizer: Tokenizer, out_dir: str | Path, n: int = 500) -> dict:
    """Held-out problems with worked steps (never seen in training), for held-out loss / MTP accuracy."""
    gen = spec.tasks.math(spec.seed + 99991)
    writer = ShardWriter(out_dir, tokenizer.vocab_size, tokenizer.eos_id, meta={"heldout": True})
    for p in gen.sample(n, "heldout"):
        writer.add(tokenizer.encode(p.pretrain_text(with_reasoning=True)))
    return writer.close()
