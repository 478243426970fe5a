"""The semantic cache's hit quality on SQuAD v1.1 dev, offline (no language model runs).

- False-hit rate: over every pair of DIFFERENT questions on the same passage in the dev set
  (the only pairs that share a cache key), the share whose cosine similarity reaches the
  threshold, i.e. the share of lookups that would return another question's answer. Pairs whose
  normalised texts are equal count as exact repeats, not as different questions.
- Paraphrase hit rate: over the hand-written pairs in ``data/squad-v1.1-paraphrases.jsonl``,
  the share whose paraphrase reaches the threshold against its original.
- Exact-repeat hit rate: every dev question stored in a real :class:`SemanticCache` (SQLite +
  usearch) and looked up again with the same text: the share answered (expected 100%).

Usage: ``python benchmarks/cache_quality.py [--threads 2] [--limit-passages N]``
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from collections import defaultdict
from importlib import resources
from pathlib import Path

import numpy as np

from cascade_router.datasets import load_dataset
from cascade_router.embeddings import load_embedder
from cascade_router.stages.cache import SemanticCache, SQLiteCacheStore, cache_key, normalise_question

THRESHOLDS = (0.80, 0.85, 0.90, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99)


def wilson(k: int, n: int) -> str:
    """The 95% Wilson score interval of k successes in n, as percentages (scipy)."""
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=0.95, method="wilson")
    return f"[{100 * ci.low:.2f}, {100 * ci.high:.2f}]"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit-passages", type=int, default=0, help="only the first N passages (0 = all)")
    a = ap.parse_args(argv)
    emb = load_embedder(threads=a.threads)
    ex = load_dataset("squad-v1.1")
    by_p = defaultdict(list)
    for e in ex:
        by_p[e.passage_id].append(e)
    pids = list(by_p)[: a.limit_passages or None]
    qs = [e for p in pids for e in by_p[p]]
    t0 = time.perf_counter()
    vecs = emb.embed([normalise_question(e.question) for e in qs])  # as the cache embeds them
    dt = time.perf_counter() - t0
    print(f"embedded {len(qs)} questions of {len(pids)} passages in {dt:.1f} s ({len(qs) / dt:.0f}/s, batch 32, {a.threads} threads)")
    idx = {e.id: i for i, e in enumerate(qs)}
    sims, repeats = [], 0
    for p in pids:
        group = by_p[p]
        for x, y in itertools.combinations(group, 2):
            if normalise_question(x.question) == normalise_question(y.question):
                repeats += 1
                continue
            sims.append(float(vecs[idx[x.id]] @ vecs[idx[y.id]]))
    sims = np.array(sims)
    pairs_path = Path(str(resources.files("cascade_router") / "data" / "squad-v1.1-paraphrases.jsonl"))
    pairs = [json.loads(line) for line in pairs_path.read_text().splitlines() if line.strip()]
    pv = emb.embed([normalise_question(p["question"]) for p in pairs])
    pp = emb.embed([normalise_question(p["paraphrase"]) for p in pairs])
    psim = (pv * pp).sum(axis=1)
    kinds = np.array([p["kind"] for p in pairs])
    print(f"{sims.size} pairs of different questions on the same passage ({repeats} pairs of identical texts left out); "
          f"{len(pairs)} paraphrase pairs ({(kinds == 'light').sum()} light, {(kinds == 'heavy').sum()} heavy)")
    print(f"{'threshold':>9} | {'false hits (95% Wilson CI)':>34} | {'paraphrase hits (95% Wilson CI)':>30} | {'light':>6} | {'heavy':>6}")
    for t in THRESHOLDS:
        fh = int((sims >= t).sum())
        ph = int((psim >= t).sum())
        print(f"{t:>9.2f} | {fh:>6} = {100 * fh / sims.size:6.2f}% {wilson(fh, sims.size):>16} | "
              f"{ph:>2}/{len(pairs)} = {100 * ph / len(pairs):5.1f}% {wilson(ph, len(pairs)):>14} | "
              f"{100 * (psim[kinds == 'light'] >= t).mean():5.1f}% | {100 * (psim[kinds == 'heavy'] >= t).mean():5.1f}%")
    # exact repeats through a real cache
    with tempfile.TemporaryDirectory() as d:
        cache = SemanticCache(SQLiteCacheStore(Path(d) / "c.sqlite"), emb, threshold=0.95)
        sample = qs[:500]
        for e in sample:
            cache.put(e.question, cache_key("squad", e.context, "bench", 24, None), "x", "slm", {})
        hits = sum(cache.lookup(e.question, cache_key("squad", e.context, "bench", 24, None)) is not None for e in sample)
        print(f"exact repeats: {hits}/{len(sample)} answered from the cache ({100 * hits / len(sample):.1f}%)")
        cache.store.close()


if __name__ == "__main__":
    main()
