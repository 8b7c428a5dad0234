"""The policy update's importance ratio is taken at the rollout's temperature (``mimo rl`` passes
``rollout.temperature``; there is no second temperature to disagree with it)."""

from __future__ import annotations

import pytest

from mimo.infer.engine import generate
from mimo.rl.actor import ActorConfig, Group, Sample, update_policy
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
