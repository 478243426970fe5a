"""Checking prediction dicts against the gold question ids, and reporting missing ones."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping

#: How many ids an error or report message lists before "... (N in all)".
SHOW_IDS = 10


class PredictionsError(ValueError):
    """Predictions (or no-answer probabilities) that cannot be scored against the data."""


class MissingPredictionsError(PredictionsError):
    """Some questions have no prediction; ``.missing`` holds their ids in data order."""

    def __init__(self, message: str, missing: list[str]):
        super().__init__(message)
        self.missing = missing


def format_ids(ids: list[str], limit: int = SHOW_IDS) -> str:
    """``"a, b, c"`` or ``"a, b, ... (N in all)"`` when there are more than `limit`."""
    shown = ", ".join(ids[:limit])
    return shown if len(ids) <= limit else f"{shown}, ... ({len(ids)} in all)"


def check_string_map(values: object, what: str) -> Mapping[str, str]:
    """Return `values` if it is a dict of str -> str; else raise `PredictionsError`."""
    if not isinstance(values, Mapping):
        raise PredictionsError(f"{what} must be a JSON object {{id: answer}}")
    bad = [str(k) for k, v in values.items() if not isinstance(v, str)]
    if bad:
        raise PredictionsError(f"{what}: the answer must be a string for ids {format_ids(bad)}")
    return values


def check_overlap(qids: list[str], pred_ids: Iterable[str], dataset: str) -> list[str]:
    """Return the question ids (in data order) that have no prediction.

    Raises:
        PredictionsError: not one prediction id is a question id of the data (predictions for a
            different dataset, or an empty file).
    """
    if not qids:
        raise PredictionsError(f"{dataset}: the data has no questions")
    pred_ids = set(pred_ids)
    missing = [q for q in qids if q not in pred_ids]
    if len(missing) == len(qids):
        if not pred_ids:
            raise PredictionsError(f"the predictions are empty: nothing to score on {dataset}")
        sample = format_ids(sorted(map(str, pred_ids)), 3)
        hint = " (HotpotQA format?)" if pred_ids & {"answer", "sp"} else ""
        raise PredictionsError(
            f"no prediction id matches a {dataset} question id ({len(pred_ids)} prediction ids, "
            f"e.g. {sample}){hint}: are these predictions for another dataset?"
        )
    return missing


def check_predictions(qids: list[str], predictions: object, dataset: str, what: str) -> list[str]:
    """Check a ``{id: answer}`` dict against the question ids; return the ids without a prediction.

    Raises:
        PredictionsError: not a dict, no id in common with `qids` (checked first, so a file for
            another dataset is named as such), or a non-string answer.
    """
    if not isinstance(predictions, Mapping):
        raise PredictionsError(f"{what} must be a JSON object {{id: answer}}")
    missing = check_overlap(qids, predictions, dataset)
    check_string_map(predictions, what)
    return missing


def report_missing(missing: list[str], total: int, what: str = "prediction") -> None:
    """Write one line to stderr naming the questions without a `what` (they score 0); the
    official scripts print one line per id instead."""
    if missing:
        print(
            f"{len(missing)} of {total} questions have no {what} and score 0: "
            f"{format_ids(missing)}",
            file=sys.stderr,
        )
