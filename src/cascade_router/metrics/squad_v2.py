"""Corpus-level SQuAD v2.0 scoring, as ``main`` in evaluate-v2.0.py (without the plots)."""

from __future__ import annotations

import math

from collections.abc import Mapping

from .answer import exact_match, f1
from .predictions import (
    MissingPredictionsError,
    PredictionsError,
    check_predictions,
    format_ids,
    report_missing,
)
from .squad_v1 import iter_squad_qas


def _check_na_probs(na_probs: object, answered: list[str]) -> Mapping[str, float]:
    if not isinstance(na_probs, Mapping):
        raise PredictionsError("na_probs must be a JSON object {id: probability}")
    bad = [
        str(k) for k, v in na_probs.items()
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v)
    ]
    if bad:
        raise PredictionsError(f"na_probs: the value must be a finite number for ids {format_ids(bad)}")
    lacking = [q for q in answered if q not in na_probs]
    if lacking:
        raise PredictionsError(
            f"na_probs has no probability for {len(lacking)} predicted questions: "
            f"{format_ids(lacking)}"
        )
    return na_probs


def _mean_dict(exact: dict, f1s: dict, qids: list[str]) -> dict:
    """``make_eval_dict``: percentages over `qids` and their count."""
    n = len(qids)
    return {
        "exact": 100.0 * sum(exact[q] for q in qids) / n,
        "f1": 100.0 * sum(f1s[q] for q in qids) / n,
        "total": n,
    }


def find_best_thresh(
    preds: Mapping[str, str],
    scores: Mapping[str, float],
    na_probs: Mapping[str, float],
    has_ans: Mapping[str, bool],
) -> tuple[float, float]:
    """``find_best_thresh`` in evaluate-v2.0.py: the best corpus score (0..100) reachable by
    answering "" whenever the no-answer probability exceeds a threshold, and that threshold.

    Start with every question answered "" (score = unanswerable questions with a prediction);
    walk the questions by increasing na_prob (stable sort, ties in `na_probs` order), adding the
    raw score of an answerable one, or -1 for an unanswerable one with a non-empty prediction;
    keep the first running maximum (strictly greater) and the na_prob where it was reached
    (0.0 if none beats the start). The score is divided by ``len(scores)``.
    """
    cur = sum(1 for q, has in has_ans.items() if not has and q in preds)
    best, best_thresh = cur, 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in scores:
            continue
        if has_ans[qid]:
            diff = scores[qid]
        else:
            diff = -1 if preds.get(qid) else 0
        cur += diff
        if cur > best:
            best, best_thresh = cur, na_probs[qid]
    return 100.0 * best / len(scores), best_thresh


def evaluate_squad_v2(
    data: list,
    predictions: Mapping[str, str],
    na_probs: Mapping[str, float] | None = None,
    na_prob_thresh: float = 1.0,
    *,
    missing: str = "error",
) -> dict:
    """Score SQuAD v2.0 predictions like evaluate-v2.0.py.

    Args:
        data: the ``"data"`` list of an official SQuAD v2.0 file (``load_raw("squad-v2.0")``).
        predictions: ``{question_id: answer_text}``, ``""`` meaning "no answer"; ids not in
            `data` are ignored.
        na_probs: ``{question_id: probability the question is unanswerable}`` (the official
            ``--na-prob-file``); needed for every predicted question. ``None``: all 0.0.
        na_prob_thresh: a prediction counts as "" when its na_prob is strictly greater
            (official ``--na-prob-thresh``, default 1.0).
        missing: ``"error"`` (default) raises `MissingPredictionsError` naming the questions
            without a prediction (the official script would crash with a KeyError);
            ``"zero"`` scores them 0 in every average and best-threshold sum, and names them in
            one line on stderr.

    Returns:
        the official keys, percentages 0..100 and counts: ``exact, f1, total`` (all questions),
        ``HasAns_exact, HasAns_f1, HasAns_total`` (if any answerable question),
        ``NoAns_exact, NoAns_f1, NoAns_total`` (if any unanswerable one) and, only when
        `na_probs` is given, ``best_exact, best_exact_thresh, best_f1, best_f1_thresh``
        (`find_best_thresh`, computed on the raw scores, before `na_prob_thresh`).

    Raises:
        MissingPredictionsError: questions without a prediction and ``missing="error"``.
        PredictionsError: a non-string answer, no prediction id in common with `data`, or
            na_probs that are not numbers or lack a predicted question.
        ValueError: `missing` is neither ``"error"`` nor ``"zero"``.
    """
    if missing not in ("error", "zero"):
        raise ValueError(f"missing must be 'error' or 'zero', got {missing!r}")
    qas = list(iter_squad_qas(data))
    qids = [qa["id"] for qa in qas]
    has_ans = {qa["id"]: bool(qa["answers"]) for qa in qas}  # make_qid_to_has_ans
    lacking = check_predictions(qids, predictions, "squad-v2.0", "predictions")
    if lacking and missing == "error":
        raise MissingPredictionsError(
            f"{len(lacking)} of {len(qids)} squad-v2.0 questions have no prediction: "
            f"{format_ids(lacking)}",
            lacking,
        )
    report_missing(lacking, len(qids))
    answered = [q for q in qids if q in predictions]
    probs = (
        {q: 0.0 for q in predictions}
        if na_probs is None
        else _check_na_probs(na_probs, answered)
    )

    exact_raw: dict[str, float] = {}
    f1_raw: dict[str, float] = {}
    for qa in qas:  # get_raw_scores (gold filtering lives in exact_match / f1)
        qid = qa["id"]
        if qid not in predictions:
            exact_raw[qid] = f1_raw[qid] = 0.0
            continue
        golds = [a["text"] for a in qa["answers"]]
        exact_raw[qid] = exact_match(predictions[qid], golds, "squad-v2.0")
        f1_raw[qid] = f1(predictions[qid], golds, "squad-v2.0")

    def thresholded(raw: dict[str, float]) -> dict[str, float]:  # apply_no_ans_threshold
        return {
            q: float(not has_ans[q]) if q in predictions and probs[q] > na_prob_thresh else s
            for q, s in raw.items()
        }

    exact_t, f1_t = thresholded(exact_raw), thresholded(f1_raw)
    out = _mean_dict(exact_t, f1_t, qids)
    for prefix, keep in (("HasAns", True), ("NoAns", False)):
        subset = [q for q in qids if has_ans[q] is keep]
        if subset:
            out.update({f"{prefix}_{k}": v for k, v in _mean_dict(exact_t, f1_t, subset).items()})
    if na_probs is not None:  # find_all_best_thresh
        out["best_exact"], out["best_exact_thresh"] = find_best_thresh(
            predictions, exact_raw, probs, has_ans
        )
        out["best_f1"], out["best_f1_thresh"] = find_best_thresh(
            predictions, f1_raw, probs, has_ans
        )
    return out
