"""Throughput of the two embedded models and the cascade's own overhead per question.

For each model, ~20 SQuAD v1.1 dev questions on distinct passages (so no prompt shares a passage
with the one before it: only the fixed instructions and few-shot examples come from llama.cpp's
prompt cache) are answered with the model's own prompt, and llama.cpp's timings give

* prompt tokens/s: prompt tokens actually evaluated (prompt - cached) / ``prompt_ms``;
* generated tokens/s: completion tokens / ``predicted_ms``.

Then the same questions go through ``Cascade.answer`` (a two-tier cascade ``slm`` -> ``llm`` of
the same two backends, gated by router ``seed-v1`` by default), and the cascade's overhead per
question is its wall time minus the time spent inside the models (the sum of ``latency_s`` over
the tiers that ran, ``CascadeResult.runs``): prompt building, the context-window check
(tokenising the prompt through llama.cpp's HTTP endpoint, skipped when the prompt's UTF-8 byte
count already fits), signals, routing, answer clean-up.

Usage::

    python benchmarks/model_throughput.py [--threads 2] [--n 20] [--router seed-v1]
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import time
from importlib import resources

import numpy as np

from cascade_router.cascade import Cascade, ask_model
from cascade_router.config import DEFAULT_PRICES
from cascade_router.models.registry import DEFAULT_LLM, DEFAULT_SLM, load_model
from cascade_router.routers import get_router
from cascade_router.tiers import Tier, TierPrice


def squad_items(n: int) -> list[tuple[str, str]]:
    """The first question of each of the first ``n`` distinct passages of the bundled SQuAD v1.1 dev
    file, spread over its articles: ``[(question, passage), ...]``."""
    path = resources.files("cascade_router") / "data" / "squad-v1.1-dev.json.gz"
    with path.open("rb") as f:
        doc = json.loads(gzip.decompress(f.read()))
    items: list[tuple[str, str]] = []
    articles = doc["data"]
    para_idx = 0
    while len(items) < n:
        added = False
        for art in articles:  # round-robin over articles: distinct topics back to back
            paras = art["paragraphs"]
            if para_idx < len(paras) and paras[para_idx]["qas"]:
                items.append((paras[para_idx]["qas"][0]["question"], paras[para_idx]["context"]))
                added = True
                if len(items) == n:
                    break
        if not added:
            break
        para_idx += 1
    return items


def throughput(backend, items, max_tokens: int) -> dict:
    evaluated = prompt_total = completion = 0
    prompt_ms = predicted_ms = 0.0
    for question, passage in items:
        g = ask_model(backend, question, passage, max_tokens=max_tokens).generation
        prompt_total += g.prompt_tokens
        evaluated += g.prompt_tokens - (g.cached_prompt_tokens or 0)
        completion += g.completion_tokens
        prompt_ms += g.prompt_ms or 0.0
        predicted_ms += g.predicted_ms or 0.0
    return {
        "prompts": len(items),
        "prompt_tokens": prompt_total,
        "evaluated": evaluated,
        "completion": completion,
        "prompt_tps": evaluated / prompt_ms * 1000 if prompt_ms else float("nan"),
        "gen_tps": completion / predicted_ms * 1000 if predicted_ms else float("nan"),
    }


class _Timed:
    """Wrap a backend's ``prompt_tokens`` (the context-window check) to time it."""

    def __init__(self, backend):
        self.backend, self.seconds = backend, 0.0
        self._inner = backend.prompt_tokens

    def __call__(self, prompt):
        t0 = time.perf_counter()
        try:
            return self._inner(prompt)
        finally:
            self.seconds += time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads per model (default 2)")
    ap.add_argument("--n", type=int, default=20, help="questions (distinct passages), default 20")
    ap.add_argument("--max-tokens", type=int, default=24, help="answer budget in tokens (default 24)")
    ap.add_argument("--router", default="seed-v1", help="router for the cascade run (default seed-v1)")
    args = ap.parse_args()

    items = squad_items(args.n)
    t0 = time.perf_counter()
    slm = load_model(DEFAULT_SLM, threads=args.threads)
    llm = load_model(DEFAULT_LLM, threads=args.threads)
    print(f"loaded {slm.model_id} and {llm.model_id} in {time.perf_counter() - t0:.1f} s "
          f"(threads={args.threads}); {len(items)} SQuAD v1.1 dev questions on distinct passages")
    for b in (slm, llm):  # first call pays one-off set-up: keep it out of the numbers
        ask_model(b, "Who designed the bridge?", "The bridge was designed by Clara Voss.")

    print("\nmodel            prompt tok/s   generated tok/s   (evaluated / total prompt tokens, generated)")
    for b in (slm, llm):
        r = throughput(b, items, args.max_tokens)
        print(f"{b.model_id:15} {r['prompt_tps']:13.1f} {r['gen_tps']:17.1f}   "
              f"({r['evaluated']} / {r['prompt_tokens']}, {r['completion']})")

    tiers = [Tier(name, b, DEFAULT_PRICES.get(spec, TierPrice()))
             for name, b, spec in (("slm", slm, DEFAULT_SLM), ("llm", llm, DEFAULT_LLM))]
    cascade = Cascade(tiers, [get_router(args.router)], max_tokens=args.max_tokens)
    timers = [_Timed(slm), _Timed(llm)]
    slm.prompt_tokens, llm.prompt_tokens = timers
    overhead, check, escalated = [], [], 0
    for question, passage in items:
        for t in timers:
            t.seconds = 0.0
        w0 = time.perf_counter()
        res = cascade.answer(question, passage)
        wall = time.perf_counter() - w0
        inside = sum(r.latency_s for r in res.runs)
        overhead.append((wall - inside) * 1000)
        check.append(sum(t.seconds for t in timers) * 1000)
        escalated += res.escalated
    ov = np.asarray(overhead)
    ck = np.asarray(check)
    print(f"\ncascade ({args.router}): {escalated}/{len(items)} escalated")
    print(f"overhead per question (wall - time inside the models): mean {ov.mean():.1f} ms, "
          f"p95 {np.percentile(ov, 95):.1f} ms, median {statistics.median(overhead):.1f} ms")
    print(f"  of which the context-window check (tokenise via llama.cpp HTTP): mean {ck.mean():.1f} ms, "
          f"p95 {np.percentile(ck, 95):.1f} ms")
    print(f"  rest (prompt build, signals, routing, clean-up): mean {(ov - ck).mean():.2f} ms, "
          f"p95 {np.percentile(ov - ck, 95):.2f} ms")
    slm.close()
    llm.close()


if __name__ == "__main__":
    main()
