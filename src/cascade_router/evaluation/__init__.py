"""Offline evaluation math: threshold sweeps, RouteLLM metrics, cost accounting, plots."""

from .costs import cost_curve, latency, percentiles, question_cost, question_costs
from .curves import (
    Curve,
    apgr,
    auc,
    cascade_quality,
    cpt,
    escalate,
    oracle_curve,
    pgr,
    random_curve,
    summarize,
    sweep,
    threshold_for_quality,
    threshold_for_rate,
)

__all__ = [
    "Curve", "apgr", "auc", "cascade_quality", "cpt", "escalate", "oracle_curve", "pgr",
    "random_curve", "summarize", "sweep", "threshold_for_quality", "threshold_for_rate",
    "cost_curve", "latency", "percentiles", "question_cost", "question_costs",
]
