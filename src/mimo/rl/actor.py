"""The policy update of MiMo's GRPO: turn scored groups into padded tensors and take the gradient steps.

One RL iteration trains on ``batch_size`` groups (prompts x ``group_size`` responses).  The batch is shuffled into
mini-batches of ``mini_batch_groups`` prompts and each mini-batch is one optimizer step (the 7B recipe: 512
prompts, mini-batch 32 -> 16 gradient updates per iteration), micro-batched for memory with the token count of the
whole mini-batch as the denominator (token-level normalisation, :func:`mimo.rl.loss.policy_loss`).  The importance
ratio is taken against the log-probs the rollout policy recorded while sampling -- or, with ``tis_cap > 0``,
against the trainer's own recomputation of them, with the truncated importance weight ``min(pi_trainer_old /
pi_rollout, tis_cap)`` on each token (:mod:`mimo.rl.loss`).  Every iteration logs the rollout/trainer log-prob gap
(``mismatch_*``) from one extra no-grad forward over the batch before the first update.

Default ``tis_cap = 0`` (off), from a measurement: with both engines in fp32, ``mimo rl`` on the toy task
(tests/test_vllm_rl.py's model and settings, steps 2-3) logged a mean |delta logprob| of 1e-7 (max 1.5e-6) for vLLM
rollouts and 1e-7 (max 2.9e-6) for the local backend, and no token outside ratio [0.5, 2]: the weights would be 1
to within 3e-6.  The correction matters when the rollout engine runs in bf16 or under another kernel set, or when a
weight sync lands mid-sequence (vLLM with carried-over tasks); turn it on there (``--actor.tis_cap 2``).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence

import torch

from mimo.config import F
from mimo.rl.loss import group_advantages, logprob_mismatch, policy_loss, tis_weights
from mimo.train.dist import DistInfo, all_reduce_sum
from mimo.train.loop import accumulate_step


@dataclasses.dataclass
class Sample:
    """One response: ``prompt_ids + response_ids``, the rollout policy's log-prob of each response token."""

    prompt_ids: list[int]
    response_ids: list[int]
    logprobs: list[float]
    reward: float = 0.0
    text: str = ""
    truncated: bool = False
    reason: str = ""
    verdicts: tuple[str, ...] = ()  # code: per-test verdicts
    version: int = 0  # the policy version (updates applied) that generated it


@dataclasses.dataclass
class Group:
    problem_id: str
    samples: list[Sample]
    kind: str = "math"

    @property
    def rewards(self) -> list[float]:
        return [s.reward for s in self.samples]


@dataclasses.dataclass
class ActorConfig:
    """Policy-update hyper-parameters (MiMo 7B values in the mimo-7b preset)."""

    lr: float = F(1e-6, "learning rate (constant)")
    mini_batch_groups: int = F(32, "prompts per optimizer step (7B: 32 of 512 -> 16 updates per iteration)")
    micro_batch_size: int = F(16, "sequences per forward/backward")
    epochs: int = F(1, "passes over each iteration's batch")
    eps_low: float = F(0.2, "lower clip range of the importance ratio")
    eps_high: float = F(0.28, "upper clip range (clip-higher: eps_high > eps_low)")
    kl_coef: float = F(0.0, "KL penalty against the initial policy (MiMo: none)")
    grad_clip: float = F(1.0, "gradient-norm clip")
    weight_decay: float = F(0.0, "AdamW weight decay")
    tis_cap: float = F(0.0, "truncated importance sampling: ratio against the trainer's recomputed old log-probs, "
                            "PG term weighted by min(pi_trainer_old / pi_rollout, tis_cap); 0: off")
    log_mismatch: bool = F(True, "log the rollout/trainer log-prob gap (one no-grad forward per iteration)")
    mtp_loss_weight: float = F(0.0, "online MTP loss on the sampled responses (keeps MTP drafts in step with the "
                                    "policy; 0.1-0.2); it trains the MTP layers only, the main model's gradients "
                                    "are unchanged.  0: MTP layers frozen (MiMo-7B)")
    packed: bool = F(False, "padding-free update: each micro-batch's sequences packed into as few rows of the "
                            "longest one's length as fit (position ids restart per sequence, a block-diagonal "
                            "causal mask), as SFT packs; the same loss up to float rounding, fewer positions when "
                            "lengths are ragged (benchmarks/rl_update.py: no gain at the toy shapes on CPU)")


def pad_batch(samples: Sequence[Sample], pad_id: int, device="cpu") -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids (B, T)``; ``mask``, ``old_logprobs`` (B, T-1) aligned with next-token targets."""
    T = max(len(s.prompt_ids) + len(s.response_ids) for s in samples)
    batch = _place(samples, [(b, 0) for b in range(len(samples))], len(samples), T, pad_id)
    return {k: batch[k].to(device) for k in ("input_ids", "mask", "old_logprobs")}


def _place(samples: Sequence[Sample], where: Sequence[tuple[int, int]], rows: int, T: int, pad_id: int) -> dict:
    """Each sample's tokens at its ``(row, offset)`` of a ``(rows, T)`` batch: ``input_ids``, ``position_ids``
    (from 0 in each sample), ``doc`` (the sample's index; -1 on padding), and ``mask`` / ``old_logprobs`` on the
    positions whose logits predict its response tokens."""
    ids = torch.full((rows, T), pad_id, dtype=torch.long)
    pos = torch.zeros(rows, T, dtype=torch.long)
    doc = torch.full((rows, T), -1, dtype=torch.long)
    mask = torch.zeros(rows, T - 1)
    old = torch.zeros(rows, T - 1)
    for i, (s, (r, o)) in enumerate(zip(samples, where)):
        n_p, n = len(s.prompt_ids), len(s.response_ids)
        ids[r, o:o + n_p + n] = torch.tensor(s.prompt_ids + s.response_ids)
        pos[r, o:o + n_p + n] = torch.arange(n_p + n)
        doc[r, o:o + n_p + n] = i
        start = o + n_p - 1  # logits at position p predict token p + 1
        mask[r, start:start + n] = 1.0
        old[r, start:start + n] = torch.tensor(s.logprobs[:n], dtype=torch.float32)
    return {"input_ids": ids, "position_ids": pos, "doc": doc, "mask": mask, "old_logprobs": old}


def pack_rows(lengths: Sequence[int]) -> tuple[list[tuple[int, int]], int]:
    """``(row, offset)`` of each sequence and the number of rows, rows of ``max(lengths)`` tokens, first fit with
    the longest sequences first.

    >>> pack_rows([5, 12, 7, 4, 6])
    ([(1, 7), (0, 0), (1, 0), (2, 6), (2, 0)], 3)
    """
    T = max(lengths)
    free: list[int] = []  # tokens left in each row
    where: list[tuple[int, int]] = [(0, 0)] * len(lengths)
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        row = next((r for r, left in enumerate(free) if left >= lengths[i]), len(free))
        if row == len(free):
            free.append(T)
        where[i] = (row, T - free[row])
        free[row] -= lengths[i]
    return where, len(free)


def pack_batch(samples: Sequence[Sample], pad_id: int, device="cpu") -> dict:
    """:func:`pad_batch` without most of its padding: the sequences placed into as few rows of the longest one's
    length ``T`` as fit (first fit, longest first), so no row attends over more than the padded batch's.

    Returns pad_batch's keys for the rows (``input_ids (R, T)``, ``mask`` and ``old_logprobs (R, T-1)``) plus
    ``position_ids (R, T)`` restarting at 0 for each sequence, ``attention_mask (R, 1, T, T)`` (bool: causal within
    one sequence; a padding position sees only itself) and ``where``: ``(row, offset)`` of each sample, in order.
    The logit at a sequence's last position predicts the next sequence's first token: ``mask`` is 0 there, as on
    prompts and padding."""
    lengths = [len(s.prompt_ids) + len(s.response_ids) for s in samples]
    T = max(lengths)
    where, rows = pack_rows(lengths)
    batch = _place(samples, where, rows, T, pad_id)
    doc = batch.pop("doc")
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    same = (doc[:, :, None] == doc[:, None, :]) & (doc[:, :, None] >= 0)
    batch["attention_mask"] = ((causal[None] & same) | torch.eye(T, dtype=torch.bool)[None])[:, None]
    return {**{k: v.to(device) for k, v in batch.items()}, "where": where}


def _batch(samples: Sequence[Sample], pad_id: int, device, packed: bool) -> dict:
    """The micro-batch tensors (:func:`pack_batch` or :func:`pad_batch`, whose ``where`` is one row per sample)."""
    if packed:
        return pack_batch(samples, pad_id, device)
    return {**pad_batch(samples, pad_id, device), "where": [(b, 0) for b in range(len(samples))]}


def _model_kw(batch: dict) -> dict:
    return {k: batch[k] for k in ("position_ids", "attention_mask") if k in batch}


def token_logprobs(model, input_ids: torch.Tensor, temperature: float = 1.0,
                   with_entropy: bool = False, **model_kw) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-prob of each next token (B, T-1) under ``softmax(logits / temperature)``, and optionally the entropy.
    ``model_kw``: ``position_ids`` / ``attention_mask`` of a packed batch."""
    logp, entropy, _ = _policy_forward(model, input_ids, temperature, with_entropy, **model_kw)
    return logp, entropy


def _policy_forward(model, input_ids: torch.Tensor, temperature: float, with_entropy: bool,
                    mtp_mask: torch.Tensor | None = None, mtp_loss_weight: float = 0.0, **model_kw):
    """:func:`token_logprobs` plus, with ``mtp_loss_weight > 0``, the detached MTP losses on the tokens where
    ``mtp_mask`` (B, T-1, aligned with next-token targets) is 1: ``[(loss, accuracy) of MTP layer i, ...]`` for
    the layers that have a target here (layer i predicts 2 + i ahead; a batch of short responses gives none)."""
    mtp = []
    if mtp_loss_weight > 0:
        labels = input_ids.masked_fill(
            torch.cat([torch.zeros_like(mtp_mask[:, :1]), mtp_mask], dim=1) == 0, -100)  # response tokens only
        out = model(input_ids=input_ids, labels=labels, mtp_loss_weight=mtp_loss_weight, mtp_detached=True,
                    **model_kw)
        logits = out.logits
        mtp = [(loss, acc) for i, (loss, acc) in enumerate(zip(out.mtp_losses, out.mtp_accuracies))
               if bool((labels[:, 2 + i:] != -100).any())]  # no target: cross-entropy is 0/0
    else:
        logits = model(input_ids=input_ids, **model_kw).logits
    logits = logits[:, :-1].float() / temperature  # (B, T-1, V)
    logp_all = torch.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, input_ids[:, 1:, None])[..., 0]  # (B, T-1)
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = -(logp_all.exp() * logp_all).sum(-1)  # (B, T-1)
    return logp, entropy, mtp


def update_policy(model, optimizer, groups: Sequence[Group], cfg: ActorConfig, pad_id: int, temperature: float,
                  seed: int = 0, ref_model=None, dist_info: DistInfo | None = None) -> dict:
    """Train on ``groups``: advantages per group, then ``epochs`` x mini-batch optimizer steps.  Returns the mean
    of the per-step metrics (loss, clip fractions, approx KL, entropy, grad norm) and ``updates``.

    ``temperature`` must be the rollout's: the importance ratio compares log-probs under the same
    ``softmax(logits / temperature)`` the samples were drawn from (``mimo rl`` passes ``rollout.temperature``).
    Each mini-batch is one :func:`mimo.train.loop.accumulate_step` (the optimizer step every stage takes); the
    micro-batch losses are already shares of the mini-batch's token total, so they are summed with weight 1.

    Distributed (``dist_info`` with world size K > 1, ``model`` wrapped in DDP): every rank is given the whole
    ``groups`` and takes the same mini-batches in the same order; sample ``i`` of the batch is trained by rank
    ``i % K``.  Each rank's loss is its tokens' sum over the *global* token count of the mini-batch, scaled by K
    because DDP averages gradients over ranks: the averaged gradient is then the sum of the shard gradients, i.e.
    exactly the single-process gradient of the mini-batch (token-level normalisation stays global however unevenly
    the tokens fall on the ranks).  A rank that owns no sample of a mini-batch still runs one forward/backward at
    weight 0, so that every rank joins DDP's all-reduce.  Metrics are summed over ranks (each is a share of the
    global token count), the gradient norm is the global one (clipped after the all-reduce).

    ``cfg.mtp_loss_weight > 0`` adds the online MTP loss: the MTP layers learn to predict the sampled responses
    from the policy's (detached) hidden states, token-weighted over the mini-batch like the policy loss.  They are
    clipped as a group of their own, so the main model's gradients, clipping included, are exactly those of a run
    without it (tested); ``mtp_loss`` and ``mtp{i}_acc`` are logged."""
    info = dist_info if dist_info is not None else DistInfo()
    device = next(model.parameters()).device
    for g in optimizer.param_groups:
        g["lr"] = cfg.lr
    adv = group_advantages(torch.tensor([g.rewards for g in groups], dtype=torch.float32))  # (G, n)
    items = [(gi, s, float(adv[gi, si])) for gi, g in enumerate(groups) for si, s in enumerate(g.samples)]
    owner = {id(s): i % info.world_size for i, (_, s, _) in enumerate(items)}  # sample -> the rank training it
    rng = random.Random(seed)
    totals: dict[str, float] = {}
    updates = 0
    padded = [0, 0]  # (positions in the padded micro-batches, positions holding tokens) on this rank
    trainer_old: dict[int, torch.Tensor] = {}  # id(sample) -> (T-1,) the trainer's log-probs before any update
    mismatch: dict[str, float] = {}
    if cfg.tis_cap > 0 or cfg.log_mismatch:
        mine = [s for _, s, _ in items if owner[id(s)] == info.rank]
        trainer_old, mismatch = _trainer_old_logprobs(model, mine, cfg, pad_id, device, temperature, info)
    core = getattr(model, "module", model)  # under DDP
    mtp_weight = cfg.mtp_loss_weight if getattr(core, "num_mtp_layers", 0) > 0 else 0.0
    mtp_params = list(core.model.mtp_layers.parameters()) if mtp_weight > 0 else []
    model.train()
    for _ in range(cfg.epochs):
        order = list(range(len(groups)))
        rng.shuffle(order)
        for start in range(0, len(order), cfg.mini_batch_groups):
            chosen = set(order[start:start + cfg.mini_batch_groups])
            mb = [(s, a) for gi, s, a in items if gi in chosen]
            num_tokens = float(sum(len(s.response_ids) for s, _ in mb))  # global: every rank's denominator
            local = [(s, a) for s, a in mb if owner[id(s)] == info.rank]
            # DDP averages gradients over the K ranks; scale by K so the average is the sum of the shards'
            scale = float(info.world_size) if local else 0.0
            if not local:  # nothing of this mini-batch here: a zero-weight pass keeps the all-reduce matched
                local = mb[:1]

            def micro_loss(model, micro, num_tokens=num_tokens, scale=scale):
                batch = _batch([s for s, _ in micro], pad_id, device, cfg.packed)
                kw = _model_kw(batch)
                logp, ent, mtp = _policy_forward(model, batch["input_ids"], temperature, True, batch["mask"],
                                                 mtp_weight, **kw)
                ref = None
                if ref_model is not None:
                    with torch.no_grad():
                        ref, _ = token_logprobs(ref_model, batch["input_ids"], temperature, **kw)
                old, weights = batch["old_logprobs"], None
                advantages = torch.zeros_like(old)  # each sample's advantage on its own positions
                for (s, a), (r, o) in zip(micro, batch["where"]):
                    advantages[r, o:o + len(s.prompt_ids) + len(s.response_ids) - 1] = a
                if cfg.tis_cap > 0:
                    rec = torch.zeros_like(old)
                    for (s, _), (r, o) in zip(micro, batch["where"]):
                        if id(s) in trainer_old:  # absent only in a zero-weight pass
                            rec[r, o:o + trainer_old[id(s)].shape[0]] = trainer_old[id(s)]
                    weights = tis_weights(rec, old, cfg.tis_cap) * batch["mask"]
                    old = rec
                loss, metrics = policy_loss(
                    logp, old, advantages, batch["mask"],
                    eps_low=cfg.eps_low, eps_high=cfg.eps_high, kl_coef=cfg.kl_coef, ref_logprobs=ref,
                    entropy=ent, num_tokens=num_tokens, is_weights=weights)
                share = float(batch["mask"].sum()) / max(num_tokens, 1.0)
                if mtp:
                    mtp_loss = torch.stack([m for m, _ in mtp]).mean()
                    loss = loss + mtp_weight * share * mtp_loss
                    metrics["mtp_loss"] = mtp_loss.detach()
                    for i, (_, acc) in enumerate(mtp):
                        metrics[f"mtp{i + 1}_acc"] = acc
                # pg_loss and kl_ref are already shares of the mini-batch total; the rest are per-micro means
                weight = min(scale, 1.0)  # 0 in a zero-weight pass
                return loss * scale, {k: float(v) * weight * (1.0 if k in ("pg_loss", "kl_ref") else share)
                                      for k, v in metrics.items()}

            micros = [local[m0:m0 + cfg.micro_batch_size] for m0 in range(0, len(local), cfg.micro_batch_size)]
            for micro in micros:  # the profile of padding: positions the forward/backward runs over, real ones
                lengths = [len(s.prompt_ids) + len(s.response_ids) for s, _ in micro]
                rows = pack_rows(lengths)[1] if cfg.packed else len(micro)
                padded[0] += rows * max(lengths)
                padded[1] += sum(lengths)
            step_metrics = accumulate_step(model, optimizer, micros, micro_loss, cfg.grad_clip,
                                           weights=[1.0] * len(micros), clip_apart=mtp_params)
            for k, v in step_metrics.items():
                totals[k] = totals.get(k, 0.0) + v
            updates += 1
    norms = {k: totals.pop(k) for k in ("grad_norm", "grad_norm_apart") if k in totals}  # already global: clipped
    totals = all_reduce_sum(totals, info)  # sync point: shares of the global token counts add up
    totals.update(norms)
    out = {k: v / max(updates, 1) for k, v in totals.items()}
    out["updates"] = updates
    out["pad_frac"] = 1.0 - padded[1] / max(padded[0], 1)  # this rank's share of padding positions
    out.update(mismatch)
    return out


@torch.no_grad()
def _trainer_old_logprobs(model, samples: Sequence[Sample], cfg: ActorConfig, pad_id: int, device,
                          temperature: float, info: DistInfo):
    """The trainer's log-probs of every sample's tokens before the update (eval mode, micro-batched), and the gap
    to the rollout engine's (:func:`mimo.rl.loss.logprob_mismatch`, token-weighted over the whole batch).
    Distributed: ``samples`` are this rank's; the gap is reduced over the ranks."""
    was_training = model.training
    model.eval()
    rec: dict[int, torch.Tensor] = {}
    total = {"abs": 0.0, "out": 0.0, "tokens": 0.0, "max": 0.0}
    for m0 in range(0, len(samples), cfg.micro_batch_size):
        micro = samples[m0:m0 + cfg.micro_batch_size]
        batch = _batch(micro, pad_id, device, cfg.packed)
        logp, _ = token_logprobs(model, batch["input_ids"], temperature, **_model_kw(batch))  # (rows, T-1)
        m = logprob_mismatch(logp, batch["old_logprobs"], batch["mask"])
        n = float(batch["mask"].sum())
        total["abs"] += float(m["mismatch_abs_mean"]) * n
        total["out"] += float(m["mismatch_ratio_out"]) * n
        total["tokens"] += n
        total["max"] = max(total["max"], float(m["mismatch_abs_max"]))
        for s, (r, o) in zip(micro, batch["where"]):
            rec[id(s)] = logp[r, o:o + len(s.prompt_ids) + len(s.response_ids) - 1].detach()  # its own positions
    model.train(was_training)
    peak = all_reduce_sum({"max": total.pop("max")}, info, op="max")["max"]
    total = all_reduce_sum(total, info)  # sync point
    total["max"] = peak
    n = max(total["tokens"], 1.0)
    return rec, {"mismatch_abs_mean": total["abs"] / n, "mismatch_abs_max": total["max"],
                 "mismatch_ratio_out": total["out"] / n}
