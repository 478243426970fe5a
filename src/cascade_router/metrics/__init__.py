"""The official QA metrics, re-implemented: SQuAD v1.1 (evaluate-v1.1.py), SQuAD v2.0
(evaluate-v2.0.py) and HotpotQA (hotpot_evaluate_v1.py), per question and per corpus."""

from .answer import exact_match, f1, score_example
from .hotpot import evaluate_hotpot
from .normalize import normalize_answer
from .predictions import MissingPredictionsError, PredictionsError
from .squad_v1 import evaluate_squad_v1
from .squad_v2 import evaluate_squad_v2

__all__ = [
    "MissingPredictionsError",
    "PredictionsError",
    "evaluate_hotpot",
    "evaluate_squad_v1",
    "evaluate_squad_v2",
    "exact_match",
    "f1",
    "normalize_answer",
    "score_example",
]
