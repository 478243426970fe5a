"""Throughput of the evaluation harness with the embedded models, and of its offline analysis.

    python benchmarks/eval_throughput.py --dataset squad-v1.1 --limit 40 --threads 2
    python benchmarks/eval_throughput.py --config three-tiers.toml --limit 40   # any N tiers

Runs ``run_generations`` (every tier on every question, each result committed to SQLite) into a
fresh run directory, then prints:

- questions/s over the generation step;
- per tier: prompt tokens sent, prompt tokens evaluated (sent - served from the KV cache), the
  cache ratio (cached / sent), completion tokens and seconds inside the model;
- wall time against time inside the models (sum of generation latencies), and the harness
  overhead (wall - model: prompt building, token counting for the context-window check, answer
  clean-up, SQLite commits) in seconds and as a share of wall time;
- the time of the offline step (load_run + analyse + write_report), which calls no model; with
  three tiers or more ``analyse`` also runs the chain analysis of the configured gates.

Model loading is timed separately and is not part of the generation wall time. The tiers are the
default pair (``slm`` smollm2-135m, ``llm`` gemma3-270m) or those of ``--config``; tiers with the
same model spec share one backend (as ``cascade-router eval`` does), so a shared model is asked
once per question and its answer stored for each of its tiers.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from cascade_router.config import CascadeConfig, build_cascade, build_router, load_config, router_label
from cascade_router.datasets import DATASETS, load_dataset, sample
from cascade_router.evaluation.analysis import analyse, load_run
from cascade_router.evaluation.report import write_report
from cascade_router.evaluation.runner import run_generations
from cascade_router.evaluation.runs import identity_for
from cascade_router.evaluation.store import RunStore
from cascade_router.prompts import DATASET_TASK


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="squad-v1.1", choices=DATASETS)
    ap.add_argument("--limit", type=int, default=40, help="questions (whole passages, seed 0)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads per model")
    ap.add_argument("--config", default=None, help="cascade config (.toml/.yaml/.json) with the tiers (default: slm -> llm)")
    ap.add_argument("--out", default=None, help="run directory (default: a fresh temporary one); must not hold a run")
    a = ap.parse_args()

    out = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="eval-bench-"))
    if (out / "generations.sqlite").exists():
        ap.error(f"{out} already holds a run; give a fresh --out (the benchmark must generate everything)")
    examples = sample(load_dataset(a.dataset), a.limit, seed=a.seed)
    cfg = load_config(a.config) if a.config else CascadeConfig()
    for t in cfg.tiers:
        t.threads = a.threads

    t0 = time.perf_counter()
    cascade = build_cascade(cfg, seed=a.seed)  # one backend per distinct model spec
    tiers = {t.name: t.backend for t in cascade.tiers}
    load_s = time.perf_counter() - t0
    shares = {}  # tier -> the earlier tier whose backend it shares (its rows are copies)
    for i, t in enumerate(cascade.tiers):
        twin = next((u.name for u in cascade.tiers[:i] if u.backend is t.backend), None)
        if twin is not None:
            shares[t.name] = twin

    store = RunStore(out)
    identity = identity_for(cfg, a.dataset, None, a.limit, a.seed, examples)
    store.bind(identity)
    try:
        stats = run_generations(examples, tiers, store, DATASET_TASK[a.dataset], cfg.max_tokens, progress=False)
    finally:
        cascade.close()

    t1 = time.perf_counter()
    run = load_run(examples, store, {t.name: t.price_or_default() for t in cfg.tiers}, cfg.names)
    t2 = time.perf_counter()
    specs = [cfg.gate_spec(i) for i in range(len(cfg.tiers)) if cfg.gate_spec(i) is not None]
    res = analyse(run, seed=a.seed, gates=[(router_label(sp), build_router(sp, seed=a.seed)) for sp in specs])
    t3 = time.perf_counter()
    write_report(out, dict(identity, command="benchmarks/eval_throughput.py"), run, res)
    t4 = time.perf_counter()
    store.close()

    n = len(examples)
    chain = ", ".join(f"{t.name} {t.model}" for t in cfg.tiers)
    print(f"eval harness: {a.dataset}, {n} questions, tiers {chain}, "
          f"threads {a.threads}, run dir {out}")
    print(f"model load        {load_s:8.2f} s (not in the wall time below)")
    print(f"generations       {stats.generated} made ({stats.reused} copied from a tier sharing the model), "
          f"{stats.skipped} resumed, {stats.errors} errors; {run.n} questions scored")
    print(f"throughput        {n / stats.wall_s:8.3f} questions/s  ({stats.generated / stats.wall_s:.3f} generations/s)")
    w = max(5, *(len(name) for name in cfg.names))
    print(f"{'tier':{w}} {'prompt sent':>11} {'evaluated':>10} {'cache':>7} {'completion':>10} {'in model s':>10} {'s/call':>7}")
    rows = store_rows(out)
    for tier in cfg.names:
        gens = [r.generation for r in rows if r.tier == tier and r.generation is not None]
        sent = sum(g.prompt_tokens for g in gens)
        cached = sum(g.cached_prompt_tokens or 0 for g in gens)
        known = any(g.cached_prompt_tokens is not None for g in gens)
        ratio = f"{100 * cached / sent:6.1f}%" if sent and known else "    n/a"
        secs = sum(g.latency_s for g in gens)
        print(f"{tier:{w}} {sent:11d} {sent - cached:10d} {ratio:>7} {sum(g.completion_tokens for g in gens):10d} "
              f"{secs:10.2f} {secs / max(len(gens), 1):7.3f}")
    for tier, twin in shares.items():
        print(f"  {tier} shares {twin}'s model: its rows are copies of {twin}'s (no model call, not in 'inside models')")
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
