"""Model directories: the Hugging Face layout (``config.json`` + ``model.safetensors`` + tokenizer files), written
atomically and read back; the device a stage runs on; registration with transformers' Auto classes.

Every stage that reads or writes a model goes through here (training checkpoints add their trainer state on top,
in :mod:`mimo.train.checkpoint`).  A directory is written to a hidden temporary sibling and renamed into place, so
a reader never sees a half-written model.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from mimo.errors import MimoError
from mimo.model.config import MiMoConfig
from mimo.model.modeling import MiMoForCausalLM
from mimo.tokenizer import Tokenizer

_REGISTERED = False


def register() -> None:
    """Register MiMoConfig / MiMoForCausalLM with transformers' Auto classes (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from transformers import AutoConfig, AutoModelForCausalLM

    AutoConfig.register("mimo", MiMoConfig, exist_ok=True)
    AutoModelForCausalLM.register(MiMoConfig, MiMoForCausalLM, exist_ok=True)
    _REGISTERED = True


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; any other name as torch spells it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def unwrap(model):
    """The bare model inside DDP/FSDP/compile wrappers."""
    while hasattr(model, "module"):
        model = model.module
    return getattr(model, "_orig_mod", model)


def write_model(path: Path, model, tokenizer=None) -> None:
    """Model (+ tokenizer) in the Hugging Face layout into an existing directory."""
    _quiet_transformers()
    unwrap(model).save_pretrained(str(path))
    if tokenizer is not None:
        tokenizer.save(path)


def fresh_tmp(path: Path) -> Path:
    """An empty hidden sibling of ``path`` to write into before :func:`replace_dir`."""
    tmp = path.parent / f".{path.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def replace_dir(tmp: Path, path: Path) -> None:
    """Move ``tmp`` to ``path``, replacing an existing directory (the old one is removed only afterwards)."""
    if path.exists():
        old = path.parent / f".{path.name}.old"
        if old.exists():
            shutil.rmtree(old)
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old)
    else:
        os.replace(tmp, path)


def save_model_dir(path: str | Path, model, tokenizer=None) -> Path:
    """Save model (and tokenizer) in the Hugging Face layout, atomically (temp dir + rename)."""
    path = Path(path)
    tmp = fresh_tmp(path)
    write_model(tmp, model, tokenizer)
    replace_dir(tmp, path)
    return path


def load_model_dir(path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
                   with_tokenizer: bool = True):
    """``(model, tokenizer or None)`` from a model directory (ours or a released MiMo checkpoint)."""
    register()
    _quiet_transformers()
    path = Path(path)
    if not (path / "config.json").is_file():
        raise MimoError(f"{path}: not a model directory (no config.json)")
    check_weights_present(path)
    model = MiMoForCausalLM.from_pretrained(str(path), dtype=dtype or torch.float32).to(device)
    tok = None
    if with_tokenizer and (path / "tokenizer.json").is_file():
        tok = Tokenizer.load(path)
        check_tokenizer_fits(tok, model.config, path)
    return model, tok


# Models pad their vocabulary past the tokenizer's size to a round number (MiMo-7B: 151680 rows for ~151.7k
# tokens); a larger gap means the tokenizer is not the one the model was trained with.
VOCAB_PADDING = 128


def check_weights_present(path: str | Path) -> None:
    """One line when a model directory has a config but no weights (``model.safetensors`` or its shard index)."""
    path = Path(path)
    if not any((path / name).is_file() for name in ("model.safetensors", "model.safetensors.index.json")):
        raise MimoError(f"{path}: no model weights (model.safetensors is missing)")


def check_tokenizer_fits(tok, model_config, where: str | Path) -> None:
    """The tokenizer must be the model's: no token id past the embedding, no large block of rows it never uses,
    and its end-of-turn token among the model's stop ids."""
    vocab, n = int(model_config.vocab_size), int(tok.vocab_size)
    if n > vocab:
        raise MimoError(f"{where}: the tokenizer has {n} tokens but the model's vocabulary has {vocab} rows "
                        f"(ids >= {vocab} would index past the embedding): not this model's tokenizer")
    if vocab - n >= VOCAB_PADDING:
        raise MimoError(f"{where}: the tokenizer has {n} tokens but the model's vocabulary has {vocab} rows "
                        f"(more than {VOCAB_PADDING - 1} of padding): not this model's tokenizer")
    eos = model_config.eos_token_id
    stops = set(eos if isinstance(eos, (list, tuple)) else [] if eos is None else [eos])
    if stops and tok.im_end_id not in stops:
        raise MimoError(f"{where}: the tokenizer's <|im_end|> is id {tok.im_end_id} but the model stops on "
                        f"{sorted(stops)}: not this model's tokenizer")


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
