"""Embeddings per second of the embedded embedder (all-MiniLM-L6-v2 int8, onnxruntime) at batch
size 1 and 32, on SQuAD v1.1 dev questions.

Usage: ``python benchmarks/embed_throughput.py [--threads 2] [--n 256]``
"""

from __future__ import annotations

import argparse
import time

from cascade_router.datasets import load_dataset
from cascade_router.embeddings.onnx_minilm import MiniLMEmbedder


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n", type=int, default=256, help="questions embedded per batch size")
    a = ap.parse_args(argv)
    qs = [e.question for e in load_dataset("squad-v1.1")[: a.n]]
    for bs in (1, 32):
        emb = MiniLMEmbedder(threads=a.threads, batch_size=bs)
        emb.embed(qs[:bs])  # warm-up
        t0 = time.perf_counter()
        emb.embed(qs)
        dt = time.perf_counter() - t0
        print(f"batch {bs:>2}: {len(qs) / dt:7.1f} embeddings/s ({1000 * dt / len(qs):.2f} ms each; {a.threads} threads, "
              f"{len(qs)} SQuAD questions)")
        emb.close()


if __name__ == "__main__":
    main()
