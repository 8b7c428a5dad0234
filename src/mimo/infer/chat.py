"""``mimo chat``: an interactive multi-turn ChatML conversation with a checkpoint, over stdin/stdout.

Each reply streams as it is decoded; after it a status line on stderr gives tokens/s and, with speculative decoding,
the acceptance per MTP layer for the reply and for the session so far.  Earlier assistant turns go back into the
prompt without their ``<think>`` reasoning (as MiMo's and other reasoning models' chat templates do), so long
traces do not crowd the context.  Commands: ``/reset`` (new conversation), ``/stats``, ``/exit`` (or end of input).
"""

from __future__ import annotations

import dataclasses
import sys

from mimo.config import F, stage_cli
from mimo.tokenizer import END_THINK


@dataclasses.dataclass
class ChatConfig:
    model: str = F("", "model directory (HF layout: config.json + safetensors + tokenizer)")
    system: str = F("", "system prompt (MiMo: empty)")
    max_new_tokens: int = F(512, "tokens per reply at most")
    temperature: float = F(0.0, "sampling temperature (0: greedy; MiMo's evaluation uses 0.6)")
    top_p: float = F(1.0, "nucleus sampling mass (MiMo's evaluation uses 0.95)")
    seed: int = F(0, "sampling seed (each turn uses seed + turn)")
    speculative: bool | None = F(None, "MTP speculative decoding (default: on when the model has MTP layers)")
    num_draft: int | None = F(None, "draft depth (default: all MTP layers)")
    device: str = F("auto", "cpu, cuda or auto")
    threads: int = F(0, "torch CPU threads (0: auto, 1 for models under 20M parameters, else the idle cores)")


def _history_text(reply: str) -> str:
    """What an assistant reply contributes to later prompts: the answer after ``</think>`` when there is one."""
    return reply.split(END_THINK, 1)[1].lstrip("\n") if END_THINK in reply else reply


def _stats_line(stats, session, speculative: bool) -> str:
    rate = stats.new_tokens / max(stats.seconds, 1e-9)
    line = f"[{stats.new_tokens} tokens, {rate:.1f} tok/s"
    if speculative and stats.drafted:
        now = " ".join(f"{a:.0%}" for a in stats.acceptance())
        total = " ".join(f"{a:.0%}" for a in session.acceptance())
        line += (f" | acceptance per MTP layer {now} (session {total}), "
                 f"{stats.mean_accepted_length():.2f} tokens per verify")
    return line + "]"


def run(model, tok, cfg: ChatConfig, stdin=None, stdout=None, stderr=None) -> int:
    """The REPL, on given streams (tests drive it with StringIO)."""
    import torch

    from mimo.infer.decoding import GenerationStats
    from mimo.infer.engine import generate

    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    spec = cfg.speculative if cfg.speculative is not None else model.num_mtp_layers > 0
    interactive = stdin.isatty()
    messages: list[dict] = []
    session = GenerationStats()
    turn = 0
    mode = f"speculative decoding with {model.num_mtp_layers} MTP layers" if spec else "plain decoding"
    print(f"[chat] {mode}; /reset, /stats, /exit", file=stderr, flush=True)
    while True:
        if interactive:
            stderr.write("you> ")
            stderr.flush()
        line = stdin.readline()
        if not line:
            break
        text = line.rstrip("\n")
        if not text.strip():
            continue
        if text.strip() in ("/exit", "/quit"):
            break
        if text.strip() == "/reset":
            messages = []
            print("[chat] new conversation", file=stderr, flush=True)
            continue
        if text.strip() == "/stats":
            print(_stats_line(session, session, spec), file=stderr, flush=True)
            continue
        messages.append({"role": "user", "content": text})
        system = [{"role": "system", "content": cfg.system}] if cfg.system else []
        ids = tok.chat_prompt(system + messages)
        emitted: list[int] = []
        shown = [""]

        def on_token(b: int, t: int) -> None:
            if t in tok.stop_ids:
                return
            emitted.append(t)
            now = tok.decode(emitted)
            if not now.endswith("\ufffd"):  # wait for the rest of a split UTF-8 character
                stdout.write(now[len(shown[0]):])
                stdout.flush()
                shown[0] = now

        stats = GenerationStats()
        with torch.inference_mode():
            generate(model, [ids], cfg.max_new_tokens, cfg.temperature, cfg.top_p, speculative=spec,
                     seed=cfg.seed + turn, stop_ids=tok.stop_ids, num_draft=cfg.num_draft, stats=stats,
                     on_token=on_token)
        reply = tok.decode(emitted)
        stdout.write(reply[len(shown[0]):] + "\n")
        stdout.flush()
        _merge(session, stats)
        print(_stats_line(stats, session, spec), file=stderr, flush=True)
        messages.append({"role": "assistant", "content": _history_text(reply)})
        turn += 1
    return 0


def _merge(total, part) -> None:
    total.prompt_tokens += part.prompt_tokens
    total.new_tokens += part.new_tokens
    total.forward_passes += part.forward_passes
    total.seconds += part.seconds
    for name in ("accepted", "drafted"):
        a, b = getattr(total, name), getattr(part, name)
        a += [0] * (len(b) - len(a))
        for i, v in enumerate(b):
            a[i] += v


def main(cfg: ChatConfig) -> int:
    from mimo.infer.engine import load_for_inference

    model, tok = load_for_inference(cfg.model, cfg.device, cfg.threads, cfg.num_draft)
    return run(model, tok, cfg)


def cli(argv: list[str]) -> int:
    return stage_cli(argv, prog="mimo chat", description=__doc__.split("\n\n")[0], cls=ChatConfig, section="chat",
                     main=main)
