"""``mimo pretrain``: next-token + MTP loss over MiMo's data stages.

Recipe (docs/design.md §1.2): AdamW (0.9, 0.95), weight decay 0.1, grad clip 1.0; warmup -> constant LR per stage
-> final cosine decay; batch-size warmup; per-stage data mixture, context length and RoPE base (stage 3 raises it,
10000 -> 640000 in MiMo); MTP loss weight per stage (0.3, later 0.1).  Sequences are packed windows of the stage's
token shards.  Checkpoints (model, optimizer, data position, RNG) are atomic and ``--resume true`` continues
exactly.  Runs under ``torchrun`` with DDP (gloo on CPU, nccl on GPU).

With no ``data`` given for a stage, the built-in toy corpus (:mod:`mimo.data.toy`) is generated into the run
directory, so ``mimo pretrain --preset tiny`` works from nothing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from mimo.config import F, stage_cli
from mimo.data.shards import TokenStream
from mimo.data.toy import ToyCorpus, build_heldout_shards, build_stages, build_tokenizer
from mimo.errors import MimoError
from mimo.model import MiMoForCausalLM, ModelSpec
from mimo.model.io import check_tokenizer_fits, load_model_dir, unwrap
from mimo.tokenizer import Tokenizer
from mimo.train import dist
from mimo.train.loop import accumulate_step, evaluate, make_optimizer, set_lr
from mimo.train.run import StageRun
from mimo.train.schedules import batch_size_at, stage_of, wsd_lr


@dataclasses.dataclass
class StageSpec:
    """One pretraining stage."""

    name: str = F("stage", "stage name (for logs)")
    data: str | None = F(None, "token shard directory (`mimo data mix`); None: built-in toy corpus")
    steps: int = F(100, "optimizer steps in this stage")
    seq_len: int = F(256, "context length of packed training windows")
    rope_theta: float = F(10000.0, "RoPE base during this stage")
    lr: float = F(1e-3, "constant learning rate of this stage")
    mtp_loss_weight: float = F(0.3, "weight w of the MTP loss: main + w * mean(MTP losses)")


@dataclasses.dataclass
class PretrainConfig:
    model: ModelSpec = F(factory=ModelSpec, help="model shape")
    out_dir: str = F("runs/pretrain", "run directory (checkpoints, metrics, final model)")
    init_from: str | None = F(None, "start from this model directory instead of random weights")
    tokenizer: str | None = F(None, "tokenizer directory; None: train the toy BPE into out_dir/tokenizer")
    toy: ToyCorpus = F(factory=ToyCorpus, help="the built-in toy corpus (stages without `data`)")
    stages: list[StageSpec] = F(factory=lambda: [StageSpec(name="stage1")], help="data stages, in order")
    batch_size: int = F(32, "global batch size in sequences")
    batch_size_start: int = F(8, "batch size at step 0 (batch-size warmup)")
    batch_warmup_steps: int = F(0, "steps to ramp the batch size to batch_size")
    micro_batch_size: int = F(8, "sequences per forward/backward (gradient accumulation)")
    warmup_steps: int = F(20, "linear LR warmup steps")
    decay_steps: int = F(50, "final cosine decay steps (end of the last stage)")
    min_lr_ratio: float = F(0.1, "LR at the end of the decay, relative to the last stage's LR")
    weight_decay: float = F(0.1, "AdamW weight decay")
    beta1: float = F(0.9, "AdamW beta1")
    beta2: float = F(0.95, "AdamW beta2")
    grad_clip: float = F(1.0, "gradient-norm clip (0: off)")
    eval_data: str | None = F(None, "held-out shard directory; None: held-out toy problems")
    eval_every: int = F(50, "evaluate held-out loss / MTP accuracy every N steps (0: only at the end)")
    eval_batches: int = F(4, "held-out batches per evaluation")
    save_every: int = F(100, "checkpoint every N steps (0: only at the end)")
    keep_checkpoints: int = F(2, "checkpoints kept on disk")
    resume: bool = F(False, "resume from out_dir's newest checkpoint that loads")
    overwrite: bool = F(False, "start over in an out_dir that holds a run (removes its checkpoints, metrics, final)")
    max_steps: int | None = F(None, "stop after this many steps (for tests; the schedule still spans all stages)")
    seed: int = F(0, "random seed")
    threads: int = F(0, "torch CPU threads (0: torch default)")
    device: str = F("auto", "cpu, cuda or auto")
    dtype: str = F("float32", "autocast dtype on GPU: float32 or bfloat16")
    parallel: str = F("ddp", "multi-process strategy under torchrun: ddp or fsdp")
    log_every: int = F(10, "print a log line every N steps")


def _prepare_data(cfg: PretrainConfig, info: dist.DistInfo,
                  out: Path) -> tuple[Tokenizer, list[TokenStream], TokenStream]:
    """Tokenizer and one token stream per stage (+ held-out), building the toy corpus where needed (rank 0)."""
    tok_dir = Path(cfg.tokenizer) if cfg.tokenizer else out / "tokenizer"
    needs_toy = [i for i, s in enumerate(cfg.stages) if s.data is None]
    if info.is_main:
        if cfg.tokenizer is None and not (tok_dir / "tokenizer.json").is_file():
            print(f"[pretrain] training the toy BPE tokenizer -> {tok_dir}", flush=True)
            build_tokenizer(cfg.toy, tok_dir)
        tok = Tokenizer.load(tok_dir)
        if needs_toy and not all((out / "data" / f"stage{i + 1}" / "index.json").is_file() for i in needs_toy):
            print(f"[pretrain] building the toy corpus -> {out / 'data'}", flush=True)
            build_stages(cfg.toy, tok, out / "data", [(s.seq_len, s.rope_theta) for s in cfg.stages])
        if cfg.eval_data is None and not (out / "data" / "heldout" / "index.json").is_file():
            build_heldout_shards(cfg.toy, tok, out / "data" / "heldout")
    dist.barrier(info)
    tok = Tokenizer.load(tok_dir)
    streams = [TokenStream(s.data if s.data else out / "data" / f"stage{i + 1}") for i, s in enumerate(cfg.stages)]
    held = TokenStream(cfg.eval_data if cfg.eval_data else out / "data" / "heldout")
    for s in streams + [held]:
        if s.vocab_size > tok.vocab_size and s.vocab_size > cfg.model.vocab_size:
            raise MimoError(f"{s.dir}: shards use vocab {s.vocab_size}, larger than the tokenizer's {tok.vocab_size}")
    return tok, streams, held


def _loss_fn(mtp_weight: float):
    def fn(model, batch):
        out = model(input_ids=batch, labels=batch, mtp_loss_weight=mtp_weight)
        metrics = {"loss": out.loss.detach(), "main_loss": out.main_loss.detach()}
        for i, (layer_loss, a) in enumerate(zip(out.mtp_losses or [], out.mtp_accuracies or [])):
            metrics[f"mtp{i + 1}_loss"] = layer_loss.detach()
            metrics[f"mtp{i + 1}_acc"] = a.detach()
        return out.loss, metrics

    return fn


def main(cfg: PretrainConfig) -> dict:
    if not cfg.stages:
        raise MimoError("pretrain: `stages` is empty")
    info = dist.init_distributed(cfg.device)
    run = StageRun("pretrain", "pretrain", cfg, cfg.out_dir, cfg.seed, cfg.threads, cfg.keep_checkpoints, cfg.resume,
                   info.is_main, overwrite=cfg.overwrite)
    out = run.out
    tok, streams, held = _prepare_data(cfg, info, out)
    run.save_config()

    if cfg.init_from:
        model, _ = load_model_dir(cfg.init_from, with_tokenizer=False)
    else:
        vocab = max(tok.vocab_size, cfg.model.vocab_size) if cfg.tokenizer else tok.vocab_size
        model = MiMoForCausalLM(cfg.model.to_hf(vocab_size=vocab, eos_token_id=tok.stop_ids,
                                                pad_token_id=tok.pad_id,
                                                max_position_embeddings=max(cfg.model.max_position_embeddings,
                                                                            max(s.seq_len for s in cfg.stages))))
    check_tokenizer_fits(tok, model.config, cfg.tokenizer or cfg.init_from or "pretrain")
    model.to(info.device).train()
    optimizer = make_optimizer(model, cfg.stages[0].lr, cfg.weight_decay, (cfg.beta1, cfg.beta2))
    state = run.restore(model, optimizer)
    step, positions = state.get("step", 0), state.get("positions", [0] * len(cfg.stages))
    ddp_model = dist.wrap_model(model, info, cfg.parallel)

    stage_steps = [s.steps for s in cfg.stages]
    total = sum(stage_steps)
    last = min(total, cfg.max_steps) if cfg.max_steps is not None else total
    multiple = cfg.micro_batch_size * info.world_size
    autocast = torch.bfloat16 if cfg.dtype == "bfloat16" and info.device.type == "cuda" else None
    logger = run.logger(last, cfg.log_every)
    current_stage = -1
    result: dict = {}
    while step < last:
        si = stage_of(step, stage_steps)
        stage = cfg.stages[si]
        if si != current_stage:
            unwrap(model).model.set_rope_theta(stage.rope_theta)
            current_stage = si
            if info.is_main:
                print(f"[pretrain] {stage.name}: steps {sum(stage_steps[:si])}..{sum(stage_steps[:si + 1])}, "
                      f"seq_len {stage.seq_len}, rope_theta {stage.rope_theta:g}, lr {stage.lr:g}, "
                      f"mtp weight {stage.mtp_loss_weight:g}", flush=True)
        bs = batch_size_at(step, cfg.batch_size, cfg.batch_size_start, cfg.batch_warmup_steps, multiple)
        arr, positions[si] = streams[si].batch(positions[si], bs, stage.seq_len)
        per_rank = bs // info.world_size
        mine = torch.from_numpy(np.ascontiguousarray(arr[info.rank * per_rank:(info.rank + 1) * per_rank]))
        micro = [mb.to(info.device) for mb in mine.split(cfg.micro_batch_size)]
        lr = wsd_lr(step, stage_steps, [s.lr for s in cfg.stages], cfg.warmup_steps, cfg.decay_steps,
                    cfg.min_lr_ratio)
        set_lr(optimizer, lr)
        metrics = accumulate_step(ddp_model, optimizer, micro, _loss_fn(stage.mtp_loss_weight), cfg.grad_clip,
                                  autocast_dtype=autocast)
        step += 1
        metrics = {k: dist.all_reduce_mean(v, info) for k, v in metrics.items()}
        record = {"stage": si + 1, "lr": lr, "batch_size": bs, **metrics, "tokens": bs * stage.seq_len}
        if (cfg.eval_every and step % cfg.eval_every == 0) or step == last:
            record.update(evaluate(ddp_model, held, stage.seq_len, cfg.eval_batches, cfg.micro_batch_size,
                                   info.device))
        result = logger.log(step, print_line=info.is_main and (step % cfg.log_every == 0 or step == last), **record)
        if (cfg.save_every and step % cfg.save_every == 0) or step == last:
            run.checkpoint(step, model, optimizer, tok, positions=positions)
            dist.barrier(info)
    run.finish(model, tok, step >= total)
    logger.close()
    dist.cleanup(info)
    return result


def cli(argv: list[str]) -> int:
    stage_cli(argv, prog="mimo pretrain", description=__doc__.split("\n\n")[0], cls=PretrainConfig,
              section="pretrain", main=main)
    return 0
