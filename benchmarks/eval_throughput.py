"""Throughput of the evaluation harness with the embedded models, and of its offline analysis.

    python benchmarks/eval_throughput.py --dataset squad-v1.1 --limit 40 --threads 2

Runs ``run_generations`` (both tiers on every question, each result committed to SQLite) into a
fresh run directory, then prints:

- questions/s over the generation step;
- per tier: prompt tokens sent, prompt tokens evaluated (sent - served from the KV cache), the
  cache ratio (cached / sent), completion tokens and seconds inside the model;
- wall time against time inside the models (sum of generation latencies), and the harness
  overhead (wall - model: prompt building, token counting for the context-window check, answer
  clean-up, SQLite commits) in seconds and as a share of wall time;
- the time of the offline step (load_run + analyse + write_report), which calls no model.

Model loading is timed separately and is not part of the generation wall time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from cascade_router.config import CascadeConfig
from cascade_router.datasets import DATASETS, load_dataset, sample
from cascade_router.evaluation.analysis import analyse, load_run
from cascade_router.evaluation.report import write_report
from cascade_router.evaluation.runner import run_generations
from cascade_router.evaluation.store import RunStore
from cascade_router.prompts import DATASET_TASK


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="squad-v1.1", choices=DATASETS)
    ap.add_argument("--limit", type=int, default=40, help="questions (whole passages, seed 0)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads per model")
    ap.add_argument("--out", default=None, help="run directory (default: a fresh temporary one); must not hold a run")
    a = ap.parse_args()

    out = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="eval-bench-"))
    if (out / "generations.sqlite").exists():
        ap.error(f"{out} already holds a run; give a fresh --out (the benchmark must generate everything)")
    examples = sample(load_dataset(a.dataset), a.limit, seed=a.seed)
    cfg = CascadeConfig()
    cfg.slm.threads = cfg.llm.threads = a.threads

    t0 = time.perf_counter()
    tiers = {"slm": cfg.slm.open(), "llm": cfg.llm.open()}
    load_s = time.perf_counter() - t0

    store = RunStore(out)
    identity = {"dataset": a.dataset, "data": "bundled", "slm": cfg.slm.model, "llm": cfg.llm.model,
                "limit": a.limit, "seed": a.seed, "questions": len(examples), "max_tokens": cfg.max_tokens,
                "prompt_version": 1, "command": "benchmarks/eval_throughput.py"}
    store.bind({k: v for k, v in identity.items() if k != "command"})
    try:
        stats = run_generations(examples, tiers, store, DATASET_TASK[a.dataset], cfg.max_tokens, progress=False)
    finally:
        for b in tiers.values():
            b.close()

    t1 = time.perf_counter()
    run = load_run(examples, store, cfg.slm.price_or_default(), cfg.llm.price_or_default())
    t2 = time.perf_counter()
    res = analyse(run, seed=a.seed)
    t3 = time.perf_counter()
    write_report(out, identity, run, res)
    t4 = time.perf_counter()
    store.close()

    n = len(examples)
    print(f"eval harness: {a.dataset}, {n} questions, SLM {cfg.slm.model}, LLM {cfg.llm.model}, "
          f"threads {a.threads}, run dir {out}")
    print(f"model load        {load_s:8.2f} s (not in the wall time below)")
    print(f"generations       {stats.generated} made, {stats.skipped} resumed, {stats.errors} errors; "
          f"{run.n} questions scored")
    print(f"throughput        {n / stats.wall_s:8.3f} questions/s  ({stats.generated / stats.wall_s:.3f} generations/s)")
    print(f"{'tier':5} {'prompt sent':>11} {'evaluated':>10} {'cache':>7} {'completion':>10} {'in model s':>10} {'s/call':>7}")
    rows = store_rows(out)
    for tier in ("slm", "llm"):
        gens = [r.generation for r in rows if r.tier == tier and r.generation is not None]
        sent = sum(g.prompt_tokens for g in gens)
        cached = sum(g.cached_prompt_tokens or 0 for g in gens)
        known = any(g.cached_prompt_tokens is not None for g in gens)
        ratio = f"{100 * cached / sent:6.1f}%" if sent and known else "    n/a"
        secs = sum(g.latency_s for g in gens)
        print(f"{tier:5} {sent:11d} {sent - cached:10d} {ratio:>7} {sum(g.completion_tokens for g in gens):10d} "
              f"{secs:10.2f} {secs / max(len(gens), 1):7.3f}")
    over = stats.wall_s - stats.model_s
    print(f"wall              {stats.wall_s:8.2f} s")
    print(f"inside models     {stats.model_s:8.2f} s (sum of generation latencies)")
    print(f"harness overhead  {over:8.3f} s = {100 * over / stats.wall_s:.2f}% of wall "
          f"({1000 * over / max(stats.generated, 1):.2f} ms per generation)")
    print(f"offline analysis  {t4 - t1:8.3f} s (load_run {t2 - t1:.3f} + analyse {t3 - t2:.3f} + write_report {t4 - t3:.3f})")


def store_rows(run_dir: Path):
    """Every stored row of the run (a fresh connection, as a later `report` would read them)."""
    s = RunStore(run_dir)
    try:
        return list(s.rows())
    finally:
        s.close()


if __name__ == "__main__":
    main()
