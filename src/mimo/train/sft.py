"""``mimo sft``: supervised fine-tuning on ChatML conversations with ``<think>`` reasoning.

MiMo's SFT (docs/design.md §1.3): loss on assistant tokens only, samples packed into long windows (32768 tokens
for the 7B; each conversation attends only to itself and restarts its RoPE positions), constant LR (3e-5, batch
128), and the data hygiene of :mod:`mimo.data.sft` (16-gram decontamination, incomplete / mixed-language responses
dropped, at most 8 responses per query).  The MTP layers keep training with a small weight so that speculative
decoding stays accurate on reasoning traces.  Checkpoints resume exactly (window cursor, optimizer, RNG).

With no ``data``, the built-in toy set is used: toy math problems answered by an *imperfect* teacher (a share of
the traces contain an arithmetic slip), as real SFT data distilled from strong-but-fallible models does -- which
leaves RL something to fix.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import torch

from mimo.config import F, stage_cli
from mimo.data.decontam import NgramIndex, eval_data_dir, load_benchmark
from mimo.data.sft import ToySFT, clean_sft, encode_conversation, load_conversations, pack, toy_sft_records
from mimo.errors import MimoError
from mimo.model.io import load_model_dir
from mimo.tasks import HELDOUT_SEED
from mimo.tasks.spec import harder
from mimo.train import dist
from mimo.train.loop import accumulate_step, make_optimizer, set_lr
from mimo.train.run import StageRun
from mimo.train.schedules import wsd_lr
from mimo.utils.io import write_json


@dataclasses.dataclass
class SFTConfig:
    init_from: str = F("", "model directory to fine-tune (e.g. a pretraining run's final/)")
    out_dir: str = F("runs/sft", "run directory")
    data: str | None = F(None, "JSONL conversations ({messages} or {prompt, response}); None: the toy set")
    toy: ToySFT = F(factory=ToySFT, help="the built-in toy SFT set")
    decontaminate: list[str] = F(
        factory=lambda: ["math500", "aime24", "aime25", "livecodebench", "humaneval"],
        help="benchmarks whose 16-grams disqualify a query (skipped when their files are absent)")
    decontaminate_toy_heldout: int = F(1000, "also index this many held-out toy problems (0: none)")
    max_responses_per_query: int = F(8, "keep at most this many responses per query")
    seq_len: int = F(512, "packed window length")
    batch_size: int = F(16, "packed windows per optimizer step")
    micro_batch_size: int = F(8, "windows per forward/backward")
    epochs: float = F(1.0, "passes over the packed data (ignored when steps > 0)")
    steps: int = F(0, "optimizer steps (0: from epochs)")
    lr: float = F(3e-5, "constant learning rate (MiMo: 3e-5)")
    warmup_steps: int = F(0, "linear warmup steps")
    decay_steps: int = F(0, "final cosine decay steps (0: constant LR as in MiMo; toy runs anneal)")
    min_lr_ratio: float = F(0.1, "LR at the end of the decay, relative to lr")
    weight_decay: float = F(0.1, "AdamW weight decay")
    grad_clip: float = F(1.0, "gradient-norm clip")
    mtp_loss_weight: float = F(0.1, "MTP loss weight (0: leave the MTP layers untouched)")
    save_every: int = F(0, "checkpoint every N steps (0: only at the end)")
    keep_checkpoints: int = F(2, "checkpoints kept")
    resume: bool = F(False, "resume from out_dir's newest checkpoint that loads")
    overwrite: bool = F(False, "start over in an out_dir that holds a run (removes its checkpoints, metrics, final)")
    max_steps: int | None = F(None, "stop after this many steps (tests)")
    seed: int = F(0, "random seed")
    threads: int = F(0, "torch CPU threads (0: default)")
    device: str = F("auto", "cpu, cuda or auto")
    log_every: int = F(10, "print a log line every N steps")


def build_decontam_index(benchmarks: list[str], toy_heldout: int, toy_seed: int = HELDOUT_SEED):
    """A 16-gram index over the named benchmarks (those present) and held-out toy problems."""

    index = NgramIndex(n=16)
    data_dir = eval_data_dir()
    for name in benchmarks:
        if data_dir is not None:
            index.add(load_benchmark(name, data_dir), name=name)
    if toy_heldout > 0:
        held = harder().math(toy_seed).sample(toy_heldout, "heldout")
        index.add([p.prompt_text() for p in held], name="toy_heldout")
    return index


def prepare_windows(cfg: SFTConfig, tok, out: Path | None = None):
    records = load_conversations(cfg.data) if cfg.data else toy_sft_records(cfg.toy)
    index = build_decontam_index(cfg.decontaminate, cfg.decontaminate_toy_heldout)
    kept, report = clean_sft(records, index, cfg.max_responses_per_query, cfg.seed)
    examples = [encode_conversation(tok, r["messages"]) for r in kept]
    windows, too_long = pack(examples, cfg.seq_len, tok.pad_id)
    report["dropped"]["longer_than_seq_len"] = too_long
    report["windows"] = len(windows)
    report["assistant_tokens"] = int(sum(int((w.labels != -100).sum()) for w in windows))
    if not windows:
        raise MimoError("sft: no training data left after filtering")
    if out is not None:
        write_json(out / "sft_data_report.json", report)
    return windows, report


def window_batch(windows, rows: list[int], device) -> dict[str, torch.Tensor]:
    ids = torch.from_numpy(np.stack([windows[r].ids for r in rows])).to(device)
    labels = torch.from_numpy(np.stack([windows[r].labels for r in rows])).to(device)
    pos = torch.from_numpy(np.stack([windows[r].positions for r in rows])).to(device)
    doc = torch.from_numpy(np.stack([windows[r].doc for r in rows])).to(device)
    T = ids.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool, device=device).tril()
    same = doc[:, :, None] == doc[:, None, :]  # (B, T, T): attend within one conversation only
    mask = (causal[None] & same)[:, None]
    mask = mask | torch.eye(T, dtype=torch.bool, device=device)[None, None]  # padding sees itself (no NaN)
    return {"input_ids": ids, "labels": labels, "position_ids": pos, "attention_mask": mask}


def sft_loss(mtp_weight: float):
    def fn(model, batch):
        out = model(**batch, mtp_loss_weight=mtp_weight)
        metrics = {"loss": out.loss.detach(), "main_loss": out.main_loss.detach()}
        for i, a in enumerate(out.mtp_accuracies or []):
            metrics[f"mtp{i + 1}_acc"] = a.detach()
        return out.loss, metrics

    return fn


def epoch_order(n: int, epoch: int, seed: int) -> list[int]:
    return np.random.default_rng([seed, epoch]).permutation(n).tolist()


def main(cfg: SFTConfig) -> dict:
    if not cfg.init_from:
        raise MimoError("sft: --init_from (a model directory) is required")
    info = dist.init_distributed(cfg.device)
    run = StageRun("sft", "sft", cfg, cfg.out_dir, cfg.seed, cfg.threads, cfg.keep_checkpoints, cfg.resume,
                   info.is_main, overwrite=cfg.overwrite)
    out = run.out
    model, tok = load_model_dir(cfg.init_from, device=info.device)
    if tok is None:
        raise MimoError(f"{cfg.init_from}: no tokenizer in the model directory")
    windows, report = prepare_windows(cfg, tok, out if info.is_main else None)
    run.save_config()
    if info.is_main:
        print(f"[sft] {report['kept']}/{report['input']} conversations kept ({report['dropped']}), "
              f"{report['windows']} windows of {cfg.seq_len}, {report['assistant_tokens']} loss tokens", flush=True)
    total = cfg.steps or max(1, math.ceil(cfg.epochs * len(windows) / cfg.batch_size))
    last = min(total, cfg.max_steps) if cfg.max_steps is not None else total
    model.train()
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
    state = run.restore(model, optimizer)
    step, cursor = state.get("step", 0), state.get("cursor", 0)
    ddp_model = dist.wrap_model(model, info)
    logger = run.logger(last, cfg.log_every)
    per_rank = cfg.batch_size // info.world_size
    result: dict = {}
    while step < last:
        rows = []
        while len(rows) < cfg.batch_size:  # the global batch, crossing epoch boundaries
            epoch, at = divmod(cursor, len(windows))
            rows.append(epoch_order(len(windows), epoch, cfg.seed)[at])
            cursor += 1
        mine = rows[info.rank * per_rank:(info.rank + 1) * per_rank]
        micro = [window_batch(windows, mine[i:i + cfg.micro_batch_size], info.device)
                 for i in range(0, len(mine), cfg.micro_batch_size)]
        counts = [int((mb["labels"][:, 1:] != -100).sum()) for mb in micro]
        weights = [c / max(sum(counts), 1) for c in counts]
        lr = wsd_lr(step, [total], [cfg.lr], cfg.warmup_steps, cfg.decay_steps, cfg.min_lr_ratio)
        set_lr(optimizer, lr)
        metrics = accumulate_step(ddp_model, optimizer, micro, sft_loss(cfg.mtp_loss_weight), cfg.grad_clip,
                                  weights=weights)
        step += 1
        metrics = {k: dist.all_reduce_mean(v, info) for k, v in metrics.items()}
        result = logger.log(step, print_line=info.is_main and (step % cfg.log_every == 0 or step == last),
                            lr=lr, **metrics, tokens=sum(counts) * info.world_size)
        if (cfg.save_every and step % cfg.save_every == 0) or step == last:
            run.checkpoint(step, model, optimizer, tok, cursor=cursor)
    run.finish(model, tok, step >= total)
    logger.close()
    dist.cleanup(info)
    return result


def cli(argv: list[str]) -> int:
    return stage_cli(argv, prog="mimo sft", description=__doc__.split("\n\n")[0], cls=SFTConfig, section="sft",
                     main=main)
