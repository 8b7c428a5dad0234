"""SFT data: conversation loading, MiMo's data hygiene, assistant-only loss masks, and packing.

Hygiene (docs/design.md §1.3): drop queries sharing a 16-gram with an evaluation set (decontamination, via
:mod:`mimo.data.decontam`), drop incomplete responses (an unclosed ``<think>``, nothing after ``</think>``,
``finish_reason == "length"``) and mixed-language responses, and keep at most 8 responses per query.  Every drop
is counted by reason in the report.

Records are JSONL lines ``{"messages": [{"role": ..., "content": ...}, ...]}`` or ``{"prompt": str,
"response": str}``.  The loss covers assistant content and its closing ``<|im_end|>`` only.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from mimo.config import F
from mimo.errors import MimoError
from mimo.tasks import ToyTaskSpec
from mimo.tokenizer import END_THINK, IM_END, IM_START, THINK, Tokenizer
from mimo.utils.io import iter_jsonl

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_LATIN = re.compile(r"[A-Za-z]")


def messages_of(rec: dict, where: str) -> list[dict]:
    """The conversation of one record, validated (roles, string contents, ends with an assistant turn)."""
    if "messages" in rec:
        msgs = rec["messages"]
    elif "prompt" in rec and "response" in rec:
        msgs = [{"role": "user", "content": rec["prompt"]}, {"role": "assistant", "content": rec["response"]}]
    else:
        raise MimoError(f"{where}: expected 'messages' or 'prompt'+'response'")
    if not isinstance(msgs, list) or not msgs:
        raise MimoError(f"{where}: 'messages' must be a non-empty list")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") \
                or not isinstance(m.get("content"), str):
            raise MimoError(f"{where}: message {i} needs role system|user|assistant and a string content")
    if msgs[-1]["role"] != "assistant":
        raise MimoError(f"{where}: the last message must be the assistant's")
    return msgs


def load_conversations(path: str | Path) -> list[dict]:
    """``[{"messages": [...], **meta}]`` from a JSONL file; a bad line raises naming ``file:line``."""
    return [{**rec, "messages": messages_of(rec, f"{path}:{lineno}")}
            for lineno, rec in iter_jsonl(path, with_lineno=True)]


def incomplete_reason(response: str, rec: dict) -> str | None:
    if rec.get("finish_reason") == "length" or rec.get("truncated"):
        return "truncated"
    if THINK in response and END_THINK not in response:
        return "unclosed_think"
    if END_THINK in response and not response.split(END_THINK, 1)[1].strip():
        return "no_answer"
    if not response.strip():
        return "empty"
    return None


def is_mixed_language(text: str) -> bool:
    """True when a response mixes CJK and Latin scripts substantially (each > 10% of its letters)."""
    cjk, latin = len(_CJK.findall(text)), len(_LATIN.findall(text))
    total = cjk + latin
    return total > 20 and min(cjk, latin) / total > 0.1


def clean_sft(records: list[dict], decontam=None, max_per_query: int = 8, seed: int = 0) -> tuple[list[dict], dict]:
    """Apply the hygiene rules; returns ``(kept, report)`` with per-reason counts.  ``decontam`` is an object with
    ``contaminated(text) -> bool`` (a :class:`mimo.data.decontam.NgramIndex`)."""
    dropped: Counter = Counter()
    by_query: dict[str, list[dict]] = defaultdict(list)
    for rec in records:
        msgs = rec["messages"]
        query = "\n".join(m["content"] for m in msgs[:-1])
        response = msgs[-1]["content"]
        reason = incomplete_reason(response, rec)
        if reason is None and is_mixed_language(response):
            reason = "mixed_language"
        if reason is None and decontam is not None and decontam.contaminated(query):
            reason = "contaminated"
        if reason is not None:
            dropped[reason] += 1
            continue
        by_query[query].append(rec)
    rng = random.Random(seed)
    kept = []
    for recs in by_query.values():
        if len(recs) > max_per_query:
            dropped["over_max_responses"] += len(recs) - max_per_query
            recs = rng.sample(recs, max_per_query)
        kept.extend(recs)
    report = {"input": len(records), "kept": len(kept), "dropped": dict(dropped), "queries": len(by_query)}
    return kept, report


def encode_conversation(tok: Tokenizer, messages: list[dict]) -> tuple[list[int], list[int]]:
    """Token ids and a 0/1 loss mask (1 on assistant content + its ``<|im_end|>``), in the chat template's layout."""
    ids: list[int] = []
    mask: list[int] = []

    def add(text: str, on: int) -> None:
        t = tok.encode(text)
        ids.extend(t)
        mask.extend([on] * len(t))

    rest = messages
    if messages[0]["role"] == "system":
        add(f"{IM_START}system\n{messages[0]['content']}{IM_END}\n", 0)
        rest = messages[1:]
    else:
        add(f"{IM_START}system\n{IM_END}\n", 0)
    for m in rest:
        add(f"{IM_START}{m['role']}\n", 0)
        if m["role"] == "assistant":
            add(m["content"] + IM_END, 1)
            add("\n", 0)
        else:
            add(m["content"] + f"{IM_END}\n", 0)
    return ids, mask


@dataclasses.dataclass
class PackedWindow:
    ids: np.ndarray  # (T,) token ids, padded with pad id
    labels: np.ndarray  # (T,) target ids at the *same* position (shifted inside the model), -100 where no loss
    positions: np.ndarray  # (T,) RoPE positions, restarting at 0 for every packed conversation
    doc: np.ndarray  # (T,) conversation index within the window (-1 on padding), for block-diagonal attention


def pack(examples: list[tuple[list[int], list[int]]], seq_len: int, pad_id: int) -> tuple[list[PackedWindow], int]:
    """Greedy first-fit packing of (ids, mask) examples into windows of ``seq_len``; longer examples are dropped
    (returned count) rather than truncated, since a cut response teaches the model to stop mid-thought."""
    windows: list[list[tuple[list[int], list[int]]]] = []
    room: list[int] = []
    too_long = 0
    for ex in examples:
        n = len(ex[0])
        if n > seq_len:
            too_long += 1
            continue
        for w, r in enumerate(room):
            if r >= n:
                windows[w].append(ex)
                room[w] -= n
                break
        else:
            windows.append([ex])
            room.append(seq_len - n)
    out = []
    for docs in windows:
        ids = np.full(seq_len, pad_id, dtype=np.int64)
        labels = np.full(seq_len, -100, dtype=np.int64)
        positions = np.zeros(seq_len, dtype=np.int64)
        doc = np.full(seq_len, -1, dtype=np.int64)
        at = 0
        for d, (t, m) in enumerate(docs):
            n = len(t)
            ids[at:at + n] = t
            labels[at:at + n] = np.where(np.asarray(m) == 1, t, -100)
            positions[at:at + n] = np.arange(n)
            doc[at:at + n] = d
            at += n
        out.append(PackedWindow(ids, labels, positions, doc))
    return out, too_long


@dataclasses.dataclass
class ToySFT:
    """The built-in SFT set: toy math and code problems answered by an *imperfect* teacher -- like SFT data
    distilled from a strong but fallible model, it carries systematic errors (a multiplication slip, a boundary
    bug) that more imitation cannot remove and verifiable rewards can."""

    seed: int = F(1, "generator seed (held-out problems are never used: their split is disjoint by construction)")
    problems: int = F(3000, "distinct training math problems")
    code_problems: int = F(0, "distinct training code problems")
    responses_per_query: int = F(1, "teacher responses per problem")
    teacher_slip_rate: float = F(0.1, "share of responses with one random slip (an arithmetic error, a wrong constant)")
    teacher_mul_bias: float = F(0.5, "per multiplication step: probability of the teacher's systematic slip a*(b+1)")
    teacher_boundary_bias: float = F(0.5, "per piecewise code problem: probability of the teacher's >= for > bug")
    teacher_skip_bias: float = F(0.5, "per math problem of 2+ steps: probability that the teacher stops one step "
                                      "short and answers the intermediate value")
    tasks: ToyTaskSpec = F(factory=ToyTaskSpec, help="difficulty of the math and code problems")


def toy_sft_records(spec: ToySFT) -> list[dict]:
    rng = random.Random(spec.seed)
    out = []

    def add(p, response) -> None:
        for _ in range(spec.responses_per_query):
            text = response()
            out.append({"messages": [{"role": "user", "content": p.prompt_text()},
                                     {"role": "assistant", "content": text}], "id": p.id,
                        "teacher_correct": text == p.chat_response()})

    gen = spec.tasks.math(spec.seed)
    for p in gen.sample(spec.problems, "train"):
        add(p, lambda p=p: p.teacher_response(rng, spec.teacher_slip_rate, spec.teacher_mul_bias,
                                               spec.teacher_skip_bias))
    if spec.code_problems:
        cgen = spec.tasks.code(spec.seed)
        for p in cgen.sample(spec.code_problems, "train"):
            add(p, lambda p=p: p.chat_response(cgen.teacher_solution(p, rng, spec.teacher_slip_rate,
                                                                       spec.teacher_boundary_bias)))
    rng.shuffle(out)
    return out
