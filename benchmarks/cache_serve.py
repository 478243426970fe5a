"""Latency of a semantic-cache hit against a miss, through the server, in one run.

Starts ``serve``'s app (embedded models, the semantic cache on a temporary SQLite file) on
loopback, asks N SQuAD v1.1 questions once (misses: the cascade runs and stores), then the same
N again (exact hits), then their paraphrases where the hand-written set has one on the same
passage (semantic hits or misses), one request at a time, and prints wall-clock seconds per
request as the client sees them (mean, p50, p95) and the miss/hit ratio.

Usage: ``python benchmarks/cache_serve.py [--n 20] [--threads 2]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from importlib import resources
from pathlib import Path

import httpx
import numpy as np

from cascade_router.config import CascadeConfig, build_cascade
from cascade_router.datasets import load_dataset
from cascade_router.server import BackgroundServer, ServerSettings, create_app
from cascade_router.stages.cache import CacheSettings


def _ask(client, url, q, ctx) -> tuple[float, str, dict]:
    body = {"model": "cascade", "messages": [{"role": "user", "content": f"Passage: {ctx}\nQuestion: {q}"}]}
    t0 = time.perf_counter()
    r = client.post(url + "/v1/chat/completions", json=body)
    dt = time.perf_counter() - t0
    r.raise_for_status()
    return dt, r.headers.get("x-cascade-cache", "?"), r.json()


def _stats(name: str, xs: list[float]) -> str:
    a = np.array(xs)
    return (f"{name:<18} n={a.size:>3}  mean {1000 * a.mean():8.1f} ms  p50 {1000 * np.percentile(a, 50):8.1f} ms  "
            f"p95 {1000 * np.percentile(a, 95):8.1f} ms")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    pairs = [json.loads(x) for x in Path(str(resources.files("cascade_router") / "data" / "squad-v1.1-paraphrases.jsonl"))
             .read_text().splitlines() if x.strip()]
    by_id = {e.id: e for e in load_dataset("squad-v1.1")}
    chosen = [(by_id[p["id"]], p["paraphrase"]) for p in pairs][: a.n]
    with tempfile.TemporaryDirectory() as d:
        cfg = CascadeConfig(cache=CacheSettings(path=str(Path(d) / "cache.sqlite")))
        for t in cfg.tiers:
            t.threads = a.threads
        cascade = build_cascade(cfg)
        try:
            with BackgroundServer(create_app(cascade, ServerSettings(max_concurrency=1))) as srv, \
                    httpx.Client(timeout=120) as client:
                miss, hit, para_hit, para_miss = [], [], [], []
                for ex, _ in chosen:
                    dt, h, _ = _ask(client, srv.url, ex.question, ex.context)
                    assert h == "miss", h
                    miss.append(dt)
                for ex, _ in chosen:
                    dt, h, body = _ask(client, srv.url, ex.question, ex.context)
                    assert h == "hit" and body["usage"]["total_tokens"] == 0, (h, body["usage"])
                    hit.append(dt)
                for ex, para in chosen:
                    dt, h, _ = _ask(client, srv.url, para, ex.context)
                    (para_hit if h == "hit" else para_miss).append(dt)
                metrics = client.get(srv.url + "/metrics").text
        finally:
            cascade.close()
    print(_stats("miss (cascade)", miss))
    print(_stats("hit (exact)", hit))
    if para_hit:
        print(_stats("hit (paraphrase)", para_hit))
    if para_miss:
        print(_stats("paraphrase missed", para_miss))
    print(f"paraphrases answered from the cache: {len(para_hit)}/{len(chosen)}")
    print(f"miss / exact-hit mean latency: {statistics.mean(miss) / statistics.mean(hit):.1f}x "
          f"(p50 {np.percentile(miss, 50) / np.percentile(hit, 50):.1f}x)")
    print("\n".join(line for line in metrics.splitlines() if line.startswith("cascade_cache_lookups_total")))


if __name__ == "__main__":
    main()
