"""What every stage does around its training loop, in one place: ``StageRun``.

Pretraining, SFT, train-mtp and RL all set torch's threads and the seed, keep the resolved config beside the
run (``config.yaml``), write numbered checkpoints that hold the optimizer and the RNG next to their own loop state,
resume from the newest one (weights, optimizer, RNG; the metrics log continues at the resumed step instead of
repeating lines), log one metrics line per step and save the finished model to ``final/``.  The run directory
layout is :mod:`mimo.train.checkpoint`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mimo.config import save_yaml, to_dict
from mimo.model.io import save_model_dir
from mimo.train.checkpoint import CheckpointManager, prepare_run_dir
from mimo.utils.logging import MetricsLogger
from mimo.utils.seed import rng_state, seed_everything, set_rng_state


class StageRun:
    """One stage's run directory, checkpoints and metrics.  ``section`` names the stage in ``config.yaml``;
    ``is_main`` is False on the other ranks of a distributed run (they neither write nor print).  The run directory
    is checked first: one that holds a run is refused unless ``resume`` or ``overwrite``."""

    def __init__(self, name: str, section: str, cfg: Any, out_dir: str | Path, seed: int, threads: int = 0,
                 keep_checkpoints: int = 2, resume: bool = False, is_main: bool = True, overwrite: bool = False):
        self.name, self.section, self.cfg = name, section, cfg
        self.resume, self.is_main = resume, is_main
        if threads > 0:
            torch.set_num_threads(threads)
        # refuses a finished or partly written run dir unless resume/overwrite (see prepare_run_dir)
        self.out = prepare_run_dir(out_dir, resume=resume, overwrite=overwrite, stage=name, is_main=is_main)
        seed_everything(seed)
        self.ckpt = CheckpointManager(self.out, keep=keep_checkpoints)
        self.start_step = 0
        self.restored_from: Path | None = None  # the checkpoint restore() loaded

    def config(self) -> dict:
        return {self.section: to_dict(self.cfg)}

    def save_config(self) -> None:
        if self.is_main:
            save_yaml(self.out / "config.yaml", self.config())

    def restore(self, model, optimizer, path: str | Path | None = None) -> dict:
        """On ``resume``: weights, optimizer and RNG from the newest checkpoint that loads (or ``path``: the one
        the main rank chose); returns its trainer state (the stage's own fields: step, data position, ...), or
        ``{}`` for a fresh run."""
        if not self.resume:
            return {}
        path, state = self.ckpt.restore(model, optimizer, path=path)
        self.restored_from = path
        set_rng_state(state["rng"])
        self.start_step = state["step"]
        if self.is_main:
            print(f"[{self.name}] resumed from {path} at step {self.start_step}", flush=True)
        return state

    def logger(self, total_steps: int, print_every: int, tensorboard: bool = True) -> MetricsLogger:
        """The metrics log (``metrics.jsonl``, TensorBoard, one printed line per ``print_every`` steps)."""
        return MetricsLogger(self.out if self.is_main else None, total_steps=total_steps, print_every=print_every,
                             tensorboard=tensorboard and self.is_main,
                             resume_step=self.start_step if self.resume else None)

    def checkpoint(self, step: int, model, optimizer, tokenizer=None, **state) -> None:
        """A numbered checkpoint: the model, the optimizer, the RNG and the stage's own ``state``."""
        if self.is_main:
            self.ckpt.save(step, model, {"optimizer": optimizer.state_dict(), **state, "rng": rng_state()},
                           tokenizer=tokenizer, config=self.config())

    def finish(self, model, tokenizer, complete: bool) -> Path | None:
        """Save the finished model to ``final/`` when the run went all the way (``complete``)."""
        if not (self.is_main and complete):
            return None
        path = save_model_dir(self.out / "final", model, tokenizer)
        print(f"[{self.name}] done: {path}", flush=True)
        return path
