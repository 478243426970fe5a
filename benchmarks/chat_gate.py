"""The default gate of the ``chat`` task, measured on open prompts written for the project.

Asks the first tier (the embedded SmolLM2 by default) each prompt of
``data/open-chat-prompts.jsonl`` (20 instructions and questions with no passage, written by hand
for the project) as general chat, and prints its answer length and mean token logprob, and how
many answers each gate would escalate: the QA default ``seed-v1`` (its length rule fires on
almost every chat reply) against ``signal:mean_logprob:T`` at several thresholds. Without
reference answers this measures the escalation rate a gate gives, not the quality it buys.

Usage: ``python benchmarks/chat_gate.py [--threads 2] [--max-tokens 128]``
"""

from __future__ import annotations

import argparse
import json
from importlib import resources
from pathlib import Path

import numpy as np

from cascade_router.cascade import ask_model
from cascade_router.models.registry import load_model
from cascade_router.routers import get_router
from cascade_router.signals import compute_signals


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=128)
    a = ap.parse_args(argv)
    path = Path(str(resources.files("cascade_router") / "data" / "open-chat-prompts.jsonl"))
    prompts = [json.loads(x)["prompt"] for x in path.read_text().splitlines() if x.strip()]
    backend = load_model(a.model, threads=a.threads, family="chat")
    rows = []
    try:
        for p in prompts:
            ta = ask_model(backend, p, None, "chat", a.max_tokens, conversation=[{"role": "user", "content": p}])
            rows.append(compute_signals(ta.generation, ta.answer, None))
            print(f"{rows[-1]['length_words']:4.0f} words  mean logprob {rows[-1]['mean_logprob']:6.3f}  {p}")
    finally:
        backend.close()
    lp = np.array([r["mean_logprob"] for r in rows])
    print(f"\n{len(rows)} prompts; mean logprob median {np.median(lp):.3f}, quartiles {np.percentile(lp, 25):.3f} / "
          f"{np.percentile(lp, 75):.3f}; words median {np.median([r['length_words'] for r in rows]):.0f}")
    for spec in ("seed-v1", "signal:mean_logprob:-0.8", "signal:mean_logprob:-1.0", "signal:mean_logprob:-1.2",
                 "signal:mean_logprob:-1.5"):
        esc = get_router(spec).predict(rows)
        print(f"{spec:26} escalates {int(esc.sum()):2}/{len(rows)} ({100 * esc.mean():.0f}%)")


if __name__ == "__main__":
    main()
