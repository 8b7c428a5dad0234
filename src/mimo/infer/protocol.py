"""The OpenAI-compatible request protocol of ``mimo serve``: which fields a request may carry, their ranges, and
:func:`parse_request`, which turns a JSON body into a :class:`GenRequest` or a :class:`RequestError` (a 4xx with
an OpenAI-style error body).  Shared by the server (:mod:`mimo.infer.serve`) and its ASGI app
(:mod:`mimo.infer.app`).
"""

from __future__ import annotations

import dataclasses

ROLES = ("system", "user", "assistant")
# accepted on both endpoints, but only at these (neutral) values
NEUTRAL = {"frequency_penalty": 0, "presence_penalty": 0, "tools": None, "tool_choice": None, "response_format": None,
           "logit_bias": None, "echo": False, "best_of": None, "suffix": None}
IGNORED = ("user", "metadata", "store", "parallel_tool_calls", "service_tier")
COMMON = {"model", "max_tokens", "temperature", "top_p", "n", "seed", "stop", "stop_token_ids", "stream",
          "stream_options", "logprobs", *NEUTRAL, *IGNORED}
FIELDS = {"chat": COMMON | {"messages", "max_completion_tokens"},
          "completion": COMMON | {"prompt", "return_tokens_as_token_ids"}}




class RequestError(Exception):
    """A client error: HTTP status, message, offending parameter."""

    def __init__(self, status: int, message: str, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param = status, message, param


@dataclasses.dataclass
class GenRequest:
    """A validated request of either endpoint."""

    kind: str  # "chat" or "completion"
    messages: list[dict] | None  # chat
    prompt: str | list[int] | None  # completion: text or token ids
    max_tokens: int
    temperature: float
    top_p: float
    n: int
    seed: int | None
    stop: list[str]
    stop_token_ids: list[int]
    stream: bool
    include_usage: bool
    logprobs: bool  # completion: the sampled tokens' log-probs (``logprobs: 0``)
    token_ids_out: bool  # completion: tokens as "token_id:N" (vLLM's return_tokens_as_token_ids)


def _number(body: dict, key: str, default: float, lo: float, hi: float, integer: bool = False):
    v = body.get(key, default)
    if v is None:
        return default
    ok = isinstance(v, int) if integer else isinstance(v, (int, float))
    if isinstance(v, bool) or not ok:
        raise RequestError(400, f"`{key}` must be {'an integer' if integer else 'a number'}, got {v!r}", key)
    if not lo <= v <= hi:
        raise RequestError(400, f"`{key}` must be in [{lo}, {hi}], got {v!r}", key)
    return v


def _token_ids(v, key: str, vocab: int) -> list[int]:
    if not isinstance(v, list) or not all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < vocab
                                          for t in v):
        raise RequestError(400, f"`{key}` must be a list of token ids in [0, {vocab})", key)
    return v


def _messages(messages) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "`messages` is required: a non-empty list of {role, content}", "messages")
    clean = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise RequestError(400, f"`{where}` must be an object", where)
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise RequestError(400, f"`{where}.role` must be one of {', '.join(ROLES)}, got {role!r}", f"{where}.role")
        if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
            if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                       for p in content):
                raise RequestError(400, f"`{where}.content` parts must be text parts", f"{where}.content")
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise RequestError(400, f"`{where}.content` must be a string", f"{where}.content")
        clean.append({"role": role, "content": content})
    return clean


def _prompt(v, vocab: int) -> str | list[int]:
    if isinstance(v, list) and len(v) == 1 and isinstance(v[0], (str, list)):
        v = v[0]  # a batch of one prompt
    if isinstance(v, str) and v:
        return v
    if isinstance(v, list) and v:
        return _token_ids(v, "prompt", vocab)
    raise RequestError(400, "`prompt` is required: a non-empty string or list of token ids (one prompt per "
                            "request)", "prompt")


def parse_request(body, kind: str, served_name: str, max_tokens: int, default_max_tokens: int, max_n: int,
                  vocab_size: int) -> GenRequest:
    """Validate a JSON-decoded body of ``/v1/chat/completions`` (kind "chat") or ``/v1/completions``
    ("completion") -> GenRequest, or raise RequestError (status, message, parameter)."""
    if not isinstance(body, dict):
        raise RequestError(400, f"request body must be a JSON object, got {type(body).__name__}")
    unknown = sorted(set(body) - FIELDS[kind])
    if unknown:
        raise RequestError(400, f"unrecognized request argument `{unknown[0]}`", unknown[0])
    for key, neutral in NEUTRAL.items():
        if body.get(key, neutral) not in (neutral, None):
            raise RequestError(400, f"`{key}` is not supported by this server (only {neutral!r})", key)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError(400, "`model` is required (a string)", "model")
    if model != served_name:
        raise RequestError(404, f"the model `{model}` does not exist (this server serves `{served_name}`)", "model")
    messages = _messages(body.get("messages")) if kind == "chat" else None
    prompt = _prompt(body.get("prompt"), vocab_size) if kind == "completion" else None
    if "max_tokens" in body and "max_completion_tokens" in body:
        raise RequestError(400, "give `max_tokens` or `max_completion_tokens`, not both", "max_tokens")
    key = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    mt = _number(body, key, default_max_tokens, 1, max_tokens, integer=True)
    stop = body.get("stop")
    stop = [] if stop is None else [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) and s for s in stop):
        raise RequestError(400, "`stop` must be a non-empty string or a list of at most 4 of them", "stop")
    stop_ids = _token_ids(body.get("stop_token_ids") or [], "stop_token_ids", vocab_size)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError(400, f"`stream` must be true or false, got {stream!r}", "stream")
    opts = body.get("stream_options") or {}
    if not isinstance(opts, dict) or set(opts) - {"include_usage"} or \
            not isinstance(opts.get("include_usage", False), bool):
        raise RequestError(400, "`stream_options` must be {\"include_usage\": bool}", "stream_options")
    lp = body.get("logprobs")
    if kind == "chat" and lp not in (None, False):
        raise RequestError(400, "`logprobs` is not supported on chat completions (use /v1/completions)", "logprobs")
    if kind == "completion" and lp is not None and (isinstance(lp, bool) or lp != 0):
        raise RequestError(400, "`logprobs` must be 0 (the sampled tokens' log-probs; no alternatives)", "logprobs")
    if lp is not None and lp is not False and stream:
        raise RequestError(400, "`logprobs` with `stream` is not supported", "logprobs")
    token_ids_out = body.get("return_tokens_as_token_ids", False)
    if not isinstance(token_ids_out, bool):
        raise RequestError(400, "`return_tokens_as_token_ids` must be true or false", "return_tokens_as_token_ids")
    seed = _number(body, "seed", 0, 0, 2**63 - 1, integer=True) if body.get("seed") is not None else None
    return GenRequest(kind=kind, messages=messages, prompt=prompt, max_tokens=mt,
                      temperature=float(_number(body, "temperature", 1.0, 0.0, 2.0)),
                      top_p=float(_number(body, "top_p", 1.0, 1e-6, 1.0)),
                      n=_number(body, "n", 1, 1, max_n, integer=True), seed=seed, stop=stop, stop_token_ids=stop_ids,
                      stream=stream, include_usage=bool(opts.get("include_usage", False)),
                      logprobs=kind == "completion" and lp == 0, token_ids_out=token_ids_out)
