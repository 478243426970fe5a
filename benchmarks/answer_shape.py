"""Answer-shape features for the gate, measured offline on a stored run (issue 10, part 3).

For each question, from the first tier's cleaned answer, the question and the passage:

- ``shape_mismatch``: 1 when the question's wh-type expects a shape the answer lacks (``when`` /
  ``what year`` -> a digit; ``how many`` / ``how much`` -> a digit or a number word; ``who`` ->
  a capitalised word), else 0; nan for other questions.
- ``question_overlap``: share of the answer's words that also occur in the question.
- ``answer_position``: where the answer first occurs in the passage, as a fraction of its length
  (nan when it does not occur verbatim).
- ``relative_length``: the answer's words over the passage's mean sentence length in words.

Each is scored alone (its direction chosen on the training folds) and inside the cost-sensitive
logistic gate beside the nine signals, cross-fitted as the report is (5 folds by passage, each
question scored by a gate fitted on the other folds), APGR over all questions with its 95%
passage-bootstrap interval.

Usage: ``python benchmarks/answer_shape.py [RUN_DIR]`` (default the 3,000-question run)
"""

from __future__ import annotations

import argparse
import re

import numpy as np
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cascade_router.evaluation.analysis import FOLDS, crossfit_splits
from cascade_router.evaluation.curves import apgr, sweep
from cascade_router.evaluation.runs import load_scored_run, open_run
from cascade_router.evaluation.stats import Bootstrap, curve_intervals
from cascade_router.routers import gain_labels
from cascade_router.signals import SIGNALS

NUMBER_WORDS = {"one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
                "hundred", "thousand", "million", "billion", "several", "many", "few"}
FEATURES = ("shape_mismatch", "question_overlap", "answer_position", "relative_length")


def shape_features(question: str, answer: str, passage: str) -> dict[str, float]:
    """The four features of the module docstring for one answer."""
    q = question.lower().strip()
    words = answer.split()
    nan = float("nan")
    if q.startswith(("when", "what year", "in what year", "which year")):
        mismatch = float(not re.search(r"\d", answer))
    elif q.startswith(("how many", "how much")):
        mismatch = float(not (re.search(r"\d", answer) or any(w.lower() in NUMBER_WORDS for w in words)))
    elif q.startswith("who"):
        mismatch = float(not any(w[:1].isupper() for w in words))
    else:
        mismatch = nan
    qwords = set(re.findall(r"\w+", q))
    awords = re.findall(r"\w+", answer.lower())
    overlap = (sum(w in qwords for w in awords) / len(awords)) if awords else nan
    pos = passage.find(answer) if answer else -1
    position = pos / max(len(passage), 1) if pos >= 0 else nan
    sents = [s for s in re.split(r"(?<=[.!?])\s+", passage) if s.strip()]
    mean_len = np.mean([len(s.split()) for s in sents]) if sents else nan
    rel = len(words) / mean_len if sents and mean_len > 0 else nan
    return {"shape_mismatch": mismatch, "question_overlap": overlap, "answer_position": position,
            "relative_length": rel}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", nargs="?", default="results/squad-v1.1-n3000")
    ap.add_argument("--folds", type=int, default=FOLDS)
    a = ap.parse_args(argv)
    ident, examples = open_run(a.run_dir)
    run = load_scored_run(a.run_dir, ident, examples)
    first, last = run.first, run.last
    splits = crossfit_splits(run, a.folds, ident["seed"])
    rows = []
    for r, sig in zip(run.records, run.signals(first)):
        sf = shape_features(r.ex.question, r.tiers[first].answer, r.ex.context)
        rows.append([sig[s] for s in SIGNALS] + [sf[k] for k in FEATURES])
    X = np.array(rows, dtype=float)
    X = np.where(np.isfinite(X), X, np.nan)
    tf, tl = run.arrays[first].f1, run.arrays[last].f1
    q0, q1 = float(tf.mean()), float(tl.mean())
    boot = Bootstrap.over_passages([r.ex.passage_id for r in run.records])
    print(f"{a.run_dir}: {run.n} questions, {len(splits)} folds by passage (cross-fitted)")

    def report(label: str, oof: np.ndarray) -> None:
        c = sweep(oof, tf, tl, nan_rank="last")
        ci = curve_intervals(c, tf, tl, boot)["apgr_ci95"]
        print(f"  {label:34} APGR {apgr(c, q0, q1):.3f} [{ci[0]:.3f}, {ci[1]:.3f}]")

    for j, name in enumerate(FEATURES):
        col = X[:, len(SIGNALS) + j]
        oof = np.full(run.n, np.nan)
        for tr, te in splits:  # the direction is chosen on the training folds
            d = max((apgr(sweep(d * col[tr], tf[tr], tl[tr], nan_rank="last"), float(tf[tr].mean()),
                          float(tl[tr].mean())), d) for d in (1, -1))[1]
            oof[te] = d * col[te]
        report(f"{name} alone (defined on {np.isfinite(col).mean():.0%})", oof)
    for extra in (False, True):
        cols = X if extra else X[:, : len(SIGNALS)]
        oof = np.full(run.n, np.nan)
        for tr, te in splits:
            y, w = gain_labels(tf[tr], tl[tr])
            model = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(),
                                  LogisticRegression(max_iter=2000))
            model.fit(cols[tr], y, logisticregression__sample_weight=w)
            oof[te] = model.predict_proba(cols[te])[:, 1]
        report("logistic, signals + answer shape" if extra else "logistic, signals", oof)


if __name__ == "__main__":
    main()
