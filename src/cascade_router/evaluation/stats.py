"""Confidence intervals by a bootstrap over passages (vectorised numpy).

Questions on one passage are not independent (they share the passage, and the tiers' prompt and
behaviour on it), so the resampling unit is the passage: each of ``B`` resamples draws the
passages with replacement (``numpy.random.default_rng(seed).multinomial``) and weights each
question by how often its passage was drawn. Every statistic is then a weighted version of the
plain one, computed for all resamples at once as ``(B, ...)`` arrays; the 95% interval is the
2.5th and 97.5th percentile of the ``B`` values (the percentile bootstrap; Efron and Tibshirani,
*An Introduction to the Bootstrap*, 1993, ch. 13). Resamples where a statistic is undefined
(no gap between the tiers for APGR, a CPT level never reached) are left out; when more than 5%
are, the interval is ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .curves import Curve

#: Resamples by default.
N_BOOT = 1000


@dataclass
class Bootstrap:
    """Passage-level resampling weights for ``n`` questions.

    Attributes:
        weights: how many times each question's passage was drawn, shape ``(B, n)``.
    """

    weights: np.ndarray

    @classmethod
    def over_passages(cls, passage_ids: Sequence[str], n_boot: int = N_BOOT, seed: int = 0) -> "Bootstrap":
        """Seeded resampling of the passages of ``passage_ids`` (one entry per question).

        Raises:
            ValueError: no question, or ``n_boot`` < 1.
        """
        if n_boot < 1:
            raise ValueError(f"n_boot must be >= 1, got {n_boot}")
        ids = list(passage_ids)
        if not ids:
            raise ValueError("no question to resample")
        uniq, g = np.unique(np.array(ids, dtype=object), return_inverse=True)
        P = uniq.size
        counts = np.random.default_rng(seed).multinomial(P, np.full(P, 1.0 / P), size=n_boot)  # (B, P)
        return cls(counts[:, g].astype(float))

    @property
    def total(self) -> np.ndarray:
        """Questions in each resample, shape ``(B,)``."""
        return self.weights.sum(axis=1)

    def mean(self, x) -> np.ndarray:
        """The weighted mean of per-question values ``x`` (n,) in each resample, shape ``(B,)``."""
        return (self.weights @ np.asarray(x, dtype=float)) / self.total


def interval(values: np.ndarray, max_undefined: float = 0.05) -> list[float] | None:
    """The 95% percentile interval ``[lo, hi]`` of bootstrap values (nan = undefined), or None
    when more than ``max_undefined`` of them are undefined."""
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v)
    if v.size == 0 or ok.mean() < 1.0 - max_undefined:
        return None
    lo, hi = np.percentile(v[ok], [2.5, 97.5])
    return [float(lo), float(hi)]


def curve_intervals(curve: Curve, slm_q, llm_q, boot: Bootstrap, levels: Sequence[float] = (0.5, 0.8, 0.95)
                    ) -> dict[str, list[float] | None]:
    """95% intervals of APGR and CPT(x%) of a curve with an escalation order (a router's sweep
    or the oracle), by the passage bootstrap.

    The curve's order and tie groups are kept (a threshold is a property of the router, not of
    the sample); in each resample the call rate and quality at each of the curve's points are
    the weighted ones, PGR is measured against that resample's always-SLM and always-LLM
    qualities, APGR is the trapezoid of PGR over the call rate (as
    :func:`cascade_router.evaluation.curves.apgr`), CPT(x) the first call rate with PGR >= x.

    Returns:
        ``{"apgr_ci95": [lo, hi] | None, "cpt50_ci95": ..., ...}``.

    Raises:
        ValueError: a curve without an order (the random curve: its APGR is 0.5 by construction).
    """
    if curve.order is None:
        raise ValueError("curve_intervals needs a curve with an escalation order (not the random curve)")
    slm = np.asarray(slm_q, float)
    llm = np.asarray(llm_q, float)
    W = boot.weights[:, curve.order]  # (B, n) in escalation order
    gain = (llm - slm)[curve.order]
    T = boot.total
    S = boot.weights @ slm
    L = boot.weights @ llm
    cw = np.concatenate([np.zeros((W.shape[0], 1)), np.cumsum(W, axis=1)], axis=1)[:, curve.n_escalated]
    cg = np.concatenate([np.zeros((W.shape[0], 1)), np.cumsum(W * gain, axis=1)], axis=1)[:, curve.n_escalated]
    rate = cw / T[:, None]
    gap = (L - S) / T
    with np.errstate(invalid="ignore", divide="ignore"):
        pgr = np.where(gap[:, None] > 0, (cg / T[:, None]) / gap[:, None], np.nan)
    apgr = np.trapezoid(pgr, rate, axis=1)
    out = {"apgr_ci95": interval(apgr)}
    for x in levels:
        hit = pgr >= x - 1e-9
        first = np.argmax(hit, axis=1)
        cpt = np.where(hit.any(axis=1), rate[np.arange(rate.shape[0]), first], np.nan)
        out[f"cpt{int(round(100 * x))}_ci95"] = interval(cpt)
    return out


def point_intervals(boot: Bootstrap, em, f1, last_ran, cost) -> dict[str, list[float] | None]:
    """95% intervals of a fixed routing's EM and F1 (x100), call rate of the last tier and
    dollars per question, each from per-question values of shape ``(n,)``."""
    return {
        "exact_ci95": interval(100 * boot.mean(em)),
        "f1_ci95": interval(100 * boot.mean(f1)),
        "llm_call_rate_ci95": interval(boot.mean(np.asarray(last_ran, float))),
        "cost_per_question_usd_ci95": interval(boot.mean(cost)),
    }


def questions_needed(n: int, best: float, ci: list[float] | None, bar: float) -> int | None:
    """Roughly how many questions would make ``best``'s interval clear ``bar``: the interval's
    half-width shrinks as 1/sqrt(n), so ``n * (half_width / (best - bar))**2``; None when
    ``best`` does not exceed ``bar`` (no sample size would rank it above)."""
    if ci is None or not best > bar:
        return None
    half = (ci[1] - ci[0]) / 2
    return int(np.ceil(round(n * (half / (best - bar)) ** 2, 6)))
