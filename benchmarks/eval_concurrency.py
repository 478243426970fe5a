"""Questions/s of the evaluation harness with one question in flight against N in flight.

    python benchmarks/eval_concurrency.py --limit 24 --threads 2 --concurrency 4

Runs ``run_generations`` on the same sample of SQuAD v1.1 questions (whole passages, seeded) with
the embedded pair (``slm`` smollm2-135m -> ``llm`` gemma3-270m), twice in this process, each into
a fresh run directory (a temporary one, removed afterwards):

1. one question in flight, the models loaded with one llama.cpp slot (``parallel=1``), as
   ``cascade-router eval`` runs by default;
2. N questions in flight (``--concurrency``), the models loaded with N slots (``parallel=N``), as
   ``cascade-router eval --concurrency N`` runs, so llama.cpp decodes the N calls in one batch.

For each it prints questions/s (questions / wall seconds of the generation step; model loading is
timed apart and not included), wall and in-model seconds (sum of generation latencies, which
exceeds the wall time when calls overlap), the share of prompt tokens served from llama.cpp's
prompt cache (each slot keeps its passage's prefix), and then the ratio of the two throughputs and how
many stored answers are identical (batched decoding may change a float and so a greedy token).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from cascade_router.datasets import load_dataset, sample
from cascade_router.evaluation.runner import run_generations
from cascade_router.evaluation.store import RunStore
from cascade_router.models.registry import DEFAULT_LLM, DEFAULT_SLM, load_model
from cascade_router.prompts import DATASET_TASK

DATASET = "squad-v1.1"


def run_once(examples, concurrency: int, threads: int, max_tokens: int, run_dir: Path):
    """Load both models with ``concurrency`` slots, generate every row into ``run_dir`` with
    ``concurrency`` questions in flight; returns (load seconds, RunStats, {(qid, tier): answer},
    share of the prompt tokens served from llama.cpp's prompt cache)."""
    t0 = time.perf_counter()
    tiers = {"slm": load_model(DEFAULT_SLM, threads=threads, parallel=concurrency)}
    try:
        tiers["llm"] = load_model(DEFAULT_LLM, threads=threads, parallel=concurrency)
        load_s = time.perf_counter() - t0
        store = RunStore(run_dir, lock=True)
        try:
            stats = run_generations(examples, tiers, store, DATASET_TASK[DATASET], max_tokens, progress=False,
                                    concurrency=concurrency)
            rows = list(store.rows())
        finally:
            store.close()
    finally:
        for backend in tiers.values():
            backend.close()
    gens = [r.generation for r in rows if r.generation is not None]
    cached = sum(g.cached_prompt_tokens or 0 for g in gens) / max(sum(g.prompt_tokens for g in gens), 1)
    return load_s, stats, {(r.qid, r.tier): r.answer for r in rows}, cached


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=24, help="questions (whole passages, seeded)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads per model")
    ap.add_argument("--concurrency", type=int, default=4, help="questions in flight in the second run (>= 2)")
    ap.add_argument("--max-tokens", type=int, default=24, help="answer budget per generation, tokens")
    a = ap.parse_args()
    if a.concurrency < 2:
        ap.error("--concurrency must be >= 2 (it is compared with one in flight)")

    examples = sample(load_dataset(DATASET), a.limit, seed=a.seed)
    n = len(examples)
    print(f"eval concurrency: {DATASET}, {n} questions (seed {a.seed}), tiers slm {DEFAULT_SLM} -> llm {DEFAULT_LLM}, "
          f"threads {a.threads} per model, max_tokens {a.max_tokens}")
    print(f"{'in flight':>9} {'slots':>5} {'load s':>7} {'wall s':>7} {'model s':>8} {'questions/s':>11} "
          f"{'generations':>11} {'errors':>6} {'prompt cache':>12}")
    qps, answers = {}, {}
    with tempfile.TemporaryDirectory(prefix="eval-concurrency-") as tmp:
        for c in (1, a.concurrency):
            load_s, stats, answers[c], cached = run_once(examples, c, a.threads, a.max_tokens, Path(tmp) / f"c{c}")
            qps[c] = n / stats.wall_s
            print(f"{c:9d} {c:5d} {load_s:7.2f} {stats.wall_s:7.2f} {stats.model_s:8.2f} {qps[c]:11.3f} "
                  f"{stats.generated:11d} {stats.errors:6d} {100 * cached:11.0f}%")
    same = sum(answers[a.concurrency].get(k) == v for k, v in answers[1].items())
    print(f"ratio             {qps[a.concurrency] / qps[1]:.2f}x questions/s with {a.concurrency} in flight vs 1")
    print(f"same answers      {same}/{len(answers[1])} stored answers identical in both runs")


if __name__ == "__main__":
    main()
