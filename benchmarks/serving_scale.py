"""Serving at scale (issue 13): each figure measured beside its baseline in one run, as a ratio.

Parts (``--part``, default all, in this order):

* ``early``: early escalation on a ``signal:min_logprob:T`` gate (T: the median of the first
  tier's ``min_logprob`` on the committed SQuAD v1.1 run, so about half escalate). Offline on the
  committed generations of ``--run`` (1,000 questions): the questions the rule stops early, the
  tokens not generated and the first-tier decoding seconds saved (each stopped generation's
  ``predicted_ms`` times the share of its tokens not generated). Then live on ``--n`` questions of
  the same run's sample with the embedded pair: the cascade with and without early escalation,
  first-tier seconds on escalated questions and whether every decision is the same.
* ``stream``: time to the first content token of an escalated, streamed general-chat request,
  live streaming against the answer sent when complete (``ServerSettings.live_stream``), same
  cascade, same prompts. The instruct SmolLM2 is the LAST tier here (Gemma 270M base writes
  one short line of chat), both gates escalate.
* ``endpoint``: llama.cpp's own HTTP server (an in-process Gemma with 4 slots, reached as an
  OpenAI-compatible endpoint tier) at 1, 2 and 4 requests in flight: questions per second, one
  question per passage (so no prompt prefix is reused).
* ``serve``: ``serve_load``'s cascade mode (16 clients) on the embedded pair with 1 and with 4
  llama.cpp slots per tier: p50/p99 and requests per second.
* ``hung``: a last tier that accepts connections and never replies (5 s timeout, no retry):
  latency of requests the first tier answers, sent while escalations hang, under the settings
  before this issue (4 worker threads, no per-tier slots, no breaker) and now (32 workers, the
  hung tier's 4 slots with a queue timeout, a breaker).

    .venv/bin/python benchmarks/serving_scale.py --threads 2
    .venv/bin/python benchmarks/serving_scale.py --part early --n 40
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

PARTS = ("early", "stream", "endpoint", "serve", "hung")


def _first_tier_rows(run: Path):
    from cascade_router.evaluation.store import RunStore

    store = RunStore(run)
    try:
        return [r for r in store.rows() if r.tier == "slm" and r.generation is not None]
    finally:
        store.close()


def part_early(args) -> None:
    import shutil
    import tempfile

    from cascade_router.cascade import Cascade
    from cascade_router.early import early_check
    from cascade_router.evaluation.runs import open_run
    from cascade_router.models.base import Generation
    from cascade_router.models.registry import load_model
    from cascade_router.routers.threshold import SignalRouter
    from cascade_router.signals import compute_signals, min_logprob
    from cascade_router.tiers import Tier

    with tempfile.TemporaryDirectory() as tmp:  # never touch the committed database
        shutil.copy(Path(args.run) / "generations.sqlite", Path(tmp) / "generations.sqlite")
        rows = _first_tier_rows(Path(tmp))
    lows = [min_logprob(r.generation) for r in rows]
    t = float(np.nanmedian(lows))
    gate = SignalRouter("min_logprob", t)
    check = early_check(gate)
    esc = stopped = tok_full = tok_early = 0
    ms_full = ms_saved = 0.0
    for r in rows:
        g = r.generation
        if not gate.predict(compute_signals(g, r.answer, None))[0]:
            continue
        esc += 1
        n = len(g.tokens)
        k = next((k for k in range(1, n + 1) if check(Generation(text="", tokens=g.tokens[:k], logprobs=g.logprobs[:k]))), n)
        tok_full += n
        tok_early += k
        ms_full += g.predicted_ms or 0.0
        if k < n:
            stopped += 1
            ms_saved += (g.predicted_ms or 0.0) * (n - k) / max(g.completion_tokens, 1)
    print(f"early escalation, gate signal:min_logprob:{t:.3f} (median), offline on {len(rows)} committed generations of {args.run}:")
    print(f"  escalated {esc} ({esc / len(rows):.1%}); stopped early {stopped} of them ({stopped / max(esc, 1):.1%})")
    print(f"  first-tier tokens on escalated questions: {tok_full} full -> {tok_early} early ({tok_early / max(tok_full, 1):.2f}x)")
    print(f"  first-tier decoding seconds on escalated questions: {ms_full / 1e3:.1f} s, saved {ms_saved / 1e3:.1f} s "
          f"({ms_saved / max(ms_full, 1e-9):.1%} of decoding)")

    _, examples = open_run(args.run)
    exs = examples[: args.n]
    slm = load_model("smollm2-135m", threads=args.threads)
    llm = load_model("gemma3-270m", threads=args.threads)
    try:
        out = {}
        for early in (False, True):
            c = Cascade([Tier("slm", slm), Tier("llm", llm)], [gate], early_escalation=early)
            out[early] = [c.answer(ex.question, ex.context) for ex in exs]
        same = sum(a.route == b.route and a.decisions[0].outcome == b.decisions[0].outcome for a, b in zip(out[False], out[True]))
        escl = [(a, b) for a, b in zip(out[False], out[True]) if a.decisions[0].outcome == "escalate"]
        s_full = sum(a.runs[0].latency_s for a, _ in escl)
        s_early = sum(b.runs[0].latency_s for _, b in escl)
        n_stop = sum(b.runs[0].stopped_early for _, b in escl)
        print(f"  live, {len(exs)} questions (embedded pair, threads={args.threads}): decisions identical {same}/{len(exs)}; "
              f"escalated {len(escl)}, stopped early {n_stop}")
        print(f"  first-tier seconds on escalated questions: full {s_full:.2f} s, early {s_early:.2f} s "
              f"(ratio {s_early / max(s_full, 1e-9):.2f}, saved {s_full - s_early:.2f} s = "
              f"{(s_full - s_early) / max(len(escl), 1):.3f} s per escalated question)")
    finally:
        slm.close()
        llm.close()


CHAT_PROMPTS = ["Explain how a lighthouse works.", "Tell me about the history of Paris.",
                "Describe your ideal weekend in detail.", "Give me three tips for sleeping better.",
                "Explain why the sky is blue."]


def _stream_times(url: str, prompt: str, max_tokens: int) -> tuple[float, float, int]:
    """Seconds to the first and the last content piece of one streamed chat request, and the
    number of content pieces."""
    t0 = time.perf_counter()
    first = last = None
    n = 0
    with httpx.stream("POST", url + "/v1/chat/completions", timeout=300, json={
            "stream": True, "max_tokens": max_tokens, "messages": [{"role": "user", "content": prompt}]}) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: {"):
                continue
            for ch in json.loads(line[6:])["choices"]:
                if ch.get("delta", {}).get("content"):
                    now = time.perf_counter() - t0
                    first = now if first is None else first
                    last = now
                    n += 1
    return first or float("nan"), last or float("nan"), n


def part_stream(args) -> None:
    from cascade_router.cascade import Cascade
    from cascade_router.models.registry import load_model
    from cascade_router.routers import get_router
    from cascade_router.server import BackgroundServer, ServerSettings, create_app
    from cascade_router.tiers import Tier

    first = load_model("gemma3-270m", threads=args.threads)
    last = load_model("smollm2-135m", threads=args.threads)
    c = Cascade([Tier("first", first), Tier("last", last)], [get_router("always-llm")],
                chat_gate=get_router("always-llm"))
    try:
        res = {}
        for live in (False, True):
            with BackgroundServer(create_app(c, ServerSettings(live_stream=live))) as srv:
                _stream_times(srv.url, "Hello.", 8)  # warm up
                res[live] = [_stream_times(srv.url, p, args.chat_tokens) for p in CHAT_PROMPTS]
    finally:
        c.close()
    print(f"streaming, {len(CHAT_PROMPTS)} escalated chat requests, {args.chat_tokens}-token budget, last tier SmolLM2 (threads={args.threads}):")
    for live in (False, True):
        f = [x[0] for x in res[live]]
        la = [x[1] for x in res[live]]
        print(f"  {'live    ' if live else 'buffered'}: first content mean {statistics.mean(f):.2f} s, "
              f"last content mean {statistics.mean(la):.2f} s, pieces {sum(x[2] for x in res[live])}")
    ratio = statistics.mean(x[0] for x in res[True]) / statistics.mean(x[0] for x in res[False])
    print(f"  time to first content token, live / buffered: {ratio:.2f}")


def part_endpoint(args) -> None:
    from cascade_router.cascade import ask_model
    from cascade_router.datasets import load_dataset
    from cascade_router.models.openai_compat import OpenAICompatBackend
    from cascade_router.models.registry import load_model

    local = load_model("gemma3-270m", threads=args.threads, parallel=4)
    ep = OpenAICompatBackend("gemma3-270m", local.base_url, family=local.family, api_key_env=None, timeout_s=300)
    seen: set[str] = set()  # one question per passage: the slots' prompt caches do not help
    exs = [ex for ex in load_dataset("squad-v1.1") if not (ex.context in seen or seen.add(ex.context))][: args.endpoint_n]
    try:
        ask_model(ep, exs[0].question, exs[0].context)  # warm up
        rates = {}
        for k in (1, 2, 4):
            t0 = time.perf_counter()
            with ThreadPoolExecutor(k) as pool:
                list(pool.map(lambda ex: ask_model(ep, ex.question, ex.context, max_tokens=24), exs))
            rates[k] = len(exs) / (time.perf_counter() - t0)
    finally:
        ep.close()
        local.close()
    print(f"llama.cpp HTTP endpoint (Gemma, 4 slots), {len(exs)} SQuAD questions on distinct passages, threads={args.threads}:")
    for k, r in rates.items():
        print(f"  {k} in flight: {r:.2f} questions/s ({r / rates[1]:.2f}x of 1 in flight)")


def part_serve(args) -> None:
    from serve_load import run_mode, squad_questions

    from cascade_router.config import CascadeConfig, build_cascade
    from cascade_router.server import BackgroundServer, ServerSettings, create_app

    msgs = squad_questions(50)
    load = [msgs[i % len(msgs)] for i in range(args.serve_requests)]
    out = {}
    for parallel in (1, 4):
        cfg = CascadeConfig()
        for t in cfg.tiers:
            t.threads, t.parallel = args.threads, parallel
        cascade = build_cascade(cfg)
        try:
            with BackgroundServer(create_app(cascade, ServerSettings(max_queue=64))) as srv:
                out[parallel] = asyncio.run(run_mode(f"{parallel} slot(s)", srv.url, "cascade", load, 16, 600, {}, "llm"))
        finally:
            cascade.close()
    print(f"serve_load cascade mode, {args.serve_requests} requests, 16 clients, embedded pair, threads={args.threads}:")
    for p, r in out.items():
        print(f"  {p} slot(s) per tier: p50 {r['p50_s']:.2f} s, p99 {r['p99_s']:.2f} s, {r['throughput_rps']:.2f} req/s, "
              f"errors {r['errors']}, LLM share {r['llm_share']:.2f}")
    print(f"  ratios 4/1: p50 {out[4]['p50_s'] / out[1]['p50_s']:.2f}, p99 {out[4]['p99_s'] / out[1]['p99_s']:.2f}, "
          f"throughput {out[4]['throughput_rps'] / out[1]['throughput_rps']:.2f}")


def _hung_endpoint():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)
    conns = []

    def accept():
        while True:
            try:
                conns.append(srv.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return srv, conns, f"http://127.0.0.1:{srv.getsockname()[1]}/v1"


def part_hung(args) -> None:
    from cascade_router.cascade import Cascade
    from cascade_router.models.openai_compat import OpenAICompatBackend
    from cascade_router.models.registry import load_model
    from cascade_router.routers.threshold import SignalRouter
    from cascade_router.server import BackgroundServer, ServerSettings, create_app
    from cascade_router.tiers import CircuitBreaker, Tier, TierSlots

    passage = "Paris is the capital and largest city of France. It is known for the Eiffel Tower."
    easy = {"messages": [{"role": "user", "content": f"Passage: {passage}\nQuestion: What is the capital of France?"}]}
    hard = {"messages": [{"role": "user", "content": f"Passage: {passage}\nQuestion: Describe everything the passage says about the city and its landmarks in detail?"}]}
    slm = load_model("smollm2-135m", threads=args.threads)
    sock, conns, url = _hung_endpoint()
    out = {}
    try:
        for label in ("before", "now"):
            hung = OpenAICompatBackend("hung", url, family="chat", api_key_env=None, timeout_s=5.0, retries=0)
            if label == "before":
                tiers = [Tier("slm", slm, slots=TierSlots(64)), Tier("llm", hung, slots=TierSlots(64))]
                settings = ServerSettings(max_concurrency=4)
            else:
                tiers = [Tier("slm", slm), Tier("llm", hung, breaker=CircuitBreaker(3, 30), slots=TierSlots(4, queue_timeout_s=5.0))]
                settings = ServerSettings()
            c = Cascade(tiers, [SignalRouter("length_words", 3)])
            with BackgroundServer(create_app(c, settings)) as srv:
                def post(body):
                    t0 = time.perf_counter()
                    r = httpx.post(srv.url + "/v1/chat/completions", json=body, timeout=300)
                    return r.headers.get("x-cascade-route"), r.headers.get("x-cascade-degraded") == "true", time.perf_counter() - t0

                alone = [post(easy) for _ in range(3)]
                with ThreadPoolExecutor(16) as pool:
                    esc = [pool.submit(post, hard) for _ in range(8)]
                    time.sleep(1.0)
                    firsts = [pool.submit(post, easy) for _ in range(4)]
                    firsts = [f.result() for f in firsts]
                    esc = [f.result() for f in esc]
                after = [post(hard) for _ in range(3)]
            hung.close()
            out[label] = (alone, firsts, esc, after)
    finally:
        slm.close()
        sock.close()
        for cn in conns:
            cn.close()
    print(f"hung last tier (accepts, never replies; 5 s timeout, no retry), SmolLM2 first tier, threads={args.threads}:")
    for label, (alone, firsts, esc, after) in out.items():
        print(f"  {label:>6}: first-tier answers alone {statistics.mean(x[2] for x in alone):.2f} s; while 8 escalations hang "
              f"{statistics.mean(x[2] for x in firsts):.2f} s (max {max(x[2] for x in firsts):.2f}; routes "
              f"{sorted({x[0] for x in firsts})}); escalations degrade in {statistics.mean(x[2] for x in esc):.2f} s mean "
              f"(max {max(x[2] for x in esc):.2f}); escalations after them {statistics.mean(x[2] for x in after):.2f} s")
    b, n = out["before"], out["now"]
    print(f"  ratios now/before: first-tier request during the hang {statistics.mean(x[2] for x in n[1]) / statistics.mean(x[2] for x in b[1]):.3f}, "
          f"later escalation {statistics.mean(x[2] for x in n[3]) / statistics.mean(x[2] for x in b[3]):.3f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=PARTS, action="append", help="run only these parts (repeatable; default all)")
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads per model (default 2)")
    ap.add_argument("--run", default=str(ROOT / "results" / "squad-v1.1-n1000"), help="committed SQuAD v1.1 run")
    ap.add_argument("--n", type=int, default=40, help="questions for the live early-escalation check (default 40)")
    ap.add_argument("--chat-tokens", type=int, default=128, help="token budget of the streamed chat requests")
    ap.add_argument("--endpoint-n", type=int, default=24, help="questions per in-flight level (endpoint part)")
    ap.add_argument("--serve-requests", type=int, default=48, help="requests per slot setting (serve part)")
    args = ap.parse_args(argv)
    for part in args.part or PARTS:
        t0 = time.perf_counter()
        globals()[f"part_{part}"](args)
        print(f"  ({part}: {time.perf_counter() - t0:.0f} s)\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
