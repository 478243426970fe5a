"""Per-question exact match and F1 under each dataset's official rules.

Sources: ``exact_match_score`` / ``f1_score`` / ``metric_max_over_ground_truths`` in
evaluate-v1.1.py; ``compute_exact`` / ``compute_f1`` and the gold filtering of
``get_raw_scores`` in evaluate-v2.0.py; ``exact_match_score`` / ``f1_score`` in
hotpot_evaluate_v1.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .normalize import answer_tokens, normalize_answer

if TYPE_CHECKING:
    from ..datasets import QAExample

_DATASETS = ("squad-v1.1", "squad-v2.0", "hotpotqa")
_HOTPOT_SPECIAL = ("yes", "no", "noanswer")


def _overlap_prf(pred_toks: list[str], gold_toks: list[str]) -> tuple[float, float, float]:
    """Token-overlap (F1, precision, recall); all 0 when no token is shared."""
    num_same = sum((Counter(pred_toks) & Counter(gold_toks)).values())
    if num_same == 0:
        return 0.0, 0.0, 0.0
    precision = num_same / len(pred_toks)
    recall = num_same / len(gold_toks)
    return 2 * precision * recall / (precision + recall), precision, recall


def hotpot_prf(prediction: str, gold: str) -> tuple[float, float, float]:
    """(F1, precision, recall) of one prediction against one gold, ``f1_score`` in
    hotpot_evaluate_v1.py: if either side normalises to ``yes``/``no``/``noanswer`` and the two
    differ, all three are 0."""
    p, g = normalize_answer(prediction), normalize_answer(gold)
    if (p in _HOTPOT_SPECIAL or g in _HOTPOT_SPECIAL) and p != g:
        return 0.0, 0.0, 0.0
    return _overlap_prf(p.split(), g.split())


def _v2_f1(prediction: str, gold: str) -> float:
    """``compute_f1`` in evaluate-v2.0.py: if either side has no tokens, 1 if both have none."""
    g, p = answer_tokens(gold), answer_tokens(prediction)
    if not g or not p:
        return float(g == p)
    return _overlap_prf(p, g)[0]


def _golds(golds: Sequence[str], dataset: str) -> list[str]:
    if dataset not in _DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; valid names: {', '.join(_DATASETS)}")
    if isinstance(golds, str):
        raise TypeError("golds must be a list of strings, not a string")
    if dataset == "squad-v2.0":
        # get_raw_scores: drop golds that normalise to "", and score "no answer" as gold "".
        kept = [g for g in golds if normalize_answer(g)]
        return kept or [""]
    if not golds:
        raise ValueError(f"{dataset}: a question needs at least one gold answer")
    return list(golds)


def exact_match(prediction: str, golds: Sequence[str], dataset: str) -> float:
    """Exact match, 0.0 or 1.0: the max over `golds` of ``normalize_answer(prediction) ==
    normalize_answer(gold)``.

    SQuAD v2.0 (evaluate-v2.0.py ``get_raw_scores``): golds normalising to ``""`` are dropped
    first and an empty list becomes ``[""]``, so an empty prediction is right on an unanswerable
    question. SQuAD v1.1 and HotpotQA compare against every gold as given (a gold ``"."`` matches
    an empty prediction).

    Raises:
        ValueError: unknown `dataset`, or no golds for squad-v1.1 / hotpotqa.
    """
    p = normalize_answer(prediction)
    return float(any(p == normalize_answer(g) for g in _golds(golds, dataset)))


def f1(prediction: str, golds: Sequence[str], dataset: str) -> float:
    """Token F1 in ``[0, 1]``, the max over `golds`.

    - squad-v1.1 (evaluate-v1.1.py ``f1_score``): 0 when no normalised token is shared (also when
      both sides are empty).
    - squad-v2.0 (evaluate-v2.0.py ``compute_f1``): golds filtered as in `exact_match`; if either
      side has no tokens, 1 if both have none, else 0.
    - hotpotqa (hotpot_evaluate_v1.py ``f1_score``): a ``yes``/``no``/``noanswer`` mismatch
      scores 0; otherwise as squad-v1.1.

    Raises:
        ValueError: unknown `dataset`, or no golds for squad-v1.1 / hotpotqa.
    """
    golds = _golds(golds, dataset)
    if dataset == "squad-v2.0":
        return max(_v2_f1(prediction, g) for g in golds)
    if dataset == "hotpotqa":
        return max(hotpot_prf(prediction, g)[0] for g in golds)
    p = answer_tokens(prediction)
    return max(_overlap_prf(p, answer_tokens(g))[0] for g in golds)


def score_example(example: QAExample, prediction: str) -> tuple[float, float]:
    """``(EM, F1)`` of one prediction for one `QAExample`, each in ``[0, 1]``, under the rules of
    ``example.dataset`` (see `exact_match` and `f1`)."""
    return (
        exact_match(prediction, example.answers, example.dataset),
        f1(prediction, example.answers, example.dataset),
    )
