"""A minimal client for any OpenAI-compatible chat endpoint (vLLM, SGLang, llama.cpp, hosted APIs).

Used by the LLM tagger and by synthetic-data generation.  Standard library only (``urllib``): one POST to
``{base_url}/chat/completions`` per request, retried with exponential backoff on connection errors, 429 and 5xx,
and a thread pool for concurrency (the work is network-bound).  The API key comes from the environment variable
named in the config, never from a file in the repository.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from mimo.errors import MimoError

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class ChatClient:
    """``complete(messages) -> str`` against ``base_url`` (e.g. ``http://127.0.0.1:8000/v1``)."""

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", timeout: float = 120.0,
                 max_retries: int = 4, backoff: float = 0.5):
        if not base_url:
            raise MimoError("an OpenAI-compatible endpoint is required (--endpoint http://HOST:PORT/v1)")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key = os.environ.get(api_key_env, "") if api_key_env else ""
        self.timeout, self.max_retries, self.backoff = timeout, max_retries, backoff

    def complete(self, messages: list[dict], **params) -> str:
        """The first choice's message content; raises MimoError after the retries are spent."""
        return self.complete_choices(messages, keep_reasoning=False, **params)[0]["text"]

    def complete_choices(self, messages: list[dict], keep_reasoning: bool = True, **params) -> list[dict]:
        """Every choice (``n`` of them when ``params`` asks for ``n``) as ``{"text", "finish_reason", "tokens"?}``;
        with ``keep_reasoning``, reasoning that a server returns apart (``reasoning_content``, vLLM's reasoning
        parsers) is put back before the content as ``<think>\\n...\\n</think>\\n``.  Raises MimoError after the
        retries are spent."""
        body = json.dumps({"model": self.model, "messages": messages, **params}).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(self.max_retries + 1):
            req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    data = json.loads(resp.read())
                choices = data["choices"]
                if not choices:
                    raise IndexError("no choices")
                usage = data.get("usage") if len(choices) == 1 else None  # token counts only for a lone choice
                return [_choice(c, usage, keep_reasoning) for c in choices]
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}: {e.read()[:200]!r}"
                if e.code not in RETRY_STATUS:
                    break
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                last = f"{type(e).__name__}: {e}"
            except (KeyError, IndexError, TypeError, json.JSONDecodeError) as e:
                last = f"malformed response ({type(e).__name__}: {e})"
                break
            if attempt < self.max_retries:
                time.sleep(self.backoff * 2**attempt)
        raise MimoError(f"{self.url}: request failed ({last})")

    def complete_many(self, conversations: list[list[dict]], concurrency: int = 8, **params) -> list[str | None]:
        """Complete many conversations concurrently, in order; a request that keeps failing gives None."""

        def one(messages):
            try:
                return self.complete(messages, **params)
            except MimoError:
                return None

        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            return list(pool.map(one, conversations))


def _choice(choice: dict, usage: dict | None, keep_reasoning: bool) -> dict:
    message = choice["message"]
    text = message.get("content") or ""
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if reasoning and keep_reasoning:
        text = f"<think>\n{reasoning}\n</think>\n{text}"
    out = {"text": text, "finish_reason": choice.get("finish_reason")}
    if usage and isinstance(usage.get("completion_tokens"), int):
        out["tokens"] = usage["completion_tokens"]
    return out
