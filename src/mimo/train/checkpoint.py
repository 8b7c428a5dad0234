"""Checkpoints: a model directory (:mod:`mimo.model.io`) plus the trainer state, written atomically.

Layout of a run directory::

    run/config.yaml                      resolved stage config
    run/checkpoints/step_000100/         config.json + model.safetensors (+ tokenizer files)
                                         trainer_state.pt (step, optimizer, data position, RNG, stage extras)
                                         config.yaml
    run/checkpoints/latest               text file naming the newest complete checkpoint
    run/final/                           the finished model (HF layout, loadable by AutoModelForCausalLM)

A checkpoint is written to a hidden temporary directory and renamed into place, then ``latest`` is replaced
atomically, so a run killed at any moment resumes from the last complete checkpoint (``kill -9`` safe).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from mimo.config import save_yaml
from mimo.errors import MimoError
from mimo.model.io import fresh_tmp, replace_dir, unwrap, write_model
from mimo.utils.io import atomic_open


class CheckpointManager:
    """Numbered checkpoints under ``run_dir/checkpoints`` with a ``latest`` pointer and pruning."""

    def __init__(self, run_dir: str | Path, keep: int = 2):
        self.dir = Path(run_dir) / "checkpoints"
        self.keep = keep

    def latest(self) -> Path | None:
        pointer = self.dir / "latest"
        if not pointer.is_file():
            return None
        path = self.dir / pointer.read_text().strip()
        return path if (path / "trainer_state.pt").is_file() else None

    def save(self, step: int, model, state: dict[str, Any], tokenizer=None, config: Any = None) -> Path:
        name = f"step_{step:06d}"
        final = self.dir / name
        tmp = fresh_tmp(final)
        write_model(tmp, model, tokenizer)
        if config is not None:
            save_yaml(tmp / "config.yaml", config)
        torch.save({"step": step, **state}, tmp / "trainer_state.pt")
        replace_dir(tmp, final)
        with atomic_open(self.dir / "latest", "w") as f:
            f.write(name + "\n")
        self._prune()
        return final

    def load_state(self, path: str | Path | None = None) -> tuple[Path, dict]:
        path = Path(path) if path is not None else self.latest()
        if path is None:
            raise MimoError(f"{self.dir}: no checkpoint to resume from")
        if not (path / "trainer_state.pt").is_file():
            raise MimoError(f"{path}: incomplete checkpoint (no trainer_state.pt)")
        return path, torch.load(path / "trainer_state.pt", map_location="cpu", weights_only=False)

    def restore(self, model, optimizer=None, path: str | Path | None = None) -> tuple[Path, dict]:
        """Load the latest (or given) checkpoint's weights into ``model`` and optimizer state into ``optimizer``;
        returns ``(path, trainer state)`` for the stage's own fields (step, data position, RNG, ...)."""
        from safetensors.torch import load_file

        path, state = self.load_state(path)
        unwrap(model).load_state_dict(load_file(str(path / "model.safetensors")), strict=False)
        if optimizer is not None and "optimizer" in state:
            optimizer.load_state_dict(state["optimizer"])
        return path, state

    def _prune(self) -> None:
        if self.keep <= 0:
            return
        steps = sorted(p for p in self.dir.glob("step_*") if p.is_dir())
        for old in steps[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
