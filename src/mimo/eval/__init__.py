"""Evaluation: the MiMo protocol (docs/design.md §1.7) on MATH-500, AIME 2024/2025, LiveCodeBench v5/v6,
GPQA-Diamond, HumanEval and the toy held-out sets.

* :mod:`mimo.eval.metrics` -- ``pass_at_k(n, c, k)`` (unbiased), avg@n with its standard error;
* :mod:`mimo.eval.loaders` -- the public file formats; :mod:`mimo.eval.benchmarks` -- items, graders, the registry
  and the protocol's per-benchmark defaults, ``toy_benchmark`` for :mod:`mimo.tasks` problems;
* :mod:`mimo.eval.grading` -- per-benchmark answer rules on top of :mod:`mimo.rewards`;
* :mod:`mimo.eval.backends` -- local torch, vLLM, OpenAI-compatible endpoint, replay of saved completions;
* :mod:`mimo.eval.runner` -- ``evaluate(model_or_backend, benchmarks, protocol, out_dir)``, resumable;
* :mod:`mimo.eval.report` -- results.json, a markdown table, pass@k PNGs; :mod:`mimo.eval.cli` -- ``mimo eval``.

From Python (e.g. ``mimo demo``)::

    from mimo.eval import EvalProtocol, evaluate, toy_benchmark
    bench = toy_benchmark("toy_math", MathTaskGenerator(seed=1).sample(200, "heldout"), samples=8)
    results = evaluate((model, tokenizer), [bench], EvalProtocol(max_new_tokens=128), out_dir="runs/eval/sft")
    results["toy_math"]["pass@1"], results["toy_math"]["stderr"], results["toy_math"]["pass@k"]["8"]

Importing this package loads neither torch nor transformers.
"""

from mimo.eval.benchmarks import MIMO_BENCHMARKS, REGISTRY, Benchmark, Item, LoadOptions, load_benchmark, toy_benchmark
from mimo.eval.metrics import benchmark_metrics, mean_stderr, pass_at_k
from mimo.eval.runner import EvalProtocol, evaluate

__all__ = ["pass_at_k", "mean_stderr", "benchmark_metrics", "Benchmark", "Item", "LoadOptions", "REGISTRY",
           "MIMO_BENCHMARKS", "load_benchmark", "toy_benchmark", "EvalProtocol", "evaluate"]
