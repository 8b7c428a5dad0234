"""File helpers shared by every stage: strict JSONL reading and atomic writes.

Readers never silently skip: a malformed line raises :class:`~mimo.errors.MimoError` naming ``file:line``, unless
the caller asks for ``on_error="skip"`` and receives the bad line numbers back.  Writers write to a temporary file
in the same directory and ``os.replace`` it, so a crash never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from mimo.errors import MimoError


def open_text(path: str | os.PathLike):
    """A text file for reading (UTF-8), gunzipped on the fly when its name ends in ``.gz``."""
    path = Path(path)
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def iter_jsonl(path: str | os.PathLike, *, bad_lines: list[tuple[int, str]] | None = None,
               with_lineno: bool = False) -> Iterator:
    """Yield one dict per non-blank line of a JSONL (or ``.jsonl.gz``) file (``(lineno, dict)`` with
    ``with_lineno``).

    A line that is not a JSON object raises ``MimoError("FILE:LINE: ...")``.  When ``bad_lines`` is a list, bad
    lines are appended to it as ``(line_number, reason)`` and skipped instead (the caller reports them).
    """
    path = Path(path)
    if not path.is_file():
        raise MimoError(f"{path}: no such file")
    with open_text(path) as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                reason = f"malformed JSON ({e.msg} at column {e.colno})"
                if bad_lines is None:
                    raise MimoError(f"{path}:{lineno}: {reason}") from None
                bad_lines.append((lineno, reason))
                continue
            if not isinstance(obj, dict):
                reason = f"expected a JSON object, got {type(obj).__name__}"
                if bad_lines is None:
                    raise MimoError(f"{path}:{lineno}: {reason}")
                bad_lines.append((lineno, reason))
                continue
            yield (lineno, obj) if with_lineno else obj


def read_jsonl(path: str | os.PathLike, **kwargs: Any) -> list[dict]:
    """All records of a JSONL file (see :func:`iter_jsonl`)."""
    return list(iter_jsonl(path, **kwargs))


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any):
    """Open a temporary sibling of ``path`` for writing; on success it replaces ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> int:
    """Atomically write records as JSONL; returns the number written."""
    n = 0
    with atomic_open(path, "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    return n


def write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> None:
    """Atomically write one JSON document."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=indent, ensure_ascii=False)
        f.write("\n")


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one record and flush it to disk (for logs and resumable result files)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
