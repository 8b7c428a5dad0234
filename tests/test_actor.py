"""The policy update (mimo.rl.actor): the importance ratio is taken at the rollout's temperature (``mimo rl``
passes ``rollout.temperature``; there is no second temperature to disagree with it), the rollout/trainer
mismatch log and the TIS option."""

from __future__ import annotations

import copy

import pytest
import torch

from mimo.infer.engine import generate
from mimo.rl.actor import ActorConfig, Group, Sample, token_logprobs, update_policy
from mimo.train.loop import make_optimizer


def _groups(model, temperature: float) -> list[Group]:
    prompts = [[1, 2, 3], [4, 5, 6, 7]]
    groups = []
    for g, prompt in enumerate(prompts):
        lps: list = []
        outs = generate(model, [prompt] * 4, 8, temperature=temperature, seed=g, stop_ids=[], logprobs=lps)
        groups.append(Group(f"p{g}", [Sample(prompt, o, lp, reward=float(i % 2)) for i, (o, lp)
                                      in enumerate(zip(outs, lps))]))
    return groups


@pytest.mark.parametrize("temperature", [0.7, 1.0])
def test_on_policy_ratio_is_one_only_at_the_sampling_temperature(tiny_model, temperature):
    model = tiny_model(seed=0)
    groups = _groups(model, temperature)
    cfg = ActorConfig(lr=0.0, mini_batch_groups=2, micro_batch_size=4)  # lr 0: the policy stays the rollout's
    opt = make_optimizer(model, 0.0, 0.0)
    same = update_policy(model, opt, groups, cfg, pad_id=0, temperature=temperature)
    assert same["ratio_mean"] == pytest.approx(1.0, abs=1e-5)
    assert same["approx_kl"] < 1e-8 and same["clip_frac"] == 0.0
    other = update_policy(model, opt, groups, cfg, pad_id=0, temperature=1.3)  # a temperature that was not sampled
    assert other["approx_kl"] > 1e-4


def _shifted_groups(model, shift: float):
    """One group of two responses whose recorded rollout log-probs are the model's own plus ``shift``."""
    prompt = [1, 2, 3]
    samples = []
    for resp, reward in (([4, 5, 6], 1.0), ([7, 8], 0.0)):
        with torch.no_grad():
            lp, _ = token_logprobs(model, torch.tensor([prompt + resp]))
        samples.append(Sample(prompt, resp, (lp[0, len(prompt) - 1:] + shift).tolist(), reward=reward))
    return [Group("p", samples)]


def _update(model, groups, **kw):
    model = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    metrics = update_policy(model, opt, groups, ActorConfig(lr=0.1, mini_batch_groups=1, **kw), pad_id=0,
                             temperature=1.0)
    return model, metrics


def test_mismatch_is_logged_and_tis_is_the_plain_update_when_engines_agree(tiny_model):
    model = tiny_model()
    plain, m0 = _update(model, _shifted_groups(model, 0.0))
    tis, m1 = _update(model, _shifted_groups(model, 0.0), tis_cap=2.0)
    assert m0["mismatch_abs_mean"] < 1e-6 and m0["mismatch_ratio_out"] == 0.0
    assert m0["pad_frac"] == pytest.approx(1 / 12)  # sequences of 6 and 5 tokens padded to 2 x 6
    for a, b in zip(plain.parameters(), tis.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    assert m1["tis_weight_mean"] == pytest.approx(1.0, abs=1e-5)


def test_tis_reweights_when_the_rollout_engine_disagrees(tiny_model):
    model = tiny_model()
    # rollout log-probs 0.8 above the trainer's: ratio pi_trainer / pi_rollout = e^-0.8 = 0.449 on every token
    _, m = _update(model, _shifted_groups(model, 0.8), tis_cap=2.0)
    assert m["mismatch_abs_mean"] == pytest.approx(0.8, abs=1e-5)
    assert m["mismatch_abs_max"] == pytest.approx(0.8, abs=1e-5)
    assert m["mismatch_ratio_out"] == 1.0
    assert m["tis_weight_mean"] == pytest.approx(torch.exp(torch.tensor(-0.8)).item(), abs=1e-5)
    # without TIS the ratio is taken against the (wrong) rollout log-probs: every token starts clipped
    _, plain = _update(model, _shifted_groups(model, 0.8))
    assert plain["ratio_mean"] == pytest.approx(torch.exp(torch.tensor(-0.8)).item(), abs=1e-4)
    assert m["ratio_mean"] == pytest.approx(1.0, abs=1e-4)  # TIS: against the trainer's recomputed old log-probs


class _RecordingSGD(torch.optim.SGD):
    """SGD that keeps a copy of every gradient it stepped with (after clipping)."""

    def __init__(self, model):
        self.names = {id(p): n for n, p in model.named_parameters()}
        super().__init__(model.parameters(), lr=0.1)
        self.grads: list[dict[str, torch.Tensor]] = []

    def step(self, closure=None):
        self.grads.append({self.names[id(p)]: p.grad.clone() for g in self.param_groups for p in g["params"]
                           if p.grad is not None})
        return super().step(closure)


def test_online_mtp_loss_trains_only_the_mtp_layers_and_leaves_main_gradients_bit_identical(tiny_model):
    """--actor.mtp_loss_weight: the MTP layers get gradients, every main-model gradient is bit-identical to the run
    without it, clipping included (grad_clip 1e-3 clips both runs: the MTP layers are clipped apart)."""
    model = tiny_model(seed=1, num_nextn_predict_layers=2)
    groups = _groups(model, 1.0)
    runs = {}
    for w in (0.0, 0.2):
        m = copy.deepcopy(model)
        opt = _RecordingSGD(m)
        metrics = update_policy(m, opt, groups, ActorConfig(lr=0.1, mini_batch_groups=1, micro_batch_size=3,
                                                            grad_clip=1e-3, mtp_loss_weight=w),
                                pad_id=0, temperature=1.0)
        runs[w] = (opt.grads, metrics)
    (plain, m0), (online, m1) = runs[0.0], runs[0.2]
    assert len(plain) == len(online) == 2  # two mini-batches, one optimizer step each
    for g0, g1 in zip(plain, online):
        mtp = {n for n in g1 if n.startswith("model.mtp_layers.")}
        assert mtp and not any(n.startswith("model.mtp_layers.") for n in g0)  # frozen without the loss
        assert {n for n in mtp if n.startswith("model.mtp_layers.1.")}  # both layers train
        assert set(g1) - mtp == set(g0)
        for n, g in g0.items():
            assert torch.equal(g, g1[n]), n
        assert all(float(g1[n].abs().sum()) > 0 for n in mtp if n.endswith("input_proj.weight"))
    assert m0["grad_norm"] == m1["grad_norm"] and m0["grad_norm"] > 1e-3  # the main norm: clipped, unchanged
    assert "mtp_loss" not in m0 and m1["mtp_loss"] > 0 and 0 <= m1["mtp2_acc"] <= 1 and m1["grad_norm_apart"] > 0


def _ragged_groups(model) -> list[Group]:
    """Two groups whose responses are cut to 1, 2, 3 and 8 tokens: sequences of 4-12 tokens, several to a row."""
    groups = []
    for g, prompt in enumerate([[1, 2, 3], [4, 5, 6, 7]]):
        lps: list = []
        outs = generate(model, [prompt] * 4, 8, temperature=1.0, seed=g, stop_ids=[], logprobs=lps)
        groups.append(Group(f"p{g}", [Sample(prompt, o[:n], lp[:n], reward=float(i % 2)) for i, (o, lp, n)
                                      in enumerate(zip(outs, lps, (1, 2, 3, 8)))]))
    return groups


@pytest.mark.parametrize("mtp", [0.0, 0.2])
def test_the_packed_update_is_the_padded_one(tiny_model, mtp):
    """--actor.packed: the same log-probs per sample, the same update and metrics, over fewer positions."""
    import doctest

    import mimo.rl.actor as actor

    assert doctest.testmod(actor).failed == 0
    model = tiny_model(seed=2, num_nextn_predict_layers=2)
    groups = _ragged_groups(model)
    samples = [s for g in groups for s in g.samples]
    packed, padded = actor.pack_batch(samples, 0), actor.pad_batch(samples, 0)
    assert packed["input_ids"].shape == (5, 12) and padded["input_ids"].shape == (8, 12)
    with torch.no_grad():
        lp_packed, _ = token_logprobs(model, packed["input_ids"], 1.0, **actor._model_kw(packed))
        lp_padded, _ = token_logprobs(model, padded["input_ids"], 1.0)
    for b, (s, (r, o)) in enumerate(zip(samples, packed["where"])):
        n = len(s.prompt_ids) + len(s.response_ids) - 1
        torch.testing.assert_close(lp_packed[r, o:o + n], lp_padded[b, :n], rtol=1e-5, atol=1e-6)
    assert packed["mask"].sum() == padded["mask"].sum() == sum(len(s.response_ids) for s in samples)
    runs = {}
    for pack in (False, True):
        m = copy.deepcopy(model)
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        cfg = ActorConfig(lr=0.1, mini_batch_groups=2, micro_batch_size=8, tis_cap=2.0, mtp_loss_weight=mtp,
                          packed=pack)
        runs[pack] = (m, update_policy(m, opt, groups, cfg, pad_id=0, temperature=1.0))
    (m0, r0), (m1, r1) = runs[False], runs[True]
    for (n, a), b in zip(m0.named_parameters(), m1.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=n)
    keys = ["pg_loss", "entropy", "clip_frac", "approx_kl", "grad_norm", "mismatch_abs_mean", "tis_weight_mean"]
    for k in keys + (["mtp_loss", "mtp1_acc"] if mtp else []):
        assert r1[k] == pytest.approx(r0[k], rel=1e-4, abs=1e-6), k
    # 56 tokens (prompts of 3 and 4, responses of 1, 2, 3 and 8 each): 8 rows of 12 padded, 5 packed
    assert r0["pad_frac"] == pytest.approx(1 - 56 / 96) and r1["pad_frac"] == pytest.approx(1 - 56 / 60)
