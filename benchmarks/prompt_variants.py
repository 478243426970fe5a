"""Measure SLM prompt variants on a small SQuAD v1.1 dev slice and print EM/F1 and answer length.

    python benchmarks/prompt_variants.py --n 60 --seed 123 --threads 2

Variants: chat template with few-shot turns ("short"), chat template with instructions only
("plain"), and a raw few-shot completion prompt ("base"). The slice is drawn with a seed other
than the evaluation default (seed 0), but from the same dev set; treat small differences as noise.
"""

from __future__ import annotations

import argparse
import statistics

from cascade_router.cascade import ask_model
from cascade_router.datasets import load_dataset, sample
from cascade_router.metrics import score_example
from cascade_router.models.registry import load_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    exs = sample(load_dataset("squad-v1.1"), a.n, seed=a.seed)
    variants = [("chat", "short"), ("chat", "plain"), ("base", "short")]
    print(f"{'variant':14} {'EM':>6} {'F1':>6} {'words':>6}  (n={len(exs)}, {a.model})")
    for family, style in variants:
        m = load_model(a.model, family=family, threads=a.threads)
        ems, f1s, lens = [], [], []
        for ex in exs:
            ta = ask_model(m, ex.question, ex.context, "squad", style=style)
            em, f1 = score_example(ex, ta.answer)
            ems.append(em); f1s.append(f1); lens.append(len(ta.answer.split()))
        m.close()
        name = f"{family}/{style}" if family == "chat" else "base/few-shot"
        print(f"{name:14} {100*statistics.mean(ems):6.1f} {100*statistics.mean(f1s):6.1f} {statistics.mean(lens):6.1f}")


if __name__ == "__main__":
    main()
