"""The N-tier evaluation on hand-made stored runs: chain routing, the chain analysis (grid search on
the calibration split, budget targets, oracle, single tiers), abstention on SQuAD v2.0, and the
report files of a three-tier run.

Every expected number below is computed by hand from the tables in this file.

Three-tier SQuAD v1.1 run ``small -> medium -> large``, 8 questions on 4 passages. Every token of
an answer carries the answer's logprob (``lp``), so ``mean_logprob = lp``; a gate
``SignalRouter("mean_logprob")`` scores ``-lp``. F1 in brackets:

    q   pass gold                    small (lp)                  medium (lp)               large (lp)
    q1  P1   Paris                   Paris -0.1 [1]              Paris -0.1 [1]            Paris -0.2 [1]
    q2  P1   Clara Voss              Voss -0.5 [2/3]             Clara Voss -0.2 [1]       Clara Voss -0.1 [1]
    q3  P1   1911                    1958 -0.7 [0]               1958 -0.6 [0]             1911 -0.3 [1]
    q4  P2   the red house           blue house -0.6 [1/2]       red house -0.5 [1, EM 1]  red house -0.2 [1]
    q5  P2   twelve thousand people  twelve thousand -0.2 [4/5]  twelve -0.7 [1/2]         about twelve thousand people -0.4 [6/7]
    q6  P3   Thursday                Friday -0.3 [0]             Thursday -0.4 [1]         Thursday -0.1 [1]
    q7  P3   Mount Kell              Kell -0.9 [2/3]             Kell mountain -0.8 [1/2]  Kell -0.5 [2/3]
    q8  P4   1987                    1987 -0.4 [1]               1987 -0.3 [1]             1987 -0.2 [1]

Prices per call (no token prices): small $0.001, medium $0.003, large $0.017; latency per call:
small 0.1 s, medium 0.3 s, large 1.0 s. So a question answered by the chain at tier k costs
$0.001 / $0.004 / $0.021 (in milli-dollars: 1 / 4 / 21) and takes 0.1 / 0.4 / 1.4 s.

Split (seed 0, by passage): calibration P1, P3 = q1 q2 q3 q6 q7 (5 questions), test P2, P4 =
q4 q5 q8 (3 questions).
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from cascade_router.datasets import QAExample
from cascade_router.evaluation.analysis import (
    CHAIN_BUDGETS,
    Split,
    analyse,
    chain_routing,
    load_run,
    pair_routing,
    point_metrics,
    route_metrics,
)
from cascade_router.evaluation.report import write_report
from cascade_router.evaluation.store import RunStore
from cascade_router.models.base import Generation, TokenTop
from cascade_router.routers import SignalRouter
from cascade_router.tiers import TierPrice

INF = float("inf")
NAMES = ["small", "medium", "large"]
PRICES = {"small": TierPrice(per_call=0.001), "medium": TierPrice(per_call=0.003), "large": TierPrice(per_call=0.017)}
LATENCY = {"small": 0.1, "medium": 0.3, "large": 1.0}

# qid, passage, gold, (small answer, lp), (medium answer, lp), (large answer, lp)
V1 = [
    ("q1", "P1", "Paris", ("Paris", -0.1), ("Paris", -0.1), ("Paris", -0.2)),
    ("q2", "P1", "Clara Voss", ("Voss", -0.5), ("Clara Voss", -0.2), ("Clara Voss", -0.1)),
    ("q3", "P1", "1911", ("1958", -0.7), ("1958", -0.6), ("1911", -0.3)),
    ("q4", "P2", "the red house", ("blue house", -0.6), ("red house", -0.5), ("red house", -0.2)),
    ("q5", "P2", "twelve thousand people", ("twelve thousand", -0.2), ("twelve", -0.7),
     ("about twelve thousand people", -0.4)),
    ("q6", "P3", "Thursday", ("Friday", -0.3), ("Thursday", -0.4), ("Thursday", -0.1)),
    ("q7", "P3", "Mount Kell", ("Kell", -0.9), ("Kell mountain", -0.8), ("Kell", -0.5)),
    ("q8", "P4", "1987", ("1987", -0.4), ("1987", -0.3), ("1987", -0.2)),
]
CALIB = ["q1", "q2", "q3", "q6", "q7"]
TEST = ["q4", "q5", "q8"]
F1 = {  # per tier, in question order q1..q8
    "small": [1, 2 / 3, 0, 1 / 2, 4 / 5, 0, 2 / 3, 1],
    "medium": [1, 1, 0, 1, 1 / 2, 1, 1 / 2, 1],
    "large": [1, 1, 1, 1, 6 / 7, 1, 2 / 3, 1],
}
EM = {
    "small": [1, 0, 0, 0, 0, 0, 0, 1],
    "medium": [1, 1, 0, 1, 0, 1, 0, 1],
    "large": [1, 1, 1, 1, 0, 1, 0, 1],
}


def _gen(answer: str, mean_lp: float, *, prompt: int = 1000, completion: int = 10, latency: float = 1.0,
         model: str = "m") -> Generation:
    words = answer.split()
    return Generation(
        text=answer,
        tokens=words,
        logprobs=[mean_lp] * len(words),
        top_logprobs=[[TokenTop(w, mean_lp), TokenTop("x", mean_lp - 2.0)] for w in words],
        prompt_tokens=prompt,
        completion_tokens=completion,
        latency_s=latency,
        model=model,
    )


def _examples(rows, dataset: str) -> list[QAExample]:
    """QAExamples whose passages hold every gold answer; an empty gold makes the question
    unanswerable (SQuAD v2.0: ``answers=[]``, ``answerable=False``)."""
    passages: dict[str, list[str]] = {}
    for qid, pid, gold, *_ in rows:
        passages.setdefault(pid, []).append(f"Fact {qid}: {gold}." if gold else f"Nothing about {qid}.")
    ctx = {pid: " ".join(parts) for pid, parts in passages.items()}
    out = []
    for qid, pid, gold, *_ in rows:
        answers = [gold] if gold else []
        out.append(QAExample(
            id=qid, question=f"What is asked in {qid}?", context=ctx[pid], answers=answers,
            answerable=bool(answers), dataset=dataset, passage_id=f"{pid}#0",
            extra={"title": pid, "paragraph_index": 0},
        ))
    return out


@pytest.fixture
def three(tmp_path):
    """(examples, run) for the three-tier table above."""
    examples = _examples(V1, "squad-v1.1")
    store = RunStore(tmp_path / "run3")
    for qid, _pid, _gold, *answers in V1:
        for tier, (ans, lp) in zip(NAMES, answers):
            store.put(qid, tier, ans, _gen(ans, lp, latency=LATENCY[tier], model=tier))
    run = load_run(examples, store, PRICES)
    store.close()
    return examples, run


def _gates(t_small: float = 0.45, t_medium: float = 0.6):
    """The configured gates: after small, escalate when its mean logprob < -t_small; after
    medium, when its mean logprob < -t_medium."""
    return [("signal:mean_logprob (small)", SignalRouter("mean_logprob", threshold=-t_small)),
            ("signal:mean_logprob (medium)", SignalRouter("mean_logprob", threshold=-t_medium))]


# --------------------------------------------------------------------------- loading


def test_load_three_tiers(three):
    _, run = three
    assert run.names == NAMES and (run.first, run.last) == ("small", "large")
    assert [r.ex.id for r in run.records] == [r[0] for r in V1]
    assert run.errors == {"small": [], "medium": [], "large": []} and run.missing == 0
    for t in NAMES:
        a = run.arrays[t]
        assert a.f1 == pytest.approx(F1[t]), t
        assert a.em.tolist() == EM[t], t
        assert a.cost == pytest.approx([PRICES[t].per_call] * 8), t
        assert a.latency == pytest.approx([LATENCY[t]] * 8), t
    assert [s["mean_logprob"] for s in run.signals("medium")] == pytest.approx([r[4][1] for r in V1])
    assert run.records[6].tiers["medium"].answer == "Kell mountain"


def test_tiers_argument_orders_and_selects(three, tmp_path):
    """``tiers`` picks the cascade order (here a pair small -> large that ignores medium's rows)."""
    examples, _ = three
    store = RunStore(tmp_path / "run3")  # the same directory the fixture wrote
    pair = load_run(examples, store, PRICES, tiers=["small", "large"])
    with pytest.raises(ValueError, match="no price"):
        load_run(examples, store, {"small": PRICES["small"]}, tiers=["small", "medium"])
    store.close()
    assert pair.names == ["small", "large"] and pair.n == 8
    assert pair.errors == {"small": [], "large": []}


# --------------------------------------------------------------------------- chain routing


def test_chain_routing_by_hand(three):
    """escalated after small: q2..q6; after medium: q1 q3 q5 q6 q7 q8 (matters only where small
    escalated); abstain asked on q1 q2 q5 q7, applies only where large answers (q5).

        q    1  2  3  4  5   6  7  8
        k    0  1  2  1  2   2  0  0
        ans  0  1  2  1  -1  2  0  0
    """
    _, run = three
    e0 = np.array([0, 1, 1, 1, 1, 1, 0, 0], bool)
    e1 = np.array([1, 0, 1, 0, 1, 1, 1, 1], bool)
    ab = np.array([1, 1, 0, 0, 1, 0, 1, 0], bool)
    answer, ran = chain_routing(run, [e0, e1], abstain=ab)
    assert answer.tolist() == [0, 1, 2, 1, -1, 2, 0, 0]
    assert ran.astype(int).tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1], [1, 1, 0],
                                        [1, 1, 1], [1, 1, 1], [1, 0, 0], [1, 0, 0]]
    # without an abstain gate q5 keeps the large tier's answer
    answer2, ran2 = chain_routing(run, [e0, e1])
    assert answer2.tolist() == [0, 1, 2, 1, 2, 2, 0, 0] and (ran2 == ran).all()

    p = route_metrics(run, answer, ran, detail=True)
    # F1: q1 1, q2 1, q3 1, q4 1, q5 abstained on an answerable question 0, q6 1, q7 2/3, q8 1
    assert p.f1 == pytest.approx(100 * (6 + 2 / 3) / 8)
    assert p.exact == pytest.approx(75.0)
    # cost (milli-dollars) = sum of the tiers that ran: 1 4 21 4 21 21 1 1
    assert p.cost_total_usd == pytest.approx(0.074)
    assert p.cost_per_question_usd == pytest.approx(0.074 / 8)
    # latency likewise: .1 .4 1.4 .4 1.4 1.4 .1 .1 -> sorted .1 .1 .1 .4 .4 1.4 1.4 1.4
    assert p.latency_p50_s == pytest.approx(0.4)
    assert p.latency_p95_s == pytest.approx(1.4)
    assert (p.llm_call_rate, p.llm_calls) == (3 / 8, 3)  # large ran on q3 q5 q6
    assert p.answered_by == pytest.approx({"small": 3 / 8, "medium": 2 / 8, "large": 2 / 8, "abstain": 1 / 8})
    assert p.abstain_rate == pytest.approx(1 / 8)
    d = p.to_dict()
    assert d["answered_by"] == p.answered_by and "HasAns_f1" not in d  # v1.1: no HasAns/NoAns


def test_route_metrics_pays_exactly_the_tiers_that_ran(three):
    _, run = three
    n = run.n
    # large answers but only small and large ran (the pair): $0.018 and 1.1 s per question
    ran = np.zeros((n, 3), bool)
    ran[:, [0, 2]] = True
    p = route_metrics(run, np.full(n, 2), ran)
    assert p.cost_per_question_usd == pytest.approx(0.018)
    assert (p.latency_p50_s, p.latency_p95_s) == pytest.approx((1.1, 1.1))
    assert p.f1 == pytest.approx(100 * np.mean(F1["large"]))
    assert p.answered_by is None and p.abstain_rate is None  # detail not asked
    # the pair routing escalating every question is exactly that
    answer, ran_pair = pair_routing(run, np.ones(n, bool))
    assert answer.tolist() == [2] * n and (ran_pair == ran).all()
    assert point_metrics(run, np.ones(n, bool)) == p
    # medium alone: pays only medium
    only = np.zeros((n, 3), bool)
    only[:, 1] = True
    m = route_metrics(run, np.ones(n, int), only, detail=True)
    assert m.cost_total_usd == pytest.approx(8 * 0.003)
    assert m.latency_p50_s == pytest.approx(0.3)
    assert m.llm_call_rate == 0.0 and m.answered_by["medium"] == 1.0
    # nothing ran and every answer abstained: free, instant, and (answerable questions) F1 0
    z = route_metrics(run, np.full(n, -1), np.zeros((n, 3), bool), detail=True)
    assert (z.f1, z.exact, z.cost_total_usd, z.latency_p95_s, z.abstain_rate) == (0.0, 0.0, 0.0, 0.0, 1.0)


def test_pair_points_of_a_three_tier_run_skip_the_middle_tier(three):
    """The pair analysis is first -> last: always-large pays small + large ($0.018), never medium."""
    _, run = three
    res = analyse(run, seed=0)
    assert set(res.points) >= {"always-small", "always-large", "oracle", "random-50%", "seed-v1"}
    assert res.points["always-large"].cost_per_question_usd == pytest.approx(0.018)
    assert res.points["always-small"].cost_per_question_usd == pytest.approx(0.001)
    assert res.routes["always-large"] == ["large"] * 8
    assert res.baselines == pytest.approx({"small_f1": 100 * run.arrays["small"].f1.mean(),
                                           "large_f1": 100 * run.arrays["large"].f1.mean()})


# --------------------------------------------------------------------------- the chain analysis
#
# Calibration gate scores (-lp): after small q1 .1, q2 .5, q3 .7, q6 .3, q7 .9; after medium
# q1 .1, q2 .2, q3 .6, q6 .4, q7 .8. Each gate tries +inf, the "lower" quantiles of its 5 scores
# at 0.05..0.95 (index floor(4q): the four lowest scores) and -inf: 6 thresholds, 36 settings.
#
# Relative to small alone (calibration cost 5 milli-dollars in total, F1 7/3 in total), a setting
# sends set M to medium (+3 each, F1 gain q2 +1/3, q6 +1, q7 -1/6) and set L to large (+20 each,
# gain q2 +1/3, q3 +1, q6 +1). The calibration frontier (cost rising, F1 strictly rising):
#
#     thresholds     M              L          +cost  +F1     test: k of q4 q5 q8   F1      $ milli/q
#     [inf, inf]     -              -          0      0       0 0 0                 23/30   1
#     [.3, inf]      q2 q3 q7       -          9      1/6     1 0 1                 28/30   3
#     [.1, inf]      q2 q3 q6 q7    -          12     7/6     1 1 1                 25/30   4
#     [.1, .6]       q2 q3 q6       q7         29     4/3     1 2 1                 20/21   29/3
#     [.1, .4]       q2 q6          q3 q7      46     7/3     2 2 1                 20/21   46/3
#
# Budgets (calibration, per question): 1 + b * (21 - 1) milli, i.e. +25, +50, +75 in total:
# 25% -> [.1, inf] (calibration F1 (7/3 + 7/6) / 5 = 70, cost 17/5); 50% and 75% -> [.1, .4]
# (F1 (7/3 + 7/3) / 5 = 93.33, cost 51/5). No setting costs exactly a budget.

FRONTIER = [[INF, INF], [0.3, INF], [0.1, INF], [0.1, 0.6], [0.1, 0.4]]


def test_analyse_chain_by_hand(three):
    _, run = three
    res = analyse(run, seed=0, gates=_gates())
    assert res.split == Split(calibration=5, test=3, calib_fraction=0.5, seed=0)
    c = res.chain
    assert c is not None
    assert c.gates == ["signal:mean_logprob (small)", "signal:mean_logprob (medium)"]
    assert c.grid_size == 36
    assert [s.thresholds for s in c.frontier] == [pytest.approx(t) for t in FRONTIER]
    assert [s.calibration.f1 for s in c.frontier] == pytest.approx(
        [100 * (7 / 3 + g) / 5 for g in (0, 1 / 6, 7 / 6, 4 / 3, 7 / 3)])
    assert [s.calibration.cost_total_usd for s in c.frontier] == pytest.approx(
        [0.001 * (5 + d) for d in (0, 9, 12, 29, 46)])
    assert [s.test.f1 for s in c.frontier] == pytest.approx(
        [100 * 23 / 30, 100 * 28 / 30, 100 * 25 / 30, 100 * 20 / 21, 100 * 20 / 21])
    assert [s.test.cost_per_question_usd for s in c.frontier] == pytest.approx(
        [0.001, 0.003, 0.004, 0.029 / 3, 0.046 / 3])

    # APGR between small (F1 23/30) and large (20/21) on the normalised cost axis (0 = $0.001,
    # 1 = $0.021): frontier points (x, PGR) (0, 0), (.1, 35/39), (.15, 14/39), (26/60, 1),
    # (43/60, 1), plus (1, 1); the upper envelope keeps 35/39 over [.1, .15].
    a = 35 / 39
    want = 0.1 * a / 2 + 0.05 * a + (26 / 60 - 0.15) * (a + 1) / 2 + (43 / 60 - 26 / 60) + (1 - 43 / 60)
    assert c.apgr == pytest.approx(want)
    assert (c.cpt50, c.cpt80) == pytest.approx((0.1, 0.1))


def test_chain_targets_respect_the_calibration_budget(three):
    _, run = three
    c = analyse(run, seed=0, gates=_gates()).chain
    assert list(c.targets) == ["25%", "50%", "75%"]
    lo, hi = 0.001, 0.021  # small alone, every tier on every question (calibration, per question)
    for b in CHAIN_BUDGETS:
        s = c.targets[f"{int(b * 100)}%"]
        budget = lo + b * (hi - lo)
        assert s.calibration.cost_per_question_usd <= budget
        # nothing on the frontier within the budget does better on calibration
        assert all(f.calibration.f1 <= s.calibration.f1 + 1e-9 for f in c.frontier
                   if f.calibration.cost_per_question_usd <= budget)
    t25, t50, t75 = c.targets["25%"], c.targets["50%"], c.targets["75%"]
    assert t25.thresholds == pytest.approx([0.1, INF])
    assert (t25.calibration.f1, t25.calibration.cost_per_question_usd) == pytest.approx((70.0, 0.0034))
    # on test: every question stops at medium
    assert t25.test.f1 == pytest.approx(100 * 2.5 / 3)
    assert t25.test.exact == pytest.approx(100 * 2 / 3)
    assert t25.test.cost_per_question_usd == pytest.approx(0.004)
    assert t25.test.answered_by == pytest.approx({"small": 0, "medium": 1, "large": 0, "abstain": 0})
    for t in (t50, t75):
        assert t.thresholds == pytest.approx([0.1, 0.4])
        assert (t.calibration.f1, t.calibration.cost_per_question_usd) == pytest.approx((100 * 14 / 15, 0.0102))
        # on test: q4 (medium score .5 > .4) and q5 (.7) go on to large, q8 (.3) stops at medium
        assert t.test.f1 == pytest.approx(100 * 20 / 21)
        assert t.test.cost_per_question_usd == pytest.approx(0.046 / 3)
        assert t.test.llm_call_rate == pytest.approx(2 / 3)
        assert t.test.answered_by == pytest.approx({"small": 0, "medium": 1 / 3, "large": 2 / 3, "abstain": 0})


def test_chain_points_single_tiers_configured_and_oracle(three):
    _, run = three
    c = analyse(run, seed=0, gates=_gates()).chain
    assert list(c.points) == ["tier:small", "tier:medium", "tier:large", "chain (configured)",
                              "random (each gate 50%)", "oracle"]
    # each tier alone on test (q4 q5 q8) pays only that tier
    for t, f1, em in (("small", (0.5 + 0.8 + 1) / 3, 1 / 3), ("medium", 2.5 / 3, 2 / 3),
                      ("large", (2 + 6 / 7) / 3, 2 / 3)):
        p = c.points[f"tier:{t}"]
        assert (p.f1, p.exact) == pytest.approx((100 * f1, 100 * em)), t
        assert p.cost_per_question_usd == pytest.approx(PRICES[t].per_call), t
        assert (p.latency_p50_s, p.latency_p95_s) == pytest.approx((LATENCY[t], LATENCY[t])), t
        assert p.llm_call_rate == (1.0 if t == "large" else 0.0), t
        assert p.answered_by == pytest.approx({u: float(u == t) for u in [*NAMES, "abstain"]}), t
    # configured: after small escalate below -0.45 (test: q4 only); after medium below -0.6 (q4's
    # medium lp -0.5 stays): q4 medium, q5 and q8 small
    cfg = c.points["chain (configured)"]
    assert cfg.f1 == pytest.approx(100 * 2.8 / 3)
    assert cfg.cost_per_question_usd == pytest.approx(0.006 / 3)
    assert cfg.answered_by == pytest.approx({"small": 2 / 3, "medium": 1 / 3, "large": 0, "abstain": 0})
    # oracle: the cheapest tier whose answer scores best: q4 medium (ties with large), q5 large
    # (6/7 beats 4/5), q8 small (every tier right); pays every tier up to it: 4 + 21 + 1 milli
    o = c.points["oracle"]
    assert o.answered_by == pytest.approx({"small": 1 / 3, "medium": 1 / 3, "large": 1 / 3, "abstain": 0})
    assert o.f1 == pytest.approx(100 * 20 / 21)
    assert o.exact == pytest.approx(100 * 2 / 3)
    assert o.cost_per_question_usd == pytest.approx(0.026 / 3)
    assert o.llm_call_rate == pytest.approx(1 / 3)
    assert o.latency_p50_s == pytest.approx(0.4)  # .4, 1.4, .1
    r = c.points["random (each gate 50%)"]
    assert sum(r.answered_by.values()) == pytest.approx(1.0) and r.answered_by["abstain"] == 0


def test_chain_only_for_three_tiers_or_more(three, tmp_path):
    examples, run = three
    assert analyse(run, seed=0).chain is None  # no gates given
    assert analyse(run, seed=0, gates=_gates()[:1]).chain is None  # one gate short
    assert analyse(run, seed=0, gates=_gates()).abstain is None  # SQuAD v1.1: no abstention
    store = RunStore(tmp_path / "run3")
    pair = load_run(examples, store, PRICES, tiers=["small", "large"])
    store.close()
    res = analyse(pair, seed=0, gates=_gates())
    assert res.chain is None
    assert res.curves and res.points["always-large"].cost_per_question_usd == pytest.approx(0.018)


# --------------------------------------------------------------------------- abstention (SQuAD v2.0)
#
#   q    pass gold         slm (lp)          llm (lp)          calib/test
#   a1   P1   Paris        Paris -0.1  [1]   Paris -0.2  [1]   calib
#   u1   P1   (none)       Berlin -0.9 [0]   Rome -1.5   [0]   calib
#   a2   P2   Clara Voss   Voss -0.7 [2/3]   Clara Voss -0.1 [1]  test
#   u2   P2   (none)       Madrid -0.1 [0]   Lisbon -2.0 [0]   test
#   a3   P3   Thursday     Thursday -0.8 [1] Thursday -0.3 [1] calib
#   u3   P3   (none)       Oslo -0.2   [0]   Oslo -1.2   [0]   calib
#   a4   P4   1911         1911 -0.05  [1]   1911 -0.25  [1]   test
#   u4   P4   (none)       Paris -1.0  [0]   Vienna -0.9 [0]   test
#
# The empty prediction scores 1 on u*, 0 on a*. On calibration the LLM scores exactly as the SLM
# on every question (one class of gain labels), so no logistic gate is fitted and the base
# cascade is seed-v1 as is (escalate when the SLM's mean logprob < -0.6): calibration u1, a3
# reach the LLM; test a2, u4.
# Abstain gate on calibration (questions reaching the LLM: u1 score 1.5, a3 0.3): the length
# signals are the same for every answer (one word) and cannot help; signal:mean_logprob, the
# first signal that can, abstains on u1 at threshold 0.3 (calibration F1 2/4 -> 3/4).

V2 = [
    ("a1", "P1", "Paris", ("Paris", -0.1), ("Paris", -0.2)),
    ("u1", "P1", "", ("Berlin", -0.9), ("Rome", -1.5)),
    ("a2", "P2", "Clara Voss", ("Voss", -0.7), ("Clara Voss", -0.1)),
    ("u2", "P2", "", ("Madrid", -0.1), ("Lisbon", -2.0)),
    ("a3", "P3", "Thursday", ("Thursday", -0.8), ("Thursday", -0.3)),
    ("u3", "P3", "", ("Oslo", -0.2), ("Oslo", -1.2)),
    ("a4", "P4", "1911", ("1911", -0.05), ("1911", -0.25)),
    ("u4", "P4", "", ("Paris", -1.0), ("Vienna", -0.9)),
]
V2_PRICES = {"slm": TierPrice(per_call=0.001), "llm": TierPrice(per_call=0.01)}


@pytest.fixture
def v2(tmp_path):
    examples = _examples(V2, "squad-v2.0")
    store = RunStore(tmp_path / "run2")
    for qid, _pid, _gold, (s, s_lp), (l_, l_lp) in V2:
        store.put(qid, "slm", s, _gen(s, s_lp, latency=0.2))
        store.put(qid, "llm", l_, _gen(l_, l_lp, latency=1.0))
    run = load_run(examples, store, V2_PRICES)
    store.close()
    return examples, run


def test_v2_examples_are_squad_v2_shaped(v2):
    examples, run = v2
    u1 = examples[1]
    assert (u1.dataset, u1.answers, u1.answerable) == ("squad-v2.0", [], False)
    assert run.dataset == "squad-v2.0"
    assert run.answerable.tolist() == [True, False] * 4
    assert run.abstain_em.tolist() == run.abstain_f1.tolist() == [0.0, 1.0] * 4
    assert (run.records[1].abstain_em, run.records[0].abstain_f1) == (1.0, 0.0)


def test_route_metrics_abstention_scores_the_empty_prediction(v2):
    _, run = v2
    n = run.n
    none = np.zeros((n, 2), bool)
    p = route_metrics(run, np.full(n, -1), none, detail=True)
    assert (p.exact, p.f1) == (50.0, 50.0)  # 4 unanswerable of 8
    assert (p.HasAns_exact, p.HasAns_f1, p.HasAns_total) == (0.0, 0.0, 4)
    assert (p.NoAns_exact, p.NoAns_f1, p.NoAns_total) == (100.0, 100.0, 4)
    assert (p.cost_total_usd, p.llm_call_rate, p.abstain_rate) == (0.0, 0.0, 1.0)
    # the LLM answers the answerable questions, the unanswerable ones are abstained
    both = np.ones((n, 2), bool)
    mixed = route_metrics(run, np.array([1, -1] * 4), both, detail=True)
    # a1 1, a2 1, a3 1, a4 1 and every u* 1
    assert (mixed.exact, mixed.f1, mixed.HasAns_f1, mixed.NoAns_f1) == pytest.approx((100.0, 100.0, 100.0, 100.0))
    assert mixed.answered_by == pytest.approx({"slm": 0.0, "llm": 0.5, "abstain": 0.5})
    assert mixed.cost_per_question_usd == pytest.approx(0.011)  # abstaining after a tier still pays it
    # the SLM alone: HasAns a1 1, a2 2/3, a3 1, a4 1; NoAns all wrong (it always answers)
    s = route_metrics(run, np.zeros(n, int), np.eye(2, dtype=bool)[np.zeros(n, int)])
    assert s.HasAns_f1 == pytest.approx(100 * (11 / 3) / 4) and s.HasAns_exact == pytest.approx(75.0)
    assert (s.NoAns_f1, s.NoAns_total) == (0.0, 4)
    assert s.f1 == pytest.approx(100 * (11 / 3) / 8)
    assert "NoAns_f1" in s.to_dict() and "answered_by" not in s.to_dict()


def test_analyse_abstention_by_hand(v2):
    _, run = v2
    res = analyse(run, seed=0)
    assert res.split == Split(calibration=4, test=4, calib_fraction=0.5, seed=0)
    assert "logistic" not in res.curves  # one class of gain labels on calibration
    ab = res.abstain
    assert ab is not None and ab.base == "seed-v1"
    assert ab.gate == "signal:mean_logprob" and ab.threshold == pytest.approx(0.3)
    assert ab.candidates[ab.gate] == pytest.approx(75.0) == max(ab.candidates.values())
    assert ab.candidates["signal:length_words"] == pytest.approx(50.0)  # = the base: no gain
    assert list(ab.rows) == ["seed-v1", "seed-v1 + abstain gate", "always-llm", "always-llm + abstain gate",
                             "abstain on every question (no model)"]
    r = ab.rows
    # test a2 u2 a4 u4; seed-v1 escalates a2 (SLM lp -0.7) and u4 (-1.0)
    base = r["seed-v1"]  # a2 LLM 1, u2 SLM 0, a4 SLM 1, u4 LLM 0
    assert (base.f1, base.HasAns_f1, base.NoAns_f1) == pytest.approx((50.0, 100.0, 0.0))
    assert (base.llm_call_rate, base.abstain_rate) == (0.5, 0.0)
    assert base.cost_per_question_usd == pytest.approx((2 * 0.011 + 2 * 0.001) / 4)
    # the gate abstains where the LLM answers with a score above 0.3: u4 (0.9), not a2 (0.1)
    gated = r["seed-v1 + abstain gate"]
    assert (gated.f1, gated.HasAns_f1, gated.NoAns_f1) == pytest.approx((75.0, 100.0, 50.0))
    assert gated.answered_by == pytest.approx({"slm": 0.5, "llm": 0.25, "abstain": 0.25})
    assert gated.cost_per_question_usd == pytest.approx(base.cost_per_question_usd)
    al = r["always-llm"]  # pays both tiers
    assert (al.f1, al.HasAns_f1, al.NoAns_f1, al.llm_call_rate) == pytest.approx((50.0, 100.0, 0.0, 1.0))
    assert al.cost_per_question_usd == pytest.approx(0.011)
    # LLM scores a2 .1, u2 2.0, a4 .25, u4 .9: abstains on u2 and u4, every answer right
    alg = r["always-llm + abstain gate"]
    assert (alg.exact, alg.f1, alg.HasAns_f1, alg.NoAns_f1) == pytest.approx((100.0, 100.0, 100.0, 100.0))
    assert alg.abstain_rate == pytest.approx(0.5)
    nm = r["abstain on every question (no model)"]
    assert (nm.exact, nm.f1, nm.HasAns_f1, nm.NoAns_f1) == pytest.approx((50.0, 50.0, 0.0, 100.0))
    assert (nm.HasAns_total, nm.NoAns_total) == (2, 2)
    assert (nm.cost_total_usd, nm.llm_call_rate, nm.abstain_rate) == (0.0, 0.0, 1.0)


# --------------------------------------------------------------------------- report files


def _strict_json(text: str):
    def bad(c):
        raise ValueError(f"non-standard JSON constant {c}")
    return json.loads(text, parse_constant=bad)


def test_write_report_three_tiers(three, tmp_path):
    _, run = three
    res = analyse(run, seed=0, gates=_gates())
    identity = {"dataset": "squad-v1.1", "data": "bundled", "limit": 8, "seed": 0, "command": "x",
                "tiers": [{"name": t, "model": f"{t}-model"} for t in NAMES]}
    rd = tmp_path / "report3"
    rd.mkdir()
    paths = write_report(rd, identity, run, res)
    assert set(paths) == {"summary", "report", "curve", "questions", "chain"}
    for name in ("summary.json", "report.md", "curve.png", "chain.png", "questions.csv"):
        assert (rd / name).is_file(), name
    assert (rd / "chain.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    s = _strict_json((rd / "summary.json").read_text())
    assert s["tiers"] == NAMES
    assert s["errors"] == {"small": 0, "medium": 0, "large": 0}
    ch = s["chain"]
    assert ch["gates"] == ["signal:mean_logprob (small)", "signal:mean_logprob (medium)"]
    assert ch["grid_size"] == 36
    assert ch["apgr"] == pytest.approx(res.chain.apgr)
    assert set(ch["points"]) == {"tier:small", "tier:medium", "tier:large", "chain (configured)",
                                 "random (each gate 50%)", "oracle"}
    assert ch["points"]["tier:medium"]["cost_per_question_usd"] == pytest.approx(0.003)
    assert ch["points"]["oracle"]["answered_by"] == pytest.approx(
        {"small": 1 / 3, "medium": 1 / 3, "large": 1 / 3, "abstain": 0.0})
    assert set(ch["targets"]) == {"25%", "50%", "75%"}
    assert ch["targets"]["25%"]["thresholds"] == [pytest.approx(0.1), "inf"]  # strict JSON: inf as a string
    assert ch["targets"]["50%"]["test"]["f1"] == pytest.approx(100 * 20 / 21)
    assert ch["targets"]["50%"]["calibration"]["f1"] == pytest.approx(100 * 14 / 15)
    assert len(ch["frontier"]) == 5
    assert "abstain" not in s

    md = (rd / "report.md").read_text()
    assert "tiers: small (small-model) -> medium (medium-model) -> large (large-model)" in md
    assert "## The chain small -> medium -> large (test split)" in md
    assert "answered by medium" in md
    assert "| tier:medium | 66.7 | 83.3 |" in md
    assert "| chain @25% budget (thresholds 0.100, inf) | 66.7 | 83.3 |" in md
    assert "![The chain's cost-quality frontier](chain.png)" in md
    assert "nan" not in md.lower()

    with (rd / "questions.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["id"] for r in rows] == [r[0] for r in V1]
    assert rows[6]["medium_answer"] == "Kell mountain" and float(rows[6]["medium_f1"]) == pytest.approx(0.5)
    assert rows[6]["large_answer"] == "Kell" and rows[6]["small_answer"] == "Kell"
    preds = _strict_json((rd / "predictions" / "medium.json").read_text())
    assert preds == {qid: m for qid, _p, _g, _s, (m, _lp), _l in V1}


def test_write_report_v2_abstention_section(v2, tmp_path):
    _, run = v2
    res = analyse(run, seed=0)
    rd = tmp_path / "report2"
    rd.mkdir()
    paths = write_report(rd, {"dataset": "squad-v2.0", "slm": "s", "llm": "l"}, run, res)
    assert "chain" not in paths
    s = _strict_json((rd / "summary.json").read_text())
    assert "chain" not in s
    ab = s["abstain"]
    assert (ab["gate"], ab["base"]) == ("signal:mean_logprob", "seed-v1")
    assert ab["threshold"] == pytest.approx(0.3)
    assert ab["rows"]["abstain on every question (no model)"]["f1"] == pytest.approx(50.0)
    assert ab["rows"]["always-llm + abstain gate"]["abstain_rate"] == pytest.approx(0.5)
    md = (rd / "report.md").read_text()
    assert "## Abstention after the last tier (SQuAD v2.0, test split)" in md
    assert "| abstain on every question (no model) | 50.0 | 50.0 | 0.0 | 100.0 | 100.0% | 0.0% | 0.0000 |" in md
    assert not math.isnan(s["points"]["always-slm"]["NoAns_f1"])
