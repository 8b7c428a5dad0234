"""Running a data stage on datatrove: executor choice (local, Ray, Slurm), JSONL in/out, throughput.

Every `mimo data` stage is a list of datatrove pipeline steps run by one executor.  The same list runs locally in
this process (``workers=1``, what tests and toy runs use), in a local process pool, on a Ray cluster or as Slurm
array jobs -- the executor is a config field, the steps do not change.

Our JSONL files are flat records (``{"id", "text", "url", ...tags}``), not datatrove's ``{"text", "id",
"metadata": {...}}``, so reading and writing go through :class:`JsonlSource` / :class:`JsonlSink`: the source reads
with :func:`mimo.utils.io.iter_jsonl` (a malformed line is an error naming ``file:line``, never silently skipped, as
datatrove's reader would) and shards input *records* over ranks; the sink writes one file per rank atomically.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path
from typing import Literal

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from mimo.config import F
from mimo.errors import MimoError
from mimo.utils.io import iter_jsonl

RESERVED = ("id", "text")


@dataclasses.dataclass
class ExecutorConfig:
    kind: Literal["local", "ray", "slurm"] = F("local", "datatrove executor: local (this machine), ray or slurm")
    tasks: int = F(2, "number of shards the input is split into (datatrove tasks)")
    workers: int = F(1, "tasks run at once (local: 1 = in this process; ray: concurrent tasks)")
    resume: bool = F(False, "skip tasks a previous run of the same output directory completed")
    cpus_per_task: int = F(1, "ray/slurm: CPUs reserved per task")
    mem_per_cpu_gb: float = F(2.0, "ray/slurm: memory per CPU in GB")
    slurm_partition: str = F("", "slurm: partition to submit to")
    slurm_time: str = F("04:00:00", "slurm: time limit per task")


def input_files(spec: str | list[str]) -> list[Path]:
    """JSONL files named by a path, a directory (its ``*.jsonl``/``*.jsonl.gz``, sorted) or a comma list."""
    specs = spec if isinstance(spec, list) else [s for s in str(spec).split(",") if s]
    if not specs:
        raise MimoError("no input given (--input FILE|DIR)")
    files: list[Path] = []
    for s in specs:
        p = Path(s)
        if p.is_dir():
            found = sorted([*p.glob("*.jsonl"), *p.glob("*.jsonl.gz")])
            if not found:
                raise MimoError(f"{p}: directory holds no .jsonl files")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise MimoError(f"{p}: no such file or directory")
    return files


def output_files(out_dir: str | Path) -> list[Path]:
    """The per-rank files a stage wrote, in rank order."""
    return sorted(Path(out_dir).glob("[0-9]*.jsonl"))


def to_document(rec: dict, where: str, text_field: str = "text") -> Document:
    if text_field not in rec or not isinstance(rec[text_field], str):
        raise MimoError(f"{where}: record has no string field {text_field!r}")
    meta = {k: v for k, v in rec.items() if k not in RESERVED and k != text_field}
    if text_field != "text" and "text" in rec:
        meta["text"] = rec["text"]
    return Document(text=rec[text_field], id=str(rec.get("id", where)), metadata=meta)


def from_document(doc: Document) -> dict:
    return {"id": doc.id, "text": doc.text, **{k: v for k, v in doc.metadata.items() if k not in RESERVED}}


class JsonlSource(PipelineStep):
    """Reads flat JSONL records.  With at least as many files as tasks, rank r reads files r, r+w, ...; otherwise
    every rank scans the files and takes every w-th record (so a single input file still splits over tasks)."""

    name = "mimo jsonl source"
    type = "READER"

    def __init__(self, files: list[str | Path] | str, text_field: str = "text"):
        super().__init__()
        # files, or a directory resolved when the task runs (a Slurm stage reads what an earlier job writes)
        self.files = str(files) if isinstance(files, (str, Path)) else [str(f) for f in files]
        self.text_field = text_field

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        all_files = [str(f) for f in input_files(self.files)] if isinstance(self.files, str) else self.files
        by_file = len(all_files) >= world_size
        files = all_files[rank::world_size] if by_file else all_files
        i = 0
        for path in files:
            line = 0
            for rec in iter_jsonl(path):
                line += 1
                if by_file or i % world_size == rank:
                    with self.track_time():
                        doc = to_document(rec, f"{path}:{line}", self.text_field)
                    self.stat_update("documents")
                    yield doc
                i += 1


class JsonlSink(PipelineStep):
    """Writes the documents reaching it to ``out_dir/{rank:05d}.jsonl`` (atomically: tmp file, then rename)."""

    name = "mimo jsonl sink"
    type = "WRITER"

    def __init__(self, out_dir: str | Path):
        super().__init__()
        self.out_dir = str(out_dir)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        out = Path(self.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        final, tmp = out / f"{rank:05d}.jsonl", out / f".{rank:05d}.jsonl.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            for doc in data:
                with self.track_time():
                    f.write(json.dumps(from_document(doc), ensure_ascii=False) + "\n")
                self.stat_update("written")
                yield doc
        os.replace(tmp, final)


class DocumentMap(PipelineStep):
    """Applies ``fn(doc) -> Document | None`` to each document (None drops it); ``fn`` must be picklable
    (a module-level function or a ``functools.partial`` of one) so process pools and Ray can ship it."""

    type = "MAP"
    name = "mimo map"

    def __init__(self, fn, name: str = "mimo map"):
        self.name = name  # before PipelineStep.__init__, which registers the step's stats under it
        super().__init__()
        self.fn = fn

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for doc in data:
            with self.track_time():
                out = self.fn(doc)
            self.stat_update("kept" if out is not None else "dropped")
            if out is not None:
                yield out


def _quiet_task_logger(logging_dir, rank: int, local_rank: int = 0, node_rank: int = -1):
    """datatrove's per-task logger with the console at warnings (no re-raised tracebacks: the CLI prints those
    as one line); the task's log file under ``logging_dir/logs`` still gets everything."""
    from loguru import logger

    _quiet_console()
    logfile = logging_dir.open(f"logs/task_{rank:05d}.log", "w")
    logger.add(logfile, level="DEBUG", colorize=False)
    return logfile


def _quiet_console() -> None:
    import sys

    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING", colorize=False, backtrace=False, diagnose=False,
               filter=lambda record: record["exception"] is None, format="{level}: {name}: {message}")


def quiet_datatrove() -> None:
    """Route datatrove's console logging through :func:`_quiet_task_logger` unless ``mimo --verbose``."""
    if os.environ.get("MIMO_VERBOSE") == "1":
        return
    import datatrove.executor.base as base
    import datatrove.utils.logging as dt_logging

    base.add_task_logger = dt_logging.add_task_logger = _quiet_task_logger
    dt_logging.setup_default_logger = _quiet_console  # re-installed after every task; it printed the stats tables
    _quiet_console()


def make_executor(pipeline: list, cfg: ExecutorConfig, logging_dir: str | Path, tasks: int | None = None):
    """A datatrove executor of the configured kind for ``pipeline``, logging under ``logging_dir``."""
    quiet_datatrove()
    tasks = tasks or cfg.tasks
    logging_dir = Path(logging_dir)
    if not cfg.resume and logging_dir.exists():
        shutil.rmtree(logging_dir)  # a fresh run must not skip "completed" tasks of an older one
    if cfg.kind == "local":
        from datatrove.executor import LocalPipelineExecutor

        return LocalPipelineExecutor(pipeline, tasks=tasks, workers=min(cfg.workers, tasks),
                                     logging_dir=str(logging_dir), skip_completed=cfg.resume)
    if cfg.kind == "ray":
        try:
            import ray
        except ImportError:
            raise MimoError("executor kind 'ray' needs Ray: pip install 'mimo[ray]'") from None
        if not ray.is_initialized():
            ray.init()  # joins $RAY_ADDRESS when set, else starts a local Ray on this machine
        from datatrove.executor import RayPipelineExecutor

        return RayPipelineExecutor(pipeline, tasks=tasks, workers=cfg.workers, logging_dir=str(logging_dir),
                                   skip_completed=cfg.resume, cpus_per_task=cfg.cpus_per_task,
                                   mem_per_cpu_gb=cfg.mem_per_cpu_gb)
    if cfg.kind == "slurm":
        from datatrove.executor import SlurmPipelineExecutor

        if not cfg.slurm_partition:
            raise MimoError("executor kind 'slurm' needs --executor.slurm_partition")
        return SlurmPipelineExecutor(pipeline, tasks=tasks, workers=cfg.workers, time=cfg.slurm_time,
                                     partition=cfg.slurm_partition, cpus_per_task=cfg.cpus_per_task,
                                     mem_per_cpu_gb=cfg.mem_per_cpu_gb, logging_dir=str(logging_dir),
                                     skip_completed=cfg.resume, job_name="mimo-data")
    raise MimoError(f"unknown executor kind {cfg.kind!r}")


def is_async(cfg: ExecutorConfig) -> bool:
    """Slurm executors submit jobs and return at once: outputs exist only after the jobs ran."""
    return cfg.kind == "slurm"


def run_stages(name: str, executors: list, n_docs: int | None = None) -> dict:
    """Run executors in order; print and return the stage's wall time and throughput (docs/s).

    Slurm executors are chained with ``depends=`` (``afterok``) and submitted together instead."""
    t0 = time.perf_counter()
    if executors and type(executors[0]).__name__ == "SlurmPipelineExecutor":
        for prev, ex in zip(executors, executors[1:]):
            ex.depends = prev
        executors[-1].run()
        print(f"[mimo data {name}] submitted {len(executors)} dependent Slurm job(s)", flush=True)
        return {"stage": name, "submitted": len(executors)}
    for ex in executors:
        ex.run()
    dt = time.perf_counter() - t0
    stats = {"stage": name, "seconds": round(dt, 3)}
    if n_docs is not None:
        stats.update(docs=n_docs, docs_per_s=round(n_docs / max(dt, 1e-9), 1))
        print(f"[mimo data {name}] {n_docs} docs in {dt:.1f}s = {n_docs / max(dt, 1e-9):.1f} docs/s", flush=True)
    else:
        print(f"[mimo data {name}] done in {dt:.1f}s", flush=True)
    return stats


def count_records(files: list[Path]) -> int:
    n = 0
    for f in files:
        with open(f, encoding="utf-8") as fh:
            n += sum(1 for line in fh if line.strip())
    return n
