"""``mimo train-mtp``: grow a pretrained model's single MTP layer into k chained layers for speculative decoding.

Recipe (docs/design.md §1.1): the pretrained MTP layer is copied into k-1 new layers; the main model and the first
MTP layer are frozen; the new layers are trained (MTP layer i predicts token t+2+i from layer i-1's output and the
embedding of token t+1+i); the model is saved with ``num_nextn_predict_layers = k``.  The frozen parts are
bit-identical afterwards (tested), so the main model's outputs -- and everything speculative decoding verifies
against -- are unchanged.

Targets: ``data`` (the paper: the next tokens of the corpus) or ``model`` (self-distillation: what the frozen main
model itself predicts at t+1+i, the quantity greedy verification compares against).  With no ``data`` given, the
built-in toy corpus's reasoning-dense stage is generated with the model's tokenizer.  At the end the speculative
acceptance per MTP layer is measured on held-out toy problems (``mimo.infer.bench``).
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Literal

import torch

from mimo.config import F, stage_cli
from mimo.data.shards import TokenStream
from mimo.data.toy import ToyCorpus, build_heldout_shards, build_stage_shards
from mimo.errors import MimoError
from mimo.infer.bench import heldout_prompts, measure
from mimo.model import MiMoForCausalLM
from mimo.model.io import load_model_dir, resolve_device
from mimo.model.modeling import IGNORE_INDEX
from mimo.train.loop import accumulate_step, evaluate, make_optimizer, set_lr
from mimo.train.run import StageRun
from mimo.train.schedules import wsd_lr


@dataclasses.dataclass
class MtpConfig:
    init_from: str = F("runs/tiny/pretrain/final", "pretrained model directory (with at least one MTP layer)")
    out_dir: str = F("runs/mtp", "run directory (checkpoints, metrics, final model)")
    num_mtp_layers: int = F(3, "k: MTP layers of the saved model (the paper uses 3)")
    train_first: bool = F(False, "also train MTP layer 1 (the paper freezes it)")
    targets: Literal["data", "model"] = F("data", "labels: the corpus' next tokens, or the frozen main model's argmax")
    data: str | None = F(None, "token shard directory; None: the toy corpus stage `toy_stage`")
    toy: ToyCorpus = F(factory=ToyCorpus, help="the built-in toy corpus (when `data` is None)")
    toy_stage: int = F(3, "toy corpus stage (1-based) to train on: 3 is the reasoning-dense one")
    eval_data: str | None = F(None, "held-out shard directory; None: held-out toy problems")
    steps: int = F(300, "optimizer steps")
    seq_len: int = F(256, "training window length")
    batch_size: int = F(32, "sequences per optimizer step")
    micro_batch_size: int = F(16, "sequences per forward/backward")
    lr: float = F(2e-3, "peak learning rate")
    warmup_steps: int = F(20, "linear warmup steps")
    decay_steps: int = F(100, "final cosine decay steps")
    min_lr_ratio: float = F(0.1, "LR at the end of the decay, relative to lr")
    weight_decay: float = F(0.1, "AdamW weight decay")
    grad_clip: float = F(1.0, "gradient-norm clip (0: off)")
    eval_every: int = F(100, "held-out MTP accuracy every N steps (0: only at the end)")
    eval_batches: int = F(4, "held-out batches per evaluation")
    accept_prompts: int = F(32, "held-out toy problems for the final speculative-acceptance measurement (0: skip)")
    save_every: int = F(100, "checkpoint every N steps (0: only at the end)")
    keep_checkpoints: int = F(2, "checkpoints kept on disk")
    resume: bool = F(False, "resume from out_dir's newest checkpoint that loads")
    overwrite: bool = F(False, "start over in an out_dir that holds a run (removes its checkpoints, metrics, final)")
    seed: int = F(0, "random seed")
    threads: int = F(0, "torch CPU threads (0: torch default)")
    device: str = F("auto", "cpu, cuda or auto")
    log_every: int = F(10, "print a log line every N steps")


def grow_mtp_layers(base, k: int, train_first: bool = False):
    """A copy of ``base`` with ``k`` MTP layers: existing ones kept, new ones copied from MTP layer 0.  Everything is
    frozen except the new layers (and layer 0 when ``train_first``).  Returns ``(model, trainable parameters)``."""

    m = base.num_mtp_layers
    if m < 1:
        raise MimoError("train-mtp: the model has no MTP layer to copy (num_nextn_predict_layers = 0)")
    if k < m:
        raise MimoError(f"train-mtp: num_mtp_layers {k} < the model's {m}")
    config = copy.deepcopy(base.config)
    config.num_nextn_predict_layers = k
    model = MiMoForCausalLM(config).to(next(base.parameters()).device)
    state = base.state_dict()
    for i in range(m, k):
        for name, t in base.model.mtp_layers[0].state_dict().items():
            state[f"model.mtp_layers.{i}.{name}"] = t.clone()
    model.load_state_dict(state, strict=True)
    model.requires_grad_(False)
    trained = list(range(0 if train_first else 1, k))
    for i in trained:
        model.model.mtp_layers[i].requires_grad_(True)
    return model, [p for p in model.parameters() if p.requires_grad]


def _loss_fn(layers: range, targets: str):
    def fn(model, batch):
        with torch.no_grad():  # main model frozen: no graph through it
            out = model.model(input_ids=batch)
            hidden = model.model.mtp_source(out)
            labels = batch
            if targets == "model":
                pred = model.lm_head(out.last_hidden_state).argmax(dim=-1)  # (B, T): main's guess for t+1
                labels = torch.cat([torch.full_like(batch[:, :1], IGNORE_INDEX), pred[:, :-1]], dim=1)
        losses, accs = model.mtp_forward_losses(batch, labels, hidden, out.position_embeddings, layers=layers)
        loss = torch.stack(losses).mean()
        metrics = {"loss": loss.detach()}
        for i, layer_loss, a in zip(layers, losses, accs):
            metrics[f"mtp{i + 1}_loss"] = layer_loss.detach()
            metrics[f"mtp{i + 1}_acc"] = a.detach()
        return loss, metrics

    return fn


def _prepare_data(cfg: MtpConfig, tok, out: Path, rope_theta: float) -> tuple[TokenStream, TokenStream]:
    if cfg.data is not None:
        train_dir = Path(cfg.data)
    else:
        if not 1 <= cfg.toy_stage <= len(cfg.toy.stage_weights):
            raise MimoError(f"train-mtp: toy_stage must be in [1, {len(cfg.toy.stage_weights)}], got {cfg.toy_stage}")
        train_dir = out / "data" / f"stage{cfg.toy_stage}"
        if not (train_dir / "index.json").is_file():
            print(f"[train-mtp] building toy corpus stage {cfg.toy_stage} -> {train_dir}", flush=True)
            build_stage_shards(cfg.toy, tok, cfg.toy_stage - 1, train_dir, shape=(cfg.seq_len, rope_theta))
    if cfg.eval_data is not None:
        held_dir = Path(cfg.eval_data)
    else:
        held_dir = out / "data" / "heldout"
        if not (held_dir / "index.json").is_file():
            build_heldout_shards(cfg.toy, tok, held_dir)
    return TokenStream(train_dir), TokenStream(held_dir)


def main(cfg: MtpConfig) -> dict:
    if cfg.num_mtp_layers < 2 and not cfg.train_first:
        raise MimoError("train-mtp: num_mtp_layers must be >= 2 (layer 1 is frozen; nothing would train)")
    device = resolve_device(cfg.device)
    run = StageRun("train-mtp", "mtp", cfg, cfg.out_dir, cfg.seed, cfg.threads, cfg.keep_checkpoints, cfg.resume,
                   overwrite=cfg.overwrite)
    out = run.out
    base, tok = load_model_dir(cfg.init_from, device=device)
    if tok is None:
        raise MimoError(f"{cfg.init_from}: no tokenizer in the model directory")
    train, held = _prepare_data(cfg, tok, out, base.config.rope_theta_value)
    run.save_config()
    model, params = grow_mtp_layers(base, cfg.num_mtp_layers, cfg.train_first)
    del base
    model.train()
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay, params=params)
    state = run.restore(model, optimizer)
    step, position = state.get("step", 0), state.get("position", 0)
    layers = range(0 if cfg.train_first else 1, cfg.num_mtp_layers)
    print(f"[train-mtp] {cfg.init_from} -> {cfg.num_mtp_layers} MTP layers; training layers "
          f"{[i + 1 for i in layers]} ({sum(p.numel() for p in params):,} parameters), targets: {cfg.targets}",
          flush=True)
    logger = run.logger(cfg.steps, cfg.log_every)
    loss_fn = _loss_fn(layers, cfg.targets)
    result: dict = {}
    while step < cfg.steps:
        arr, position = train.batch(position, cfg.batch_size, cfg.seq_len)
        micro = [mb.to(device) for mb in torch.from_numpy(arr).split(cfg.micro_batch_size)]
        lr = wsd_lr(step, [cfg.steps], [cfg.lr], cfg.warmup_steps, cfg.decay_steps, cfg.min_lr_ratio)
        set_lr(optimizer, lr)
        metrics = accumulate_step(model, optimizer, micro, loss_fn, cfg.grad_clip)
        step += 1
        record = {"lr": lr, **metrics, "tokens": cfg.batch_size * cfg.seq_len}
        if (cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.steps:
            record.update(evaluate(model, held, cfg.seq_len, cfg.eval_batches, cfg.micro_batch_size, device))
        if step == cfg.steps and cfg.accept_prompts > 0:
            record.update(_acceptance(model, tok, cfg))
        result = logger.log(step, print_line=step % cfg.log_every == 0 or step == cfg.steps, **record)
        if (cfg.save_every and step % cfg.save_every == 0) or step == cfg.steps:
            run.checkpoint(step, model, optimizer, tok, position=position)
    logger.close()
    run.finish(model, tok, step >= cfg.steps)
    return result


def _acceptance(model, tok, cfg: MtpConfig) -> dict:
    """Greedy speculative acceptance per MTP layer on held-out toy problems (the kind of text trained on)."""

    model.eval()
    prompts = heldout_prompts(tok, cfg.accept_prompts, cfg.toy.tasks, cfg.toy.seed)
    res = measure(model, prompts, max_new_tokens=96, speculative=True, stop_ids=tok.stop_ids, batch_size=8)
    model.train()
    out = {f"accept{i + 1}": a for i, a in enumerate(res["acceptance"])}
    out.update({f"accept{i + 1}_uncond": a for i, a in enumerate(res["acceptance_unconditional"])})
    return out


def cli(argv: list[str]) -> int:
    stage_cli(argv, prog="mimo train-mtp", description=__doc__.split("\n\n")[0], cls=MtpConfig, section="mtp",
              main=main)
    return 0
