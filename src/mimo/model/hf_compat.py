"""What a saved checkpoint needs beyond ``save_pretrained`` so that vLLM and SGLang load it like a released MiMo.

vLLM resolves ``config.json`` with ``AutoConfig.from_pretrained(..., trust_remote_code=...)``; model_type ``"mimo"``
is not a transformers model, so -- as in the released XiaomiMiMo checkpoints -- the directory carries a
``configuration_mimo.py`` and ``auto_map.AutoConfig`` points at it (launch with ``--trust-remote-code``).  The
weights are then matched by ``architectures[0] == "MiMoForCausalLM"``: the main model loads the Qwen2 names, and
``--speculative-config '{"method": "mtp", ...}'`` turns the same config into the draft (model_type ``mimo_mtp``,
``num_hidden_layers`` 0, ``n_predict`` = ``num_nextn_predict_layers``) that loads ``model.mtp_layers.*``.  Older
loaders read a top-level ``rope_theta`` (transformers 5 writes ``rope_parameters``), so both are written.

``AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True)`` (the seed's transformers snippet) needs the
model class too, so -- again as the released checkpoints do -- ``modeling_mimo.py`` ships beside it and
``auto_map`` names it: Qwen2's causal LM (the main path is numerically Qwen2's) plus the MTP layers as modules, so
that every checkpoint weight has a home; ``generate`` uses the main path only.

Both remote-code files import only transformers (not mimo).
"""

from __future__ import annotations

import json
from pathlib import Path

REMOTE_CONFIG_FILE = "configuration_mimo.py"
REMOTE_MODELING_FILE = "modeling_mimo.py"
AUTO_MAP = {"AutoConfig": "configuration_mimo.MiMoConfig", "AutoModel": "modeling_mimo.MiMoModel",
            "AutoModelForCausalLM": "modeling_mimo.MiMoForCausalLM"}

REMOTE_CONFIG_SOURCE = '''"""MiMo configuration for trust_remote_code loaders (vLLM, SGLang): Qwen2 + the MTP fields.

Written by mimo (https://arxiv.org/abs/2505.07608 recipe); depends on transformers only.
"""

from transformers import Qwen2Config


class MiMoConfig(Qwen2Config):
    model_type = "mimo"

    def __init__(self, num_nextn_predict_layers=1, mtp_hidden_source="pre_norm", mtp_zero_first_position=False,
                 **kwargs):
        # num_nextn_predict_layers: chained Multi-Token-Prediction layers (model.mtp_layers.{i})
        # mtp_hidden_source: the main hidden state MTP layer 0 reads: before ("pre_norm", as vLLM)
        # or after ("post_norm") the final norm
        # mtp_zero_first_position: the MTP layers saw a zero token embedding at position 0 (as vLLM drafts)
        self.num_nextn_predict_layers = num_nextn_predict_layers
        self.mtp_hidden_source = mtp_hidden_source
        self.mtp_zero_first_position = mtp_zero_first_position
        super().__init__(**kwargs)
'''


REMOTE_MODELING_SOURCE = '''"""MiMo for trust_remote_code loaders (AutoModelForCausalLM): Qwen2 + MTP layer weights.

Written by mimo (https://arxiv.org/abs/2505.07608 recipe); depends on transformers only.  The main path is
Qwen2's; the Multi-Token-Prediction layers (model.mtp_layers.{i}) are held so that their weights load and save,
but ``forward``/``generate`` do not use them (speculative decoding with them: vLLM's "mtp" method, or mimo).
"""

from torch import nn
from transformers import Qwen2ForCausalLM, Qwen2Model
from transformers.models.qwen2.modeling_qwen2 import Qwen2DecoderLayer, Qwen2RMSNorm

from .configuration_mimo import MiMoConfig


class MiMoMTPLayer(Qwen2DecoderLayer):
    def __init__(self, config):
        super().__init__(config, layer_idx=0)
        h = config.hidden_size
        self.token_layernorm = Qwen2RMSNorm(h, eps=config.rms_norm_eps)
        self.hidden_layernorm = Qwen2RMSNorm(h, eps=config.rms_norm_eps)
        self.input_proj = nn.Linear(2 * h, h, bias=False)
        self.final_layernorm = Qwen2RMSNorm(h, eps=config.rms_norm_eps)


class MiMoModel(Qwen2Model):
    config_class = MiMoConfig

    def __init__(self, config):
        super().__init__(config)
        self.mtp_layers = nn.ModuleList([MiMoMTPLayer(config) for _ in range(config.num_nextn_predict_layers)])
        self.post_init()


class MiMoForCausalLM(Qwen2ForCausalLM):
    config_class = MiMoConfig

    def __init__(self, config):
        super().__init__(config)
        self.model = MiMoModel(config)
        self.post_init()
'''


def add_remote_code(path: str | Path) -> None:
    """Write ``configuration_mimo.py`` and ``modeling_mimo.py`` into a saved model directory and point
    ``config.json``'s ``auto_map`` at them (plus a top-level ``rope_theta``).  Idempotent."""
    path = Path(path)
    (path / REMOTE_CONFIG_FILE).write_text(REMOTE_CONFIG_SOURCE, encoding="utf-8")
    (path / REMOTE_MODELING_FILE).write_text(REMOTE_MODELING_SOURCE, encoding="utf-8")
    cfg_path = path / "config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["auto_map"] = {**cfg.get("auto_map", {}), **AUTO_MAP}
    theta = (cfg.get("rope_parameters") or {}).get("rope_theta")
    if theta is not None:
        cfg["rope_theta"] = theta
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")
