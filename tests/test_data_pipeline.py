"""`mimo data` end to end on a few thousand generated pages, the extract CLI on real files, and executors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mimo.cli import main as mimo_main
from mimo.data.extract import missing_items
from mimo.data.shards import TokenStream
from mimo.utils.io import read_jsonl

PAGES = Path(__file__).parent / "fixtures" / "html"


def test_end_to_end_on_two_thousand_pages(tmp_path, capsys):
    rc = mimo_main(["data", "pipeline", "--toy_pages", "2000", "--output", str(tmp_path), "--synthetic", "300",
                    "--stage_tokens", "100000,100000,50000"])
    assert rc == 0
    out = capsys.readouterr().out
    for stage in ("extract", "dedup/url", "dedup/minhash", "tag", "mix/tokenize", "mix/stage1", "mix/stage3"):
        assert f"[mimo data {stage}]" in out and "docs/s" in out.split(f"[mimo data {stage}]")[1].split("\n")[0]
    report = json.loads((tmp_path / "pipeline_report.json").read_text())
    dedup = json.loads((tmp_path / "dedup" / "dedup_report.json").read_text())
    assert dedup["input_docs"] == 2200 and 190 <= dedup["removed"] <= 220  # 100 URL dups + 100 near-dups planted
    for meta in report["mix"]:
        stream = TokenStream(tmp_path / "mix" / meta["stage"])  # what `mimo pretrain` reads
        assert len(stream) == meta["total_tokens"]
        for name, s in meta["sources"].items():
            assert abs(s["share"] - s["target_share"]) <= 0.02, (meta["stage"], name)
    assert report["mix"][2]["sources"]["synthetic"]["share"] == pytest.approx(0.1, abs=0.02)


def test_extract_cli_on_a_folder_of_html_files(tmp_path):
    rc = mimo_main(["data", "extract", "--input", str(PAGES), "--output", str(tmp_path), "--extractor", "trafilatura"])
    assert rc == 0
    recs = {r["id"]: r for f in sorted(tmp_path.glob("0*.jsonl")) for r in read_jsonl(f)}
    expected = json.loads((PAGES / "expected.json").read_text())
    assert set(recs) == {p.removesuffix(".html") for p in expected}
    for page, items in expected.items():
        rec = recs[page.removesuffix(".html")]
        assert missing_items(rec["text"], items) == [] and rec["n_lost"] == 0 and rec["url"] == page


def test_unknown_sub_command_and_missing_output(capsys):
    assert mimo_main(["data", "nope"]) == 2
    assert mimo_main(["data", "dedup", "--input", str(PAGES / "expected.json")]) == 2
    assert "--output DIR is required" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("MIMO_SLOW") != "1", reason="slow (starts a local Ray): set MIMO_SLOW=1")
def test_ray_executor_on_a_local_ray(tmp_path):
    """The same extract stage through datatrove's RayPipelineExecutor on a local, CPU-only Ray."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
    try:
        rc = mimo_main(["data", "extract", "--input", str(PAGES), "--output", str(tmp_path), "--executor.kind", "ray",
                        "--executor.tasks", "2", "--executor.workers", "2"])
    finally:
        ray.shutdown()
    assert rc == 0
    assert sorted(r["id"] for f in tmp_path.glob("0*.jsonl") for r in read_jsonl(f)) == \
        sorted(p.stem for p in PAGES.glob("*.html"))
    assert len(list(tmp_path.glob("0*.jsonl"))) == 2  # one output file per Ray task


@pytest.mark.parametrize("module", ["mimo.data.mathml", "mimo.data.dedup", "mimo.data.decontam", "mimo.data.tag"])
def test_doctests(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


def test_slurm_stages_are_chained_jobs(tmp_path, monkeypatch):
    """Without a cluster: the dedup passes become one chain of dependent Slurm jobs, submitted once."""
    from datatrove.executor import SlurmPipelineExecutor

    from mimo.data.dedup import DedupConfig, main
    from mimo.data.executor import ExecutorConfig

    launched = []
    monkeypatch.setattr(SlurmPipelineExecutor, "run", lambda self: launched.append(self))
    (tmp_path / "in.jsonl").write_text('{"text": "a b c d e f", "url": "u"}\n')
    cfg = DedupConfig(input=str(tmp_path / "in.jsonl"), output=str(tmp_path / "out"),
                      executor=ExecutorConfig(kind="slurm", slurm_partition="cpu"))
    stats = main(cfg)
    assert stats["submitted"] == 8 and len(launched) == 1  # 3 URL + 5 MinHash stages, the last one launched
    chain, ex = [], launched[0]
    while ex is not None:
        chain.append(ex)
        ex = ex.depends
    assert len(chain) == 8 and chain[-1].world_size == cfg.executor.tasks
