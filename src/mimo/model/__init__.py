"""The MiMo model: configuration, ``MiMoForCausalLM`` with MTP layers, checkpoint I/O."""

from mimo.model.config import MiMoConfig, ModelSpec
from mimo.model.modeling import MiMoForCausalLM, MiMoMTPLayer, MiMoModel

_REGISTERED = False


def register() -> None:
    """Register MiMoConfig / MiMoForCausalLM with transformers' Auto classes (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from transformers import AutoConfig, AutoModelForCausalLM

    AutoConfig.register("mimo", MiMoConfig, exist_ok=True)
    AutoModelForCausalLM.register(MiMoConfig, MiMoForCausalLM, exist_ok=True)
    _REGISTERED = True


__all__ = ["MiMoConfig", "ModelSpec", "MiMoForCausalLM", "MiMoModel", "MiMoMTPLayer", "register"]
