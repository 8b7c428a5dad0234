"""The ``mimo`` command line: one sub-command per pipeline stage.

Each command is a function ``cli(argv: list[str]) -> int`` of its own module (``module:function`` names another
function); modules are imported only when their command runs, so ``mimo --help`` is instant.  User errors
(:class:`~mimo.errors.MimoError`) print one line and exit 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import importlib
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
    lines += ["", "Run `mimo <command> --help` for the options of a command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
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
    except KeyboardInterrupt:
        print(f"mimo {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
