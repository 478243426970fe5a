"""Threshold sweeps, cost-quality curves and RouteLLM's summary metrics (pure numpy, offline).

The evaluation harness runs BOTH tiers on every question once, so for question ``i`` we
know ``slm_q[i]`` (quality of the small model's answer, e.g. F1 in ``[0, 1]``) and
``llm_q[i]`` (quality of the large model's answer). A router assigns each question a
decision score ``score[i]``; higher means more reason to escalate.

Conventions used throughout this module
---------------------------------------
* **Escalation rule.** A question is escalated iff ``score > threshold`` (strict), see
  :func:`escalate`. ``threshold = +inf`` escalates nothing, ``threshold = -inf`` escalates
  every question.
* **NaN scores: ``nan_rank="first"`` (default) or ``"last"``.** A NaN score means the router
  could not decide.

  - ``"first"``: NaN is ranked as ``+inf``: it escalates at every finite threshold and only
    ``threshold = +inf`` keeps it on the SLM. ``+inf`` scores behave identically and tie with
    NaN. ``-inf`` scores are rejected (``ValueError``): under the strict rule no threshold
    could ever escalate them, so the sweep could not reach the always-LLM end point.
  - ``"last"``: the rule of this project's routers (:meth:`Router.predict`: "a nan score
    never escalates"). NaN is ranked as ``-inf``: it stays on the SLM at every finite
    threshold and only ``threshold = -inf`` (the always-LLM end point, which escalates
    every question) sends it to the LLM. ``-inf`` scores behave identically and tie with NaN.
    The point that escalates every finite score but no NaN gets the threshold
    ``nextafter(min finite score, -inf)``.
* **Ties escalate together.** A threshold cannot separate questions with equal scores, so
  :func:`sweep` groups tied scores and emits one curve point per achievable threshold.
  Without ties that is ``n + 1`` points (k = 0..n escalated). Inside a group the order
  is by index (stable sort), which only matters for :attr:`Curve.order`. Note that the
  trapezoid between two grouped points equals the expected quality of breaking the tie at
  random, so areas (AUC, APGR) are unaffected by the grouping.
* **Call rate** is the fraction of questions sent to the LLM, in ``[0, 1]``.

Formulas for PGR, APGR, CPT and the quality-vs-call-rate AUC follow Ong et al.,
"RouteLLM: Learning to Route LLMs with Preference Data" (2024, arXiv:2406.18665) and the
evaluation script of their repository (lm-sys/RouteLLM, ``routellm/evals/evaluate.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..routers.base import decide

__all__ = [
    "Curve",
    "escalate",
    "cascade_quality",
    "sweep",
    "oracle_curve",
    "random_curve",
    "threshold_for_rate",
    "threshold_for_quality",
    "pgr",
    "apgr",
    "cpt",
    "auc",
    "summarize",
]

# Slack for comparing achieved rates / qualities / PGRs with targets computed in floats.
_EPS = 1e-9


@dataclass(eq=False)
class Curve:
    """A quality-vs-LLM-call-rate curve for one router.

    Attributes:
        call_rate: fraction of questions escalated at each point, shape ``(P,)``,
            non-decreasing, values in ``[0, 1]``.
        quality: mean cascade quality at each point, shape ``(P,)`` (same unit as the
            per-question qualities, e.g. F1).
        thresholds: the score threshold producing each point under the rule
            ``escalate iff score > threshold`` (``+inf`` for none, ``-inf`` for all),
            shape ``(P,)``; NaN for curves not produced by a threshold (oracle, random).
        name: label used in plots and tables.
        kind: ``"router"``, ``"oracle"`` or ``"random"`` (plots draw the last two
            distinctly).
        order: escalation order, question indices, shape ``(n,)``: point ``j`` escalates
            exactly ``order[:n_escalated[j]]``. ``None`` for the random curve, whose points
            are expectations rather than one set of questions.
        n_escalated: number of escalated questions at each point, int, shape ``(P,)``
            (``None`` with ``order``).
        n_tied: how many questions share their score with at least one other question
            (0 when every threshold step escalates exactly one question).
    """

    call_rate: np.ndarray
    quality: np.ndarray
    thresholds: np.ndarray
    name: str = "router"
    kind: str = "router"
    order: np.ndarray | None = None
    n_escalated: np.ndarray | None = None
    n_tied: int = 0

    def __post_init__(self) -> None:
        self.call_rate = np.asarray(self.call_rate, dtype=float)
        self.quality = np.asarray(self.quality, dtype=float)
        self.thresholds = np.asarray(self.thresholds, dtype=float)
        for attr in ("call_rate", "quality", "thresholds"):
            arr = getattr(self, attr)
            if arr.ndim != 1 or arr.size == 0:
                raise ValueError(f"Curve.{attr} must be a non-empty 1-D array, got shape {arr.shape}")
        if not (self.call_rate.shape == self.quality.shape == self.thresholds.shape):
            raise ValueError(
                "Curve.call_rate, Curve.quality and Curve.thresholds must have the same shape, got "
                f"{self.call_rate.shape}, {self.quality.shape}, {self.thresholds.shape}"
            )
        if np.any(~np.isfinite(self.call_rate)) or np.any(self.call_rate < 0) or np.any(self.call_rate > 1):
            raise ValueError("Curve.call_rate values must lie in [0, 1]")
        if np.any(np.diff(self.call_rate) < 0):
            raise ValueError("Curve.call_rate must be non-decreasing")
        if (self.order is None) != (self.n_escalated is None):
            raise ValueError("Curve.order and Curve.n_escalated must be given together")
        if self.order is not None:
            self.order = np.asarray(self.order, dtype=np.intp)
            self.n_escalated = np.asarray(self.n_escalated, dtype=np.intp)
            if self.n_escalated.shape != self.call_rate.shape:
                raise ValueError("Curve.n_escalated must have the same shape as Curve.call_rate")

    @property
    def n_points(self) -> int:
        """Number of points ``P`` on the curve."""
        return int(self.call_rate.size)


# --------------------------------------------------------------------------- validation


def _as_1d(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    return arr


def _qualities(slm_q, llm_q) -> tuple[np.ndarray, np.ndarray]:
    slm = _as_1d(slm_q, "slm_q")
    llm = _as_1d(llm_q, "llm_q")
    if slm.shape != llm.shape:
        raise ValueError(f"slm_q and llm_q must have the same shape, got {slm.shape} and {llm.shape}")
    if not np.all(np.isfinite(slm)):
        raise ValueError("slm_q must be finite (no NaN/inf)")
    if not np.all(np.isfinite(llm)):
        raise ValueError("llm_q must be finite (no NaN/inf)")
    return slm, llm


def _scores(score, n: int | None = None, allow_neginf: bool = False) -> np.ndarray:
    s = _as_1d(score, "score")
    if n is not None and s.shape != (n,):
        raise ValueError(f"score must have shape ({n},) like slm_q/llm_q, got {s.shape}")
    if not allow_neginf and np.any(s == -np.inf):
        raise ValueError("score must not contain -inf (no threshold could escalate it)")
    return s


def _check_rate(rate: float, name: str) -> float:
    rate = float(rate)
    if not (0.0 <= rate <= 1.0):
        raise ValueError(f"{name} must lie in [0, 1], got {rate}")
    return rate


_NAN_RANKS = ("first", "last")


def _check_nan_rank(nan_rank: str) -> str:
    if nan_rank not in _NAN_RANKS:
        raise ValueError(f"nan_rank must be one of {', '.join(_NAN_RANKS)}, got {nan_rank!r}")
    return nan_rank


def _scores_for(score, nan_rank: str, n: int | None = None) -> np.ndarray:
    """Validated scores; -inf is allowed only where it ties with NaN (``nan_rank="last"``)."""
    return _scores(score, n, allow_neginf=_check_nan_rank(nan_rank) == "last")


def _rank_key(score: np.ndarray, nan_rank: str = "first") -> np.ndarray:
    """Scores with NaN mapped to +inf (``"first"``: escalates first) or -inf (``"last"``)."""
    return np.where(np.isnan(score), np.inf if nan_rank == "first" else -np.inf, score)


# --------------------------------------------------------------------------- basics


def escalate(score, threshold: float, nan_rank: str = "first") -> np.ndarray:
    """Apply a threshold: the boolean escalation mask ``score > threshold``.

    Args:
        score: decision scores, shape ``(n,)``; NaN allowed (see ``nan_rank``).
        threshold: a float; ``+inf`` escalates nothing, ``-inf`` everything. A NaN
            threshold (e.g. an unreachable :func:`threshold_for_quality`) is rejected.
        nan_rank: ``"first"``: NaN escalates at every finite threshold, ``-inf`` scores are
            rejected; ``"last"``: NaN (and ``-inf``) escalates only at ``threshold = -inf``
            (a router's "nan never escalates"). See the module docstring.

    Returns:
        bool array, shape ``(n,)``.

    Raises:
        ValueError: ``score`` empty / not 1-D / contains -inf under ``"first"``, ``threshold``
            is NaN, or an unknown ``nan_rank``.
    """
    s = _scores_for(score, nan_rank)
    threshold = float(threshold)
    if np.isnan(threshold):
        raise ValueError("threshold must not be NaN")
    if threshold == -np.inf:
        return np.ones(s.shape, dtype=bool)
    if nan_rank == "last":
        return decide(s, threshold)  # the routers' rule, stated once
    return _rank_key(s, nan_rank) > threshold


def cascade_quality(slm_q, llm_q, escalate_mask) -> float:
    """Mean quality of the cascade when escalated questions take the LLM's answer.

    Args:
        slm_q: SLM quality per question, shape ``(n,)``.
        llm_q: LLM quality per question, shape ``(n,)``.
        escalate_mask: bool, shape ``(n,)``; True = the LLM answer is used.

    Returns:
        ``mean(where(escalate_mask, llm_q, slm_q))``.

    Raises:
        ValueError: empty inputs or mismatched shapes (the message names the parameter).
    """
    slm, llm = _qualities(slm_q, llm_q)
    mask = np.asarray(escalate_mask)
    if mask.shape != slm.shape:
        raise ValueError(f"escalate_mask must have shape {slm.shape} like slm_q, got {mask.shape}")
    if mask.dtype != bool:
        raise ValueError(f"escalate_mask must be boolean, got dtype {mask.dtype}")
    return float(np.mean(np.where(mask, llm, slm)))


def _quality_after(order: np.ndarray, slm: np.ndarray, llm: np.ndarray) -> np.ndarray:
    """Mean quality after escalating ``order[:k]``, for k = 0..n; shape ``(n + 1,)``."""
    n = slm.size
    gain = (llm - slm)[order]
    return (slm.sum() + np.concatenate(([0.0], np.cumsum(gain)))) / n


# --------------------------------------------------------------------------- curves


def sweep(score, slm_q, llm_q, rates: Sequence[float] | None = None, name: str = "router",
          nan_rank: str = "first") -> Curve:
    """Sweep the escalation threshold over every achievable value.

    Questions are escalated in decreasing score order (NaN first or last as ``nan_rank``
    says, ties by index). Because a
    threshold cannot split tied scores, each group of tied scores escalates together and
    yields one point: the curve has ``m + 1`` points for ``m`` distinct scores (``n + 1``
    without ties), from call rate 0 (threshold ``+inf``) to call rate 1 (threshold ``-inf``).
    Each intermediate threshold equals the highest score that is NOT escalated, so
    ``escalate(score, curve.thresholds[j])`` reproduces point ``j`` exactly.

    Args:
        score: decision scores, shape ``(n,)``; NaN allowed (see ``nan_rank``).
        slm_q: SLM quality per question, shape ``(n,)``.
        llm_q: LLM quality per question, shape ``(n,)``.
        rates: optional target call rates in ``[0, 1]``. When given, the curve has one point
            per target (in ascending target order), each the point that
            :func:`threshold_for_rate` picks (the largest achievable rate not above the
            target); ``call_rate`` then holds the ACHIEVED rates, which may be below the
            targets when ties or a small ``n`` make them unreachable.
        name: curve label.
        nan_rank: ``"first"`` (default) or ``"last"``, see the module docstring.

    Returns:
        :class:`Curve` with ``kind="router"``, ``order`` and ``n_escalated`` set.

    Raises:
        ValueError: empty inputs, mismatched shapes, -inf scores under ``"first"``, NaN
            qualities, a rate outside ``[0, 1]``, or an unknown ``nan_rank`` (the message
            names the parameter).
    """
    slm, llm = _qualities(slm_q, llm_q)
    s = _scores_for(score, nan_rank, slm.size)
    n = slm.size
    key = _rank_key(s, nan_rank)
    order = np.argsort(-key, kind="stable")  # descending, ties (and NaN/+inf) by index
    sorted_key = key[order]
    # A tie group ends at position k (k questions escalated) where the next key differs.
    boundaries = np.flatnonzero(sorted_key[1:] != sorted_key[:-1]) + 1
    n_escalated = np.concatenate(([0], boundaries, [n])).astype(np.intp)
    thresholds = np.concatenate(([np.inf], sorted_key[boundaries], [-np.inf]))
    if nan_rank == "last" and thresholds.size > 2 and thresholds[-2] == -np.inf:
        # The point escalating every finite score keeps the NaN/-inf group: a threshold just
        # below the lowest finite score (escalate() maps exactly -inf to "everything").
        thresholds[-2] = np.nextafter(sorted_key[boundaries[-1] - 1], -np.inf)
    quality = _quality_after(order, slm, llm)[n_escalated]
    group_sizes = np.diff(n_escalated)
    n_tied = int(group_sizes[group_sizes > 1].sum())

    if rates is not None:
        targets = np.sort(np.array([_check_rate(r, "rates") for r in np.atleast_1d(rates)], dtype=float))
        if targets.size == 0:
            raise ValueError("rates must not be empty")
        idx = np.array([_point_for_rate(n_escalated, n, t) for t in targets], dtype=np.intp)
        n_escalated, thresholds, quality = n_escalated[idx], thresholds[idx], quality[idx]

    return Curve(
        call_rate=n_escalated / n,
        quality=quality,
        thresholds=thresholds,
        name=name,
        kind="router",
        order=order,
        n_escalated=n_escalated,
        n_tied=n_tied,
    )


def oracle_curve(slm_q, llm_q, name: str = "oracle") -> Curve:
    """The oracle router: escalate first where the LLM beats the SLM by the most.

    Questions are escalated in order of ``llm_q - slm_q`` descending (ties by index), one
    at a time, so the curve has ``n + 1`` points at call rates ``k / n``. At every call rate
    this is the best quality any router escalating exactly that many questions can reach.
    It rises above the always-LLM quality in the middle and comes back down to it at call
    rate 1, where questions the SLM answered better are escalated too. (RouteLLM's
    ``get_optimal_accuracy`` instead caps escalation at the questions with a positive gain,
    i.e. "at most" that many calls; the two agree until the positive gains run out.)

    Args:
        slm_q: SLM quality per question, shape ``(n,)``.
        llm_q: LLM quality per question, shape ``(n,)``.
        name: curve label.

    Returns:
        :class:`Curve` with ``kind="oracle"``, NaN thresholds (not a score threshold), and
        ``order`` / ``n_escalated`` set.

    Raises:
        ValueError: empty inputs or mismatched shapes.
    """
    slm, llm = _qualities(slm_q, llm_q)
    n = slm.size
    order = np.argsort(-(llm - slm), kind="stable")
    n_escalated = np.arange(n + 1, dtype=np.intp)
    return Curve(
        call_rate=n_escalated / n,
        quality=_quality_after(order, slm, llm),
        thresholds=np.full(n + 1, np.nan),
        name=name,
        kind="oracle",
        order=order,
        n_escalated=n_escalated,
    )


def random_curve(slm_q, llm_q, name: str = "random") -> Curve:
    """Expected quality of routing a random fraction of the questions to the LLM.

    Escalating a uniformly random subset of ``k`` questions has expected quality
    ``q_slm + (k / n) * (q_llm - q_slm)`` exactly (each question is escalated with
    probability ``k / n``), so the curve is the straight line between always-SLM and
    always-LLM, sampled at call rates ``k / n`` for k = 0..n (``n + 1`` points). Its APGR
    is 0.5.

    Args:
        slm_q: SLM quality per question, shape ``(n,)``.
        llm_q: LLM quality per question, shape ``(n,)``.
        name: curve label.

    Returns:
        :class:`Curve` with ``kind="random"``, NaN thresholds, ``order=None``.

    Raises:
        ValueError: empty inputs or mismatched shapes.
    """
    slm, llm = _qualities(slm_q, llm_q)
    n = slm.size
    rate = np.arange(n + 1) / n
    q_slm, q_llm = slm.mean(), llm.mean()
    return Curve(
        call_rate=rate,
        quality=q_slm + rate * (q_llm - q_slm),
        thresholds=np.full(n + 1, np.nan),
        name=name,
        kind="random",
    )


# --------------------------------------------------------------------------- calibration


def _point_for_rate(n_escalated: np.ndarray, n: int, target: float) -> int:
    """Index of the last point whose rate does not exceed ``target`` (point 0 has rate 0)."""
    ok = n_escalated <= target * n + _EPS
    return int(np.flatnonzero(ok)[-1])


def threshold_for_rate(score, target_rate: float, nan_rank: str = "first") -> float:
    """The threshold whose call rate is the largest one not exceeding ``target_rate``.

    Budget semantics: on the calibration split the cascade never calls the LLM more often
    than ``target_rate``. With ties (or small ``n``) the achieved rate may be lower.

    Args:
        score: decision scores on the calibration split, shape ``(n,)``.
        target_rate: LLM-call budget, a fraction in ``[0, 1]``.
        nan_rank: ``"first"`` (default) or ``"last"``, see the module docstring.

    Returns:
        threshold for :func:`escalate`: ``+inf`` for rate 0, ``-inf`` for rate 1, otherwise
        the highest score that is not escalated.

    Raises:
        ValueError: ``score`` empty / not 1-D / contains -inf under ``"first"``,
            ``target_rate`` outside [0, 1], unknown ``nan_rank``.
    """
    s = _scores_for(score, nan_rank)
    target = _check_rate(target_rate, "target_rate")
    # Qualities do not affect thresholds; use zeros to reuse the sweep.
    zeros = np.zeros_like(s)
    curve = sweep(s, zeros, zeros, nan_rank=nan_rank)
    return float(curve.thresholds[_point_for_rate(curve.n_escalated, s.size, target)])


def threshold_for_quality(score, slm_q, llm_q, target_quality: float, nan_rank: str = "first") -> float:
    """The cheapest threshold (lowest call rate) whose cascade quality reaches ``target_quality``.

    Args:
        score: decision scores on the calibration split, shape ``(n,)``.
        slm_q: SLM quality per question, shape ``(n,)``.
        llm_q: LLM quality per question, shape ``(n,)``.
        target_quality: required mean quality (same unit as ``slm_q``).
        nan_rank: ``"first"`` (default) or ``"last"``, see the module docstring.

    Returns:
        threshold for :func:`escalate`; NaN when no threshold reaches the target (check
        with ``math.isnan`` before applying it: :func:`escalate` rejects NaN).

    Raises:
        ValueError: empty inputs, mismatched shapes, -inf scores, NaN ``target_quality``.
    """
    target = float(target_quality)
    if np.isnan(target):
        raise ValueError("target_quality must not be NaN")
    curve = sweep(score, slm_q, llm_q, nan_rank=nan_rank)
    hit = np.flatnonzero(curve.quality >= target - _EPS)
    if hit.size == 0:
        return float("nan")
    return float(curve.thresholds[hit[0]])


# --------------------------------------------------------------------------- RouteLLM metrics


def _check_curve(curve: Curve) -> None:
    if not isinstance(curve, Curve):
        raise ValueError(f"curve must be a Curve, got {type(curve).__name__}")


def _gap(q_slm: float, q_llm: float) -> float:
    q_slm, q_llm = float(q_slm), float(q_llm)
    if not (np.isfinite(q_slm) and np.isfinite(q_llm)):
        raise ValueError("q_slm and q_llm must be finite")
    return q_llm - q_slm


def pgr(curve: Curve, q_slm: float, q_llm: float) -> np.ndarray:
    """Performance gap recovered at each curve point (RouteLLM, Ong et al. 2024, Sec. 3).

    ``PGR = (quality - q_slm) / (q_llm - q_slm)``, where ``q_slm`` / ``q_llm`` are the
    always-SLM / always-LLM mean qualities. 0 = no better than the SLM alone, 1 = as good
    as the LLM alone; can exceed 1 (the oracle does) or go below 0.

    Returns:
        shape ``(P,)``; all NaN when ``q_llm <= q_slm`` (no positive gap to recover).
    """
    _check_curve(curve)
    gap = _gap(q_slm, q_llm)
    if gap <= 0:
        return np.full(curve.n_points, np.nan)
    return (curve.quality - float(q_slm)) / gap


def _require_full_range(curve: Curve, fn: str) -> None:
    if abs(curve.call_rate[0]) > _EPS or abs(curve.call_rate[-1] - 1.0) > _EPS:
        raise ValueError(
            f"{fn} needs a curve spanning call rates 0..1, got "
            f"{curve.call_rate[0]:.4g}..{curve.call_rate[-1]:.4g} (include rates 0 and 1 in sweep)"
        )


def apgr(curve: Curve, q_slm: float, q_llm: float) -> float:
    """Average performance gap recovered over call rates ``[0, 1]`` (RouteLLM's APGR).

    ``APGR = integral_0^1 PGR(r) dr``, by the trapezoid rule (``numpy.trapezoid``) over the
    curve's points. Equivalent to RouteLLM's ``(AUC - AUC_slm) / (AUC_llm - AUC_slm)`` for a
    curve spanning ``[0, 1]``. Random routing scores 0.5.

    Args:
        curve: a curve spanning call rates 0 to 1.
        q_slm: always-SLM mean quality.
        q_llm: always-LLM mean quality.

    Returns:
        APGR as a float; NaN when ``q_llm <= q_slm`` (PGR is undefined without a positive
        gap).

    Raises:
        ValueError: ``curve`` does not start at call rate 0 and end at 1, non-finite
            ``q_slm`` / ``q_llm``.
    """
    _check_curve(curve)
    _require_full_range(curve, "apgr")
    if _gap(q_slm, q_llm) <= 0:
        return float("nan")
    return float(np.trapezoid(pgr(curve, q_slm, q_llm), curve.call_rate))


def cpt(curve: Curve, q_slm: float, q_llm: float, pct: float, interpolate: bool = False) -> float:
    """Call-performance threshold: the lowest call rate reaching PGR ``pct`` (RouteLLM's CPT(x%)).

    Args:
        curve: the router's curve.
        q_slm: always-SLM mean quality.
        q_llm: always-LLM mean quality.
        pct: required PGR as a fraction in ``[0, 1]`` (0.5 for CPT(50%)).
        interpolate: False (default): the call rate of the first curve point with
            ``PGR >= pct``, a rate some threshold actually achieves. True: interpolate
            linearly between that point and the one before it, like RouteLLM's
            ``np.interp`` (achievable in expectation by randomising between two thresholds).

    Returns:
        call rate in ``[0, 1]``; NaN if the curve never reaches ``pct`` or ``q_llm <= q_slm``.

    Raises:
        ValueError: ``pct`` outside ``[0, 1]``, non-finite ``q_slm`` / ``q_llm``.
    """
    _check_curve(curve)
    pct = _check_rate(pct, "pct")
    p = pgr(curve, q_slm, q_llm)
    hit = np.flatnonzero(p >= pct - _EPS)  # NaN compares False -> no hit
    if hit.size == 0:
        return float("nan")
    j = int(hit[0])
    if not interpolate or j == 0:
        return float(curve.call_rate[j])
    r0, r1, p0, p1 = curve.call_rate[j - 1], curve.call_rate[j], p[j - 1], p[j]
    return float(r0 + (pct - p0) * (r1 - r0) / (p1 - p0))  # p0 < pct <= p1, so p1 > p0


def auc(curve: Curve) -> float:
    """Area under quality vs call rate (trapezoid rule), RouteLLM's AUC with rates as fractions.

    Raises:
        ValueError: ``curve`` is not a :class:`Curve`.
    """
    _check_curve(curve)
    return float(np.trapezoid(curve.quality, curve.call_rate))


def summarize(curve: Curve, q_slm: float, q_llm: float) -> dict[str, float]:
    """RouteLLM's summary of a curve.

    Returns:
        ``{"apgr", "cpt50", "cpt80", "cpt95", "auc"}``; CPTs are call-rate fractions
        (non-interpolated, see :func:`cpt`); apgr and CPTs are NaN when ``q_llm <= q_slm``.

    Raises:
        ValueError: as :func:`apgr`.
    """
    return {
        "apgr": apgr(curve, q_slm, q_llm),
        "cpt50": cpt(curve, q_slm, q_llm, 0.5),
        "cpt80": cpt(curve, q_slm, q_llm, 0.8),
        "cpt95": cpt(curve, q_slm, q_llm, 0.95),
        "auc": auc(curve),
    }
