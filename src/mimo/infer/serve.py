"""``mimo serve``: an OpenAI-compatible server for a local checkpoint, on uvicorn + Starlette (an ASGI stack, as
vLLM's server is).

Endpoints: ``POST /v1/chat/completions`` and ``POST /v1/completions`` (``stream`` true: server-sent events,
chunked), ``GET /v1/models``, ``GET /health``.  Request fields: ``model``, ``messages`` (chat: roles
system/user/assistant, text content) or ``prompt`` (completions: text or token ids), ``max_tokens`` (or
``max_completion_tokens``), ``temperature``, ``top_p``, ``n``, ``seed``, ``stop``, ``stop_token_ids``, ``stream``,
``stream_options.include_usage``; completions also ``logprobs: 0`` (the sampled tokens' log-probs under
softmax(logits / T), as :func:`mimo.infer.generate` gives them) and ``return_tokens_as_token_ids`` -- what the RL
rollout endpoint backend sends, as to vLLM.  A few others are accepted at their neutral values.  Anything else, a
wrong type, an out-of-range value, an unknown model or too many tokens is a 4xx with an OpenAI-style error body --
the server never dies on input.  Generations run one at a time on a generation thread, in arrival order; ``n``
choices run as one batch, speculatively when the model has MTP layers.  Responses carry the speculative
acceptance per MTP layer in ``usage.mimo``.

Connections are the event loop's: a burst of clients waits in a deep listen backlog (``backlog``, default 2048;
the standard library's server had 5, and 50 concurrent clients got connection resets) and their requests queue
for the generation thread.  A client that disconnects -- mid-stream or while waiting -- aborts its generation at
the next decode step (or before it starts), so it frees the generator for the next request; nothing is logged
for it but the access line.

For the released 7B checkpoints at scale use vLLM or SGLang (README, "Speculative decoding and serving").
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from mimo.config import F, stage_cli
from mimo.errors import MimoError
from mimo.infer.protocol import GenRequest


@dataclasses.dataclass
class ServeConfig:
    model: str = F("", "model directory (HF layout: config.json + safetensors + tokenizer)")
    host: str = F("127.0.0.1", "address to bind (0.0.0.0 exposes the server to the network)")
    port: int = F(8000, "TCP port (0: any free port)")
    served_name: str | None = F(None, "model name clients pass in `model` (default: the directory name)")
    default_max_tokens: int = F(256, "max_tokens when a request gives none")
    max_tokens: int = F(4096, "largest max_tokens a request may ask for")
    max_n: int = F(8, "largest n (choices per request)")
    max_body_bytes: int = F(1 << 20, "largest request body")
    speculative: bool | None = F(None, "MTP speculative decoding (default: on when the model has MTP layers)")
    num_draft: int | None = F(None, "draft depth (default: all MTP layers)")
    device: str = F("auto", "cpu, cuda or auto")
    threads: int = F(0, "torch CPU threads (0: auto, 1 for models under 20M parameters, else the idle cores)")
    log_requests: bool = F(True, "one access-log line per request on stderr")
    backlog: int = F(2048, "listen backlog: connections the kernel holds while the server is busy")


class _Finished(Exception):
    """Raised from the token callback once every choice has hit a stop string (ends generation early)."""


class ChatEngine:
    """Model + tokenizer + the generation lock; turns a GenRequest into choices, streaming text deltas."""

    def __init__(self, model, tokenizer, name: str, speculative: bool | None = None, num_draft: int | None = None):
        self.model, self.tok, self.name = model, tokenizer, name
        self.speculative = model.num_mtp_layers > 0 if speculative is None else speculative
        self.num_draft = num_draft
        self.max_positions = int(getattr(model.config, "max_position_embeddings", 1 << 30))
        self.vocab_size = int(model.config.vocab_size)
        self.lock = threading.Lock()

    def prompt_ids(self, req: GenRequest) -> list[int]:
        if req.kind == "chat":
            return self.tok.chat_prompt(req.messages)
        return self.tok.encode(req.prompt) if isinstance(req.prompt, str) else list(req.prompt)

    def complete(self, req: GenRequest, prompt: list[int], on_delta=None, abort=None) -> tuple[list[dict], dict]:
        """Run the request: returns ``(choices, usage)``, a choice being ``{index, text, finish_reason, ids,
        logprobs}`` (ids include a final stop token, as the engine returns it; the text does not).
        ``on_delta(index, text)`` receives text as it becomes final (held back while it could still be the
        start of a stop string).  ``abort()`` is polled before each decode step: when it returns True (the client
        went away) :class:`~mimo.infer.engine.GenerationAborted` is raised."""
        from mimo.infer.decoding import GenerationStats
        from mimo.infer.engine import generate

        stops = set(self.tok.stop_ids) | set(req.stop_token_ids)
        n = req.n
        ids: list[list[int]] = [[] for _ in range(n)]  # every token of the choice, a final stop token included
        texts, sent = [""] * n, [0] * n
        finish: list[str | None] = [None] * n
        hold = max((len(s) for s in req.stop), default=1) - 1

        def flush(i: int, final: bool) -> None:
            end = len(texts[i]) if final else max(sent[i], len(texts[i]) - hold)
            if not final and texts[i][sent[i]:end].endswith("\ufffd"):  # half a UTF-8 character: wait for it
                end -= 1
            if end > sent[i] and on_delta is not None:
                on_delta(i, texts[i][sent[i]:end])
            sent[i] = max(sent[i], end)

        def on_token(i: int, t: int) -> None:
            if finish[i] is not None:
                return
            ids[i].append(t)
            if t in stops:
                finish[i] = "stop"
                flush(i, True)
            else:
                texts[i] = self.tok.decode(ids[i])
                cut = min((texts[i].find(s) for s in req.stop if s in texts[i]), default=-1)
                if cut >= 0:
                    texts[i], finish[i] = texts[i][:cut], "stop"
                    flush(i, True)
                else:
                    flush(i, False)
            if all(f is not None for f in finish):
                raise _Finished

        stats = GenerationStats()
        lps: list[list[float]] | None = [] if req.logprobs else None
        with self.lock:
            try:
                generate(self.model, [prompt] * n, req.max_tokens, req.temperature, req.top_p,
                         speculative=self.speculative, seed=req.seed, stop_ids=sorted(stops),
                         num_draft=self.num_draft, stats=stats, on_token=on_token, logprobs=lps, abort=abort)
            except _Finished:
                pass
        choices = []
        for i in range(n):
            if finish[i] is None:
                finish[i] = "length"
                flush(i, True)
            choices.append({"index": i, "text": texts[i], "finish_reason": finish[i], "ids": ids[i],
                            "logprobs": lps[i][: len(ids[i])] if lps is not None else None})
        completion = sum(len(x) for x in ids)
        usage = {"prompt_tokens": len(prompt), "completion_tokens": completion,
                 "total_tokens": len(prompt) + completion}
        if stats.drafted:
            usage["mimo"] = {"speculative_acceptance": stats.acceptance(),
                             "tokens_per_verify": stats.mean_accepted_length()}
        return choices, usage


def _log_config(access: bool) -> dict:
    """uvicorn's logging: one ``[serve]`` access line per request (``log_requests``), its own messages only from
    warnings up (no start-up banner; a client hanging up is not an error)."""
    fmt = {"()": "uvicorn.logging.AccessFormatter", "use_colors": False,
           "fmt": '[serve] %(client_addr)s "%(request_line)s" %(status_code)s'}
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"access": fmt, "default": {"format": "[serve] %(levelname)s: %(message)s"}},
        "handlers": {"access": {"class": "logging.StreamHandler", "formatter": "access", "stream": "ext://sys.stderr"},
                     "default": {"class": "logging.StreamHandler", "formatter": "default",
                                 "stream": "ext://sys.stderr"}},
        "loggers": {"uvicorn": {"handlers": ["default"], "level": "WARNING", "propagate": False},
                    "uvicorn.error": {"level": "WARNING"},
                    "uvicorn.access": {"handlers": ["access"], "level": "INFO" if access else "WARNING",
                                       "propagate": False}},
    }


class Server:
    """The HTTP front: uvicorn serving a Starlette app (:func:`mimo.infer.app.build_app`) on a socket bound here
    with a deep backlog.  ``serve_forever()`` blocks (run it in a thread for tests), ``shutdown()`` stops it,
    ``server_close()`` releases the socket -- the same calls as the standard library's servers."""

    def __init__(self, address, engine: ChatEngine, default_max_tokens: int = 256, max_tokens: int = 4096,
                 max_n: int = 8, max_body_bytes: int = 1 << 20, log_requests: bool = False, backlog: int = 2048):
        import uvicorn

        from mimo.infer.app import build_app

        self.engine = engine
        self.default_max_tokens, self.max_tokens, self.max_n = default_max_tokens, max_tokens, max_n
        self.max_body_bytes, self.log_requests = max_body_bytes, log_requests
        self.started = int(time.time())
        self.generator = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mimo-generate")
        self.sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(address)
        self.sock.listen(backlog)
        self.server_address = self.sock.getsockname()
        config = uvicorn.Config(build_app(self), log_config=_log_config(log_requests), access_log=log_requests,
                                lifespan="off", backlog=backlog, timeout_keep_alive=60, timeout_graceful_shutdown=5)
        self._uvicorn = uvicorn.Server(config)
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    def serve_forever(self) -> None:
        try:
            self._uvicorn.run(sockets=[self.sock])
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        self._uvicorn.should_exit = True
        self._stopped.wait(30)

    def server_close(self) -> None:
        self.generator.shutdown(wait=False, cancel_futures=True)
        self.sock.close()

    async def run_generation(self, fn, aborted: threading.Event):
        """Run ``fn()`` on the generation thread (requests queue there in arrival order); one whose client left
        while it waited is skipped."""
        def job():
            if aborted.is_set():
                from mimo.infer.engine import GenerationAborted

                raise GenerationAborted()
            return fn()

        return await asyncio.wrap_future(self.generator.submit(job))


def main(cfg: ServeConfig) -> int:
    from pathlib import Path

    from mimo.infer.engine import load_for_inference

    model, tok = load_for_inference(cfg.model, cfg.device, cfg.threads)
    engine = ChatEngine(model, tok, cfg.served_name or Path(cfg.model).resolve().name, cfg.speculative,
                        cfg.num_draft)
    try:
        server = Server((cfg.host, cfg.port), engine, cfg.default_max_tokens, cfg.max_tokens, cfg.max_n,
                        cfg.max_body_bytes, cfg.log_requests, cfg.backlog)
    except OSError as e:
        raise MimoError(f"cannot listen on {cfg.host}:{cfg.port}: {e.strerror or e}") from None
    mode = f"speculative, {model.num_mtp_layers} MTP layers" if engine.speculative else "plain decoding"
    print(f"[serve] {engine.name} ({mode}) on {server.url}  (POST /chat/completions, GET /models)", flush=True)
    try:
        server.serve_forever()  # uvicorn handles Ctrl-C / SIGTERM: finishes in-flight requests, then returns
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def cli(argv: list[str]) -> int:
    return stage_cli(argv, prog="mimo serve", description=__doc__.split("\n\n")[0], cls=ServeConfig,
                     section="serve", main=main)
