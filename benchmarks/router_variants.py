"""Learned-router and signal variants scored offline on stored runs (no model is called).

For each run directory (made by ``cascade-router eval``), the same passage split as the report
(seed from the run, half calibration / half test): every variant is fitted on the calibration
half and its APGR (RouteLLM) is printed for the test half. The pair studied is the run's first
tier (the SLM of a two-tier run) against its last tier (the LLM); the router reads the first
tier's signals. Variants:

* ``context_support`` as defined (official SQuAD normalisation) and with ``\\w+`` tokens instead;
* the logistic router over all signals: unweighted labels "last-tier F1 > first-tier F1", the cost-sensitive
  weights |F1 gain| it uses (:func:`cascade_router.routers.gain_labels`), ``class_weight=
  "balanced"``, ``C=0.1``; ridge regression on the F1 gain; gradient-boosted trees.

    python benchmarks/router_variants.py results/squad-v1.1-n1000 results/hotpotqa-all
"""

from __future__ import annotations

import argparse
import re

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cascade_router.commands.common import load_scored_run, open_run
from cascade_router.datasets import split_by_passage
from cascade_router.evaluation.curves import apgr, sweep
from cascade_router.routers import LogisticRouter, SignalRouter, gain_labels
from cascade_router.routers.base import column
from cascade_router.signals import SIGNALS

_ARTICLES = {"a", "an", "the"}


def _word_support(answer: str, passage: str) -> float:
    """context_support with ``\\w+`` tokens (punctuation splits words) instead of the official rule."""
    toks = [w for w in re.findall(r"\w+", answer.lower()) if w not in _ARTICLES]
    if not toks:
        return 0.0
    words = set(re.findall(r"\w+", passage.lower()))
    return sum(t in words for t in toks) / len(toks)


def _pipe(model):
    return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(), model)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", help="run directories made by `cascade-router eval`")
    a = ap.parse_args()
    for rd in a.runs:
        ident, examples = open_run(rd)
        run = load_scored_run(rd, ident, examples)  # prices: the models' defaults (APGR ignores cost)
        first, last = run.first, run.last
        cal_ex, test_ex = split_by_passage([r.ex for r in run.records], 0.5, ident["seed"])
        cal, test = run.subset({e.id for e in cal_ex}), run.subset({e.id for e in test_ex})
        qs, ql = test.arrays[first].f1, test.arrays[last].f1
        sig = {"cal": cal.signals(first), "test": test.signals(first)}

        def score(name, s):
            c = sweep(s, qs, ql, nan_rank="last")
            print(f"  {name:40s} APGR {apgr(c, qs.mean(), ql.mean()):.3f}")

        X = {k: np.column_stack([column(rows, s) for s in SIGNALS]) for k, rows in sig.items()}
        X = {k: np.where(np.isfinite(v), v, np.nan) for k, v in X.items()}
        gain = cal.arrays[last].f1 - cal.arrays[first].f1
        y, w = gain_labels(cal.arrays[first].f1, cal.arrays[last].f1)
        print(f"== {rd}: calibration {cal.n}, test {test.n} ({first} -> {last})")
        score("signal:mean_entropy", SignalRouter("mean_entropy").decision_function(sig["test"]))
        score("signal:context_support (official tokens)", SignalRouter("context_support").decision_function(sig["test"]))
        score("context_support with \\w+ tokens",
              np.array([np.nan if np.isnan(r.tiers[first].signals["context_support"])
                        else -_word_support(r.tiers[first].answer, r.ex.context) for r in test.records]))
        score("logistic router, unweighted labels",
              LogisticRouter().fit(sig["cal"], (gain > 0).astype(int)).decision_function(sig["test"]))
        score("logistic router, |gain| weights (used)",
              LogisticRouter().fit(sig["cal"], y, sample_weight=w).decision_function(sig["test"]))
        fits = {
            "logistic, class_weight=balanced": (LogisticRegression(class_weight="balanced", max_iter=1000), (gain > 0).astype(int), None),
            "logistic, C=0.1, |gain| weights": (LogisticRegression(C=0.1, max_iter=1000), y, w),
            "gradient-boosted trees": (HistGradientBoostingClassifier(max_depth=3, learning_rate=0.05), (gain > 0).astype(int), None),
        }
        for name, (model, labels, weights) in fits.items():
            p = _pipe(model)
            p.fit(X["cal"], labels, **({p.steps[-1][0] + "__sample_weight": weights} if weights is not None else {}))
            score(name, p.predict_proba(X["test"])[:, 1])
        ridge = _pipe(Ridge(alpha=1.0)).fit(X["cal"], gain)
        score("ridge regression on the F1 gain", ridge.predict(X["test"]))


if __name__ == "__main__":
    main()
