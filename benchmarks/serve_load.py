"""Load test of `cascade-router serve`: p50/p99 latency through the cascade beside a tier called directly.

Starts the server in-process (uvicorn in a thread on a free 127.0.0.1 port, the embedded models by
default) or uses a running one (``--url``, loopback only), then sends the same bounded load twice
from ``--concurrency`` concurrent clients: ``model: "cascade"`` (routed) and ``model: "slm"``
(the SLM tier directly, no routing). Questions cycle over the first SQuAD v1.1 dev questions
bundled with the package, in the "Passage: ... / Question: ..." convention.

Prints per mode: requests, OK, errors (anything but 200 and 429, or a transport error; must be 0),
HTTP 429s (reported apart; the in-process server's queue is sized so the load gets none),
p50/p99/max latency in seconds, throughput, and the share answered by the LLM. Exits 1 when a
mode had errors. Stops by itself: every request has a timeout and the whole run a deadline.

    python benchmarks/serve_load.py                              # 500 requests x 2 modes, 32 clients
    python benchmarks/serve_load.py --requests 60 --concurrency 8
    python benchmarks/serve_load.py --url http://127.0.0.1:8000 --api-key-env CASCADE_API_KEY
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import sys
import time
from importlib import resources
from urllib.parse import urlparse

import httpx
import numpy as np


def squad_questions(n: int) -> list[str]:
    """The first ``n`` SQuAD v1.1 dev questions as "Passage: ...\\nQuestion: ..." user messages."""
    path = resources.files("cascade_router") / "data" / "squad-v1.1-dev.json.gz"
    with path.open("rb") as f:
        data = json.load(gzip.open(f))
    out = []
    for art in data["data"]:
        for par in art["paragraphs"]:
            for qa in par["qas"]:
                out.append(f"Passage: {par['context']}\nQuestion: {qa['question']}")
                if len(out) >= n:
                    return out
    return out


async def run_mode(url: str, model: str, messages: list[str], concurrency: int, timeout_s: float,
                   headers: dict) -> dict:
    """Send one request per message with ``concurrency`` workers; latency in seconds."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for m in messages:
        queue.put_nowait(m)
    lat: list[float] = []
    statuses: dict[str, int] = {}
    routes = {"slm": 0, "llm": 0}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        while True:
            try:
                msg = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            t0 = time.perf_counter()
            try:
                r = await client.post("/v1/chat/completions", json={
                    "model": model, "messages": [{"role": "user", "content": msg}]})
                key = str(r.status_code)
                if r.status_code == 200:
                    lat.append(time.perf_counter() - t0)
                    route = r.headers.get("x-cascade-route")
                    if route in routes:
                        routes[route] += 1
            except httpx.HTTPError as e:
                key = type(e).__name__
            statuses[key] = statuses.get(key, 0) + 1

    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits, headers=headers) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    ok = statuses.get("200", 0)
    return {
        "mode": model, "requests": len(messages), "ok": ok, "http_429": statuses.get("429", 0),
        "errors": sum(v for k, v in statuses.items() if k not in ("200", "429")),
        "statuses": statuses, "wall_s": wall, "throughput_rps": ok / wall if wall else 0.0,
        "p50_s": float(np.percentile(lat, 50)) if lat else float("nan"),
        "p99_s": float(np.percentile(lat, 99)) if lat else float("nan"),
        "max_s": max(lat) if lat else float("nan"),
        "llm_share": routes["llm"] / ok if ok else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=None, help="a running server (loopback only); default: start one here")
    ap.add_argument("--api-key-env", default=None, help="environment variable holding the server's API key")
    ap.add_argument("--requests", type=int, default=500, help="requests per mode (default 500)")
    ap.add_argument("--concurrency", type=int, default=32, help="concurrent clients (default 32)")
    ap.add_argument("--questions", type=int, default=50, help="distinct questions cycled over (default 50)")
    ap.add_argument("--slm", default=None, help="SLM spec for the in-process server")
    ap.add_argument("--llm", default=None, help="LLM spec for the in-process server")
    ap.add_argument("--router", default="seed-v1", help="router for the in-process server (default seed-v1)")
    ap.add_argument("--threads", type=int, default=None, help="llama.cpp threads per model")
    ap.add_argument("--max-concurrency", type=int, default=4, help="server worker threads (default 4)")
    ap.add_argument("--timeout", type=float, default=600.0, help="per-request timeout, seconds")
    ap.add_argument("--deadline", type=float, default=3600.0, help="whole-run deadline, seconds")
    args = ap.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1 or args.questions < 1:
        ap.error("--requests, --concurrency and --questions must be >= 1")

    from cascade_router.server import ServerSettings, create_app, is_loopback

    headers = {}
    if args.api_key_env:
        key = os.environ.get(args.api_key_env, "")
        if not key:
            ap.error(f"environment variable {args.api_key_env} is unset or empty")
        headers["Authorization"] = f"Bearer {key.split(',')[0].strip()}"
    server = cascade = None
    if args.url:
        host = urlparse(args.url).hostname or ""
        if not is_loopback(host):
            ap.error(f"--url must be a loopback address (127.0.0.1, ::1, localhost), got {host!r}")
        url = args.url.rstrip("/").removesuffix("/v1")
    else:
        from cascade_router.config import CascadeConfig, TierConfig, build_cascade
        from cascade_router.server.runner import BackgroundServer

        cfg = CascadeConfig(router=args.router)
        if args.slm:
            cfg.slm = TierConfig(args.slm)
        if args.llm:
            cfg.llm = TierConfig(args.llm)
        cfg.slm.threads = cfg.llm.threads = args.threads
        t0 = time.perf_counter()
        cascade = build_cascade(cfg)
        print(f"loaded slm={cascade.slm.model_id} llm={cascade.llm.model_id} router={args.router} "
              f"in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        # queue bound >= the clients, so the load is queued, never refused
        settings = ServerSettings(max_concurrency=args.max_concurrency, max_queue=max(64, args.concurrency))
        server = BackgroundServer(create_app(cascade, settings)).start()
        url = server.url

    messages = squad_questions(args.questions)
    load = [messages[i % len(messages)] for i in range(args.requests)]
    results = []
    try:
        async def both():
            for mode in ("cascade", "slm"):
                results.append(await run_mode(url, mode, load, args.concurrency, args.timeout, headers))

        asyncio.run(asyncio.wait_for(both(), args.deadline))
    except asyncio.TimeoutError:
        print(f"error: run exceeded --deadline {args.deadline:g} s", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.stop()
        if cascade is not None:
            cascade.close()

    print(f"server {url}  requests/mode {args.requests}  concurrency {args.concurrency}  "
          f"distinct questions {len(messages)}")
    print(f"{'mode':<9}{'ok':>6}{'errors':>8}{'429':>6}{'p50 s':>9}{'p99 s':>9}{'max s':>9}{'req/s':>8}"
          f"{'LLM share':>11}")
    for r in results:
        print(f"{r['mode']:<9}{r['ok']:>6}{r['errors']:>8}{r['http_429']:>6}{r['p50_s']:>9.3f}{r['p99_s']:>9.3f}"
              f"{r['max_s']:>9.3f}{r['throughput_rps']:>8.2f}{r['llm_share']:>11.2f}")
        if r["errors"]:
            print(f"  {r['mode']} statuses: {r['statuses']}")
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
