"""The ASGI app of ``mimo serve``: OpenAI routes on Starlette over a :class:`~mimo.infer.serve.ChatEngine`.

Requests are parsed and validated by :func:`mimo.infer.serve.parse_request`; generation runs on the server's
generation thread (:meth:`~mimo.infer.serve.Server.run_generation`) so the event loop stays free to accept and
queue a burst of clients.  Every request carries an abort flag that is set when its client disconnects: a
streaming response's generator is cancelled by Starlette on disconnect, a plain one is watched for
``http.disconnect`` while it waits; the engine polls the flag between decode steps.  Errors are OpenAI-style
JSON bodies (``{"error": {"message", "type", "param", "code"}}``) for every status, routing errors included.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from mimo.infer.protocol import GenRequest, RequestError, parse_request


def error_response(status: int, message: str, param: str | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    if status == 404 and param == "model":
        kind = "not_found_error"
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": None}}, status)


async def _read_json(request: Request, limit: int):
    n = request.headers.get("content-length")
    if n is not None and not n.isdigit():
        raise RequestError(400, f"bad Content-Length {n!r}")
    if n is not None and int(n) > limit:
        raise RequestError(413, f"request body of {n} bytes is over the limit of {limit}")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise RequestError(413, f"request body is over the limit of {limit} bytes")
    try:
        return json.loads(bytes(raw).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RequestError(400, f"malformed JSON body: {e}") from None


def _choice(engine, req: GenRequest, c: dict) -> dict:
    if req.kind == "chat":
        return {"index": c["index"], "message": {"role": "assistant", "content": c["text"]}, "logprobs": None,
                "finish_reason": c["finish_reason"]}
    logprobs = None
    if req.logprobs:
        tokens = ([f"token_id:{t}" for t in c["ids"]] if req.token_ids_out
                  else [engine.tok.decode([t]) for t in c["ids"]])
        logprobs = {"tokens": tokens, "token_logprobs": c["logprobs"], "top_logprobs": None}
    return {"index": c["index"], "text": c["text"], "logprobs": logprobs, "finish_reason": c["finish_reason"]}


async def _watch_disconnect(request: Request, aborted: threading.Event) -> None:
    """Set ``aborted`` when the client hangs up (the body is read already, so the next message is that)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            aborted.set()
            return


def _sse(obj) -> bytes:
    return b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"


def build_app(server) -> Starlette:
    """The Starlette app for ``server`` (a :class:`~mimo.infer.serve.Server`: engine, limits, generation thread)."""
    from mimo.infer.engine import GenerationAborted

    engine = server.engine

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [
            {"id": engine.name, "object": "model", "created": server.started, "owned_by": "mimo"}]})

    async def complete(request: Request, kind: str) -> Response:
        try:
            body = await _read_json(request, server.max_body_bytes)
            req = parse_request(body, kind, engine.name, server.max_tokens, server.default_max_tokens, server.max_n,
                                engine.vocab_size)
            prompt = engine.prompt_ids(req)
            if len(prompt) + req.max_tokens > engine.max_positions:
                raise RequestError(400, f"too many tokens: the prompt has {len(prompt)} and max_tokens is "
                                        f"{req.max_tokens}, over the model's context of {engine.max_positions}",
                                   "max_tokens")
        except RequestError as e:
            return error_response(e.status, e.message, e.param)
        except ClientDisconnect:
            return Response(status_code=499)
        prefix = "chatcmpl" if kind == "chat" else "cmpl"
        cid, created = f"{prefix}-{uuid.uuid4().hex[:24]}", int(time.time())
        aborted = threading.Event()
        if req.stream:
            return StreamingResponse(_stream(req, prompt, cid, created, aborted), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        watcher = asyncio.ensure_future(_watch_disconnect(request, aborted))
        try:
            choices, usage = await server.run_generation(lambda: engine.complete(req, prompt, abort=aborted.is_set),
                                                         aborted)
        except GenerationAborted:
            return Response(status_code=499)  # nobody is listening; the access log shows the status
        except Exception as e:  # a bug must not take the server down; report it to this client only
            return error_response(500, f"internal error: {type(e).__name__}: {e}")
        finally:
            watcher.cancel()
        return JSONResponse({
            "id": cid, "object": "chat.completion" if kind == "chat" else "text_completion", "created": created,
            "model": engine.name, "usage": usage, "choices": [_choice(engine, req, c) for c in choices]})

    async def _stream(req: GenRequest, prompt: list[int], cid: str, created: int, aborted: threading.Event):
        chat = req.kind == "chat"
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()

        def chunk(choices, usage=None) -> dict:
            obj = {"id": cid, "object": "chat.completion.chunk" if chat else "text_completion", "created": created,
                   "model": engine.name, "choices": choices}
            if usage is not None:
                obj["usage"] = usage
            return obj

        def piece(i: int, text: str | None, finish: str | None = None) -> dict:
            if chat:
                return {"index": i, "delta": {} if text is None else {"content": text}, "finish_reason": finish}
            return {"index": i, "text": text or "", "logprobs": None, "finish_reason": finish}

        def on_delta(i: int, text: str) -> None:  # on the generation thread
            loop.call_soon_threadsafe(events.put_nowait, ("delta", i, text))

        def run():
            return engine.complete(req, prompt, on_delta=on_delta, abort=aborted.is_set)

        try:
            if chat:
                for i in range(req.n):
                    yield _sse(chunk([{"index": i, "delta": {"role": "assistant", "content": ""},
                                       "finish_reason": None}]))
            job = asyncio.ensure_future(server.run_generation(run, aborted))
            job.add_done_callback(lambda f: (events.put_nowait(("end",)), f.cancelled() or f.exception()))
            while True:
                ev = await events.get()
                if ev[0] == "end":
                    break
                yield _sse(chunk([piece(ev[1], ev[2])]))
            while not events.empty():  # deltas posted just before the end marker
                ev = events.get_nowait()
                if ev[0] == "delta":
                    yield _sse(chunk([piece(ev[1], ev[2])]))
            try:
                choices, usage = job.result()
                for c in choices:
                    yield _sse(chunk([piece(c["index"], None, c["finish_reason"])]))
                if req.include_usage:
                    yield _sse(chunk([], usage))
            except GenerationAborted:
                return
            except Exception as e:  # headers are out: report in-band, then end the stream properly
                yield _sse({"error": {"message": f"internal error: {type(e).__name__}: {e}", "type": "server_error"}})
            yield _sse(b"[DONE]")
        finally:  # cancelled when the client disconnects: stop generating for it
            aborted.set()

    async def chat_completions(request: Request) -> Response:
        return await complete(request, "chat")

    async def completions(request: Request) -> Response:
        return await complete(request, "completion")

    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 405:
            return error_response(405, f"method {request.method} not allowed on {request.url.path}")
        if exc.status_code == 404:
            hint = " (try /v1/chat/completions or /v1/completions)" if request.method == "POST" else ""
            return error_response(404, f"no route {request.method} {request.url.path}{hint}")
        return error_response(exc.status_code, str(exc.detail))

    routes = [Route("/health", health, methods=["GET"]), Route("/v1/health", health, methods=["GET"]),
              Route("/v1/models", models, methods=["GET"]),
              Route("/v1/chat/completions", chat_completions, methods=["POST"]),
              Route("/v1/completions", completions, methods=["POST"])]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})
