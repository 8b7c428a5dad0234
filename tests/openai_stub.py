"""A real OpenAI-compatible HTTP server on loopback that returns canned chat completions (for tests).

    with OpenAIStub(lambda messages: "reply") as url:   # url = "http://127.0.0.1:PORT/v1"
        ...

``reply`` may return a string (the completion) or an int (an HTTP error status to answer with).  With
``completions``, ``/v1/completions`` answers too: ``completions(body)`` gives one list of token ids per sample, sent
back as vLLM does with ``return_tokens_as_token_ids`` (``"token_id:N"``, log-prob 0).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class OpenAIStub:
    def __init__(self, reply, completions=None):
        self.reply, self.completions = reply, completions
        self.requests: list[dict] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append(body)
                if self.path == "/v1/completions" and stub.completions is not None:
                    samples = stub.completions(body)
                    data = json.dumps({"id": "x", "object": "text_completion", "model": body.get("model"), "choices": [
                        {"index": i, "finish_reason": "stop", "text": "",
                         "logprobs": {"tokens": [f"token_id:{t}" for t in ids], "token_logprobs": [0.0] * len(ids)}}
                        for i, ids in enumerate(samples)]}).encode()
                elif self.path != "/v1/chat/completions":
                    self.send_error(404)
                    return
                else:
                    out = stub.reply(body["messages"])
                    if isinstance(out, int):
                        self.send_error(out)
                        return
                    data = json.dumps({"id": "x", "object": "chat.completion", "model": body.get("model"),
                                       "choices": [{"index": 0, "finish_reason": "stop",
                                                    "message": {"role": "assistant", "content": out}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
