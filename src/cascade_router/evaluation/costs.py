"""Cost and latency accounting for an SLM -> LLM cascade (pure numpy, offline).

Units: money in **dollars**, time in **seconds**, prices per **million tokens**.

A cascade always runs the SLM first; a question the router escalates then also runs the
LLM. So an escalated question pays BOTH tiers (and waits for both, sequentially), a kept
question pays (and waits for) the SLM only.
"""

from __future__ import annotations

import numpy as np

from ..tiers import nonnegative
from .curves import Curve

__all__ = [
    "question_cost",
    "question_costs",
    "latency",
    "percentiles",
    "cost_curve",
]


def _same_shape(**arrays: np.ndarray) -> None:
    names = list(arrays)
    first = arrays[names[0]]
    for nm in names[1:]:
        if arrays[nm].shape != first.shape:
            raise ValueError(
                f"{nm} must have the same shape as {names[0]}, got {arrays[nm].shape} and {first.shape}"
            )


def question_cost(slm_cost: float, llm_cost: float, escalated: bool) -> float:
    """Dollars for one question: ``slm_cost + (llm_cost if escalated else 0)``.

    The SLM always ran, so an escalated question pays both tiers.

    Raises:
        ValueError: negative or NaN costs.
    """
    s = float(nonnegative(slm_cost, "slm_cost"))
    l_ = float(nonnegative(llm_cost, "llm_cost"))
    return s + (l_ if bool(escalated) else 0.0)


def question_costs(slm_cost, llm_cost, escalated) -> np.ndarray:
    """Vectorised :func:`question_cost`: dollars per question, shape ``(n,)``.

    Args:
        slm_cost: SLM dollars per question, shape ``(n,)``.
        llm_cost: LLM dollars per question, shape ``(n,)``.
        escalated: bool, shape ``(n,)``.

    Raises:
        ValueError: empty arrays, mismatched shapes, negative/NaN costs, non-bool mask.
    """
    s = nonnegative(slm_cost, "slm_cost")
    l_ = nonnegative(llm_cost, "llm_cost")
    e = np.asarray(escalated)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"slm_cost must be a non-empty 1-D array, got shape {s.shape}")
    _same_shape(slm_cost=s, llm_cost=l_, escalated=e)
    if e.dtype != bool:
        raise ValueError(f"escalated must be boolean, got dtype {e.dtype}")
    return s + np.where(e, l_, 0.0)


def latency(slm_s, llm_s, escalated):
    """Seconds per question: ``slm_s + (llm_s if escalated else 0)`` (tiers run in sequence).

    Args:
        slm_s: SLM seconds, scalar or shape ``(n,)``.
        llm_s: LLM seconds, same shape.
        escalated: bool, same shape.

    Returns:
        float for scalar inputs, else an array of seconds, shape ``(n,)``.

    Raises:
        ValueError: mismatched shapes, empty arrays, negative/NaN times, non-bool mask.
    """
    s = nonnegative(slm_s, "slm_s")
    l_ = nonnegative(llm_s, "llm_s")
    e = np.asarray(escalated)
    _same_shape(slm_s=s, llm_s=l_, escalated=e)
    if s.ndim > 0 and s.size == 0:
        raise ValueError("slm_s must not be empty")
    if e.dtype != bool:
        raise ValueError(f"escalated must be boolean, got dtype {e.dtype}")
    out = s + np.where(e, l_, 0.0)
    return float(out) if out.ndim == 0 else out


def percentiles(x, qs=(50, 95)) -> dict[str, float]:
    """Percentiles of ``x`` (numpy's default linear interpolation), keyed ``"p50"``, ``"p95"``...

    Args:
        x: values (e.g. seconds or dollars), any shape, flattened; NaN not allowed.
        qs: percentiles in ``[0, 100]``.

    Returns:
        ``{"p50": ..., "p95": ...}`` (keys ``f"p{q:g}"``).

    Raises:
        ValueError: empty ``x``, NaN in ``x``, or a percentile outside ``[0, 100]``.
    """
    arr = np.asarray(x, dtype=float).ravel()
    if arr.size == 0:
        raise ValueError("x must not be empty")
    if np.any(np.isnan(arr)):
        raise ValueError("x must not contain NaN")
    out = {}
    for q in qs:
        q = float(q)
        if not 0.0 <= q <= 100.0:
            raise ValueError(f"qs values must lie in [0, 100], got {q}")
        out[f"p{q:g}"] = float(np.percentile(arr, q))
    return out


def cost_curve(curve: Curve, slm_cost, llm_cost) -> np.ndarray:
    """Mean dollars per question at each point of ``curve`` (to draw quality against cost).

    For a curve with an escalation order (sweep, oracle), point ``j`` escalates exactly
    ``curve.order[:curve.n_escalated[j]]``; its cost is
    ``mean(slm_cost) + sum(llm_cost[escalated]) / n``. For the random curve (no order) it
    is the exact expectation ``mean(slm_cost) + call_rate * mean(llm_cost)``.

    Args:
        curve: a :class:`~cascade_router.evaluation.curves.Curve` built on the same questions.
        slm_cost: SLM dollars per question, shape ``(n,)``.
        llm_cost: LLM dollars per question, shape ``(n,)``.

    Returns:
        dollars per question, shape ``(P,)`` like ``curve.call_rate``.

    Raises:
        ValueError: empty / mismatched cost arrays, negative/NaN costs, or costs whose
            length differs from the curve's number of questions.
    """
    if not isinstance(curve, Curve):
        raise ValueError(f"curve must be a Curve, got {type(curve).__name__}")
    s = nonnegative(slm_cost, "slm_cost")
    l_ = nonnegative(llm_cost, "llm_cost")
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"slm_cost must be a non-empty 1-D array, got shape {s.shape}")
    _same_shape(slm_cost=s, llm_cost=l_)
    n = s.size
    if curve.order is None:
        return s.mean() + curve.call_rate * l_.mean()
    if curve.order.size != n:
        raise ValueError(f"slm_cost has {n} questions but the curve was built on {curve.order.size}")
    cum = np.concatenate(([0.0], np.cumsum(l_[curve.order])))
    return s.mean() + cum[curve.n_escalated] / n
