"""Corpus-level SQuAD v1.1 scoring, as ``evaluate`` in evaluate-v1.1.py."""

from __future__ import annotations

from collections.abc import Mapping

from .answer import exact_match, f1
from .predictions import check_predictions, report_missing


def iter_squad_qas(data: list):
    """Yield every ``qa`` record of a SQuAD ``"data"`` list, in file order."""
    for article in data:
        for paragraph in article["paragraphs"]:
            yield from paragraph["qas"]


def evaluate_squad_v1(data: list, predictions: Mapping[str, str]) -> dict:
    """Score SQuAD v1.1 predictions like evaluate-v1.1.py.

    Args:
        data: the ``"data"`` list of an official SQuAD file (``load_raw("squad-v1.1")``).
        predictions: ``{question_id: answer_text}``; ids not in `data` are ignored.

    Returns:
        ``{"exact_match": float, "f1": float}``, percentages (0..100) averaged over EVERY
        question in `data`: a question without a prediction scores 0. Those questions are named in
        one line on stderr (the official script prints one line per id).

    Raises:
        PredictionsError: a non-string answer, or no prediction id in common with `data`.
    """
    qas = list(iter_squad_qas(data))
    missing = check_predictions([qa["id"] for qa in qas], predictions, "squad-v1.1", "predictions")
    report_missing(missing, len(qas))
    em_sum = f1_sum = 0.0
    for qa in qas:
        if qa["id"] in predictions:
            golds = [a["text"] for a in qa["answers"]]
            em_sum += exact_match(predictions[qa["id"]], golds, "squad-v1.1")
            f1_sum += f1(predictions[qa["id"]], golds, "squad-v1.1")
    return {"exact_match": 100.0 * em_sum / len(qas), "f1": 100.0 * f1_sum / len(qas)}
