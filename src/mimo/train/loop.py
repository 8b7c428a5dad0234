"""Pieces every training stage shares: the optimizer, one accumulated optimizer step, held-out evaluation.

Gradient accumulation: each micro-batch's mean loss is scaled by ``1 / n_micro`` and DDP syncs only on the last
micro-batch, so the update equals the one computed on the whole batch at once when micro-batches carry equal
numbers of loss tokens (pretraining's packed windows always do; SFT weights by token count, see
``token_weights``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import torch

from mimo.data.shards import TokenStream
from mimo.model.io import unwrap


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float = 0.1,
                   betas: tuple[float, float] = (0.9, 0.95), eps: float = 1e-8,
                   params: list[torch.nn.Parameter] | None = None) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on norms, biases or embeddings' ... rows stay decayed:
    MiMo decays all >= 2-D weights)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if params is not None:
        ids = {id(p) for p in params}
        named = [(n, p) for n, p in named if id(p) in ids]
    decay = [p for n, p in named if p.dim() >= 2]
    no_decay = [p for n, p in named if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused_ok = all(p.device.type == "cuda" for _, p in named)
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=fused_ok or None)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def accumulate_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    micro_batches: Sequence,
    loss_fn: Callable[[torch.nn.Module, object], tuple[torch.Tensor, dict]],
    grad_clip: float = 1.0,
    weights: Sequence[float] | None = None,
    autocast_dtype: torch.dtype | None = None,
    clip_apart: Sequence[torch.nn.Parameter] = (),
) -> dict:
    """One optimizer step over ``micro_batches``.

    ``loss_fn(model, mb) -> (mean loss, metrics)``.  ``weights`` (summing to 1) scale each micro-batch's mean loss
    (default: equal, 1/n).  Returns the weighted metrics plus ``grad_norm``.  ``clip_apart``: parameters whose
    gradient norm is clipped on its own (logged as ``grad_norm_apart``), so that a loss that reaches only them
    cannot change how the others are clipped.
    """
    n = len(micro_batches)
    weights = list(weights) if weights is not None else [1.0 / n] * n
    optimizer.zero_grad(set_to_none=True)
    totals: dict[str, float] = {}
    device_type = next(model.parameters()).device.type
    for i, mb in enumerate(micro_batches):
        sync = i == n - 1
        ctx = model.no_sync() if hasattr(model, "no_sync") and not sync else contextlib.nullcontext()
        amp = (torch.autocast(device_type, dtype=autocast_dtype) if autocast_dtype is not None
               else contextlib.nullcontext())
        with ctx:
            with amp:
                loss, metrics = loss_fn(model, mb)
            (loss * weights[i]).backward()
        for k, v in metrics.items():
            totals[k] = totals.get(k, 0.0) + float(v) * weights[i]
    apart = {id(p) for p in clip_apart}
    params = [p for g in optimizer.param_groups for p in g["params"] if id(p) not in apart]
    clip = grad_clip if grad_clip > 0 else float("inf")
    grad_norm = torch.nn.utils.clip_grad_norm_(params, clip)
    if apart:
        totals["grad_norm_apart"] = float(torch.nn.utils.clip_grad_norm_(list(clip_apart), clip))
    optimizer.step()
    totals["grad_norm"] = float(grad_norm)
    return totals


@torch.no_grad()
def evaluate(model, stream: TokenStream, seq_len: int, batches: int, batch_size: int, device) -> dict:
    """Held-out next-token loss and each MTP layer's top-1 accuracy on a fixed slice of ``stream``."""
    model.eval()
    m = unwrap(model)
    totals: dict[str, float] = {}
    for b in range(batches):
        arr, _ = stream.batch(b * batch_size * seq_len, batch_size, seq_len)
        x = torch.from_numpy(arr).to(device)
        out = m(input_ids=x, labels=x, mtp_loss_weight=1.0 if m.num_mtp_layers else 0.0)
        totals["eval_loss"] = totals.get("eval_loss", 0.0) + float(out.main_loss) / batches
        for i, a in enumerate(out.mtp_accuracies or []):
            totals[f"eval_mtp{i + 1}_acc"] = totals.get(f"eval_mtp{i + 1}_acc", 0.0) + float(a) / batches
        logits = out.logits[:, :-1]
        acc = (logits.argmax(-1) == x[:, 1:]).float().mean()
        totals["eval_acc"] = totals.get("eval_acc", 0.0) + float(acc) / batches
    model.train()
    return totals
