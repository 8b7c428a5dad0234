"""``mimo serve`` under a burst: C concurrent ``openai`` clients x R rounds against a real server on loopback.

Starts ``mimo serve --model DIR`` as a subprocess on a free port, then runs ``--rounds`` rounds; in each, every
one of ``--clients`` threads (its own ``openai.OpenAI`` client, so its own connection) sends one chat completion
at the same moment.  Prints one line per round and a summary; ``--json FILE`` writes::

    {"clients", "rounds", "requests", "errors", "p50_s", "p99_s", "tokens_per_s"}

``errors`` counts every request that raised (connection resets, timeouts, HTTP errors); latency is per request,
from send to the full response; tokens/s is completion tokens over the wall time of all rounds.

    python benchmarks/serve.py --model runs/demo/rl/final --clients 50 --rounds 10 --json serve.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, port: int, threads: int, max_tokens: int) -> subprocess.Popen:
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    argv = [sys.executable, "-m", "mimo.cli", "serve", "--model", model, "--port", str(port),
            "--log_requests", "false", "--default_max_tokens", str(max_tokens)]
    if threads:
        argv += ["--threads", str(threads)]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"mimo serve exited with status {proc.returncode}: {proc.stdout.read()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("mimo serve did not come up within 180 s")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def run_round(url: str, name: str, clients: int, max_tokens: int, seed: int) -> tuple[list[float], int, list[str]]:
    from openai import OpenAI

    barrier = threading.Barrier(clients)
    latencies: list[float] = []
    tokens = [0]
    errors: list[str] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        client = OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=600)
        barrier.wait()
        t0 = time.perf_counter()
        try:
            r = client.chat.completions.create(model=name, max_tokens=max_tokens, temperature=1.0, seed=seed + i,
                                               messages=[{"role": "user", "content": f"Compute {i} + {seed}."}])
            dt = time.perf_counter() - t0
            with lock:
                latencies.append(dt)
                tokens[0] += r.usage.completion_tokens
        except Exception as e:  # noqa: BLE001 -- every failure is counted, by kind
            with lock:
                errors.append(type(e).__name__)
        finally:
            client.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, tokens[0], errors


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="model directory to serve")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--max_tokens", type=int, default=16, help="completion tokens per request")
    p.add_argument("--threads", type=int, default=0, help="server torch threads (0: its default)")
    p.add_argument("--json", default="", help="write the summary here")
    args = p.parse_args()
    port = free_port()
    proc = start_server(args.model, port, args.threads, args.max_tokens)
    url = f"http://127.0.0.1:{port}/v1"
    name = Path(args.model).resolve().name
    all_lat: list[float] = []
    total_tokens, errors = 0, []
    t0 = time.perf_counter()
    try:
        for r in range(args.rounds):
            lat, tok, err = run_round(url, name, args.clients, args.max_tokens, seed=1000 * r)
            all_lat += lat
            total_tokens += tok
            errors += err
            print(f"round {r + 1:>2}/{args.rounds}: {len(lat)} ok, {len(err)} errors"
                  + (f" ({', '.join(sorted(set(err)))})" if err else "")
                  + f", p50 {percentile(lat, 0.5):.2f} s, max {max(lat, default=float('nan')):.2f} s", flush=True)
    finally:
        wall = time.perf_counter() - t0
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    out = {"clients": args.clients, "rounds": args.rounds, "requests": args.clients * args.rounds,
           "errors": len(errors), "p50_s": round(percentile(all_lat, 0.5), 4),
           "p99_s": round(percentile(all_lat, 0.99), 4), "tokens_per_s": round(total_tokens / wall, 2)}
    print("\n| clients | rounds | requests | errors | p50 (s) | p99 (s) | tokens/s |\n"
          "|---:|---:|---:|---:|---:|---:|---:|\n"
          f"| {out['clients']} | {out['rounds']} | {out['requests']} | {out['errors']} | {out['p50_s']:.2f} "
          f"| {out['p99_s']:.2f} | {out['tokens_per_s']:.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
