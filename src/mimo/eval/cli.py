"""``mimo eval``: the MiMo evaluation protocol on a local checkpoint, vLLM, an OpenAI-compatible endpoint, or saved
completions.

    mimo eval --model runs/rl/final --benchmarks toy_math,toy_code --n 4 --max_new_tokens 256
    mimo eval --backend vllm --model XiaomiMiMo/MiMo-7B-RL --benchmarks math500,aime24,aime25 --out runs/eval/rl
    mimo eval --endpoint http://127.0.0.1:8000/v1 --served_model MiMo-7B-RL --benchmarks lcb_v5 --data lcb/
    mimo eval --backend replay --completions samples.jsonl --benchmarks math500 --data math500.jsonl --out DIR

Defaults are the paper's: temperature 0.6, top-p 0.95, empty system prompt, AIME 32 samples, LiveCodeBench and
GPQA-Diamond 8, MATH-500 and HumanEval 1, 32768 new tokens.  The report lands in ``--out``; re-running the same
command resumes (see :mod:`mimo.eval.runner`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mimo.config import F, save_yaml, stage_cli
from mimo.errors import MimoError
from mimo.eval import backends
from mimo.eval.benchmarks import MIMO_BENCHMARKS, LoadOptions, load_benchmark
from mimo.eval.runner import EvalProtocol, evaluate
from mimo.model.io import load_model_dir, resolve_device
from mimo.rewards.pool import PoolConfig

BACKENDS = ("auto", "local", "vllm", "endpoint", "replay")


@dataclasses.dataclass
class EvalConfig(EvalProtocol, LoadOptions):
    """``mimo eval``: sampling protocol, benchmark data, backend and output."""

    benchmarks: list[str] = F(factory=lambda: list(MIMO_BENCHMARKS),
                              help="benchmarks: math500, aime24, aime25, lcb_v5, lcb_v6, gpqa_diamond, humaneval, "
                                   "toy_math, toy_code")
    backend: str = F("auto", "local | vllm | endpoint | replay; auto: replay with --completions, endpoint with "
                             "--endpoint, else local")
    model: str = F("", "model directory (local, vllm) or hub id (vllm)")
    endpoint: str = F("", "OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    served_model: str = F("default", "model name sent to the endpoint")
    api_key_env: str = F("OPENAI_API_KEY", "environment variable holding the endpoint's API key")
    completions: str = F("", "replay: completions JSONL ({problem_id, completion} lines) or an eval folder")
    out: str = F("runs/eval", "output folder (results.json, results.md, plots, completions); resumable")
    overwrite: bool = F(False, "discard samples already in --out made with other settings")
    batch_size: int = F(32, "local: sequences per generation batch")
    device: str = F("auto", "local: cpu, cuda or auto")
    threads: int = F(0, "local: torch CPU threads (0: auto, 1 for models under 20M parameters, else the idle cores)")
    speculative: bool = F(False, "MTP speculative decoding (local: the model's MTP layers; vllm: MiMo MTP drafts)")
    speculative_tokens: int = F(1, "vllm: draft tokens per step with --speculative")
    tensor_parallel_size: int = F(1, "vllm: GPUs per model")
    vllm_args: dict = F(factory=dict, help="vllm: extra vllm.LLM keyword arguments, e.g. {max_model_len: 40000}")
    concurrency: int = F(16, "endpoint: requests in flight")
    timeout: float = F(3600.0, "endpoint: seconds per request")
    plots: bool = F(True, "write pass@k PNGs (needs matplotlib: pip install 'mimo[eval]')")
    progress: bool = F(True, "progress bar with ETA per benchmark")
    grading: PoolConfig = F(factory=PoolConfig, help="graders (reward workers, code judge limits)")


def resolve_backend(cfg: EvalConfig) -> str:
    if cfg.backend not in BACKENDS:
        raise MimoError(f"--backend: expected one of {', '.join(BACKENDS)}, got {cfg.backend!r}")
    if cfg.backend != "auto":
        return cfg.backend
    if cfg.completions:
        return "replay"
    if cfg.endpoint:
        return "endpoint"
    return "local"


def make_cli_backend(cfg: EvalConfig):
    kind = resolve_backend(cfg)
    if kind == "replay":
        if not cfg.completions:
            raise MimoError("--backend replay needs --completions FILE")
        return backends.ReplayBackend(cfg.completions)
    if kind == "endpoint":
        if not cfg.endpoint:
            raise MimoError("--backend endpoint needs --endpoint URL")
        return backends.EndpointBackend(cfg.endpoint, cfg.served_model, cfg.concurrency, cfg.timeout,
                                        cfg.api_key_env)
    if not cfg.model:
        raise MimoError(f"--backend {kind} needs --model DIR (or --endpoint URL, or --completions FILE)")
    if kind == "vllm":
        return backends.VLLMBackend(cfg.model, cfg.speculative_tokens if cfg.speculative else 0,
                                    tensor_parallel_size=cfg.tensor_parallel_size, **cfg.vllm_args)
    if not Path(cfg.model).is_dir():
        raise MimoError(f"--model {cfg.model}: no such model directory")

    import torch

    from mimo.infer.engine import inference_threads

    model, tok = load_model_dir(cfg.model, device=resolve_device(cfg.device))
    if tok is None:
        raise MimoError(f"{cfg.model}: no tokenizer in the model directory")
    torch.set_num_threads(inference_threads(model, cfg.threads))
    return backends.LocalBackend(model, tok, batch_size=cfg.batch_size, speculative=cfg.speculative,
                                 label=str(Path(cfg.model).resolve()))


def main(cfg: EvalConfig) -> dict:
    if not cfg.benchmarks:
        raise MimoError("--benchmarks: name at least one benchmark")
    if cfg.data and Path(cfg.data).is_file() and len(cfg.benchmarks) > 1:
        raise MimoError(f"--data {cfg.data} is one file but {len(cfg.benchmarks)} benchmarks were named; give a "
                        "folder or --data_files")
    resolve_backend(cfg)
    benches = [load_benchmark(name, cfg) for name in cfg.benchmarks]  # data errors before any model loads
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_yaml(out / "config.yaml", cfg)
    with make_cli_backend(cfg) as backend:
        results = evaluate(backend, benches, cfg, out, pool_cfg=cfg.grading, overwrite=cfg.overwrite,
                           plots=cfg.plots, show_progress=cfg.progress)
    print(f"[mimo eval] report: {out / 'results.md'}")
    print((out / "results.md").read_text(encoding="utf-8"))
    return results


def _run(cfg: EvalConfig) -> int:
    main(cfg)
    return 0


def cli(argv: list[str]) -> int:
    return stage_cli(argv, prog="mimo eval", description=__doc__, cls=EvalConfig, section="eval", main=_run)
