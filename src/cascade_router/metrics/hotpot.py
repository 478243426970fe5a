"""Corpus-level HotpotQA scoring, as ``eval`` in hotpot_evaluate_v1.py."""

from __future__ import annotations

from collections.abc import Mapping

from .answer import exact_match, hotpot_prf
from .predictions import (
    PredictionsError,
    check_predictions,
    format_ids,
    report_missing,
)

ANSWER_KEYS = ("em", "f1", "prec", "recall")
SP_KEYS = ("sp_em", "sp_f1", "sp_prec", "sp_recall")
JOINT_KEYS = ("joint_em", "joint_f1", "joint_prec", "joint_recall")


def sp_scores(predicted: list, gold: list) -> tuple[float, float, float, float]:
    """``update_sp`` in hotpot_evaluate_v1.py: (EM, F1, precision, recall) of the predicted
    supporting facts ``[[title, sentence_index], ...]`` against the gold ones, compared as sets
    of ``(title, index)``; precision/recall/F1 are 0 when their denominator is 0, EM is 1 only when
    the two sets are equal."""
    pred, gold_set = set(map(tuple, predicted)), set(map(tuple, gold))
    tp = len(pred & gold_set)
    fp, fn = len(pred) - tp, len(gold_set) - tp
    prec = tp / (tp + fp) if tp + fp > 0 else 0.0
    recall = tp / (tp + fn) if tp + fn > 0 else 0.0
    f1 = 2 * prec * recall / (prec + recall) if prec + recall > 0 else 0.0
    return (1.0 if fp + fn == 0 else 0.0), f1, prec, recall


def _check_sp(sp: object) -> Mapping[str, list]:
    if not isinstance(sp, Mapping):
        raise PredictionsError('prediction["sp"] must be a JSON object {id: [[title, index], ...]}')
    bad = [
        str(k) for k, facts in sp.items()
        if not isinstance(facts, list)
        or not all(
            isinstance(f, (list, tuple))
            and len(f) == 2
            and isinstance(f[0], str)
            and isinstance(f[1], int)
            and not isinstance(f[1], bool)
            for f in facts
        )
    ]
    if bad:
        raise PredictionsError(
            f'prediction["sp"] must map each id to a list of [title, int] pairs; bad ids: '
            f"{format_ids(bad)}"
        )
    return sp


def evaluate_hotpot(data: list, prediction: Mapping) -> dict:
    """Score HotpotQA predictions like hotpot_evaluate_v1.py.

    Args:
        data: the list of official records (``load_raw("hotpotqa")``).
        prediction: ``{"answer": {id: answer_text}, "sp": {id: [[title, sentence_index], ...]}}``;
            ``"sp"`` is optional (the official script requires it).

    Returns:
        ``em, f1, prec, recall`` and, only when ``"sp"`` is given, ``sp_em, sp_f1, sp_prec,
        sp_recall, joint_em, joint_f1, joint_prec, joint_recall``: fractions in 0..1 (NOT
        percentages, as the official script), averaged over EVERY record in `data`. A missing
        answer or sp scores 0 there and in joint (joint precision = answer precision x sp
        precision, joint recall likewise, joint F1 their harmonic mean, joint EM the product);
        the ids are named in one line on stderr per kind.

    Raises:
        PredictionsError: not the ``{"answer": ..., "sp": ...}`` shape, a non-string answer,
            a malformed sp list, or no answer id in common with `data`.
    """
    if not isinstance(prediction, Mapping) or "answer" not in prediction:
        raise PredictionsError(
            'HotpotQA predictions must be a JSON object {"answer": {id: answer}, '
            '"sp": {id: [[title, index], ...]}}'
        )
    answers = prediction["answer"]
    qids = [rec["_id"] for rec in data]
    missing = check_predictions(qids, answers, "hotpotqa", 'prediction["answer"]')
    sp = _check_sp(prediction["sp"]) if "sp" in prediction else None
    report_missing(missing, len(qids), "answer")
    keys = ANSWER_KEYS + (SP_KEYS + JOINT_KEYS if sp is not None else ())
    totals = dict.fromkeys(keys, 0.0)
    if sp is not None:
        report_missing([q for q in qids if q not in sp], len(qids), "sp prediction")
    for rec in data:
        qid = rec["_id"]
        ans = sps = None
        if qid in answers:
            f1, prec, recall = hotpot_prf(answers[qid], rec["answer"])
            ans = (exact_match(answers[qid], [rec["answer"]], "hotpotqa"), f1, prec, recall)
            for key, value in zip(ANSWER_KEYS, ans, strict=True):
                totals[key] += value
        if sp is not None and qid in sp:
            sps = sp_scores(sp[qid], rec["supporting_facts"])
            for key, value in zip(SP_KEYS, sps, strict=True):
                totals[key] += value
        if ans is not None and sps is not None:
            joint_prec, joint_recall = ans[2] * sps[2], ans[3] * sps[3]
            joint_f1 = (
                2 * joint_prec * joint_recall / (joint_prec + joint_recall)
                if joint_prec + joint_recall > 0
                else 0.0
            )
            joint = (ans[0] * sps[0], joint_f1, joint_prec, joint_recall)
            for key, value in zip(JOINT_KEYS, joint, strict=True):
                totals[key] += value
    return {key: value / len(qids) for key, value in totals.items()}
