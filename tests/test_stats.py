"""The passage bootstrap and the rule that names a best router only when the sample allows."""

from __future__ import annotations

import numpy as np
import pytest

from cascade_router.evaluation.analysis import CurveSummary, rank_routers
from cascade_router.evaluation.curves import apgr, cpt, sweep
from cascade_router.evaluation.stats import Bootstrap, curve_intervals, interval, point_intervals, questions_needed


def test_resampling_is_by_passage_and_seeded():
    ids = ["a", "a", "b", "c", "c", "c"]
    b1 = Bootstrap.over_passages(ids, n_boot=200, seed=3)
    b2 = Bootstrap.over_passages(ids, n_boot=200, seed=3)
    assert np.array_equal(b1.weights, b2.weights)
    w = b1.weights
    assert w.shape == (200, 6)
    # questions of one passage always carry the same weight; 3 passages are drawn per resample
    assert (w[:, 0] == w[:, 1]).all() and (w[:, 3] == w[:, 4]).all() and (w[:, 4] == w[:, 5]).all()
    assert ((w[:, 0] + w[:, 2] + w[:, 3]) == 3).all()
    assert not np.array_equal(w, Bootstrap.over_passages(ids, n_boot=200, seed=4).weights)
    with pytest.raises(ValueError):
        Bootstrap.over_passages([], n_boot=10)


def test_identity_weights_give_the_plain_statistics():
    """A 'bootstrap' whose every resample is the sample itself reproduces APGR and CPT exactly."""
    rng = np.random.default_rng(0)
    n = 40
    slm, llm = rng.random(n), rng.random(n) + 0.3
    score = rng.random(n)
    c = sweep(score, slm, llm)
    boot = Bootstrap(np.ones((5, n)))
    iv = curve_intervals(c, slm, llm, boot)
    a = apgr(c, slm.mean(), llm.mean())
    assert iv["apgr_ci95"] == pytest.approx([a, a])
    c50 = cpt(c, slm.mean(), llm.mean(), 0.5)
    assert iv["cpt50_ci95"] == pytest.approx([c50, c50])
    pi = point_intervals(boot, em=np.ones(n), f1=slm, last_ran=np.zeros(n), cost=np.full(n, 2.0))
    assert pi["f1_ci95"] == pytest.approx([100 * slm.mean()] * 2)
    assert pi["llm_call_rate_ci95"] == [0.0, 0.0] and pi["cost_per_question_usd_ci95"] == [2.0, 2.0]


def test_interval_contains_the_point_and_shrinks_with_more_passages():
    rng = np.random.default_rng(1)

    def width(n_pass):
        ids = [f"p{i // 3}" for i in range(3 * n_pass)]
        x = rng.random(3 * n_pass)
        lo, hi = point_intervals(Bootstrap.over_passages(ids, 1000, 0), x, x, x > 0.5, x)["f1_ci95"]
        assert lo <= 100 * x.mean() <= hi
        return hi - lo

    assert width(400) < width(25) / 2


def test_interval_is_none_when_too_many_resamples_are_undefined():
    assert interval(np.array([np.nan] * 10 + [1.0] * 90)) is None
    assert interval(np.array([np.nan] * 2 + list(range(98)))) == pytest.approx([2.425, 94.575])


def _cs(apgr, ci):
    return CurveSummary(apgr=apgr, cpt50=0.3, cpt80=0.6, cpt95=0.9, auc=0.3, apgr_ci95=ci)


def test_best_router_named_only_when_clear_of_random_and_runner_up():
    clear = rank_routers({"a": _cs(0.70, [0.66, 0.75]), "b": _cs(0.60, [0.55, 0.66]), "random": _cs(0.5, [0.5, 0.5]),
                          "oracle": _cs(1.3, [1.2, 1.4])}, 1000)
    assert clear.decided and clear.best == "a" and clear.runner_up == "b"
    assert clear.line().startswith("best router by cross-fitted APGR: a (APGR 0.700")
    close = rank_routers({"a": _cs(0.70, [0.62, 0.78]), "b": _cs(0.65, [0.60, 0.70])}, 500)
    assert not close.decided and close.best == "a"
    # half-width 0.08 must shrink to the 0.05 gap: 500 * (0.08 / 0.05)^2 = 1,280
    assert close.questions_needed == 1280
    assert "too small to rank routers" in close.line() and "about 1,280 questions" in close.line()
    noisy = rank_routers({"a": _cs(0.55, [0.45, 0.65]), "b": _cs(0.40, [0.3, 0.5])}, 100)
    assert not noisy.decided and "random's 0.5" in noisy.line()
    assert rank_routers({"a": _cs(float("nan"), None)}, 10) is None


def test_questions_needed():
    assert questions_needed(100, 0.6, [0.5, 0.7], 0.55) == 400
    assert questions_needed(100, 0.5, [0.4, 0.6], 0.55) is None
