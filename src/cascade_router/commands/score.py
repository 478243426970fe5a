"""``cascade-router score``: official metrics for a predictions file (SQuAD v1.1/v2.0, HotpotQA)."""

from __future__ import annotations

import json
import math
import sys

import click

from ..datasets import DATASETS, DatasetError, load_raw, restrict_raw
from ..datasets.files import read_json
from ..metrics import (
    PredictionsError,
    evaluate_hotpot,
    evaluate_squad_v1,
    evaluate_squad_v2,
)


def _read(path: str, what: str) -> object:
    try:
        return read_json(path)
    except DatasetError as exc:  # the message already names the file
        raise PredictionsError(f"{what} file {exc}") from None


def _predicted_ids(dataset: str, predictions: object) -> set[str]:
    if dataset == "hotpotqa":
        answers = predictions.get("answer") if isinstance(predictions, dict) else None
        return set(answers) if isinstance(answers, dict) else set()
    return set(predictions) if isinstance(predictions, dict) else set()


def _score(dataset: str, data_path, pred_path: str, na_path, na_thresh: float, zero: bool, only_predicted: bool = False) -> dict:
    if dataset not in DATASETS:
        raise DatasetError(f"unknown dataset {dataset!r}; valid names: {', '.join(DATASETS)}")
    if na_path is not None and dataset != "squad-v2.0":
        raise PredictionsError("--na-probs applies to squad-v2.0 only")
    data = load_raw(dataset, data_path)
    predictions = _read(pred_path, "predictions")
    if only_predicted:
        restricted = restrict_raw(dataset, data, _predicted_ids(dataset, predictions))
        if not restricted:
            raise PredictionsError(f"{pred_path}: no prediction id matches a {dataset} question id")
        data = restricted
    try:
        if dataset == "squad-v1.1":
            return evaluate_squad_v1(data, predictions)
        if dataset == "hotpotqa":
            return evaluate_hotpot(data, predictions)
        na_probs = None if na_path is None else _read(na_path, "na-probs")
        if not math.isfinite(na_thresh):
            raise PredictionsError("--na-prob-thresh must be a finite number")
        return evaluate_squad_v2(
            data, predictions, na_probs, na_thresh, missing="zero" if zero else "error"
        )
    except PredictionsError as exc:
        where = na_path if na_path is not None and "na_probs" in str(exc) else pred_path
        raise PredictionsError(f"{where}: {exc}") from None


@click.command(name="score")
@click.option("--dataset", required=True, metavar="NAME", help=f"One of: {', '.join(DATASETS)}.")
@click.option(
    "--data", "data_path", default=None, metavar="PATH",
    help="Official .json/.json.gz data file (default: the bundled dev file).",
)
@click.option(
    "--predictions", "pred_path", required=True, metavar="PRED.json",
    help='SQuAD: {id: answer}. HotpotQA: {"answer": {id: answer}, "sp": {id: [[title, i], ...]}}.',
)
@click.option(
    "--na-probs", "na_path", default=None, metavar="NA.json",
    help="squad-v2.0 only: {id: P(no answer)}; adds best_exact/best_f1 and their thresholds.",
)
@click.option(
    "--na-prob-thresh", type=float, default=1.0, show_default=True,
    help='squad-v2.0: answer "" when P(no answer) is above this.',
)
@click.option(
    "--missing-as-zero", is_flag=True,
    help="squad-v2.0: score questions without a prediction 0 instead of failing "
    "(squad-v1.1 and hotpotqa always do, as their official scripts).",
)
@click.option(
    "--only-predicted", is_flag=True,
    help="Score only the questions that have a prediction (e.g. an eval run's sample), as the "
    "official script would score a data file holding just those questions.",
)
def command(dataset, data_path, pred_path, na_path, na_prob_thresh, missing_as_zero, only_predicted) -> None:
    """Print the official metrics (same names and scales as evaluate-v1.1.py, evaluate-v2.0.py,
    hotpot_evaluate_v1.py) as JSON. Questions without a prediction are listed on stderr.
    Bad input: a one-line error and exit code 2."""
    try:
        result = _score(dataset, data_path, pred_path, na_path, na_prob_thresh, missing_as_zero, only_predicted)
    except (DatasetError, PredictionsError) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    click.echo(json.dumps(result, indent=2))
