"""`mimo data pipeline`: every data stage in order, from web pages to the three token-shard stages.

    pages (html, url) -> extract -> dedup (URL, MinHash) -> tag -> decontaminate -> split by domain into
    web / math / code sources  +  synthesize (toy or endpoint) -> mix -> out/mix/stage{1,2,3}/

Each step is the same `main(cfg)` as its sub-command, so this is also the reference for chaining them by hand at
scale (where each step runs on its own executor and its own schedule).  With ``--toy_pages N`` the input is the
generated toy web (:mod:`mimo.data.toy_web`), which is how the end-to-end check runs without any download.
Throughput (docs/s) is printed per stage and collected in ``out/pipeline_report.json``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from mimo.config import F
from mimo.data import decontam, dedup, extract, mix, synthesize, tag
from mimo.data.executor import ExecutorConfig, output_files
from mimo.errors import MimoError
from mimo.utils.io import iter_jsonl, write_json, write_jsonl

MATH, CODE = ("math",), ("code",)


@dataclasses.dataclass
class PipelineConfig:
    input: str = F("", "pages: JSONL with html and url fields, or a directory of .html files")
    toy_pages: int = F(0, "instead of --input, generate this many toy web pages (plus duplicates)")
    output: str = F("", "output directory (one sub-directory per stage)")
    extractor: str = F("resiliparse", "resiliparse or trafilatura")
    benchmarks: list[str] = F(factory=list, help="decontaminate against these (default: all found locally)")
    synthetic: int = F(500, "toy synthetic responses (0: none; the stages then need no synthetic source)")
    tokenizer: str = F("", "tokenizer directory (default: train a BPE into OUTPUT/tokenizer)")
    tokenizer_vocab: int = F(512, "vocabulary of the BPE trained when --tokenizer is absent")
    stage_tokens: list[int] = F(factory=lambda: [200_000, 200_000, 100_000], help="token budget per stage")
    seed: int = F(0, "seed")
    executor: ExecutorConfig = F(factory=ExecutorConfig, help="datatrove executor for the datatrove stages")


def _split_sources(tagged: list[Path], out: Path) -> dict[str, str]:
    """web / math / code sources from the tagged, decontaminated pages (by predicted domain)."""
    groups: dict[str, list[dict]] = {"web": [], "math": [], "code": []}
    for f in tagged:
        for rec in iter_jsonl(f):
            d = rec.get("domain")
            groups["math" if d in MATH else "code" if d in CODE else "web"].append(rec)
    paths = {}
    for name, recs in groups.items():
        if recs:
            paths[name] = str(out / f"{name}.jsonl")
            write_jsonl(paths[name], recs)
    return paths


def main(cfg: PipelineConfig) -> dict:
    if not cfg.output:
        raise MimoError("pipeline: --output DIR is required")
    out = Path(cfg.output)
    t0 = time.perf_counter()
    report: dict = {"stages": []}
    pages = cfg.input
    if cfg.toy_pages:
        from mimo.data.toy_web import web_pages

        pages = str(out / "pages.jsonl")
        write_jsonl(pages, web_pages(cfg.toy_pages, seed=cfg.seed))
    if not pages:
        raise MimoError("pipeline: --input PAGES or --toy_pages N is required")
    ex = cfg.executor
    report["stages"].append(extract.main(extract.ExtractConfig(input=pages, output=str(out / "extract"),
                                                               extractor=cfg.extractor, executor=ex)))
    report["stages"].append(dedup.main(dedup.DedupConfig(input=str(out / "extract"), output=str(out / "dedup"),
                                                         executor=ex)))
    report["stages"].append(tag.main(tag.TagConfig(input=str(out / "dedup"), output=str(out / "tag"), executor=ex)))
    benches = cfg.benchmarks or ([b for b in decontam.BENCHMARKS] if decontam.eval_data_dir() else [])
    if benches:
        dc = decontam.main(decontam.DecontamConfig(input=str(out / "tag"), output=str(out / "clean.jsonl"),
                                                   benchmarks=benches, report=str(out / "decontam_report.json")))
        report["stages"].append({k: v for k, v in dc.items() if k != "dropped_records"} | {"stage": "decontaminate"})
        clean = [out / "clean.jsonl"]
    else:
        print("[mimo data pipeline] no benchmark data found: decontamination skipped")
        clean = output_files(out / "tag")
    sources = _split_sources(clean, out / "sources")
    if cfg.synthetic:
        syn = synthesize.SynthesizeConfig(mode="toy", n=cfg.synthetic, seed=cfg.seed,
                                          output=str(out / "sources" / "synthetic.jsonl"))
        report["stages"].append(synthesize.main(syn) | {"stage": "synthesize"})
        sources["synthetic"] = syn.output
    stages = mix.default_stages()
    for st, tokens in zip(stages, cfg.stage_tokens):
        st.tokens = tokens
        st.weights = {k: v for k, v in st.weights.items() if k in sources}
    mcfg = mix.MixConfig(sources=sources, stages=stages, tokenizer=cfg.tokenizer or str(out / "tokenizer"),
                         tokenizer_vocab=cfg.tokenizer_vocab, output=str(out / "mix"), seed=cfg.seed)
    indexes = mix.main(mcfg)
    report["mix"] = [ix["meta"] | {"total_tokens": ix["total_tokens"]} for ix in indexes]
    report["seconds"] = round(time.perf_counter() - t0, 2)
    write_json(out / "pipeline_report.json", report)
    print(f"[mimo data pipeline] done in {report['seconds']:.1f}s -> {out / 'mix'}")
    print(json.dumps([{k: s.get(k) for k in ("stage", "docs", "docs_per_s", "kept")} for s in report["stages"]]))
    return report
