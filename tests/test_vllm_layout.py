"""A checkpoint saved by mimo has the layout and config vLLM's MiMo loaders expect.

What vLLM does (read from vllm/model_executor/models/mimo.py and mimo_mtp.py, vllm/config/speculative.py and
vllm/transformers_utils/config.py; vLLM itself needs a GPU and is not installed here):

* config: ``AutoConfig.from_pretrained(path, trust_remote_code=...)`` -- "mimo" is in neither transformers nor
  vLLM's own config registry, so the directory must carry the remote-code config named by ``auto_map``;
  the model class is chosen by ``architectures[0] == "MiMoForCausalLM"``.
* main model: Qwen2 weights; every ``model.mtp_layers.*`` weight is skipped.  Its hidden state handed to the MTP
  drafter is taken *before* the final norm (the norm is applied in compute_logits).
* ``--speculative-config '{"method": "mtp", ...}'``: the config is copied and overridden to model_type
  ``mimo_mtp``, ``num_hidden_layers`` 0, ``n_predict`` = ``num_nextn_predict_layers``, architectures
  ``["MiMoMTPModel"]``; it loads ``model.embed_tokens``, ``lm_head`` and ``model.mtp_layers.{i}.*``, renaming
  layer i to ``i + num_hidden_layers`` (= i after the override) and moving every decoder-block weight under
  ``mtp_block.`` (all but token_layernorm, hidden_layernorm, input_proj, final_layernorm); q/k/v and gate/up are
  stacked into qkv_proj and gate_up_proj.
"""

from __future__ import annotations

import json
import re

import torch
from safetensors import safe_open

MTP_OWN = ("token_layernorm", "hidden_layernorm", "input_proj", "final_layernorm")
STACKED = {"q_proj": "qkv_proj", "k_proj": "qkv_proj", "v_proj": "qkv_proj", "gate_proj": "gate_up_proj",
           "up_proj": "gate_up_proj"}


def _vllm_decoder_params(prefix: str) -> set[str]:
    """Parameters of vLLM's Qwen2DecoderLayer (stacked projections, q/k/v biases)."""
    return {f"{prefix}{n}" for n in (
        "input_layernorm.weight", "post_attention_layernorm.weight", "self_attn.qkv_proj.weight",
        "self_attn.qkv_proj.bias", "self_attn.o_proj.weight", "mlp.gate_up_proj.weight", "mlp.down_proj.weight")}


def _vllm_mtp_name(name: str, num_hidden_layers_after_override: int = 0) -> str:
    """The parameter a checkpoint weight lands in, following mimo_mtp.py's renaming rules."""
    m = re.match(r"model\.mtp_layers\.(\d+)\.(.*)", name)
    if not m:
        return name
    i, rest = int(m.group(1)) + num_hidden_layers_after_override, m.group(2)
    if not rest.startswith(MTP_OWN):
        rest = "mtp_block." + rest
    for src, dst in STACKED.items():
        rest = rest.replace(f".{src}.", f".{dst}.")
    return f"model.mtp_layers.{i}.{rest}"


def test_saved_checkpoint_matches_vllm_loader(tiny_model, tmp_path):
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    from mimo.model.io import save_model_dir
    from mimo.tokenizer import train_bpe

    tok = train_bpe(["Compute 1 + 2. The answer is 3."] * 20, 280, tmp_path / "tok")
    model = tiny_model(num_nextn_predict_layers=3, vocab_size=tok.vocab_size, rope_theta=640000.0)
    out = save_model_dir(tmp_path / "ckpt", model, tok)

    # config.json: what the released MiMo checkpoints have and vLLM reads
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "mimo" and cfg["architectures"] == ["MiMoForCausalLM"]
    assert cfg["num_nextn_predict_layers"] == 3
    assert cfg["rope_theta"] == 640000.0 == cfg["rope_parameters"]["rope_theta"]
    assert cfg["auto_map"]["AutoConfig"] == "configuration_mimo.MiMoConfig"
    assert cfg["tie_word_embeddings"] is False and cfg["hidden_act"] == "silu"
    assert cfg["mtp_hidden_source"] == "pre_norm"  # vLLM's drafter reads the pre-norm hidden state
    for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "vocab_size", "head_dim"):
        assert isinstance(cfg[key], (int, float)), key
    assert (out / "tokenizer.json").is_file()
    assert "chat_template" in json.loads((out / "tokenizer_config.json").read_text()) or \
        (out / "chat_template.jinja").is_file()

    # vLLM's config path: remote code, no mimo import needed
    source = (out / "configuration_mimo.py").read_text()
    assert "import mimo" not in source and "from mimo" not in source
    # (AutoConfig in a process without mimo resolves auto_map to this class; here mimo registered "mimo" already,
    # so resolve the auto_map entry the way AutoConfig does for remote code)
    remote_cls = get_class_from_dynamic_module(cfg["auto_map"]["AutoConfig"], str(out))
    assert remote_cls.__module__.startswith("transformers_modules")
    hf = remote_cls.from_pretrained(str(out))
    assert hf.model_type == "mimo" and hf.num_nextn_predict_layers == 3 and hf.num_hidden_layers == 2
    assert float(hf.rope_parameters["rope_theta"]) == 640000.0
    # the speculative override vLLM applies when architectures[0] == "MiMoForCausalLM"
    assert hf.architectures[0] == "MiMoForCausalLM"
    hf.update({"num_hidden_layers": 0, "n_predict": hf.num_nextn_predict_layers, "architectures": ["MiMoMTPModel"]})
    assert hf.n_predict == 3

    # weights: the main model's set (MTP skipped) and the drafter's set after renaming, nothing missing or extra
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    L, K, H = 2, 3, model.config.hidden_size
    main_expected = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"}
    for j in range(L):
        main_expected |= _vllm_decoder_params(f"model.layers.{j}.")
    main_loaded = set()
    for name in shapes:
        if name.startswith("model.mtp_layers."):
            continue
        for src, dst in STACKED.items():
            name = name.replace(f".{src}.", f".{dst}.")
        main_loaded.add(name)
    assert main_loaded == main_expected
    mtp_expected = {"model.embed_tokens.weight", "lm_head.weight"}
    for i in range(K):
        mtp_expected |= {f"model.mtp_layers.{i}.{n}.weight" for n in MTP_OWN}
        mtp_expected |= _vllm_decoder_params(f"model.mtp_layers.{i}.mtp_block.")
    mtp_loaded = {_vllm_mtp_name(n) for n in shapes if n.startswith("model.mtp_layers.")
                  or n in ("model.embed_tokens.weight", "lm_head.weight")}
    assert mtp_loaded == mtp_expected
    assert shapes["model.mtp_layers.0.input_proj.weight"] == (H, 2 * H)
    assert shapes["lm_head.weight"] == shapes["model.embed_tokens.weight"] == (tok.vocab_size, H)

    # and it loads back bit-exactly with mimo, now that config.json also carries auto_map and rope_theta
    from mimo.model.io import load_model_dir

    again, _ = load_model_dir(out)
    assert again.num_mtp_layers == 3 and again.config.rope_theta_value == 640000.0
    for (n, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), n
