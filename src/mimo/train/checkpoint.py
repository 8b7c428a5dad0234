"""Checkpoints: a model directory (:mod:`mimo.model.io`) plus the trainer state, written atomically.

Layout of a run directory::

    run/config.yaml                      resolved stage config
    run/checkpoints/step_000100/         config.json + model.safetensors (+ tokenizer files)
                                         trainer_state.pt (step, optimizer, data position, RNG, stage extras)
                                         config.yaml
    run/checkpoints/latest               text file naming the newest complete checkpoint
    run/final/                           the finished model (HF layout, loadable by AutoModelForCausalLM)

A checkpoint is written to a hidden temporary directory and renamed into place, then ``latest`` is replaced
atomically, so a run killed at any moment resumes from the last complete checkpoint (``kill -9`` safe).  A
checkpoint damaged afterwards (a truncated ``trainer_state.pt``, ``latest`` naming a deleted step) is skipped on
resume with a note saying why, and the newest older one that loads is used instead.

:func:`prepare_run_dir` guards the run directory: a stage refuses to write into a directory that holds a
finished or partly written run unless told to ``--resume true`` or ``--overwrite true``, so a re-run can never
silently restart over an old run and mix both in ``metrics.jsonl``.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from mimo.config import save_yaml
from mimo.errors import MimoError
from mimo.model.io import fresh_tmp, replace_dir, unwrap, write_model
from mimo.utils.io import atomic_open

# What a stage writes into its run directory; --overwrite removes exactly these (caches such as data/ stay).
RUN_ARTEFACTS = ("config.yaml", "metrics.jsonl", "checkpoints", "final", "tb", "samples")


def ensure_writable(path: str | Path) -> Path:
    """Create ``path`` (a directory) and prove it writable; a read-only or full location is one line naming it."""
    path = Path(path)
    probe = path / f".write-test-{os.getpid()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"x" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise MimoError(f"{e.filename or path}: cannot write ({os.strerror(e.errno or errno.EIO)})") from None
    finally:
        try:
            probe.unlink()
        except OSError:
            pass
    return path


def run_state(path: str | Path) -> str | None:
    """``"finished"`` (final/ written), ``"partly written"`` (config, metrics or checkpoints) or None (fresh)."""
    path = Path(path)
    if (path / "final").is_dir():
        return "finished"
    ckpts = path / "checkpoints"
    if any((path / name).exists() for name in ("config.yaml", "metrics.jsonl")) or (
            ckpts.is_dir() and any(ckpts.iterdir())):
        return "partly written"
    return None


def prepare_run_dir(out_dir: str | Path, *, resume: bool, overwrite: bool, stage: str, is_main: bool = True) -> Path:
    """The run directory of a stage, checked before anything is written into it.

    A directory holding a run is refused unless ``resume`` (continue it) or ``overwrite`` (remove its
    :data:`RUN_ARTEFACTS` and start over); ``resume`` into a fresh directory is refused too (nothing to resume).
    Only the main rank inspects and cleans, so ranks cannot race each other's first writes.
    """
    out = Path(out_dir)
    if resume and overwrite:
        raise MimoError(f"{stage}: --resume true and --overwrite true exclude each other")
    if not is_main:
        return out
    state = run_state(out) if out.is_dir() else None
    if state and not (resume or overwrite):
        raise MimoError(f"{out}: already holds a {state} {stage} run; pass --resume true to continue it or "
                        f"--overwrite true to start over")
    ensure_writable(out)
    if state and overwrite:
        for name in RUN_ARTEFACTS:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    return out


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

    def candidates(self) -> list[Path]:
        """Checkpoints to try on resume, newest first: the one ``latest`` names, then every step_* by step."""
        out: list[Path] = []
        pointer = self.dir / "latest"
        if pointer.is_file():
            out.append(self.dir / pointer.read_text().strip())
        steps = sorted((p for p in self.dir.glob("step_*") if p.is_dir()), reverse=True) if self.dir.is_dir() else []
        return out + [p for p in steps if p not in out]

    def _load(self, path: Path) -> tuple[dict, dict]:
        """(trainer state, model tensors) of one checkpoint; MimoError saying why it does not load."""
        from safetensors.torch import load_file

        for name in ("trainer_state.pt", "model.safetensors"):
            if not (path / name).is_file():
                raise MimoError(f"no {name}" if path.is_dir() else "missing")
        try:
            state = torch.load(path / "trainer_state.pt", map_location="cpu", weights_only=False)
        except Exception as e:  # truncated or corrupt pickle/zip: any of several exception types
            raise MimoError(f"trainer_state.pt does not load ({type(e).__name__}: {str(e).splitlines()[0][:80]})") \
                from None
        try:
            tensors = load_file(str(path / "model.safetensors"))
        except Exception as e:
            raise MimoError(f"model.safetensors does not load ({type(e).__name__}: {str(e).splitlines()[0][:80]})") \
                from None
        return state, tensors

    def load_state(self, path: str | Path | None = None) -> tuple[Path, dict]:
        path, state, _ = self._newest_loadable(path)
        return path, state

    def _newest_loadable(self, path: str | Path | None) -> tuple[Path, dict, dict]:
        tried = [Path(path)] if path is not None else self.candidates()
        skipped = []
        for cand in tried:
            try:
                state, tensors = self._load(cand)
            except MimoError as e:
                skipped.append(f"{cand.name}: {e}")
                if path is None:
                    print(f"[checkpoint] skipping {cand}: {e}", file=sys.stderr, flush=True)
                continue
            return cand, state, tensors
        why = f" (skipped {'; '.join(skipped)})" if skipped else ""
        raise MimoError(f"{self.dir}: no checkpoint that loads to resume from{why}")

    def restore(self, model, optimizer=None, path: str | Path | None = None) -> tuple[Path, dict]:
        """Load the newest checkpoint that loads (or the given one) into ``model`` and ``optimizer``; returns
        ``(path, trainer state)`` for the stage's own fields (step, data position, RNG, ...).  Damaged newer
        checkpoints are skipped with a note on stderr naming them and why."""
        path, state, tensors = self._newest_loadable(path)
        unwrap(model).load_state_dict(tensors, strict=False)
        if optimizer is not None and "optimizer" in state:
            optimizer.load_state_dict(state["optimizer"])
        return path, state

    def _prune(self) -> None:
        if self.keep <= 0:
            return
        steps = sorted(p for p in self.dir.glob("step_*") if p.is_dir())
        for old in steps[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
