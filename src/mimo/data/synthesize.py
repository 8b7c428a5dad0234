"""`mimo data synthesize`: synthetic reasoning responses for the stage-3 mixture.

MiMo generates long reasoning responses with strong reasoning models for selected STEM documents and problems,
and finds that such data can be trained on for many epochs without overfitting.  Two separate paths:

- :func:`synthesize_endpoint` -- any OpenAI-compatible endpoint (vLLM/SGLang serving a reasoning model, or a
  hosted API).  Input records are problems (a ``problem``/``question``/``prompt`` field) or documents (``text``);
  documents can be selected by their tags (domain in ``domains``, ``quality >= min_quality``).  A problem is sent
  as is; a document is sent with an instruction to pose and solve a question grounded in it.
- :func:`synthesize_toy` -- no model: the built-in verifiable task generators write worked solutions for toy runs.

Each output record is ``{"id", "text", "prompt", "response", "source_id", "kind"}`` where ``text`` (what the mixer
tokenizes) is the prompt followed by the response, reasoning inside ``<think>...</think>`` when the model emitted
it.  Responses that are empty, truncated (no final answer marker when one was requested) or failed are dropped
and counted.
"""

from __future__ import annotations

import dataclasses
import json
import time

from mimo.config import F
from mimo.errors import MimoError
from mimo.infer.client import ChatClient
from mimo.tasks import MathTaskGenerator
from mimo.tokenizer import assistant_text
from mimo.utils.io import iter_jsonl, write_jsonl

DOC_INSTRUCTION = ("Read the text below. Pose one challenging question that it makes answerable and that needs "
                   "several steps of reasoning, then solve it step by step and put the final answer in "
                   "\\boxed{{}}.\n\nText:\n{text}")
PROBLEM_INSTRUCTION = "{problem}\nPlease reason step by step, and put your final answer within \\boxed{{}}."
PROBLEM_FIELDS = ("problem", "question", "prompt")


@dataclasses.dataclass
class SynthesizeConfig:
    output: str = F("", "output JSONL file of synthetic responses")
    mode: str = F("endpoint", "endpoint (an OpenAI-compatible model) or toy (built-in task generators)")
    input: str = F("", "endpoint mode: JSONL of problems (problem/question/prompt) or tagged documents (text)")
    endpoint: str = F("", "endpoint mode: base URL, e.g. http://127.0.0.1:8000/v1")
    model: str = F("default", "endpoint mode: model name")
    domains: list[str] = F(factory=lambda: ["math", "code", "science"],
                           help="documents: keep those whose tagged domain is one of these (untagged: kept)")
    min_quality: float = F(0.0, "documents: keep those with quality >= this (untagged: kept)")
    samples: int = F(1, "responses per prompt")
    temperature: float = F(0.6, "sampling temperature")
    max_tokens: int = F(4096, "longest response in tokens")
    concurrency: int = F(8, "requests in flight")
    limit: int = F(0, "stop after this many prompts (0 = all)")
    require_boxed: bool = F(True, "drop responses without a \\boxed{} final answer (truncated or off-task)")
    n: int = F(1000, "toy mode: number of responses")
    seed: int = F(0, "toy mode: generator seed")


def select_prompts(records, cfg: SynthesizeConfig) -> list[tuple[str, str, str]]:
    """``(source_id, kind, prompt)`` for the records worth synthesising from."""
    out = []
    for i, rec in enumerate(records):
        sid = str(rec.get("id", i))
        problem = next((rec[k] for k in PROBLEM_FIELDS if isinstance(rec.get(k), str)), None)
        if problem is not None:
            out.append((sid, "problem", PROBLEM_INSTRUCTION.format(problem=problem.strip())))
        elif isinstance(rec.get("text"), str):
            if "domain" in rec and rec["domain"] not in cfg.domains:
                continue
            if "quality" in rec and float(rec["quality"]) < cfg.min_quality:
                continue
            out.append((sid, "document", DOC_INSTRUCTION.format(text=rec["text"][:6000])))
        if cfg.limit and len(out) >= cfg.limit:
            break
    return out


def format_response(prompt: str, response: str) -> str:
    """Pretraining text of one synthetic sample: the prompt, then the model's response as it came (reasoning
    models already wrap their reasoning in ``<think>...</think>``)."""
    return f"{prompt.strip()}\n\n{response.strip()}"


def synthesize_endpoint(cfg: SynthesizeConfig, client=None) -> tuple[list[dict], dict]:
    """Responses from an OpenAI-compatible endpoint; returns (records, counts)."""
    if client is None:
        client = ChatClient(cfg.endpoint, cfg.model)
    if not cfg.input:
        raise MimoError("synthesize: --input FILE is required in endpoint mode")
    prompts = select_prompts(iter_jsonl(cfg.input), cfg)
    jobs = [(sid, kind, p) for sid, kind, p in prompts for _ in range(cfg.samples)]
    replies = client.complete_many([[{"role": "user", "content": p}] for _, _, p in jobs],
                                   concurrency=cfg.concurrency, temperature=cfg.temperature,
                                   max_tokens=cfg.max_tokens)
    records, counts = [], {"prompts": len(prompts), "requests": len(jobs), "failed": 0, "rejected": 0}
    for (sid, kind, prompt), reply in zip(jobs, replies):
        if reply is None:
            counts["failed"] += 1
            continue
        if not reply.strip() or (cfg.require_boxed and "\\boxed{" not in reply):
            counts["rejected"] += 1
            continue
        records.append({"id": f"syn-{sid}-{len(records)}", "text": format_response(prompt, reply), "prompt": prompt,
                        "response": reply, "source_id": sid, "kind": kind, "model": cfg.model})
    counts["kept"] = len(records)
    return records, counts


def toy_problems(n: int, seed: int) -> list[dict]:
    """``{"id", "question", "reasoning", "answer"}`` from the built-in verifiable task generators (train split)."""

    problems = MathTaskGenerator(seed=seed).sample(n, split="train")
    return [{"id": p.id, "question": p.question, "reasoning": p.reasoning(), "answer": p.final_answer()}
            for p in problems]


def synthesize_toy(cfg: SynthesizeConfig) -> tuple[list[dict], dict]:
    """Worked solutions in MiMo's response format (``<think>`` steps ``</think>`` answer), no model needed."""

    records = []
    for p in toy_problems(cfg.n, cfg.seed):
        response = assistant_text(p["reasoning"], p["answer"])
        records.append({"id": f"syn-{p['id']}", "text": format_response(p["question"], response),
                        "prompt": p["question"], "response": response, "source_id": p["id"], "kind": "toy",
                        "model": "toy"})
    return records, {"prompts": len(records), "kept": len(records)}


def main(cfg: SynthesizeConfig) -> dict:
    if not cfg.output:
        raise MimoError("synthesize: --output FILE is required")
    t0 = time.perf_counter()
    if cfg.mode == "toy":
        records, counts = synthesize_toy(cfg)
    elif cfg.mode == "endpoint":
        records, counts = synthesize_endpoint(cfg)
    else:
        raise MimoError(f"--mode: expected endpoint or toy, got {cfg.mode!r}")
    write_jsonl(cfg.output, records)
    dt = time.perf_counter() - t0
    counts["docs_per_s"] = round(len(records) / max(dt, 1e-9), 1)
    print(f"[mimo data synthesize] {json.dumps(counts)} in {dt:.1f}s")
    return counts
