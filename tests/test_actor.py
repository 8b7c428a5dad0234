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
