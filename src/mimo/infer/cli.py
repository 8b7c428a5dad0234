"""``mimo generate``: sample from a checkpoint, streaming the text as it is produced."""

from __future__ import annotations

import dataclasses
import sys

from mimo.config import F, stage_cli
from mimo.errors import MimoError


@dataclasses.dataclass
class GenerateConfig:
    model: str = F("", "model directory (HF layout: config.json + safetensors + tokenizer)")
    prompt: list[str] = F(factory=list, help="prompt(s); several run as one batch")
    chat: bool = F(True, "wrap each prompt as a ChatML user turn (empty system prompt)")
    max_new_tokens: int = F(256, "tokens to generate per prompt")
    temperature: float = F(0.0, "sampling temperature (0: greedy)")
    top_p: float = F(1.0, "nucleus sampling mass")
    seed: int = F(0, "sampling seed")
    speculative: bool | None = F(None, "MTP speculative decoding (default: on when the model has MTP layers)")
    num_draft: int | None = F(None, "speculative draft depth (default: all MTP layers)")
    device: str = F("auto", "cpu, cuda or auto")
    threads: int = F(0, "torch CPU threads (0: auto, 1 for models under 20M parameters, else the idle cores)")


def main(cfg: GenerateConfig) -> int:
    import torch

    from mimo.infer.decoding import GenerationStats
    from mimo.infer.engine import generate, load_for_inference

    if not cfg.model:
        raise MimoError("--model is required")
    if not cfg.prompt:
        raise MimoError("--prompt is required")
    model, tok = load_for_inference(cfg.model, cfg.device, cfg.threads, cfg.num_draft)
    ids = [tok.chat_prompt(p) if cfg.chat else tok.encode(p) for p in cfg.prompt]
    spec = cfg.speculative if cfg.speculative is not None else model.num_mtp_layers > 0
    stats = GenerationStats()
    stream = len(ids) == 1
    emitted: list[int] = []
    shown = [""]

    def on_token(b: int, t: int) -> None:
        emitted.append(t)
        text = tok.decode(emitted, skip_special_tokens=True)
        sys.stdout.write(text[len(shown[0]):])
        sys.stdout.flush()
        shown[0] = text

    with torch.inference_mode():
        outs = generate(model, ids, cfg.max_new_tokens, cfg.temperature, cfg.top_p, speculative=spec,
                        seed=cfg.seed, stop_ids=tok.stop_ids, num_draft=cfg.num_draft, stats=stats,
                        on_token=on_token if stream else None)
    if stream:
        print()
    else:
        for p, o in zip(cfg.prompt, outs):
            print(f"### {p}\n{tok.decode(o, skip_special_tokens=True)}\n")
    rate = stats.new_tokens / max(stats.seconds, 1e-9)
    line = f"[{stats.new_tokens} tokens in {stats.seconds:.2f}s, {rate:.1f} tok/s"
    if spec and stats.drafted:
        acc = " ".join(f"{a:.0%}" for a in stats.acceptance())
        line += f", acceptance per MTP layer: {acc}, {stats.mean_accepted_length():.2f} tokens per verify"
    print(line + "]", file=sys.stderr)
    return 0


def cli(argv: list[str]) -> int:
    return stage_cli(argv, prog="mimo generate", description=__doc__, cls=GenerateConfig, section="infer", main=main)
