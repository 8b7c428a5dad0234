"""mimo: the MiMo-7B reasoning-LLM recipe (arXiv 2505.07608), from a laptop CPU to a GPU cluster.

``import mimo`` registers ``MiMoConfig`` / ``MiMoForCausalLM`` with transformers' ``AutoConfig`` /
``AutoModelForCausalLM``, so ``AutoModelForCausalLM.from_pretrained(dir)`` loads a checkpoint in the released MiMo
layout without ``trust_remote_code``.  Importing transformers costs seconds, so worker processes that never touch
the model (reward and judge workers) set ``MIMO_LIGHT_IMPORT=1`` to skip the registration.
"""

import os

__version__ = "0.1.0"

if os.environ.get("MIMO_LIGHT_IMPORT", "0") != "1":
    from mimo.model import register as _register

    _register()
