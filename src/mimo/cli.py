"""The ``mimo`` command line: one sub-command per pipeline stage.

Each command lives in its own module exposing ``cli(argv: list[str]) -> int``; modules are imported only when
their command runs, so ``mimo --help`` is instant.  User errors (:class:`~mimo.errors.MimoError`) print one line
and exit 2, and so does an output location that is read-only, full or not ours to write (the OS error names
the path); Ctrl-C exits 130.
"""

from __future__ import annotations

import errno
import importlib
import os
import sys

from mimo.errors import MimoError

# command -> (module with a `cli(argv)` function, or "module:function", one-line description)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("mimo.demo.family", "rebuild the MiMo family (Base, RL-Zero, SFT, RL) at toy scale and print the table"),
    "data": ("mimo.data.cli", "data: extract, dedup, tag, synthesize, decontaminate, mix; curate-rl (RL problems)"),
    "tokenizer": ("mimo.tokenizer", "train a byte-level BPE tokenizer on text/JSONL files"),
    "pretrain": ("mimo.train.pretrain", "pretrain a model with next-token + MTP loss over the data stages"),
    "sft": ("mimo.train.sft", "supervised fine-tuning on ChatML conversations with <think> reasoning"),
    "rl": ("mimo.rl.trainer", "GRPO with MiMo's recipe on the Seamless Rollout Engine (Base -> RL-Zero, SFT -> RL)"),
    "train-mtp": ("mimo.train.mtp", "grow the MTP layer into k chained layers for speculative decoding"),
    "eval": ("mimo.eval.cli", "the MiMo evaluation protocol: MATH-500, AIME, LiveCodeBench, GPQA, HumanEval, pass@k"),
    "generate": ("mimo.infer.cli", "generate text from a checkpoint (KV-cached, batched, streaming)"),
    "chat": ("mimo.infer.chat", "interactive multi-turn chat with a checkpoint (live speculative stats)"),
    "serve": ("mimo.infer.serve", "OpenAI-compatible chat-completions HTTP server (streaming) for a checkpoint"),
    "rewards": ("mimo.rewards.cli", "test difficulty levels for the code reward (`mimo rewards levels`)"),
    "judge": ("mimo.rewards.cli:judge_cli", "the sandboxed code judge: `mimo judge serve` (HTTP) and `mimo judge run`"),
}


# Errors of the storage rather than of the program: a read-only volume, a full disk, a folder we may not write.
_STORAGE_ERRNOS = {errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM}


def _usage() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = [
        "usage: mimo <command> [options]",
        "",
        "mimo: the MiMo-7B reasoning-LLM recipe, from a laptop CPU to a GPU cluster.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {desc}" for name, (_, desc) in COMMANDS.items()]
    lines += ["", "Run `mimo <command> --help` for the options of a command; `--verbose` shows library logging."]
    return "\n".join(lines)


def quiet_libraries(verbose: bool) -> None:
    """Library logging at warnings only, unless ``--verbose``: datatrove (loguru) prints a pipeline banner,
    per-task INFO lines and, for an error we re-raise and print as one line anyway, a ~100-line annotated
    traceback.  Quiet mode keeps warnings and errors that carry no exception (those we do not re-raise)."""
    os.environ["MIMO_VERBOSE"] = "1" if verbose else os.environ.get("MIMO_VERBOSE", "0")
    verbose = os.environ["MIMO_VERBOSE"] == "1"  # inherited by worker processes (datatrove tasks, Ray actors)
    try:
        from loguru import logger
    except ImportError:
        pass
    else:
        logger.remove()
        if verbose:
            logger.add(sys.stderr, level="DEBUG")
        else:
            logger.add(sys.stderr, level="WARNING", backtrace=False, diagnose=False,
                       filter=lambda record: record["exception"] is None)
    if not verbose:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("DATASETS_VERBOSITY", "error")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    verbose = "--verbose" in argv  # global: `mimo --verbose data pipeline ...` or anywhere on the line
    argv = [a for a in argv if a != "--verbose"]
    quiet_libraries(verbose)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from mimo import __version__

        print(f"mimo {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"mimo: error: unknown command {name!r} (commands: {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    try:
        module_name, _, function = COMMANDS[name][0].partition(":")
        command = getattr(importlib.import_module(module_name), function or "cli")
        return int(command(rest) or 0)
    except MimoError as e:
        print(f"mimo {name}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in _STORAGE_ERRNOS:
            raise
        where = e.filename or "output"
        verb = "cannot write" if e.errno in (errno.EROFS, errno.ENOSPC, errno.EDQUOT) else "cannot access"
        print(f"mimo {name}: error: {where}: {verb} ({os.strerror(e.errno)})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mimo {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
