"""How often the SLM answers nothing on HotpotQA, under two stop rules.

SmolLM2-135M's first token after the ten-paragraph few-shot prompt is often the newline the
prompt stops on, giving an empty answer. This prints, for a seeded sample of HotpotQA questions,
F1, the number of empty answers and the mean completion length with the project's stop rule
(``"\\n"``) and with a stop on a blank line or a new block instead.

    python benchmarks/hotpot_empty_answers.py --n 24 --seed 123 --threads 2
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

from cascade_router.datasets import load_dataset, sample
from cascade_router.metrics import score_example
from cascade_router.models.registry import load_model
from cascade_router.prompts import build_prompt, clean_answer

STOP_RULES = {"stop on newline (used)": ["\n"], "stop on blank line": ["\n\n", "\nQuestion:", "\nParagraphs:"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    exs = sample(load_dataset("hotpotqa"), a.n, seed=a.seed)
    m = load_model(a.model, threads=a.threads)
    print(f"{a.model}, {len(exs)} HotpotQA questions (seed {a.seed})")
    for name, stop in STOP_RULES.items():
        f1s, empty, toks, t0 = [], 0, 0, time.perf_counter()
        for ex in exs:
            p = dataclasses.replace(build_prompt(ex.question, ex.context, "hotpotqa", m.family), stop=stop)
            g = m.generate(p)
            ans = clean_answer(g.text)
            empty += ans == ""
            toks += g.completion_tokens
            f1s.append(score_example(ex, ans)[1])
        print(f"  {name:24s} F1 {100 * statistics.mean(f1s):5.1f}  empty {empty}/{len(exs)}  "
              f"completion tokens {toks / len(exs):.1f}  wall {time.perf_counter() - t0:.0f} s")
    m.close()


if __name__ == "__main__":
    main()
