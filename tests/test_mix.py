"""The mixer: realised token share per source per stage within 2% of the config; shards pretraining reads."""

from __future__ import annotations

import random

import numpy as np
import pytest

from mimo.config import resolve_config
from mimo.data.mix import MixConfig, StageConfig, build_stages, default_stages, math_code_share, realised_shares
from mimo.data.shards import TokenStream
from mimo.data.toy_web import document
from mimo.errors import MimoError
from mimo.tokenizer import train_bpe
from mimo.utils.io import write_jsonl


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("mix")
    rng = random.Random(0)
    web = [document(rng, rng.choice(["general", "ads", "news", "jobs", "science"])) for _ in range(400)]
    sources = {"web": web, "math": [document(rng, "math") for _ in range(150)],
               "code": [document(rng, "code") for _ in range(150)],
               "synthetic": [{"text": f"Q{i}: {i} + {i} = ?\n<think>\n{i} + {i} = {2 * i}\n</think>\n"
                                      f"\\boxed{{{2 * i}}}"} for i in range(200)]}
    for name, recs in sources.items():
        write_jsonl(d / f"{name}.jsonl", [{k: v for k, v in r.items() if k != "html"} for r in recs])
    tok = train_bpe((r["text"] for recs in sources.values() for r in recs), 384, d / "tok")
    return d, tok, {name: str(d / f"{name}.jsonl") for name in sources}


def test_realised_shares_within_2_percent_and_stage_meta(corpus):
    d, tok, paths = corpus
    stages = default_stages()
    for st, tokens in zip(stages, (60_000, 60_000, 30_000)):
        st.tokens = tokens
    indexes = build_stages(MixConfig(sources=paths, stages=stages), tok, d / "out")
    for st, ix in zip(stages, indexes):
        target = {k: v / sum(st.weights.values()) for k, v in st.weights.items()}
        shares = realised_shares(ix)
        assert shares.keys() == target.keys()
        for name in target:
            assert abs(shares[name] - target[name]) <= 0.02, (st.name, name, shares[name], target[name])
        assert abs(ix["total_tokens"] - st.tokens) <= 0.02 * st.tokens
        assert ix["meta"]["seq_len"] == st.seq_len and ix["meta"]["rope_theta"] == st.rope_theta
        # the shard really holds what the meta claims: tokens and documents (one EOS each)
        stream = TokenStream(d / "out" / st.name)
        assert len(stream) == ix["total_tokens"] == sum(s["tokens"] for s in ix["meta"]["sources"].values())
        assert int((np.asarray(stream.tokens) == tok.eos_id).sum()) == ix["num_docs"]
    assert "synthetic" not in realised_shares(indexes[0])  # stage 1: no synthetic responses
    assert math_code_share(indexes[1]) == pytest.approx(0.70, abs=0.02)  # stage 2: math + code ~70%
    assert realised_shares(indexes[2])["synthetic"] == pytest.approx(0.10, abs=0.02)  # stage 3: +10% synthetic
    assert (indexes[2]["meta"]["seq_len"], indexes[2]["meta"]["rope_theta"]) == (32768, 640000.0)


def test_domain_weights_downsample_ads_inside_a_source(corpus):
    d, tok, paths = corpus
    web_only = {"web": paths["web"]}
    plain = StageConfig("a", 40_000, {"web": 1.0})
    down = StageConfig("b", 40_000, {"web": 1.0}, {"ads": 0.1, "jobs": 0.1, "science": 3.0})
    ixs = build_stages(MixConfig(sources=web_only, stages=[plain, down]), tok, d / "dw")
    # decode documents back to count ads: an ad sentence always ends with "order now!"
    counts = []
    for ix in ixs:
        text = tok.decode(np.asarray(TokenStream(d / "dw" / ix["meta"]["stage"]).tokens).tolist())
        counts.append((text.count("order now!"), text.count("depends on the")))
    (ads_plain, sci_plain), (ads_down, sci_down) = counts
    assert ads_down < 0.3 * ads_plain and sci_down > 1.5 * sci_plain
    assert realised_shares(ixs[1]) == {"web": 1.0}  # the source's share is untouched


def test_same_seed_same_shards_and_yaml_config(corpus, tmp_path):
    d, tok, paths = corpus
    st = [StageConfig("s", 20_000, {"web": 0.5, "math": 0.5})]
    a = build_stages(MixConfig(sources=paths, stages=st, seed=3), tok, tmp_path / "a")
    b = build_stages(MixConfig(sources=paths, stages=st, seed=3), tok, tmp_path / "b")
    assert (tmp_path / "a/s/shard_00000.bin").read_bytes() == (tmp_path / "b/s/shard_00000.bin").read_bytes()
    assert a[0]["meta"] == b[0]["meta"]
    y = tmp_path / "mix.yaml"
    y.write_text("data:\n  mix:\n    sources: {web: w.jsonl}\n    stages:\n      - {name: s1, tokens: 100, "
                 "weights: {web: 1.0}, seq_len: 256, rope_theta: 10000}\n")
    cfg = resolve_config(MixConfig, "data.mix", config_file=str(y), overrides={"seed": "7"})
    assert cfg.stages[0].seq_len == 256 and cfg.sources == {"web": "w.jsonl"} and cfg.seed == 7


def test_config_errors_name_the_stage(corpus, tmp_path):
    d, tok, paths = corpus
    with pytest.raises(MimoError, match="stage1: weight for unknown source 'books'"):
        build_stages(MixConfig(sources=paths, stages=[StageConfig("stage1", 100, {"books": 1.0})]), tok, tmp_path)
    bad = StageConfig("s", 100, {"web": 1.0}, min_quality=2.0)
    (tmp_path / "q.jsonl").write_text('{"text": "x", "quality": 0.5}\n')
    with pytest.raises(MimoError, match="s: source 'web' has no eligible documents"):
        build_stages(MixConfig(sources={"web": str(tmp_path / "q.jsonl")}, stages=[bad]), tok, tmp_path)
