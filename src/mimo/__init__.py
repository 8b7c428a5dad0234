"""mimo: the MiMo-7B reasoning-LLM recipe (arXiv 2505.07608), from a laptop CPU to a GPU cluster."""

__version__ = "0.1.0"
