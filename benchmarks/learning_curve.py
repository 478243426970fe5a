"""The learned gate's learning curve: cross-fitted APGR against the number of labelled training
questions, so users know how much labelled data their own pair needs.

Offline, on a stored run (default: the committed 3,000-question SQuAD v1.1 run), cross-fitted as
the report is: 5 folds by passage. For each training size and each of ``--repeats`` seeds, each
fold's cost-sensitive logistic gate (:class:`~cascade_router.routers.LogisticRouter`,
:func:`gain_labels` weights) is fitted on a seeded subsample of whole passages of the other 4
folds holding that many questions, and scores its held-out fold; the held-out scores of the 5
folds make one curve over all questions. Printed: the mean APGR and its spread (min-max) over
repeats, and for the largest size the 95% passage-bootstrap interval.

Usage: ``python benchmarks/learning_curve.py [RUN_DIR] [--sizes 125,250,500,1000,2000,0] [--repeats 5]``
(0 = the whole training folds)
"""

from __future__ import annotations

import argparse
import random

import numpy as np

from cascade_router.evaluation.analysis import FOLDS, crossfit_splits
from cascade_router.evaluation.curves import apgr, sweep
from cascade_router.evaluation.runs import load_scored_run, open_run
from cascade_router.evaluation.stats import Bootstrap, curve_intervals
from cascade_router.routers import LogisticRouter, SignalRouter, gain_labels


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", nargs="?", default="results/squad-v1.1-n3000")
    ap.add_argument("--sizes", default="125,250,500,1000,2000,0")
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args(argv)
    ident, examples = open_run(a.run_dir)
    run = load_scored_run(a.run_dir, ident, examples)
    first, last = run.first, run.last
    tf, tl = run.arrays[first].f1, run.arrays[last].f1
    q0, q1 = float(tf.mean()), float(tl.mean())
    rows = run.signals(first)
    pid = [r.ex.passage_id for r in run.records]
    splits = crossfit_splits(run, FOLDS, ident["seed"])
    base = apgr(sweep(SignalRouter("context_support").decision_function(rows), tf, tl, nan_rank="last"), q0, q1)
    print(f"{a.run_dir}: {run.n} questions, {len(splits)} folds by passage (training folds about "
          f"{int(np.mean([len(tr) for tr, _ in splits]))} questions); no training needed: signal:context_support "
          f"APGR {base:.3f}")
    print(f"{'train questions':>15} | {'APGR mean':>9} | {'min-max over repeats':>21}")
    for size in (int(s) for s in a.sizes.split(",")):
        scores = []
        for rep in range(a.repeats if size else 1):
            oof = np.full(run.n, np.nan)
            for tr, te in splits:
                by_p: dict[str, list[int]] = {}
                for i in tr:
                    by_p.setdefault(pid[i], []).append(int(i))
                pids = list(by_p)
                random.Random(rep).shuffle(pids)
                idx: list[int] = []
                for p in pids:
                    if size and len(idx) >= size:
                        break
                    idx += by_p[p]
                y, w = gain_labels(tf[idx], tl[idx])
                if len(np.unique(y[w > 0])) < 2:
                    break
                gate = LogisticRouter().fit([rows[i] for i in idx], y, sample_weight=w)
                oof[te] = gate.decision_function([rows[i] for i in te])
            else:
                c = sweep(oof, tf, tl, nan_rank="last")
                scores.append(apgr(c, q0, q1))
        if not scores:
            continue
        spread = f"{min(scores):.3f}-{max(scores):.3f}" if len(scores) > 1 else "(one fit per fold)"
        print(f"{size or 'all':>15} | {np.mean(scores):9.3f} | {spread:>21}")
        if not size:
            ci = curve_intervals(c, tf, tl, Bootstrap.over_passages(pid))["apgr_ci95"]
            print(f"{'':>15}   95% interval: {ci[0]:.3f}-{ci[1]:.3f}")


if __name__ == "__main__":
    main()
