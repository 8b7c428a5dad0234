"""The MiMo GRPO objective: group-normalised advantages and a clipped, token-level policy-gradient loss.

The recipe (docs/design.md §1.5, arXiv 2505.07608 §4) is GRPO with four changes, all here:

* **Group-normalised advantage** ``A_i = (r_i - mean(r)) / std(r)`` over the ``n`` responses of one prompt, the
  same value on every token of response ``i``.
* **Clip-higher** (DAPO): the importance ratio is clipped to ``[1 - eps_low, 1 + eps_high]`` with
  ``eps_high > eps_low``, so a token with positive advantage may raise its probability further before the clip
  stops it (keeps entropy from collapsing), while the lower side stays tight.
* **Token-level normalisation**: the per-token losses are *summed over every token of the batch and divided by the
  total token count*, so a long response weighs in proportion to its length instead of being averaged down to one
  sequence's worth (the sequence-level mean of the original GRPO).
* **No KL term** by default.  ``kl_coef > 0`` adds ``kl_coef * k3(pi_theta || pi_ref)`` per token for comparison.

The importance ratio is taken against the *rollout* policy's log-probs (those recorded when the samples were
generated), so the 16 gradient updates per iteration over mini-batches stay correct off-policy.

Choices the paper leaves open, and ours:

* ``std`` is the **sample standard deviation** (Bessel-corrected, ``unbiased=True``) -- what TRL, verl and
  DeepSeekMath's GRPO use, so advantages match those implementations; ``unbiased=False`` gives the population std.
* ``A = (r - mean) / (std + eps)`` with ``eps = 1e-6`` (verl's value): a group whose rewards are all equal has a
  zero numerator and so an exactly zero advantage (no NaN); a one-response group also gets zero.
* With micro-batches (gradient accumulation), pass ``num_tokens`` = the token count of the whole mini-batch so
  that the accumulated gradient equals the one of the full batch -- dividing each micro-batch by its own count
  would silently reintroduce a (micro-)batch-level weighting.

Rollout/trainer mismatch (not in the paper; standard since rollouts moved to inference engines).  The rollout
engine's log-probs differ from the trainer's for the same tokens (other kernels, other precision, and with vLLM a
weight sync landing mid-sequence).  :func:`logprob_mismatch` measures the gap; with ``tis_cap = C > 0`` the ratio
is taken against the *trainer's* recomputed old log-probs and the policy-gradient term of each token is weighted
by the truncated importance weight ``min(pi_trainer_old / pi_rollout, C)`` (TIS: Yao et al., "Your efficient RL
framework secretly brings you off-policy RL training", 2025), which corrects for sampling from the rollout policy.

All functions are pure tensor code; metrics are returned as detached 0-dim tensors (no host sync here).
"""

from __future__ import annotations

import torch
from torch import Tensor

ADV_EPS = 1e-6


def group_advantages(rewards: Tensor, *, eps: float = ADV_EPS, unbiased: bool = True) -> Tensor:
    """Group-normalised advantages ``(r - mean) / (std + eps)`` along the last dimension.

    ``rewards``: ``(G, n)`` -- ``G`` groups (prompts) of ``n`` responses each.  Returns ``(G, n)`` float.
    A group with all-equal rewards gets exactly 0.

    >>> [[round(a, 4) for a in row] for row in group_advantages(torch.tensor([[1.0, 0.0], [1.0, 1.0]])).tolist()]
    [[0.7071, -0.7071], [0.0, 0.0]]
    """
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be (groups, n), got shape {tuple(rewards.shape)}")
    r = rewards.to(torch.float32)  # (G, n)
    mean = r.mean(dim=-1, keepdim=True)  # (G, 1)
    if r.shape[-1] > 1:
        std = r.std(dim=-1, keepdim=True, unbiased=unbiased)  # (G, 1)
    else:  # one response: no spread to normalise by, advantage 0
        std = torch.zeros_like(mean)
    return (r - mean) / (std + eps)


def masked_mean(values: Tensor, mask: Tensor, num_tokens: float | Tensor | None = None) -> Tensor:
    """Token-level mean: ``sum(values * mask) / num_tokens`` (default: ``mask.sum()``, at least 1)."""
    total = (values * mask).sum()
    denom = mask.sum() if num_tokens is None else torch.as_tensor(num_tokens, dtype=values.dtype)
    return total / torch.clamp(denom, min=1.0)


def k3_kl(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """Per-token k3 estimator of ``KL(pi || pi_ref)`` from samples of ``pi``: ``e^d - d - 1``, ``d = ref - logp``.

    Non-negative, unbiased, lower variance than ``-d`` (Schulman, "Approximating KL divergence").  Shapes ``(B, T)``.
    """
    d = ref_logprobs - logprobs  # (B, T)
    return torch.expm1(d) - d


def logprob_mismatch(trainer_logprobs: Tensor, rollout_logprobs: Tensor, mask: Tensor) -> dict[str, Tensor]:
    """Gap between the trainer's and the rollout engine's log-probs of the same tokens (``(B, T)`` each):
    ``mismatch_abs_mean`` (mean |delta|), ``mismatch_abs_max`` and ``mismatch_ratio_out`` (fraction of tokens whose
    ratio ``pi_trainer / pi_rollout`` lies outside [0.5, 2]).

    >>> m = logprob_mismatch(torch.tensor([[0.0, -1.0, -2.0]]), torch.tensor([[0.0, -0.2, -2.0]]),
    ...                      torch.tensor([[1.0, 1.0, 0.0]]))
    >>> [round(float(m[k]), 4) for k in ("mismatch_abs_mean", "mismatch_abs_max", "mismatch_ratio_out")]
    [0.4, 0.8, 0.5]
    """
    mask = mask.to(trainer_logprobs.dtype)
    d = (trainer_logprobs - rollout_logprobs).detach()  # (B, T)
    out = (d.abs() > torch.log(torch.tensor(2.0))).to(mask.dtype)
    return {"mismatch_abs_mean": masked_mean(d.abs(), mask), "mismatch_abs_max": (d.abs() * mask).max(),
            "mismatch_ratio_out": masked_mean(out, mask)}


def tis_weights(trainer_old_logprobs: Tensor, rollout_logprobs: Tensor, cap: float) -> Tensor:
    """Truncated importance weights ``min(exp(trainer_old - rollout), cap)`` (detached), ``(B, T)``.

    >>> tis_weights(torch.tensor([[0.0, -1.0]]), torch.tensor([[-1.0, 0.0]]), cap=2.0).tolist()
    [[2.0, 0.3678794503211975]]
    """
    return torch.exp(trainer_old_logprobs.detach() - rollout_logprobs.detach()).clamp(max=cap)


def policy_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    eps_low: float = 0.2,
    eps_high: float = 0.28,
    kl_coef: float = 0.0,
    ref_logprobs: Tensor | None = None,
    entropy: Tensor | None = None,
    num_tokens: float | Tensor | None = None,
    is_weights: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped token-level policy-gradient loss (to minimise) and its metrics.

    Shapes: ``logprobs``, ``old_logprobs``, ``mask`` (and ``ref_logprobs``, ``entropy`` when given) are ``(B, T)``
    -- one row per response, ``mask`` 1 on response tokens, 0 on prompt/padding; ``advantages`` is ``(B,)``
    (broadcast over the response) or ``(B, T)``.  ``old_logprobs`` are the rollout policy's log-probs.

    Per token: ``ratio = exp(logp - old_logp)``,
    ``l = max(-A * ratio, -A * clip(ratio, 1 - eps_low, 1 + eps_high))`` (+ ``kl_coef * k3``), and the loss is
    ``sum(l * mask) / num_tokens`` with ``num_tokens = mask.sum()`` unless given (see the module docstring).
    ``is_weights`` (``(B, T)``, e.g. :func:`tis_weights`) multiply each token's policy-gradient term (TIS).

    Metrics (detached, token-level means): ``clip_frac`` (tokens where the clip is active, i.e. the gradient is
    cut), ``clip_frac_low`` / ``clip_frac_high`` (which side), ``approx_kl`` (k3 estimate of KL(rollout || current)),
    ``ratio_mean``, ``pg_loss``, and ``kl_ref`` / ``entropy`` when their inputs are given.
    """
    if logprobs.shape != old_logprobs.shape or logprobs.shape != mask.shape:
        raise ValueError(f"logprobs {tuple(logprobs.shape)}, old_logprobs {tuple(old_logprobs.shape)} and mask "
                         f"{tuple(mask.shape)} must have the same (B, T) shape")
    if not 0.0 <= eps_low < 1.0 or eps_high < 0.0:
        raise ValueError(f"need 0 <= eps_low < 1 and eps_high >= 0, got {eps_low}, {eps_high}")
    if kl_coef > 0.0 and ref_logprobs is None:
        raise ValueError("kl_coef > 0 needs ref_logprobs")
    mask = mask.to(logprobs.dtype)  # (B, T)
    adv = advantages.to(logprobs.dtype)
    if adv.dim() == 1:
        adv = adv[:, None]  # (B, 1), broadcast over tokens

    log_ratio = logprobs - old_logprobs.detach()  # (B, T)
    ratio = torch.exp(log_ratio)  # (B, T)
    clipped = torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high)  # (B, T)
    pg_unclipped = -adv * ratio  # (B, T)
    pg_clipped = -adv * clipped  # (B, T)
    pg = torch.maximum(pg_unclipped, pg_clipped)  # (B, T): the pessimistic bound
    if is_weights is not None:
        pg = pg * is_weights.detach().to(pg.dtype)  # TIS: the samples came from the rollout engine's policy
    pg_loss = masked_mean(pg, mask, num_tokens)
    loss = pg_loss

    kl_ref = None
    if ref_logprobs is not None:
        kl_tok = k3_kl(logprobs, ref_logprobs.detach())  # (B, T)
        kl_ref = masked_mean(kl_tok, mask, num_tokens)
        if kl_coef > 0.0:
            loss = loss + kl_coef * kl_ref

    with torch.no_grad():
        # The clip is active (gradient cut) exactly where the clipped branch is strictly the larger one.
        active = (pg_clipped > pg_unclipped).to(mask.dtype)  # (B, T)
        low = active * (ratio < 1.0 - eps_low).to(mask.dtype)
        high = active * (ratio > 1.0 + eps_high).to(mask.dtype)
        metrics = {
            "pg_loss": pg_loss.detach(),
            "clip_frac": masked_mean(active, mask),
            "clip_frac_low": masked_mean(low, mask),
            "clip_frac_high": masked_mean(high, mask),
            "approx_kl": masked_mean(torch.expm1(log_ratio) - log_ratio, mask),  # k3 of KL(old || new)
            "ratio_mean": masked_mean(ratio, mask),
        }
        if kl_ref is not None:
            metrics["kl_ref"] = kl_ref.detach()
        if entropy is not None:
            metrics["entropy"] = masked_mean(entropy.to(mask.dtype), mask)
        if is_weights is not None:
            metrics["tis_weight_mean"] = masked_mean(is_weights.to(mask.dtype), mask)
    return loss, metrics
