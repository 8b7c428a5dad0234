"""The MiMo model: configuration (:mod:`.config`), ``MiMoForCausalLM`` with MTP layers (:mod:`.modeling`), model
directories and devices (:mod:`.io`), what vLLM/SGLang need beyond ``save_pretrained`` (:mod:`.hf_compat`)."""

from mimo.model.config import MiMoConfig, ModelSpec
from mimo.model.io import load_model_dir, register, resolve_device, save_model_dir, unwrap
from mimo.model.modeling import MiMoForCausalLM, MiMoModel, MiMoMTPLayer

__all__ = ["MiMoConfig", "ModelSpec", "MiMoForCausalLM", "MiMoModel", "MiMoMTPLayer", "load_model_dir", "register",
           "resolve_device", "save_model_dir", "unwrap"]
