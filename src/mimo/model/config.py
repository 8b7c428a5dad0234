"""Model configuration: ``MiMoConfig`` (a Qwen2 config + MTP fields) and ``ModelSpec`` (its YAML/CLI form).

``MiMoConfig`` is what checkpoints store in ``config.json`` (``model_type: "mimo"``, as in the released MiMo-7B
checkpoints).  ``ModelSpec`` is the stage-config dataclass users edit in presets; :meth:`ModelSpec.to_hf` turns it
into a ``MiMoConfig``.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from huggingface_hub.dataclasses import strict
from transformers import Qwen2Config

from mimo.config import F

MTP_HIDDEN_SOURCES = ("pre_norm", "post_norm")


@strict
class MiMoConfig(Qwen2Config):
    """Qwen2 config plus the MTP fields of the released MiMo checkpoints.

    ``num_nextn_predict_layers``: number of chained MTP layers (1 in the released checkpoints; 3 after the extra
    MTP layers are trained for speculative decoding).

    ``mtp_hidden_source``: which main-model hidden state MTP layer 0 reads at position t.  The published weights do
    not pin this down: vLLM's MiMo MTP feeds the state *before* the main model's final RMSNorm (``"pre_norm"``, our
    default), SGLang and others the state *after* it (``"post_norm"``).

    ``mtp_zero_first_position``: zero the MTP layers' token embedding at RoPE position 0 (in the MTP loss and in
    drafting), which vLLM's MiMo drafter always does.  Off by default: mimo's MTP layers have always trained on the
    real embedding there.  Only the MTP layers' view of a sequence's first position changes (the main model never
    reads it), so greedy outputs are the same either way; what changes is which draft tokens are proposed.
    """

    model_type = "mimo"

    num_nextn_predict_layers: int = 1
    mtp_hidden_source: str = "pre_norm"
    mtp_zero_first_position: bool = False

    def __post_init__(self, **kwargs):
        if self.mtp_hidden_source not in MTP_HIDDEN_SOURCES:
            raise ValueError(f"mtp_hidden_source must be one of {MTP_HIDDEN_SOURCES}, got {self.mtp_hidden_source!r}")
        if self.num_nextn_predict_layers < 0:
            raise ValueError("num_nextn_predict_layers must be >= 0")
        super().__post_init__(**kwargs)

    @property
    def rope_theta_value(self) -> float:
        return float((self.rope_parameters or {}).get("rope_theta", 10000.0))


@dataclasses.dataclass
class ModelSpec:
    """The model shape as a stage-config section (``model:`` in presets)."""

    vocab_size: int = F(512, "vocabulary size (toy runs: set from the trained tokenizer)")
    hidden_size: int = F(128, "width of the residual stream")
    intermediate_size: int = F(384, "SwiGLU hidden width")
    num_hidden_layers: int = F(4, "decoder layers of the main model")
    num_attention_heads: int = F(4, "query heads")
    num_key_value_heads: int = F(2, "key/value heads (GQA)")
    head_dim: int | None = F(None, "per-head width (default hidden_size // num_attention_heads)")
    max_position_embeddings: int = F(2048, "longest context the model is configured for")
    rope_theta: float = F(10000.0, "RoPE base (MiMo: 10000, raised to 640000 in pretraining stage 3)")
    rms_norm_eps: float = F(1e-5, "RMSNorm epsilon")
    tie_word_embeddings: bool = F(False, "tie lm_head to embed_tokens (MiMo: untied)")
    initializer_range: float = F(0.02, "std of the normal weight init")
    num_nextn_predict_layers: int = F(1, "MTP layers (pretraining uses 1; speculative decoding trains more)")
    mtp_hidden_source: Literal["pre_norm", "post_norm"] = F(
        "pre_norm", "main hidden state fed to MTP layer 0: before (vLLM) or after (SGLang) the final norm"
    )
    mtp_zero_first_position: bool = F(
        False, "zero the MTP layers' token embedding at position 0 in training and drafting, as vLLM's drafter does"
    )

    def to_hf(self, **overrides) -> MiMoConfig:
        kw = dataclasses.asdict(self)
        kw.update(overrides)
        theta = kw.pop("rope_theta")
        if kw["head_dim"] is None:
            kw["head_dim"] = kw["hidden_size"] // kw["num_attention_heads"]
        return MiMoConfig(
            **kw,
            rope_parameters={"rope_type": "default", "rope_theta": theta},
            architectures=["MiMoForCausalLM"],
            hidden_act="silu",
            use_sliding_window=False,
            attention_dropout=0.0,
        )
