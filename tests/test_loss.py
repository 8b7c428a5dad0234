"""GRPO loss: advantages and the clipped token-level loss against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from mimo.rl.loss import group_advantages, k3_kl, policy_loss


def _tok(ratio: float, adv: float, **kw):
    """One response of one token with the given importance ratio; returns (loss, d loss / d logp, metrics)."""
    old = torch.zeros(1, 1)
    logp = torch.full((1, 1), math.log(ratio), requires_grad=True)
    loss, metrics = policy_loss(logp, old, torch.tensor([adv]), torch.ones(1, 1), **kw)
    loss.backward()
    return loss.item(), logp.grad.item(), metrics


# ------------------------------------------------------------------------------------------------- advantages


def test_group_advantages_hand_values():
    # mean 0.25; sample std sqrt((0.75^2 + 3 * 0.25^2) / 3) = 0.5  ->  (1.5, -0.5, -0.5, -0.5)
    adv = group_advantages(torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    assert torch.allclose(adv, torch.tensor([[1.5, -0.5, -0.5, -0.5]]), atol=1e-5)
    # population std sqrt(0.75 / 4) = 0.4330
    pop = group_advantages(torch.tensor([[1.0, 0.0, 0.0, 0.0]]), unbiased=False)
    assert torch.allclose(pop, torch.tensor([[0.75, -0.25, -0.25, -0.25]]) / math.sqrt(0.1875), atol=1e-5)


def test_group_advantages_equal_rewards_and_single_response_are_zero():
    adv = group_advantages(torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0.3, 0.3, 0.3]]))
    assert torch.equal(adv, torch.zeros(3, 3))
    assert torch.equal(group_advantages(torch.tensor([[0.7], [1.0]])), torch.zeros(2, 1))
    with pytest.raises(ValueError):
        group_advantages(torch.tensor([1.0, 0.0]))


def test_group_advantages_are_per_group():
    adv = group_advantages(torch.tensor([[1.0, 0.0], [10.0, 0.0]]))
    assert torch.allclose(adv[0], adv[1], atol=1e-5)  # scale-free within each group


# ----------------------------------------------------------------------------------------------- clip-higher


def test_clip_higher_lets_positive_advantage_rise_past_eps_low():
    # A > 0, ratio 1.25: inside [0.8, 1.28] -> unclipped, loss -1.25, gradient -A * ratio = -1.25
    loss, grad, m = _tok(1.25, 1.0, eps_low=0.2, eps_high=0.28)
    assert loss == pytest.approx(-1.25) and grad == pytest.approx(-1.25)
    assert m["clip_frac"].item() == 0.0
    # the symmetric clip (eps_high = eps_low = 0.2) would cut it at 1.2 with zero gradient
    loss, grad, m = _tok(1.25, 1.0, eps_low=0.2, eps_high=0.2)
    assert loss == pytest.approx(-1.2) and grad == 0.0
    assert m["clip_frac"].item() == 1.0 and m["clip_frac_high"].item() == 1.0


def test_clip_higher_still_caps_the_upper_side():
    loss, grad, m = _tok(1.5, 1.0, eps_low=0.2, eps_high=0.28)
    assert loss == pytest.approx(-1.28) and grad == 0.0
    assert m["clip_frac_high"].item() == 1.0 and m["clip_frac_low"].item() == 0.0


def test_lower_side_keeps_eps_low():
    # A < 0, ratio 0.75 < 1 - eps_low: clipped at 0.8 -> loss 0.8, no gradient
    loss, grad, m = _tok(0.75, -1.0, eps_low=0.2, eps_high=0.28)
    assert loss == pytest.approx(0.8) and grad == 0.0
    assert m["clip_frac_low"].item() == 1.0
    # A < 0, ratio 0.85: inside -> loss 0.85, gradient -A * ratio = 0.85
    loss, grad, _ = _tok(0.85, -1.0, eps_low=0.2, eps_high=0.28)
    assert loss == pytest.approx(0.85) and grad == pytest.approx(0.85)


def test_pessimistic_side_is_never_clipped():
    # A < 0 with a large ratio and A > 0 with a small one: the unclipped term is the larger loss -> gradient flows
    loss, grad, m = _tok(1.5, -1.0)
    assert loss == pytest.approx(1.5) and grad == pytest.approx(1.5) and m["clip_frac"].item() == 0.0
    loss, grad, m = _tok(0.5, 1.0)
    assert loss == pytest.approx(-0.5) and grad == pytest.approx(-0.5) and m["clip_frac"].item() == 0.0


# --------------------------------------------------------------------------------------- token normalisation


def test_token_level_normalisation_vs_sequence_level():
    # Response 0: 1 token, A = -1.  Response 1: 3 tokens, A = +1.  Ratio 1 everywhere.
    mask = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    logp = torch.zeros(2, 3, requires_grad=True)
    adv = torch.tensor([-1.0, 1.0])
    loss, _ = policy_loss(logp, torch.zeros(2, 3), adv, mask)
    # token level: (+1 * 1 - 1 * 3) / 4 tokens = -0.5; a sequence-level mean would give mean(+1, -1) = 0
    assert loss.item() == pytest.approx(-0.5)
    seq_level = ((-adv[:, None] * mask).sum(1) / mask.sum(1)).mean()
    assert seq_level.item() == pytest.approx(0.0)
    loss.backward()
    # every response token gets d/dlogp = -A / 4 (total tokens), padding gets 0
    expected = torch.tensor([[0.25, 0.0, 0.0], [-0.25, -0.25, -0.25]])
    assert torch.allclose(logp.grad, expected)


def test_num_tokens_makes_micro_batches_add_up_to_the_batch():
    g = torch.Generator().manual_seed(0)
    logp0 = torch.randn(4, 5, generator=g) * 0.1
    old = torch.randn(4, 5, generator=g) * 0.1
    adv = torch.randn(4, generator=g)
    mask = (torch.rand(4, 5, generator=g) > 0.3).float()
    full = logp0.clone().requires_grad_(True)
    policy_loss(full, old, adv, mask)[0].backward()
    acc = logp0.clone().requires_grad_(True)
    total = mask.sum()
    for rows in (slice(0, 1), slice(1, 4)):
        policy_loss(acc[rows], old[rows], adv[rows], mask[rows], num_tokens=total)[0].backward()
    assert torch.allclose(full.grad, acc.grad, atol=1e-7)


def test_zero_advantage_groups_contribute_no_gradient():
    # group 0 all-correct (A = 0), group 1 mixed; two responses each, 3 tokens
    adv = group_advantages(torch.tensor([[1.0, 1.0], [1.0, 0.0]])).flatten()  # (4,)
    logp = (torch.randn(4, 3) * 0.3).requires_grad_(True)
    old = torch.randn(4, 3) * 0.3
    loss, _ = policy_loss(logp, old, adv, torch.ones(4, 3))
    loss.backward()
    assert torch.equal(logp.grad[:2], torch.zeros(2, 3))
    assert logp.grad[2:].abs().sum() > 0


# ------------------------------------------------------------------------------------------------ KL, metrics


def test_kl_is_off_by_default_and_k3_when_on():
    logp = torch.tensor([[math.log(0.5)]])
    ref = torch.tensor([[math.log(0.25)]])
    base, m0 = policy_loss(logp, logp, torch.tensor([1.0]), torch.ones(1, 1))
    same, m1 = policy_loss(logp, logp, torch.tensor([1.0]), torch.ones(1, 1), ref_logprobs=ref)
    assert same.item() == base.item() == pytest.approx(-1.0)  # kl_coef 0: reference only reported
    d = math.log(0.25) - math.log(0.5)
    assert m1["kl_ref"].item() == pytest.approx(math.exp(d) - d - 1)
    with_kl, _ = policy_loss(logp, logp, torch.tensor([1.0]), torch.ones(1, 1), ref_logprobs=ref, kl_coef=0.1)
    assert with_kl.item() == pytest.approx(-1.0 + 0.1 * (math.exp(d) - d - 1))
    assert "kl_ref" not in m0
    with pytest.raises(ValueError):
        policy_loss(logp, logp, torch.tensor([1.0]), torch.ones(1, 1), kl_coef=0.1)


def test_k3_is_nonnegative_and_zero_at_equality():
    x = torch.randn(3, 7)
    y = torch.randn(3, 7)
    assert (k3_kl(x, y) >= 0).all()
    assert torch.equal(k3_kl(x, x), torch.zeros(3, 7))


def test_metrics_hand_values():
    # three tokens of one response: ratios 1.0, 1.5 (clipped high, A>0), 0.5 (unclipped); one padding token
    logp = torch.log(torch.tensor([[1.0, 1.5, 0.5, 3.0]]))
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    entropy = torch.tensor([[0.3, 0.6, 0.9, 100.0]])
    _, m = policy_loss(logp, torch.zeros(1, 4), torch.tensor([1.0]), mask, entropy=entropy)
    assert m["clip_frac"].item() == pytest.approx(1 / 3)
    assert m["entropy"].item() == pytest.approx(0.6)
    assert m["ratio_mean"].item() == pytest.approx(1.0)
    kl = [r - 1 - math.log(r) for r in (1.0, 1.5, 0.5)]
    assert m["approx_kl"].item() == pytest.approx(sum(kl) / 3, rel=1e-5)
    assert all(not v.requires_grad for v in m.values())


def test_shape_errors():
    with pytest.raises(ValueError):
        policy_loss(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2), torch.ones(2, 3))


def test_doctests():
    import doctest

    import mimo.rl.loss

    assert doctest.testmod(mimo.rl.loss).failed == 0


# ------------------------------------------------------------------------------------ TIS (rollout mismatch)


def test_tis_weight_scales_the_pg_term_by_hand():
    """Two tokens, A = 1, current = trainer-old (ratio 1): per-token loss -A * w, w = min(p_old / p_rollout, C).
    Token 1: p_old / p_rollout = e^0.5 = 1.6487 (under C = 2); token 2: e^1 = 2.718 -> capped at 2."""
    from mimo.rl.loss import tis_weights

    old = torch.tensor([[-1.0, -1.0]])
    rollout = torch.tensor([[-1.5, -2.0]])
    w = tis_weights(old, rollout, cap=2.0)
    assert torch.allclose(w, torch.tensor([[math.exp(0.5), 2.0]]), atol=1e-6)
    logp = old.clone().requires_grad_(True)
    loss, m = policy_loss(logp, old, torch.tensor([1.0]), torch.ones(1, 2), is_weights=w)
    assert loss.item() == pytest.approx(-(math.exp(0.5) + 2.0) / 2, abs=1e-6)
    loss.backward()  # d/dlogp (-A * w * ratio) = -w / 2 at ratio 1 (the weight carries no gradient)
    assert torch.allclose(logp.grad, -w / 2, atol=1e-6)
    assert m["tis_weight_mean"].item() == pytest.approx((math.exp(0.5) + 2.0) / 2, abs=1e-6)


def test_tis_weight_one_is_the_plain_loss():
    logp = torch.tensor([[-0.3, -1.2, -0.7]])
    old = torch.tensor([[-0.5, -1.0, -0.7]])
    adv, mask = torch.tensor([0.8]), torch.tensor([[1.0, 1.0, 0.0]])
    plain, _ = policy_loss(logp, old, adv, mask)
    weighted, _ = policy_loss(logp, old, adv, mask, is_weights=torch.ones(1, 3))
    assert weighted.item() == plain.item()


def test_logprob_mismatch_by_hand():
    from mimo.rl.loss import logprob_mismatch

    # deltas 0.1, -0.8 (ratio e^-0.8 = 0.449 < 0.5: outside), 0.69 (ratio 1.994: inside); the 4th is masked out
    trainer = torch.tensor([[-1.0, -2.0, -0.31, -9.0]])
    rollout = torch.tensor([[-1.1, -1.2, -1.0, -1.0]])
    m = logprob_mismatch(trainer, rollout, torch.tensor([[1.0, 1.0, 1.0, 0.0]]))
    assert m["mismatch_abs_mean"].item() == pytest.approx((0.1 + 0.8 + 0.69) / 3, abs=1e-6)
    assert m["mismatch_abs_max"].item() == pytest.approx(0.8, abs=1e-6)
    assert m["mismatch_ratio_out"].item() == pytest.approx(1 / 3, abs=1e-6)
