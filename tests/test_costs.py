"""Hand-computed cost / latency accounting and the plot smoke test."""

import numpy as np
import pytest

from cascade_router.tiers import TierPrice
from cascade_router.evaluation.costs import (
    cost_curve,
    latency,
    percentiles,
    question_cost,
    question_costs,
)
from cascade_router.evaluation.curves import oracle_curve, random_curve, sweep

SLM_PRICE = TierPrice(prompt_per_mtok=0.10, completion_per_mtok=0.40)
LLM_PRICE = TierPrice(per_call=0.001, prompt_per_mtok=2.50, completion_per_mtok=10.0)

SLM_Q = np.array([1.0, 0.0, 0.0, 1.0])
LLM_Q = np.array([1.0, 1.0, 1.0, 0.0])
SCORE = np.array([0.1, 0.9, 0.5, 0.7])


def test_tier_price_by_hand():
    # SLM: 1000 * 0.10 / 1e6 + 200 * 0.40 / 1e6 = 0.0001 + 0.00008
    assert SLM_PRICE.cost(1000, 200) == pytest.approx(0.00018)
    # LLM: 0.001 + 1000 * 2.50 / 1e6 + 100 * 10 / 1e6 = 0.001 + 0.0025 + 0.001
    assert LLM_PRICE.cost(1000, 100) == pytest.approx(0.0045)
    np.testing.assert_allclose(LLM_PRICE.cost(np.array([0, 1_000_000]), np.array([0, 0])), [0.001, 2.501])
    assert TierPrice().cost(10**6, 10**6) == 0.0


def test_escalated_question_pays_both_tiers():
    slm = SLM_PRICE.cost(1000, 200)
    llm = LLM_PRICE.cost(1000, 100)
    assert question_cost(slm, llm, True) == pytest.approx(0.00468)  # 0.00018 + 0.0045
    assert question_cost(slm, llm, False) == pytest.approx(0.00018)
    got = question_costs([0.00018, 0.0002], [0.0045, 0.005], np.array([True, False]))
    np.testing.assert_allclose(got, [0.00468, 0.0002])


def test_latency_and_percentiles():
    lat = latency([0.1, 0.2], [1.0, 2.0], np.array([True, False]))
    np.testing.assert_allclose(lat, [1.1, 0.2])
    assert latency(0.3, 1.2, True) == pytest.approx(1.5)
    # linear interpolation: p50 between 5 and 6; p95 at index 0.95*9 = 8.55 -> 9 + 0.55
    p = percentiles(np.arange(1, 11))
    assert p == pytest.approx({"p50": 5.5, "p95": 9.55})
    assert percentiles([4.0], qs=(99,)) == {"p99": 4.0}


def test_cost_curve_by_hand():
    slm_cost = np.array([0.01, 0.02, 0.03, 0.04])  # mean 0.025
    llm_cost = np.array([1.0, 2.0, 3.0, 4.0])
    c = sweep(SCORE, SLM_Q, LLM_Q)  # escalation order 1, 3, 2, 0
    # 0.025 + cumulative llm cost of [2, 4, 3, 1] / 4
    np.testing.assert_allclose(cost_curve(c, slm_cost, llm_cost), [0.025, 0.525, 1.525, 2.275, 2.525])
    o = oracle_curve(SLM_Q, LLM_Q)  # order 1, 2, 0, 3 -> cumulative 2, 5, 6, 10
    np.testing.assert_allclose(cost_curve(o, slm_cost, llm_cost), [0.025, 0.525, 1.275, 1.525, 2.525])
    r = random_curve(SLM_Q, LLM_Q)  # expectation 0.025 + rate * 2.5
    np.testing.assert_allclose(cost_curve(r, slm_cost, llm_cost), [0.025, 0.65, 1.275, 1.9, 2.525])
    # consistent with per-question accounting at each threshold
    from cascade_router.evaluation.curves import escalate

    for t, cost in zip(c.thresholds, cost_curve(c, slm_cost, llm_cost)):
        assert question_costs(slm_cost, llm_cost, escalate(SCORE, t)).mean() == pytest.approx(cost)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: TierPrice(prompt_per_mtok=-1.0), "prompt_per_mtok"),
        (lambda: SLM_PRICE.cost(-5, 1), "prompt_tokens"),
        (lambda: SLM_PRICE.cost([1, 2], [1]), "completion_tokens"),
        (lambda: question_costs([0.1, 0.2], [0.1], np.array([True, False])), "llm_cost"),
        (lambda: question_costs([], [], np.array([], dtype=bool)), "slm_cost"),
        (lambda: latency([0.1, 0.2], [1.0, 2.0], np.array([True])), "escalated"),
        (lambda: percentiles([]), "x"),
        (lambda: percentiles([1.0], qs=(150,)), "qs"),
        (lambda: cost_curve(sweep(SCORE, SLM_Q, LLM_Q), [0.1, 0.1], [1.0, 1.0]), "slm_cost"),
    ],
)
def test_invalid_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_plot_writes_png(tmp_path):
    import matplotlib

    from cascade_router.evaluation.plot import plot_curves

    c = sweep(SCORE, SLM_Q, LLM_Q, name="confidence")
    o = oracle_curve(SLM_Q, LLM_Q)
    r = random_curve(SLM_Q, LLM_Q)
    slm_cost = np.full(4, 0.0002)
    llm_cost = np.full(4, 0.005)
    costs = {x.name: cost_curve(x, slm_cost, llm_cost) for x in (c, o, r)}
    points = [("preset-a", 0.25, 0.7, 0.0015), ("preset-b", 0.5, 0.6, None)]
    out = tmp_path / "curves.png"
    plot_curves([c, o, r], out, 0.5, 0.75, costs=costs, points=points, title="t")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    single = tmp_path / "cost.png"
    plot_curves([c, r], single, 0.5, 0.75, x="cost", costs=[costs["confidence"], costs["random"]])
    assert single.stat().st_size > 1000
    # no pyplot figures left behind (the plot never touches pyplot's global state)
    if "matplotlib.pyplot" in __import__("sys").modules:
        import matplotlib.pyplot as plt

        assert plt.get_fignums() == []
    assert matplotlib.get_backend()  # backend untouched and importable
    with pytest.raises(ValueError, match="costs"):
        plot_curves([c], tmp_path / "x.png", 0.5, 0.75, x="cost")
    with pytest.raises(ValueError, match="costs"):
        plot_curves([c, o], tmp_path / "x.png", 0.5, 0.75, costs=[costs["confidence"]])
