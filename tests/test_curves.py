"""Hand-computed checks of threshold sweeps, calibration and RouteLLM's metrics.

The running example (4 questions):

    i      0    1    2    3
    slm    1    0    0    1      q_slm = 2/4 = 0.50
    llm    1    1    1    0      q_llm = 3/4 = 0.75   (gap 0.25)
    gain   0   +1   +1   -1      (llm - slm)
    score 0.1  0.9  0.5  0.7

Escalation order by score: 1 (0.9), 3 (0.7), 2 (0.5), 0 (0.1).
    k=0: 0.50           threshold +inf
    k=1: +1 -> 0.75     threshold 0.7  (highest kept score)
    k=2: -1 -> 0.50     threshold 0.5
    k=3: +1 -> 0.75     threshold 0.1
    k=4: +0 -> 0.75     threshold -inf
"""

import math

import numpy as np
import pytest

from cascade_router.evaluation.curves import (
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

SLM = np.array([1.0, 0.0, 0.0, 1.0])
LLM = np.array([1.0, 1.0, 1.0, 0.0])
SCORE = np.array([0.1, 0.9, 0.5, 0.7])
Q_SLM, Q_LLM = 0.5, 0.75


def test_cascade_quality_by_hand():
    # escalate 1 and 3: answers 1 (slm), 1 (llm), 0 (slm), 0 (llm) -> 2/4
    assert cascade_quality(SLM, LLM, np.array([False, True, False, True])) == 0.5
    # escalate 1 and 2: 1, 1, 1, 1 -> 1.0
    assert cascade_quality(SLM, LLM, np.array([False, True, True, False])) == 1.0


def test_sweep_points_by_hand():
    c = sweep(SCORE, SLM, LLM, name="conf")
    np.testing.assert_allclose(c.call_rate, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(c.quality, [0.5, 0.75, 0.5, 0.75, 0.75])
    np.testing.assert_array_equal(c.thresholds, [np.inf, 0.7, 0.5, 0.1, -np.inf])
    np.testing.assert_array_equal(c.order, [1, 3, 2, 0])
    np.testing.assert_array_equal(c.n_escalated, [0, 1, 2, 3, 4])
    assert c.n_tied == 0 and c.name == "conf" and c.kind == "router"


def test_sweep_thresholds_reproduce_points():
    c = sweep(SCORE, SLM, LLM)
    for t, rate, q in zip(c.thresholds, c.call_rate, c.quality):
        mask = escalate(SCORE, t)
        assert mask.mean() == rate
        assert cascade_quality(SLM, LLM, mask) == q


def test_ties_escalate_together():
    # scores: {1, 3} tie at 0.9, {0, 2} tie at 0.5 -> only 3 achievable points.
    score = np.array([0.5, 0.9, 0.5, 0.9])
    c = sweep(score, SLM, LLM)
    np.testing.assert_allclose(c.call_rate, [0, 0.5, 1.0])
    # escalate {1, 3}: slm0=1, llm1=1, slm2=0, llm3=0 -> 0.5
    np.testing.assert_allclose(c.quality, [0.5, 0.5, 0.75])
    np.testing.assert_array_equal(c.thresholds, [np.inf, 0.5, -np.inf])
    assert c.n_tied == 4
    np.testing.assert_array_equal(escalate(score, 0.5), [False, True, False, True])
    # a budget of 25% cannot split the tie at 0.9: nothing is escalated.
    assert threshold_for_rate(score, 0.25) == math.inf


def test_partial_tie_counts_only_tied_questions():
    c = sweep([0.3, 0.3, 0.8, 0.1], SLM, LLM)
    np.testing.assert_allclose(c.call_rate, [0, 0.25, 0.75, 1.0])
    assert c.n_tied == 2


def test_nan_scores_escalate_first_and_tie():
    score = np.array([np.nan, 0.2, 0.9, np.nan])
    c = sweep(score, SLM, LLM)
    # groups: {0, 3} (NaN), {2} 0.9, {1} 0.2
    np.testing.assert_allclose(c.call_rate, [0, 0.5, 0.75, 1.0])
    # {0,3} -> 1,0,0,0 = 0.25 ; +2 -> 1,0,1,0 = 0.5 ; +1 -> 0.75
    np.testing.assert_allclose(c.quality, [0.5, 0.25, 0.5, 0.75])
    np.testing.assert_array_equal(c.thresholds, [np.inf, 0.9, 0.2, -np.inf])
    np.testing.assert_array_equal(escalate(score, 0.9), [True, False, False, True])
    # +inf keeps everything, NaN included
    assert not escalate(score, math.inf).any()
    assert escalate(score, -math.inf).all()


def test_nan_last_is_the_routers_rule():
    """nan_rank="last": NaN (and -inf) stays on the SLM at every finite threshold and escalates
    only at the always-LLM end point, as Router.predict does ("a nan score never escalates")."""
    score = np.array([np.nan, 0.2, 0.9, -np.inf])
    c = sweep(score, SLM, LLM, nan_rank="last")
    # groups: {2} 0.9, {1} 0.2, {0, 3} NaN/-inf
    np.testing.assert_allclose(c.call_rate, [0, 0.25, 0.5, 1.0])
    # {2} -> 1,0,1,1 = 0.75 ; +1 -> 1,1,1,1 = 1.0 ; +{0,3} -> 1,1,1,0 = 0.75
    np.testing.assert_allclose(c.quality, [0.5, 0.75, 1.0, 0.75])
    assert c.thresholds[1] == 0.2 and c.thresholds[0] == np.inf and c.thresholds[-1] == -np.inf
    t = c.thresholds[2]
    assert t < 0.2 and t == np.nextafter(0.2, -np.inf)  # just below the lowest finite score
    for j, thr in enumerate(c.thresholds):  # each threshold reproduces its point exactly
        assert escalate(score, thr, nan_rank="last").sum() == c.n_escalated[j]
    np.testing.assert_array_equal(escalate(score, 0.0, nan_rank="last"), [False, True, True, False])
    assert escalate(score, -math.inf, nan_rank="last").all()
    assert threshold_for_rate(score, 0.6, nan_rank="last") == t
    assert threshold_for_rate(score, 1.0, nan_rank="last") == -math.inf
    assert threshold_for_quality(score, SLM, LLM, 1.0, nan_rank="last") == t
    # a router with that threshold escalates the same questions
    from cascade_router.routers import SignalRouter

    r = SignalRouter("x", threshold=t, direction=1)
    np.testing.assert_array_equal(r.predict([{"x": v} for v in score]), escalate(score, t, nan_rank="last"))
    # all NaN: only the two end points
    c = sweep([np.nan, np.nan], [0, 0], [1, 1], nan_rank="last")
    np.testing.assert_array_equal(c.n_escalated, [0, 2])
    with pytest.raises(ValueError, match="nan_rank"):
        sweep(SCORE, SLM, LLM, nan_rank="middle")


def test_tie_order_is_by_index():
    # 40 tied scores (quicksort would permute them): order within a tie group is by index
    n = 40
    score = np.where(np.arange(n) % 2 == 0, 0.7, np.nan)  # NaN group first, then 0.7
    c = sweep(score, np.zeros(n), np.ones(n))
    np.testing.assert_array_equal(c.order, np.r_[np.arange(1, n, 2), np.arange(0, n, 2)])
    np.testing.assert_array_equal(c.n_escalated, [0, 20, 40])
    # oracle: equal gains also keep index order
    o = oracle_curve(np.zeros(n), np.where(np.arange(n) % 3 == 0, 1.0, 0.5))
    np.testing.assert_array_equal(o.order, np.r_[np.arange(0, n, 3), np.setdiff1d(np.arange(n), np.arange(0, n, 3))])


def test_inf_score_ties_with_nan():
    c = sweep([np.nan, np.inf, 0.3, 0.1], SLM, LLM)
    np.testing.assert_allclose(c.call_rate, [0, 0.5, 0.75, 1.0])


def test_sweep_at_target_rates_reports_achieved_rates():
    c = sweep(SCORE, SLM, LLM, rates=[1.0, 0.3, 0.0, 0.6])
    # targets sorted 0, .3, .6, 1 -> achieved 0, .25, .5, 1
    np.testing.assert_allclose(c.call_rate, [0, 0.25, 0.5, 1.0])
    np.testing.assert_allclose(c.quality, [0.5, 0.75, 0.5, 0.75])
    np.testing.assert_array_equal(c.thresholds, [np.inf, 0.7, 0.5, -np.inf])


def test_oracle_curve_by_hand():
    # order by gain desc (stable): 1 (+1), 2 (+1), 0 (0), 3 (-1)
    o = oracle_curve(SLM, LLM)
    np.testing.assert_allclose(o.call_rate, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(o.quality, [0.5, 0.75, 1.0, 1.0, 0.75])
    np.testing.assert_array_equal(o.order, [1, 2, 0, 3])
    assert o.kind == "oracle" and np.isnan(o.thresholds).all()
    # PGR 0, 1, 2, 2, 1; trapezoid 0.25 * [(0+1)/2 + (1+2)/2 + (2+2)/2 + (2+1)/2] = 0.25 * 5.5
    assert apgr(o, Q_SLM, Q_LLM) == pytest.approx(1.375)


def test_random_curve_is_exact_expectation():
    r = random_curve(SLM, LLM)
    np.testing.assert_allclose(r.call_rate, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(r.quality, [0.5, 0.5625, 0.625, 0.6875, 0.75])
    assert r.kind == "random" and r.order is None
    assert apgr(r, Q_SLM, Q_LLM) == pytest.approx(0.5)
    assert cpt(r, Q_SLM, Q_LLM, 0.5) == pytest.approx(0.5)
    # Monte-Carlo check of the expectation at k = 2
    rng = np.random.default_rng(0)
    sims = [cascade_quality(SLM, LLM, np.isin(np.arange(4), rng.choice(4, 2, replace=False)))
            for _ in range(4000)]
    assert np.mean(sims) == pytest.approx(0.625, abs=0.01)


def test_apgr_auc_cpt_by_hand():
    c = sweep(SCORE, SLM, LLM)
    np.testing.assert_allclose(pgr(c, Q_SLM, Q_LLM), [0, 1, 0, 1, 1])
    # APGR: widths 0.25; 0.25 * [(0+1)/2 + (1+0)/2 + (0+1)/2 + (1+1)/2] = 0.25 * 2.5 = 0.625
    assert apgr(c, Q_SLM, Q_LLM) == pytest.approx(0.625)
    # AUC: 0.25 * [1.25/2 + 1.25/2 + 1.25/2 + 1.5/2] = 0.25 * 2.625 = 0.65625 = q_slm + gap * APGR
    assert auc(c) == pytest.approx(0.65625)
    # CPT: first point with PGR >= x is rate 0.25 for every x in (0, 1]
    assert cpt(c, Q_SLM, Q_LLM, 0.5) == 0.25
    assert cpt(c, Q_SLM, Q_LLM, 0.95) == 0.25
    assert cpt(c, Q_SLM, Q_LLM, 0.0) == 0.0
    # interpolated between (0, PGR 0) and (0.25, PGR 1): 0.25 * x
    assert cpt(c, Q_SLM, Q_LLM, 0.5, interpolate=True) == pytest.approx(0.125)
    assert cpt(c, Q_SLM, Q_LLM, 0.8, interpolate=True) == pytest.approx(0.2)
    s = summarize(c, Q_SLM, Q_LLM)
    assert s == pytest.approx({"apgr": 0.625, "cpt50": 0.25, "cpt80": 0.25, "cpt95": 0.25, "auc": 0.65625})


def test_cpt_never_reached_is_nan():
    # worst router: escalates the harmful question 3 first, then 0, then the good ones
    c = sweep([0.5, 0.1, 0.2, 0.9], SLM, LLM)
    # qualities: 0.5, 0.25 (3), 0.25 (0), 0.5 (2), 0.75 (1) -> PGR 0, -1, -1, 0, 1
    np.testing.assert_allclose(c.quality, [0.5, 0.25, 0.25, 0.5, 0.75])
    assert cpt(c, Q_SLM, Q_LLM, 0.5) == 1.0
    # trapezoid 0.25 * [(-1)/2 + (-2)/2 + (-1)/2 + 1/2] = 0.25 * -1.5
    assert apgr(c, Q_SLM, Q_LLM) == pytest.approx(-0.375)
    # a curve that stops before the LLM level never reaches 95%
    partial = Curve(call_rate=[0, 0.5], quality=[0.5, 0.6], thresholds=[np.inf, 0.0])
    assert math.isnan(cpt(partial, Q_SLM, Q_LLM, 0.95))


def test_no_positive_gap_gives_nan():
    # swap the tiers: the "LLM" is worse (0.5 < 0.75)
    c = sweep(SCORE, LLM, SLM)
    assert math.isnan(apgr(c, 0.75, 0.5))
    assert math.isnan(cpt(c, 0.75, 0.5, 0.5))
    assert np.isnan(pgr(c, 0.75, 0.5)).all()
    s = summarize(c, 0.75, 0.5)
    assert math.isnan(s["apgr"]) and math.isnan(s["cpt80"])
    assert s["auc"] == pytest.approx(auc(c)) and not math.isnan(s["auc"])
    # equal qualities: gap 0 -> NaN too (not inf / a division warning)
    assert math.isnan(apgr(c, 0.5, 0.5))
    assert math.isnan(cpt(c, 0.5, 0.5, 0.5))
    assert np.isnan(pgr(c, 0.5, 0.5)).all()


def test_apgr_requires_full_range():
    partial = sweep(SCORE, SLM, LLM, rates=[0.0, 0.5])
    with pytest.raises(ValueError, match="0..1"):
        apgr(partial, Q_SLM, Q_LLM)


def test_threshold_for_rate():
    assert threshold_for_rate(SCORE, 0.0) == math.inf
    assert threshold_for_rate(SCORE, 0.25) == 0.7
    assert threshold_for_rate(SCORE, 0.5) == 0.5
    assert threshold_for_rate(SCORE, 0.6) == 0.5  # largest achievable rate <= 0.6 is 0.5
    assert threshold_for_rate(SCORE, 0.99) == 0.1
    assert threshold_for_rate(SCORE, 1.0) == -math.inf
    # applied to a new (test) split
    test_scores = np.array([0.6, 0.4, 0.95, 0.5])
    np.testing.assert_array_equal(escalate(test_scores, 0.5), [True, False, True, False])


def test_threshold_for_quality_is_cheapest():
    assert threshold_for_quality(SCORE, SLM, LLM, 0.75) == 0.7  # reached at rate 0.25
    assert threshold_for_quality(SCORE, SLM, LLM, 0.6) == 0.7
    assert threshold_for_quality(SCORE, SLM, LLM, 0.5) == math.inf  # SLM alone suffices
    assert math.isnan(threshold_for_quality(SCORE, SLM, LLM, 0.8))  # unreachable
    # the worst router reaches 0.75 only by escalating everything
    assert threshold_for_quality([0.5, 0.1, 0.2, 0.9], SLM, LLM, 0.75) == -math.inf


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: sweep([0.1, 0.2], SLM, LLM), "score"),
        (lambda: sweep(SCORE, SLM, LLM[:3]), "llm_q"),
        (lambda: sweep([], [], []), "slm_q"),
        (lambda: sweep(SCORE, SLM, LLM, rates=[0.5, 1.5]), "rates"),
        (lambda: sweep([0.1, -np.inf, 0.3, 0.4], SLM, LLM), "score"),
        (lambda: sweep(SCORE, [1, np.nan, 0, 1], LLM), "slm_q"),
        (lambda: cascade_quality(SLM, LLM, np.array([True, False])), "escalate_mask"),
        (lambda: threshold_for_rate(SCORE, -0.1), "target_rate"),
        (lambda: threshold_for_rate([], 0.5), "score"),
        (lambda: cpt(sweep(SCORE, SLM, LLM), Q_SLM, Q_LLM, 95), "pct"),
        (lambda: escalate(SCORE, float("nan")), "threshold"),
        (lambda: Curve(call_rate=[0, 0.5], quality=[0.5], thresholds=[1, 2]), "shape"),
        (lambda: Curve(call_rate=[0.5, 0.0], quality=[0, 0], thresholds=[1, 2]), "non-decreasing"),
    ],
)
def test_invalid_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_larger_random_case_matches_brute_force():
    rng = np.random.default_rng(1)
    n = 50
    slm = rng.random(n)
    llm = rng.random(n)
    score = rng.integers(0, 10, n).astype(float)  # many ties
    c = sweep(score, slm, llm)
    assert c.call_rate.size == np.unique(score).size + 1
    for t, rate, q in zip(c.thresholds, c.call_rate, c.quality):
        mask = escalate(score, t)
        assert mask.mean() == pytest.approx(rate)
        assert cascade_quality(slm, llm, mask) == pytest.approx(q)
    o = oracle_curve(slm, llm)
    r = random_curve(slm, llm)
    # the oracle upper-bounds the router wherever both have a point
    k = np.rint(c.call_rate * n).astype(int)
    assert np.all(o.quality[k] >= c.quality - 1e-12)
    assert auc(o) >= auc(c) and auc(o) >= auc(r)
