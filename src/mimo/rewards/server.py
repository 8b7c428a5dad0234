"""``mimo judge serve``: the reward service over HTTP, and the client that rollout workers use.

The paper runs code rewards on dedicated servers that rollout workers call.  :class:`RewardServer` puts a
:class:`~mimo.rewards.pool.RewardPool` (local worker processes, each with its own sandbox) behind a small JSON API
on the standard library's threading HTTP server; :class:`HttpBackend` is the ``backend="http"`` of ``RewardPool``,
so a trainer switches from local rewards to a judge machine by configuration only.

Endpoints (JSON in, JSON out):

* ``GET /health`` -> ``{"status": "ok", "workers": N, "sandbox": "..."}``
* ``POST /reward`` ``{"kind", "completion", "reference"}`` -> ``{"score", "reason", "verdicts"}``
* ``POST /rewards`` ``{"items": [{"kind", "completion", "reference"}, ...]}`` -> ``{"results": [...]}``
* ``POST /judge`` ``{"code", "tests", "fn_name"?, "limits"?}`` -> ``{"verdicts", "reason", "score"}``

A bad request gets 400 with ``{"error": "..."}``.  There is no authentication: bind to loopback (the default) or a
private network only.  Departure from the paper: its judge servers' protocol is not published; this one is ours.
"""

from __future__ import annotations

import ipaddress
import json
import sys
import threading
import urllib.error
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from mimo.errors import MimoError

MAX_BODY = 512 << 20  # LiveCodeBench problems carry megabytes of tests


class RewardServer:
    """A RewardPool behind HTTP.  ``port=0`` picks a free port (see :attr:`url`)."""

    def __init__(self, pool, host: str = "127.0.0.1", port: int = 8321):
        self.pool = pool
        if not _is_loopback(host):
            print(f"mimo judge serve: WARNING: listening on {host}, not loopback; the API has no authentication",
                  file=sys.stderr)
        handler = type("Handler", (_Handler,), {"pool": pool})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def start(self) -> RewardServer:
        """Serve on a background thread (tests, notebooks); :meth:`close` stops it."""
        self._thread = threading.Thread(target=self.serve_forever, daemon=True, name="reward-server")
        self._thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Handler(BaseHTTPRequestHandler):
    pool = None  # set on the per-server subclass
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: one line per request would drown the trainer's logs
        pass

    def _send(self, status: int, obj: dict) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 -- http.server's naming
        if self.path.rstrip("/") == "/health":
            from mimo.rewards.sandbox import sandbox_status

            self._send(200, {"status": "ok", "workers": self.pool.workers, "sandbox": sandbox_status()})
        else:
            self._send(404, {"error": f"no such endpoint: GET {self.path}"})

    def do_POST(self):  # noqa: N802
        try:
            length = int(self.headers.get("Content-Length", "0"))
            if length > MAX_BODY:
                raise MimoError(f"request body over {MAX_BODY} bytes")
            request = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(request, dict):
                raise MimoError("expected a JSON object")
            path = self.path.rstrip("/")
            if path == "/reward":
                reply = self._reward(request).result().to_dict()
            elif path == "/rewards":
                items = request.get("items")
                if not isinstance(items, list):
                    raise MimoError("/rewards: expected {'items': [...]}")
                futures = [self._reward(item) for item in items]
                reply = {"results": [f.result().to_dict() for f in futures]}
            elif path == "/judge":
                reply = self._judge(request)
            else:
                self._send(404, {"error": f"no such endpoint: POST {self.path}"})
                return
        except (MimoError, ValueError, KeyError, TypeError) as e:
            self._send(400, {"error": str(e)})
            return
        except Exception as e:  # noqa: BLE001 -- a 500 with a reason beats a dropped connection
            self._send(500, {"error": f"{type(e).__name__}: {e}"})
            return
        self._send(200, reply)

    def _reward(self, item: dict) -> Future:
        if not isinstance(item, dict):
            raise MimoError("expected {'kind', 'completion', 'reference'}")
        return self.pool.submit(item.get("kind"), item.get("completion"), item.get("reference"))

    def _judge(self, request: dict) -> dict:
        reference = {"tests": request.get("tests"), "fn_name": request.get("fn_name"),
                     "limits": request.get("limits") or {}}
        result = self.pool.submit("judge", request.get("code"), reference).result()
        return {"verdicts": list(result.verdicts), "reason": result.reason, "score": result.score}


class HttpBackend:
    """``RewardPool(backend="http", url=...)``: tasks go to a ``mimo judge serve`` with ``workers`` in flight."""

    def __init__(self, url: str, workers: int, timeout_s: float = 3600.0):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reward-http")
        self.stats = {"requests": 0}

    def submit_task(self, task: dict) -> Future:
        self.stats["requests"] += 1
        return self._executor.submit(self._post, task)

    def _post(self, task: dict) -> dict:
        # The server applies its own limits (a reference may still carry per-problem "limits").
        body = {k: task[k] for k in ("kind", "completion", "reference")}
        request = urllib.request.Request(self.url + "/reward", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as e:
            message = json.loads(e.read() or b"{}").get("error", str(e))
            return {"error": message, "user_error": e.code == 400}
        except (urllib.error.URLError, OSError) as e:
            raise ConnectionError(f"reward server {self.url}: {e}") from None

    def health(self) -> dict:
        with urllib.request.urlopen(self.url + "/health", timeout=30) as response:
            return json.loads(response.read())

    def close(self) -> None:
        self._executor.shutdown(wait=True)
