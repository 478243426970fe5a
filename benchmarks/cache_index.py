"""Which vector index the semantic cache uses: nearest-neighbour lookup time of usearch (HNSW)
against exact numpy brute force (and faiss's exact flat index when faiss-cpu is installed), on
random unit vectors of dimension 384, at several index sizes. sqlite-vec was the third candidate;
it needs ``sqlite3.Connection.enable_load_extension``, which this machine's Python (and many
distribution builds) lacks, so it is reported as unavailable where that is so.

Usage: ``python benchmarks/cache_index.py [--sizes 1000,10000,100000] [--queries 200]``
"""

from __future__ import annotations

import argparse
import sqlite3
import time

import numpy as np


def _unit(rng, n, d=384):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--queries", type=int, default=200)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    print("sqlite-vec:", "available" if hasattr(sqlite3.connect(":memory:"), "enable_load_extension")
          else "unavailable (this Python's sqlite3 cannot load extensions)")
    try:
        import faiss  # noqa: F401
    except ImportError:
        faiss = None
    from usearch.index import Index

    for n in (int(s) for s in a.sizes.split(",")):
        base = _unit(rng, n)
        q = base[rng.integers(0, n, a.queries)] + 0.01 * _unit(rng, a.queries)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        t0 = time.perf_counter()
        ix = Index(ndim=384, metric="cos", dtype="f32")
        ix.add(np.arange(n, dtype=np.uint64), base)
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        found = [ix.search(v, 1).keys[0] for v in q]
        us = (time.perf_counter() - t0) / a.queries
        t0 = time.perf_counter()
        exact = [int(np.argmax(base @ v)) for v in q]
        npt = (time.perf_counter() - t0) / a.queries
        recall = np.mean([f == e for f, e in zip(found, exact)])
        line = (f"n={n:>7}: usearch {1e3 * us:7.3f} ms/query (build {build:.2f} s, recall@1 {recall:.3f}) | "
                f"numpy exact {1e3 * npt:7.3f} ms/query | ratio numpy/usearch {npt / us:6.1f}x")
        if faiss is not None:
            fx = faiss.IndexFlatIP(384)
            fx.add(base)
            t0 = time.perf_counter()
            for v in q:
                fx.search(v[None, :], 1)
            line += f" | faiss flat {1e3 * (time.perf_counter() - t0) / a.queries:7.3f} ms/query"
        print(line)


if __name__ == "__main__":
    main()
