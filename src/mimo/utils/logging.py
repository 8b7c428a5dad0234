"""Training/eval logging: one line per step, metrics as JSONL (+ TensorBoard when installed), progress bars.

    logger = MetricsLogger(out_dir, total_steps=1000)
    logger.log(step, loss=2.31, tokens=8192)      # -> "step 12/1000 | loss 2.3100 | 41.2k tok/s | ETA 3m12s"

Throughput is computed from the ``tokens`` metric (tokens processed since the previous call) and wall time.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm


def format_seconds(s: float) -> str:
    """>>> format_seconds(3725)
    '1h02m05s'
    >>> format_seconds(42.4)
    '42s'
    """
    if not math.isfinite(s):
        return "?"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h}h{m:02d}m{sec:02d}s"
    if m:
        return f"{m}m{sec:02d}s"
    return f"{sec}s"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.3e}"
        return f"{v:.4f}"
    return str(v)


def progress(iterable=None, total: int | None = None, desc: str = "", disable: bool | None = None, **kw):
    """A tqdm progress bar on stderr (ETA included); silent when ``disable`` or when stderr is not a terminal and
    the caller asked for ``disable=None`` with ``MIMO_PROGRESS=0``."""
    import os

    if disable is None:
        disable = os.environ.get("MIMO_PROGRESS", "1") == "0"
    return tqdm(iterable, total=total, desc=desc, disable=disable, file=sys.stderr, dynamic_ncols=True,
                mininterval=0.5 if sys.stderr.isatty() else 10.0, **kw)


class MetricsLogger:
    """Writes ``metrics.jsonl`` (append, one record per call) and TensorBoard scalars; prints one line per step."""

    def __init__(self, out_dir: str | Path | None, total_steps: int | None = None, print_every: int = 1,
                 tensorboard: bool = True, prefix: str = "", stream=None, resume_step: int | None = None):
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.total = total_steps
        self.print_every = max(1, print_every)
        self.prefix = prefix
        self.stream = stream if stream is not None else sys.stdout
        self._t_start = time.perf_counter()
        self._t_last = self._t_start
        self._start_step: int | None = None
        self._tb = None
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if resume_step is not None:
                self._truncate(resume_step)
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter

                    purge = resume_step + 1 if resume_step is not None else None
                    self._tb = SummaryWriter(str(self.out_dir / "tb"), purge_step=purge)
                except Exception:  # tensorboard not installed: JSONL only
                    self._tb = None

    def _truncate(self, step: int) -> None:
        """Resuming from a checkpoint at ``step``: drop records of later steps (they will be redone), so the log
        neither repeats nor loses a step."""
        from mimo.utils.io import atomic_open

        path = self.out_dir / "metrics.jsonl"
        if not path.is_file():
            return
        keep = [line for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        with atomic_open(path, "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in keep))

    def log(self, step: int, print_line: bool | None = None, **metrics: Any) -> dict:
        now = time.perf_counter()
        dt = max(now - self._t_last, 1e-9)
        self._t_last = now
        if self._start_step is None:
            self._start_step = step - 1
        if "tokens" in metrics and "tokens_per_s" not in metrics:
            metrics["tokens_per_s"] = metrics["tokens"] / dt
        elapsed = now - self._t_start
        record = {"step": step, "time": round(elapsed, 3), **metrics}
        if self.out_dir is not None:
            with open(self.out_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(record, default=float) + "\n")
        if self._tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    self._tb.add_scalar(f"{self.prefix}{k}", v, step)
        if print_line if print_line is not None else step % self.print_every == 0:
            parts = [f"{self.prefix}step {step}" + (f"/{self.total}" if self.total else "")]
            for k, v in metrics.items():
                if k in ("tokens",):
                    continue
                if k == "tokens_per_s":
                    parts.append(f"{v / 1000:.1f}k tok/s" if v >= 1000 else f"{v:.0f} tok/s")
                else:
                    parts.append(f"{k} {_fmt(v)}")
            if self.total:
                done = step - self._start_step
                left = self.total - step
                eta = elapsed / max(done, 1) * left
                parts.append(f"ETA {format_seconds(eta)}")
            print(" | ".join(parts), file=self.stream, flush=True)
        return record

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
