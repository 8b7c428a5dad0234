"""MiMoForCausalLM: reference logits, released checkpoint layout, save/load, MTP semantics."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM

import mimo  # noqa: F401  (registers the Auto classes)
from mimo.model import MiMoConfig, MiMoForCausalLM


def test_main_path_logits_equal_qwen2(tiny_model):
    model = tiny_model(num_nextn_predict_layers=2)
    cfg = model.config.to_dict()
    for k in ("num_nextn_predict_layers", "mtp_hidden_source", "model_type", "architectures"):
        cfg.pop(k)
    ref = Qwen2ForCausalLM(Qwen2Config(**cfg)).eval()
    missing, unexpected = ref.load_state_dict(model.state_dict(), strict=False)
    assert missing == [] and all(".mtp_layers." in k for k in unexpected) and unexpected
    x = torch.randint(0, 64, (3, 17))
    mask = torch.ones_like(x)
    mask[1, :5] = 0  # left padding in one row
    with torch.no_grad():
        for kw in ({}, {"attention_mask": mask}):
            a = model(input_ids=x, **kw).logits
            b = ref(input_ids=x, **kw).logits
            assert (a - b).abs().max().item() <= 1e-5


# Every parameter of MTP layer i in the released MiMo-7B checkpoints (docs/design.md §1.1), with its shape in terms
# of hidden h, FFN f, heads q*d and kv heads k*d.
RELEASED_MTP = {
    "token_layernorm.weight": ("h",), "hidden_layernorm.weight": ("h",), "input_proj.weight": ("h", "2h"),
    "input_layernorm.weight": ("h",), "self_attn.q_proj.weight": ("qd", "h"), "self_attn.q_proj.bias": ("qd",),
    "self_attn.k_proj.weight": ("kd", "h"), "self_attn.k_proj.bias": ("kd",), "self_attn.v_proj.weight": ("kd", "h"),
    "self_attn.v_proj.bias": ("kd",), "self_attn.o_proj.weight": ("h", "qd"), "post_attention_layernorm.weight": ("h",),
    "mlp.gate_proj.weight": ("f", "h"), "mlp.up_proj.weight": ("f", "h"), "mlp.down_proj.weight": ("h", "f"),
    "final_layernorm.weight": ("h",),
}


def _released_state_dict(cfg: MiMoConfig) -> dict[str, torch.Tensor]:
    d = cfg.hidden_size // cfg.num_attention_heads
    dims = {"h": cfg.hidden_size, "2h": 2 * cfg.hidden_size, "f": cfg.intermediate_size,
            "qd": cfg.num_attention_heads * d, "kd": cfg.num_key_value_heads * d}
    layer = {k: v for k, v in RELEASED_MTP.items()
             if k not in ("token_layernorm.weight", "hidden_layernorm.weight", "input_proj.weight",
                          "final_layernorm.weight")}
    g = torch.Generator().manual_seed(1)
    sd = {"model.embed_tokens.weight": torch.randn(cfg.vocab_size, cfg.hidden_size, generator=g),
          "model.norm.weight": torch.randn(cfg.hidden_size, generator=g),
          "lm_head.weight": torch.randn(cfg.vocab_size, cfg.hidden_size, generator=g)}
    for j in range(cfg.num_hidden_layers):
        for name, shape in layer.items():
            sd[f"model.layers.{j}.{name}"] = torch.randn(*[dims[s] for s in shape], generator=g)
    for i in range(cfg.num_nextn_predict_layers):
        for name, shape in RELEASED_MTP.items():
            sd[f"model.mtp_layers.{i}.{name}"] = torch.randn(*[dims[s] for s in shape], generator=g)
    return sd


def test_released_layout_loads_strict(tiny_config):
    cfg = tiny_config()
    model = MiMoForCausalLM(cfg)
    sd = _released_state_dict(cfg)
    assert set(model.state_dict()) == set(sd)
    model.load_state_dict(sd, strict=True)


def test_released_checkpoint_dir_loads_with_auto_classes(tiny_config, tmp_path):
    """A directory as released (config.json with model_type mimo, legacy rope_theta, auto_map; safetensors)."""
    from safetensors.torch import save_file

    cfg = tiny_config()
    sd = _released_state_dict(cfg)
    save_file(sd, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    config = {
        "architectures": ["MiMoForCausalLM"], "model_type": "mimo",
        "auto_map": {"AutoConfig": "configuration_mimo.MiMoConfig",
                     "AutoModel": "modeling_mimo.MiMoModel", "AutoModelForCausalLM": "modeling_mimo.MiMoForCausalLM"},
        "hidden_size": cfg.hidden_size, "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_hidden_layers, "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads, "vocab_size": cfg.vocab_size, "rope_theta": 640000,
        "max_position_embeddings": 32768, "rms_norm_eps": 1e-5, "tie_word_embeddings": False,
        "num_nextn_predict_layers": 1, "hidden_act": "silu", "torch_dtype": "float32",
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded_cfg = AutoConfig.from_pretrained(str(tmp_path))
    assert isinstance(loaded_cfg, MiMoConfig) and loaded_cfg.rope_parameters["rope_theta"] == 640000
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path))
    assert isinstance(model, MiMoForCausalLM)
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), k


def test_save_from_pretrained_roundtrip_bit_exact(tiny_model, tmp_path):
    model = tiny_model(num_nextn_predict_layers=2, mtp_hidden_source="post_norm")
    model.save_pretrained(str(tmp_path))
    again = AutoModelForCausalLM.from_pretrained(str(tmp_path))
    assert again.config.num_nextn_predict_layers == 2 and again.config.mtp_hidden_source == "post_norm"
    a, b = model.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.randint(0, 64, (2, 9))
    with torch.no_grad():
        assert torch.equal(model(input_ids=x).logits, again.eval()(input_ids=x).logits)


@pytest.mark.parametrize("source", ["pre_norm", "post_norm"])
def test_mtp_losses_follow_the_definition(tiny_model, source):
    """Layer i at position t reads (h_t, x_{t+1+i}) and predicts x_{t+2+i}: recompute by hand, one layer at a time."""
    model = tiny_model(num_nextn_predict_layers=3, mtp_hidden_source=source)
    torch.manual_seed(3)
    x = torch.randint(0, 64, (2, 12))
    out = model(input_ids=x, labels=x, mtp_loss_weight=0.3)
    m = model.model
    base = m(input_ids=x)
    h = base.pre_norm_hidden_state if source == "pre_norm" else base.last_hidden_state
    T = x.shape[1]
    manual = []
    for i, layer in enumerate(m.mtp_layers):
        n = T - 1 - i
        cos, sin = base.position_embeddings
        z = layer.input_proj(torch.cat([layer.hidden_layernorm(h[:, :n]),
                                        layer.token_layernorm(m.embed_tokens(x[:, 1 + i: 1 + i + n]))], -1))
        attn, _ = layer.self_attn(layer.input_layernorm(z), position_embeddings=(cos[:, :n], sin[:, :n]),
                                  attention_mask=None)  # causal
        z = z + attn
        z = z + layer.mlp(layer.post_attention_layernorm(z))
        g = layer.final_layernorm(z)
        logits = model.lm_head(g[:, : n - 1])
        manual.append(torch.nn.functional.cross_entropy(logits.reshape(-1, 64), x[:, 2 + i: 1 + i + n].reshape(-1)))
        h = g
    for a, b in zip(out.mtp_losses, manual):
        assert torch.allclose(a, b, atol=1e-6)
    expected = out.main_loss + 0.3 * torch.stack(manual).mean()
    assert torch.allclose(out.loss, expected, atol=1e-6)
    # weight 0 -> main loss only, and MTP layers get no gradient
    out0 = model(input_ids=x, labels=x, mtp_loss_weight=0.0)
    assert torch.equal(out0.loss, out0.main_loss)


def test_zero_first_position_zeroes_the_mtp_token_input_at_rope_position_0(tiny_model):
    """``mtp_zero_first_position`` (vLLM's drafter input): each MTP layer's token embedding is zero wherever the
    RoPE position is 0 -- the first column, and every packed document's start when position_ids restart there."""
    off = tiny_model(seed=2, num_nextn_predict_layers=2)
    on = tiny_model(seed=2, num_nextn_predict_layers=2, mtp_zero_first_position=True)
    torch.manual_seed(4)
    x = torch.randint(0, 64, (2, 10))
    pos = torch.tensor([list(range(10)), [0, 1, 2, 3, 0, 1, 2, 3, 4, 5]])  # row 1: two packed documents
    out_off, out_on = (m(input_ids=x, labels=x, position_ids=pos, mtp_loss_weight=1.0) for m in (off, on))
    assert torch.equal(out_off.logits, out_on.logits)  # the main model is untouched
    m = off.model
    base = m(input_ids=x, position_ids=pos)
    cos, sin = base.position_embeddings
    h, T = base.pre_norm_hidden_state, x.shape[1]
    for i, layer in enumerate(m.mtp_layers):
        n = T - 1 - i
        emb = m.embed_tokens(x[:, 1 + i: 1 + i + n]).clone()
        emb[pos[:, :n] == 0] = 0.0  # (0, 0), (1, 0), (1, 4)
        h = layer(h[:, :n], emb, (cos[:, :n], sin[:, :n]))
        ref = torch.nn.functional.cross_entropy(off.lm_head(h[:, : n - 1]).reshape(-1, 64),
                                                x[:, 2 + i: 1 + i + n].reshape(-1))
        assert torch.allclose(out_on.mtp_losses[i], ref, atol=1e-6)
        assert not torch.allclose(out_off.mtp_losses[i], ref, atol=1e-4)
    assert on.config.to_dict()["mtp_zero_first_position"] is True
    assert off.config.to_dict()["mtp_zero_first_position"] is False


def test_hidden_source_changes_mtp_only(tiny_model):
    a = tiny_model(mtp_hidden_source="pre_norm")
    b = tiny_model(mtp_hidden_source="post_norm")
    x = torch.randint(0, 64, (1, 10))
    oa, ob = a(input_ids=x, labels=x, mtp_loss_weight=1.0), b(input_ids=x, labels=x, mtp_loss_weight=1.0)
    assert torch.equal(oa.logits, ob.logits)
    assert not torch.allclose(oa.mtp_losses[0], ob.mtp_losses[0])


def test_set_rope_theta(tiny_model):
    model = tiny_model()
    x = torch.randint(0, 64, (1, 20))
    before = model(input_ids=x).logits
    model.model.set_rope_theta(640000.0)
    assert model.config.rope_parameters["rope_theta"] == 640000.0
    after = model(input_ids=x).logits
    assert not torch.allclose(before, after)
    fresh = MiMoForCausalLM(model.config).eval()
    fresh.load_state_dict(model.state_dict())
    assert torch.allclose(fresh(input_ids=x).logits, after, atol=1e-6)


def test_presets_build_the_paper_and_tiny_shapes():
    from mimo.config import resolve_config
    from mimo.train.pretrain import PretrainConfig

    with torch.device("meta"):
        big = MiMoForCausalLM(resolve_config(PretrainConfig, "pretrain", preset="mimo-7b").model.to_hf())
    # by hand: 2 x 151680 x 4096 (embed + untied head) + 36 decoder layers + final norm + 1 MTP layer
    layer = (4096 * 4096 + 4096) + 2 * (4096 * 1024 + 1024) + 4096 * 4096 + 3 * 4096 * 11008 + 2 * 4096
    mtp = layer + 2 * 4096 * 4096 + 3 * 4096
    assert sum(p.numel() for p in big.parameters()) == 2 * 151680 * 4096 + 36 * layer + 4096 + mtp
    assert big.config.num_key_value_heads == 8 and big.config.head_dim == 128
    tiny = resolve_config(PretrainConfig, "pretrain", preset="tiny")
    with torch.device("meta"):
        small = MiMoForCausalLM(tiny.model.to_hf())
    assert 0.5e6 < sum(p.numel() for p in small.parameters()) < 5e6
    assert [s.rope_theta for s in tiny.stages] == [10000.0, 10000.0, 640000.0]
