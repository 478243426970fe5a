"""The learned gate's learning curve: APGR on a fixed test split against the number of labelled
training questions, so users know how much labelled data their own pair needs.

Offline, on a stored run (default: the committed 3,000-question SQuAD v1.1 run). The run is
split by passage into the usual calibration and test halves (seed 0). For each training size,
``--repeats`` seeded subsamples of whole calibration passages are drawn; the cost-sensitive
logistic gate (:class:`~cascade_router.routers.LogisticRouter`, :func:`gain_labels` weights) is
fitted on each and its APGR measured on the whole test split. Printed: the mean and the spread
(min-max) over repeats, and for the largest size the test split's 95% passage-bootstrap interval.

Usage: ``python benchmarks/learning_curve.py [RUN_DIR] [--sizes 125,250,500,1000,0] [--repeats 5]``
(0 = the whole calibration split)
"""

from __future__ import annotations

import argparse
import random

import numpy as np

from cascade_router.datasets import split_by_passage
from cascade_router.evaluation.curves import apgr, sweep
from cascade_router.evaluation.runs import load_scored_run, open_run
from cascade_router.evaluation.stats import Bootstrap, curve_intervals
from cascade_router.routers import LogisticRouter, SignalRouter, gain_labels


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", nargs="?", default="results/squad-v1.1-n3000")
    ap.add_argument("--sizes", default="125,250,500,1000,0")
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args(argv)
    ident, examples = open_run(a.run_dir)
    run = load_scored_run(a.run_dir, ident, examples)
    cal_ex, test_ex = split_by_passage([r.ex for r in run.records], 0.5, ident["seed"])
    cal, test = run.subset({e.id for e in cal_ex}), run.subset({e.id for e in test_ex})
    first, last = run.first, run.last
    tf, tl = test.arrays[first].f1, test.arrays[last].f1
    q0, q1 = float(tf.mean()), float(tl.mean())
    test_rows = test.signals(first)
    passages: dict[str, list] = {}
    for r in cal.records:
        passages.setdefault(r.ex.passage_id, []).append(r.ex.id)
    base = apgr(sweep(SignalRouter("context_support").decision_function(test_rows), tf, tl, nan_rank="last"), q0, q1)
    print(f"{a.run_dir}: calibration pool {cal.n} questions ({len(passages)} passages), test {test.n}; "
          f"no training needed: signal:context_support APGR {base:.3f}")
    print(f"{'train questions':>15} | {'APGR mean':>9} | {'min-max over repeats':>21}")
    for size in (int(s) for s in a.sizes.split(",")):
        scores = []
        for rep in range(a.repeats if size else 1):
            pids = list(passages)
            random.Random(rep).shuffle(pids)
            ids: set[str] = set()
            for p in pids:
                if size and len(ids) >= size:
                    break
                ids.update(passages[p])
            part = cal.subset(ids)
            y, w = gain_labels(part.arrays[first].f1, part.arrays[last].f1)
            if len(np.unique(y[w > 0])) < 2:
                continue
            gate = LogisticRouter().fit(part.signals(first), y, sample_weight=w)
            c = sweep(gate.decision_function(test_rows), tf, tl, nan_rank="last")
            scores.append(apgr(c, q0, q1))
        n = size or cal.n
        spread = f"{min(scores):.3f}-{max(scores):.3f}" if len(scores) > 1 else "(one fit)"
        print(f"{n:>15} | {np.mean(scores):9.3f} | {spread:>21}")
        if not size:
            ci = curve_intervals(c, tf, tl, Bootstrap.over_passages([r.ex.passage_id for r in test.records]))["apgr_ci95"]
            print(f"{'':>15}   test-split 95% interval of the last fit: {ci[0]:.3f}-{ci[1]:.3f}")


if __name__ == "__main__":
    main()
