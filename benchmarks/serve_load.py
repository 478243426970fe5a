"""Load test of `cascade-router serve`: p50/p99 latency through the cascade beside its first tier alone.

Sends the same bounded load twice from ``--concurrency`` concurrent clients: ``model: "cascade"``
to the cascade server (routed from the first tier through every gate), then the first tier
(the SLM of the default pair) alone. Questions cycle over the first SQuAD v1.1 dev questions
bundled with the package, in the "Passage: ... / Question: ..." convention.

How the first tier alone is measured: naming a tier in ``model`` no longer bypasses routing (it
STARTS the cascade at that tier and the gates after it still apply), so ``model: "slm"`` on the
cascade server would be the cascade again. The in-process mode therefore serves a second app on
its own port: a one-tier cascade ``Cascade([Tier(first.name, first.backend, first.price)], [])``
with no gate, built on the SAME backend object as the cascade's first tier (one model in memory,
same threads and prompt cache). The two modes run one after the other, so they never compete for
that backend. With ``--url`` (a running server, loopback only), pass ``--first-url`` for a server
of the first tier alone (e.g. ``cascade-router serve`` with a config holding that one tier);
without it only the cascade mode is measured.

The cascade is the default pair ``slm`` (smollm2-135m) -> ``llm`` (gemma3-270m) gated by
``seed-v1``, or the tiers of ``--config`` (any N); ``--slm``/``--llm`` replace the first/last
tier's model and ``--router`` the gate after the first tier.

Prints per mode: requests, OK, errors (anything but 200 and 429, or a transport error; must be 0),
HTTP 429s (reported apart; the in-process servers' queues are sized so the load gets none),
p50/p99/max latency in seconds, throughput, and the share answered by the last tier ("LLM
share", from the ``x-cascade-route`` header), then every mode's routes (tier name -> answers,
``abstain`` included). Exits 1 when a mode had errors. Stops by itself: every request has a
timeout and the whole run a deadline.

    python benchmarks/serve_load.py                              # 500 requests x 2 modes, 32 clients
    python benchmarks/serve_load.py --requests 60 --concurrency 8
    python benchmarks/serve_load.py --config three-tiers.toml --requests 60
    python benchmarks/serve_load.py --url http://127.0.0.1:8000 --first-url http://127.0.0.1:8001 \
        --api-key-env CASCADE_API_KEY
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


async def run_mode(label: str, url: str, model: str, messages: list[str], concurrency: int, timeout_s: float,
                   headers: dict, last_tier: str) -> dict:
    """Send one request per message to ``url`` with ``concurrency`` workers, asking for ``model``;
    latency in seconds; ``llm_share`` is the share of OK answers whose route is ``last_tier``."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for m in messages:
        queue.put_nowait(m)
    lat: list[float] = []
    statuses: dict[str, int] = {}
    routes: dict[str, int] = {}
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
                    route = r.headers.get("x-cascade-route") or "?"
                    routes[route] = routes.get(route, 0) + 1
            except httpx.HTTPError as e:
                key = type(e).__name__
            statuses[key] = statuses.get(key, 0) + 1

    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits, headers=headers) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    ok = statuses.get("200", 0)
    return {
        "mode": label, "requests": len(messages), "ok": ok, "http_429": statuses.get("429", 0),
        "errors": sum(v for k, v in statuses.items() if k not in ("200", "429")),
        "statuses": statuses, "wall_s": wall, "throughput_rps": ok / wall if wall else 0.0,
        "p50_s": float(np.percentile(lat, 50)) if lat else float("nan"),
        "p99_s": float(np.percentile(lat, 99)) if lat else float("nan"),
        "max_s": max(lat) if lat else float("nan"),
        "llm_share": routes.get(last_tier, 0) / ok if ok else float("nan"), "routes": routes,
    }


def tier_names(url: str, headers: dict, timeout_s: float) -> list[str]:
    """The tier names of a running server, in order (``GET /health``)."""
    r = httpx.get(url + "/health", headers=headers, timeout=timeout_s)
    r.raise_for_status()
    return [t["name"] for t in r.json()["tiers"]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=None, help="a running server (loopback only); default: start one here")
    ap.add_argument("--first-url", default=None,
                    help="with --url: a running server of the first tier alone (loopback only); "
                         "without it only the cascade is measured")
    ap.add_argument("--api-key-env", default=None, help="environment variable holding the server's API key")
    ap.add_argument("--requests", type=int, default=500, help="requests per mode (default 500)")
    ap.add_argument("--concurrency", type=int, default=32, help="concurrent clients (default 32)")
    ap.add_argument("--questions", type=int, default=50, help="distinct questions cycled over (default 50)")
    ap.add_argument("--config", default=None, help="cascade config (.toml/.yaml/.json) for the in-process server")
    ap.add_argument("--slm", default=None, help="first tier's model spec for the in-process server")
    ap.add_argument("--llm", default=None, help="last tier's model spec for the in-process server")
    ap.add_argument("--router", default=None,
                    help="gate after the first tier, in-process server (default: the config's, else seed-v1)")
    ap.add_argument("--threads", type=int, default=None, help="llama.cpp threads per model")
    ap.add_argument("--max-concurrency", type=int, default=4, help="server worker threads (default 4)")
    ap.add_argument("--timeout", type=float, default=600.0, help="per-request timeout, seconds")
    ap.add_argument("--deadline", type=float, default=3600.0, help="whole-run deadline, seconds")
    args = ap.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1 or args.questions < 1:
        ap.error("--requests, --concurrency and --questions must be >= 1")
    if args.first_url and not args.url:
        ap.error("--first-url goes with --url (the in-process mode serves the first tier alone itself)")

    from cascade_router.server import ServerSettings, create_app, is_loopback

    headers = {}
    if args.api_key_env:
        key = os.environ.get(args.api_key_env, "")
        if not key:
            ap.error(f"environment variable {args.api_key_env} is unset or empty")
        headers["Authorization"] = f"Bearer {key.split(',')[0].strip()}"
    servers, cascade = [], None
    if args.url:
        urls = {}
        for opt, u in (("--url", args.url), ("--first-url", args.first_url)):
            if u:
                host = urlparse(u).hostname or ""
                if not is_loopback(host):
                    ap.error(f"{opt} must be a loopback address (127.0.0.1, ::1, localhost), got {host!r}")
                urls[opt] = u.rstrip("/").removesuffix("/v1")
        url, first_url = urls["--url"], urls.get("--first-url")
        try:
            names = tier_names(url, headers, args.timeout)
            first_names = tier_names(first_url, headers, args.timeout) if first_url else None
        except (httpx.HTTPError, KeyError, ValueError) as e:
            print(f"error: cannot read the tiers from GET /health: {e}", file=sys.stderr)
            return 1
        if first_names is not None and len(first_names) != 1:
            print(f"warning: --first-url serves {len(first_names)} tiers ({', '.join(first_names)}), "
                  "not one tier alone; its figures include routing", file=sys.stderr)
        first, last = names[0], names[-1]
        first_model = first_names[0] if first_names else None
    else:
        from cascade_router.cascade import Cascade
        from cascade_router.config import CascadeConfig, build_cascade, load_config
        from cascade_router.server.runner import BackgroundServer
        from cascade_router.tiers import Tier

        cfg = load_config(args.config) if args.config else CascadeConfig()
        if args.slm:
            cfg.first.model = args.slm
        if args.llm:
            cfg.last.model = args.llm
        if args.router:
            cfg.first.router = args.router
        if args.threads is not None or not args.config:
            for t in cfg.tiers:
                t.threads = args.threads
        t0 = time.perf_counter()
        cascade = build_cascade(cfg)
        names = cascade.names
        first, last = names[0], names[-1]
        print(f"loaded {', '.join(f'{t.name}={t.model_id}' for t in cascade.tiers)} "
              f"gates={','.join(cfg.gate_labels())} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        # the first tier alone: a one-tier cascade (no gate) on the same backend object
        t1 = cascade.tiers[0]
        alone = Cascade([Tier(t1.name, t1.backend, t1.price, t1.options)], [], max_tokens=cascade.max_tokens,
                        style=cascade.style)
        # queue bound >= the clients, so the load is queued, never refused
        settings = ServerSettings(max_concurrency=args.max_concurrency, max_queue=max(64, args.concurrency))
        try:
            servers.append(BackgroundServer(create_app(cascade, settings)).start())
            servers.append(BackgroundServer(create_app(alone, settings)).start())
        except Exception:
            for s in servers:
                s.stop()
            cascade.close()
            raise
        url, first_url, first_model = servers[0].url, servers[1].url, t1.name

    modes = [("cascade", url, "cascade")]
    if first_url:
        modes.append((f"{first} alone", first_url, first_model))
    else:
        print("note: no --first-url, so the first tier alone is not measured (model: "
              f"{first!r} on the cascade server starts the cascade there, the gates still apply)", file=sys.stderr)
    messages = squad_questions(args.questions)
    load = [messages[i % len(messages)] for i in range(args.requests)]
    results = []
    try:
        async def all_modes():
            for label, u, model in modes:
                results.append(await run_mode(label, u, model, load, args.concurrency, args.timeout, headers, last))

        asyncio.run(asyncio.wait_for(all_modes(), args.deadline))
    except asyncio.TimeoutError:
        print(f"error: run exceeded --deadline {args.deadline:g} s", file=sys.stderr)
        return 1
    finally:
        for s in servers:
            s.stop()
        if cascade is not None:
            cascade.close()  # also the first tier's backend, shared by the one-tier cascade

    print(f"server {url}" + (f" (first tier alone: {first_url})" if first_url else "")
          + f"  tiers {' -> '.join(names)}  requests/mode {args.requests}  concurrency {args.concurrency}  "
          f"distinct questions {len(messages)}")
    w = max(9, *(len(r["mode"]) + 1 for r in results))
    print(f"{'mode':<{w}}{'ok':>6}{'errors':>8}{'429':>6}{'p50 s':>9}{'p99 s':>9}{'max s':>9}{'req/s':>8}"
          f"{'LLM share':>11}")
    for r in results:
        print(f"{r['mode']:<{w}}{r['ok']:>6}{r['errors']:>8}{r['http_429']:>6}{r['p50_s']:>9.3f}{r['p99_s']:>9.3f}"
              f"{r['max_s']:>9.3f}{r['throughput_rps']:>8.2f}{r['llm_share']:>11.2f}")
    print(f"LLM share: answered by the last tier ({last})")
    for r in results:
        print(f"  {r['mode']} routes: " + ", ".join(f"{k} {v}" for k, v in sorted(
            r["routes"].items(), key=lambda kv: (names.index(kv[0]) if kv[0] in names else len(names), kv[0]))))
        if r["errors"]:
            print(f"  {r['mode']} statuses: {r['statuses']}")
    return 1 if any(r["errors"] for r in results) else 0

if __name__ == "__main__":
    sys.exit(main())
