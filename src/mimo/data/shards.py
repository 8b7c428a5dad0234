"""Token shards: the on-disk format between `mimo data mix` and `mimo pretrain`.

A shard directory holds ``index.json`` and ``shard_00000.bin``, ``shard_00001.bin``, ... -- flat little-endian
token arrays (uint16 when the vocabulary fits, else uint32).  Documents are concatenated, each followed by the EOS
id, in the (already shuffled) order the mixer chose.  ``index.json``::

    {"version": 1, "dtype": "uint16", "eos_id": 0, "vocab_size": 512, "total_tokens": N,
     "shards": [{"file": "shard_00000.bin", "tokens": n0}, ...], "meta": {...free-form, e.g. per-source counts}}

:class:`TokenStream` reads the shards as one sequence and serves packed training windows from an integer
position, so a run that saves the position resumes on exactly the next token.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mimo.errors import MimoError
from mimo.utils.io import write_json

INDEX = "index.json"


def _dtype_for(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 65536 else np.dtype(np.uint32)


class ShardWriter:
    """Append documents (token id lists); each is terminated with ``eos_id``.  ``close()`` writes the index."""

    def __init__(self, out_dir: str | Path, vocab_size: int, eos_id: int, shard_tokens: int = 1 << 24,
                 meta: dict | None = None):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.dtype = _dtype_for(vocab_size)
        self.vocab_size, self.eos_id, self.shard_tokens = vocab_size, eos_id, shard_tokens
        self.meta = dict(meta or {})
        self.shards: list[dict] = []
        self._buf: list[np.ndarray] = []
        self._buf_len = 0
        self.total_tokens = 0
        self.num_docs = 0

    def add(self, ids: list[int] | np.ndarray) -> int:
        arr = np.asarray(ids, dtype=np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= self.vocab_size):
            raise MimoError(f"token id out of range [0, {self.vocab_size}) in document {self.num_docs}")
        arr = np.append(arr, self.eos_id).astype(self.dtype)
        self._buf.append(arr)
        self._buf_len += arr.size
        self.total_tokens += arr.size
        self.num_docs += 1
        if self._buf_len >= self.shard_tokens:
            self._flush()
        return arr.size

    def _flush(self) -> None:
        if not self._buf:
            return
        data = np.concatenate(self._buf)
        name = f"shard_{len(self.shards):05d}.bin"
        tmp = self.out_dir / f".{name}.tmp"
        data.tofile(tmp)
        tmp.replace(self.out_dir / name)
        self.shards.append({"file": name, "tokens": int(data.size)})
        self._buf, self._buf_len = [], 0

    def close(self) -> dict:
        self._flush()
        index = {
            "version": 1,
            "dtype": self.dtype.name,
            "eos_id": self.eos_id,
            "vocab_size": self.vocab_size,
            "total_tokens": self.total_tokens,
            "num_docs": self.num_docs,
            "shards": self.shards,
            "meta": self.meta,
        }
        write_json(self.out_dir / INDEX, index)
        return index


def read_index(shard_dir: str | Path) -> dict:
    path = Path(shard_dir) / INDEX
    if not path.is_file():
        raise MimoError(f"{shard_dir}: not a token shard directory (no {INDEX}); build one with `mimo data mix`")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise MimoError(f"{path}:{e.lineno}: malformed JSON ({e.msg})") from None


class TokenStream:
    """All shards of a directory as one read-only token sequence (memory-mapped)."""

    def __init__(self, shard_dir: str | Path):
        self.dir = Path(shard_dir)
        self.index = read_index(self.dir)
        dtype = np.dtype(self.index["dtype"])
        parts = []
        for s in self.index["shards"]:
            f = self.dir / s["file"]
            if not f.is_file():
                raise MimoError(f"{f}: shard listed in {INDEX} is missing")
            parts.append(np.memmap(f, dtype=dtype, mode="r"))
        self.tokens = np.concatenate(parts) if len(parts) != 1 else parts[0]
        if self.tokens.size == 0:
            raise MimoError(f"{self.dir}: shard directory holds no tokens")
        self.vocab_size = int(self.index["vocab_size"])
        self.eos_id = int(self.index["eos_id"])

    def __len__(self) -> int:
        return int(self.tokens.size)

    def window(self, position: int, length: int) -> np.ndarray:
        """``length`` tokens starting at ``position`` (mod the stream length: the stream repeats as epochs)."""
        n = len(self)
        start = position % n
        if start + length <= n:
            return np.asarray(self.tokens[start:start + length], dtype=np.int64)
        reps = (start + length + n - 1) // n
        return np.asarray(np.tile(self.tokens, reps)[start:start + length], dtype=np.int64)

    def batch(self, position: int, batch_size: int, seq_len: int) -> tuple[np.ndarray, int]:
        """``batch_size`` packed windows of ``seq_len + 1`` tokens (inputs and shifted targets) read consecutively
        from ``position``; returns ``(array (B, T+1), next_position)``.  Consecutive windows overlap by one token so
        every token is a target exactly once per epoch."""
        rows = [self.window(position + b * seq_len, seq_len + 1) for b in range(batch_size)]
        return np.stack(rows), position + batch_size * seq_len
