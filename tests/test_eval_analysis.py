"""Offline scoring of a hand-made stored run: load_run, point_metrics, analyse and write_report.

Every expected number below is computed by hand from the tables in this file.

SQuAD v1.1 run, 8 scored questions on 4 passages (two questions each), plus ``q9`` whose LLM
generation failed (left out of scoring) and ``q10`` with no stored row (not yet generated):

    q   passage gold                    slm answer        EM  F1     llm answer                    EM  F1
    q1  P1      Paris                   Paris             1   1      Paris                          1  1
    q2  P1      Clara Voss              Voss              0   2/3    Clara Voss                     1  1
    q3  P2      1911                    1958              0   0      1911                           1  1
    q4  P2      the red house           red house         1   1      blue house                     0  1/2
    q5  P3      Thursday                Thursday          1   1      Friday                         0  0
    q6  P3      twelve thousand people  twelve thousand   0   4/5    about twelve thousand people   0  6/7
    q7  P4      Mount Kell              Kell mountain     0   1/2    Mount Kell                     1  1
    q8  P4      1987                    1987              1   1      1987                           1  1

    always-slm EM 4/8 = 50,   F1 (4.5 + 2/3 + 4/5) / 8 = 74.583
    always-llm EM 5/8 = 62.5, F1 (5.5 + 6/7) / 8 = 79.464

SLM mean logprob per question (every token carries it; entropy over 2 alternatives stays below
log 2, answers are at most 2 words, so only the mean-logprob rule of a preset can fire):

    q    q1    q2    q3    q4    q5     q6    q7    q8
    mlp  -0.1  -0.5  -0.7  -0.2  -0.05  -0.9  -1.2  -0.3
    seed-v1 (< -0.6):  q3 q6 q7      seed-v2 (< -0.45): q2 q3 q6 q7     seed-v3 (< -0.8): q6 q7
    oracle (llm F1 > slm F1): q2 q3 q6 q7

Prices: SLM $0.001/call + $1/Mtok prompt + $2/Mtok completion; LLM $0.01/call + $10 + $20.
Tokens: prompt 1000 / completion 10 everywhere except q1's SLM prompt (3000) and q7's LLM prompt
(2000). So SLM costs $0.00202 (q1: $0.00402), LLM costs $0.0202 (q7: $0.0302); the SLM column
sums to $0.01816. Latency: SLM q_i takes 0.1*i s, the LLM 1.0 s.
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from cascade_router.cli import main
from cascade_router.datasets import QAExample, load_dataset
from cascade_router.tiers import TierPrice
from cascade_router.evaluation.analysis import CrossFit, Split, analyse, crossfit_splits, load_run, point_metrics
from cascade_router.evaluation.curves import oracle_curve, summarize, sweep
from cascade_router.evaluation.report import write_report
from cascade_router.evaluation.store import RunStore
from cascade_router.models.base import Generation, TokenTop
from cascade_router.routers import SignalRouter

SLM_PRICE = TierPrice(per_call=0.001, prompt_per_mtok=1.0, completion_per_mtok=2.0)
LLM_PRICE = TierPrice(per_call=0.01, prompt_per_mtok=10.0, completion_per_mtok=20.0)

# qid, passage, gold, slm answer, slm mean logprob, llm answer
V1 = [
    ("q1", "P1", "Paris", "Paris", -0.1, "Paris"),
    ("q2", "P1", "Clara Voss", "Voss", -0.5, "Clara Voss"),
    ("q3", "P2", "1911", "1958", -0.7, "1911"),
    ("q4", "P2", "the red house", "red house", -0.2, "blue house"),
    ("q5", "P3", "Thursday", "Thursday", -0.05, "Friday"),
    ("q6", "P3", "twelve thousand people", "twelve thousand", -0.9, "about twelve thousand people"),
    ("q7", "P4", "Mount Kell", "Kell mountain", -1.2, "Mount Kell"),
    ("q8", "P4", "1987", "1987", -0.3, "1987"),
]
SCORED = [r[0] for r in V1]


def _gen(answer: str, mean_lp: float, *, prompt: int = 1000, completion: int = 10, latency: float = 1.0,
         cached: int | None = None, model: str = "m") -> Generation:
    words = answer.split()
    return Generation(
        text=answer,
        tokens=words,
        logprobs=[mean_lp] * len(words),
        top_logprobs=[[TokenTop(w, mean_lp), TokenTop("x", mean_lp - 2.0)] for w in words],
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_prompt_tokens=cached,
        finish_reason="stop",
        latency_s=latency,
        model=model,
    )


def _examples(rows, dataset: str) -> list[QAExample]:
    """QAExamples whose passages hold every gold answer (so an official data file can be written)."""
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


def write_squad_file(path, examples: list[QAExample], version: str) -> None:
    """An official-format SQuAD file holding exactly ``examples`` (one paragraph per passage)."""
    arts: dict[str, dict] = {}
    for ex in examples:
        art = arts.setdefault(ex.extra["title"], {"title": ex.extra["title"], "paragraphs": [{"context": ex.context, "qas": []}]})
        qa = {"id": ex.id, "question": ex.question,
              "answers": [{"text": a, "answer_start": ex.context.index(a)} for a in ex.answers]}
        if version == "v2.0":
            qa["is_impossible"] = not ex.answers
        art["paragraphs"][0]["qas"].append(qa)
    path.write_text(json.dumps({"version": version, "data": list(arts.values())}))


@pytest.fixture
def v1(tmp_path):
    """(examples incl. q9/q10, store, run) for the SQuAD v1.1 table above."""
    rows = V1 + [("q9", "P5", "Rome", "", 0, ""), ("q10", "P5", "Oslo", "", 0, "")]
    examples = _examples(rows, "squad-v1.1")
    store = RunStore(tmp_path / "run")
    for i, (qid, _pid, _gold, s_ans, s_lp, l_ans) in enumerate(V1, start=1):
        store.put(qid, "slm", s_ans, _gen(s_ans, s_lp, prompt=3000 if qid == "q1" else 1000, latency=0.1 * i,
                                          cached=800 if i % 2 == 0 else None, model="slm"))
        store.put(qid, "llm", l_ans, _gen(l_ans, -0.3, prompt=2000 if qid == "q7" else 1000, latency=1.0, model="llm"))
    # q9: SLM fine (a huge prompt that must not leak into any total), LLM failed.
    store.put("q9", "slm", "Rome", _gen("Rome", -0.1, prompt=50_000, latency=9.0))
    store.put("q9", "llm", None, None, error="llm exploded")
    # a row for a question outside the sample is ignored
    store.put("zz", "slm", "x", _gen("x", -0.1))
    run = load_run(examples, store, {"slm": SLM_PRICE, "llm": LLM_PRICE})
    yield examples, store, run
    store.close()


def test_load_run_joins_and_scores(v1):
    _, _, run = v1
    assert [r.ex.id for r in run.records] == SCORED
    assert run.n == 8
    assert run.errors == {"slm": [], "llm": ["q9"]}
    assert run.missing == 1  # q10
    assert run.names == ["slm", "llm"] and (run.first, run.last) == ("slm", "llm")
    s, l_ = run.arrays["slm"], run.arrays["llm"]
    assert s.em.tolist() == [1, 0, 0, 1, 1, 0, 0, 1]
    assert l_.em.tolist() == [1, 1, 1, 0, 0, 0, 1, 1]
    assert s.f1 == pytest.approx([1, 2 / 3, 0, 1, 1, 0.8, 0.5, 1])
    assert l_.f1 == pytest.approx([1, 1, 1, 0.5, 0, 6 / 7, 1, 1])
    assert s.cost == pytest.approx([0.00402] + [0.00202] * 7)
    assert l_.cost == pytest.approx([0.0202] * 6 + [0.0302, 0.0202])
    assert s.latency == pytest.approx([0.1 * i for i in range(1, 9)])
    assert l_.latency == pytest.approx([1.0] * 8)
    assert run.records[2].tiers["slm"].signals["mean_logprob"] == pytest.approx(-0.7)
    assert run.signals("slm")[2] is run.records[2].tiers["slm"].signals
    assert run.records[1].tiers["slm"].answer == "Voss" and run.records[1].tiers["llm"].answer == "Clara Voss"
    assert (run.records[1].tiers["slm"].em, run.records[1].tiers["slm"].f1) == pytest.approx((0.0, 2 / 3))


EXPECTED_POINTS = {
    # name: (EM, F1, call rate, total $, latency p50)
    "always-slm": (50.0, 100 * (4.5 + 2 / 3 + 0.8) / 8, 0.0, 0.01816, 0.45),
    "always-llm": (62.5, 100 * (5.5 + 6 / 7) / 8, 1.0, 0.18976, 1.45),
    "oracle": (87.5, 100 * (7 + 6 / 7) / 8, 0.5, 0.10896, 1.0),
    "seed-v1": (75.0, 100 * (6 + 2 / 3 + 6 / 7) / 8, 3 / 8, 0.08876, 0.65),
    "seed-v2": (87.5, 100 * (7 + 6 / 7) / 8, 0.5, 0.10896, 1.0),
    "seed-v3": (62.5, 100 * (5 + 2 / 3 + 6 / 7) / 8, 2 / 8, 0.06856, 0.45),
}


@pytest.mark.parametrize("name", list(EXPECTED_POINTS))
def test_fixed_points_by_hand(v1, name):
    _, _, run = v1
    res = analyse(run, seed=0)
    p = res.points[name]
    em, f1, rate, total, p50 = EXPECTED_POINTS[name]
    assert p.exact == pytest.approx(em)
    assert p.f1 == pytest.approx(f1)
    assert p.llm_call_rate == pytest.approx(rate)
    assert p.llm_calls == round(rate * 8)
    # escalated questions pay BOTH tiers: SLM column (0.01816) + the escalated LLM costs
    assert p.cost_total_usd == pytest.approx(total)
    assert p.cost_per_question_usd == pytest.approx(total / 8)
    assert p.latency_p50_s == pytest.approx(p50)
    assert p.HasAns_f1 is None and "HasAns_f1" not in p.to_dict()  # v1.1 has no HasAns/NoAns split
    assert p.answered_by is None and "answered_by" not in p.to_dict()  # pair points: no detail


def test_point_metrics_custom_mask_costs_and_latency(v1):
    _, _, run = v1
    mask = np.zeros(8, bool)
    mask[6] = True  # escalate q7 only: its LLM prompt is the 2000-token one
    p = point_metrics(run, mask)
    assert p.cost_total_usd == pytest.approx(0.01816 + 0.0302)
    assert p.llm_calls == 1
    # latencies 0.1..0.8 with q7 -> 1.7: sorted 0.1 .. 0.6, 0.8, 1.7 -> p50 (0.4+0.5)/2,
    # p95 at index 6.65 -> 0.8 + 0.65 * 0.9
    assert p.latency_p50_s == pytest.approx(0.45)
    assert p.latency_p95_s == pytest.approx(0.8 + 0.65 * 0.9)
    # q7: SLM F1 1/2 -> LLM F1 1, EM 0 -> 1
    assert p.f1 == pytest.approx(100 * (4.5 + 2 / 3 + 0.8 + 0.5) / 8)
    assert p.exact == pytest.approx(62.5)


def test_error_question_is_left_out_not_scored_wrong(v1):
    examples, store, run = v1
    # Had q9 (LLM failed) been scored as a wrong LLM answer, always-llm EM would be 5/9.
    assert analyse(run).points["always-llm"].exact == pytest.approx(62.5)
    # and an SLM-side error is equally left out
    store.put("q10", "slm", "Oslo", _gen("Oslo", -0.1))
    store.put("q10", "llm", None, None, error="timeout")
    run2 = load_run(examples, store, {"slm": SLM_PRICE, "llm": LLM_PRICE})
    assert run2.n == 8 and run2.missing == 0
    assert run2.errors == {"slm": [], "llm": ["q9", "q10"]}


def test_crossfitted_curves_over_all_questions(v1):
    """4 passages, so 4 folds (each holds one passage out). -mlp scores q1..q8: .1 .5 .7 .2 .05 .9
    1.2 .3; SLM F1 1 2/3 0 1 1 .8 .5 1; LLM F1 1 1 1 .5 0 6/7 1 1.

    A fixed router needs no fitting, so its cross-fitted curve is its curve over all 8.
    Target 30% (at most 1 of a fold's 6 training questions): thresholds .9 (P1, P2 held out)
    and .7 (P3, P4) -> q6 (.9) and q7 (1.2) escalate: rate 2/8, F1 (1+2/3+0+1+1+6/7+1+1)/8 = (5+2/3+6/7)/8;
    reported threshold: the median .8. Target 50% (at most 3 of 6): thresholds .3 .3 .3 .2 ->
    q2 q3 q6 q7 q8 escalate: rate 5/8, F1 (7 + 6/7)/8; median threshold .3.
    """
    _, _, run = v1
    res = analyse(run, seed=0)
    assert res.split == Split(calibration=4, test=4, calib_fraction=0.5, seed=0)  # chain/abstention only
    assert res.crossfit == CrossFit(folds=4, seed=0, n=8)
    assert res.baselines == pytest.approx({"slm_f1": 100 * (4.5 + 2 / 3 + 0.8) / 8, "llm_f1": 100 * (5.5 + 6 / 7) / 8})
    c = res.curves["signal:mean_logprob"]
    slm, llm = run.arrays["slm"].f1, run.arrays["llm"].f1
    score = SignalRouter("mean_logprob").decision_function(run.signals("slm"))
    assert score == pytest.approx([0.1, 0.5, 0.7, 0.2, 0.05, 0.9, 1.2, 0.3])
    want = summarize(sweep(score, slm, llm, nan_rank="last"), slm.mean(), llm.mean())
    assert {k: getattr(c, k) for k in want} == pytest.approx(want)
    assert {k: v for k, v in vars(c.target30).items() if not k.endswith("_ci95")} == pytest.approx(
        {"threshold": 0.8, "llm_call_rate": 0.25, "f1": 100 * (5 + 2 / 3 + 6 / 7) / 8})
    assert {k: v for k, v in vars(c.target50).items() if not k.endswith("_ci95")} == pytest.approx(
        {"threshold": 0.3, "llm_call_rate": 0.625, "f1": 100 * (7 + 6 / 7) / 8})
    # a two-tier run has no chain; SQuAD v1.1 no abstention
    assert res.chain is None and res.abstain is None
    assert res.curves["oracle"].apgr == pytest.approx(summarize(oracle_curve(slm, llm), slm.mean(), llm.mean())["apgr"])
    assert res.curves["random"].apgr == pytest.approx(0.5)
    assert res.curves["oracle"].target30 is None and "target30" not in res.curves["oracle"].to_dict()
    # every single signal, the swept presets and the logistic fit are reported
    names = set(res.curves)
    assert {"signal:length_words", "signal:mean_entropy", "seed-v1 (swept)", "logistic", "random", "oracle"} <= names
    assert res.ranking.n_test == 8


def test_crossfit_folds_hold_out_whole_passages(v1):
    _, _, run = v1
    splits = crossfit_splits(run, 5, seed=0)
    pids = np.array([x.ex.passage_id for x in run.records])
    assert len(splits) == 4  # fewer passages than folds: one fold per passage
    held = np.concatenate([te for _, te in splits])
    assert sorted(held.tolist()) == list(range(8))  # every question held out exactly once
    for tr, te in splits:
        assert not set(pids[tr]) & set(pids[te])
    assert crossfit_splits(run.subset({"q1", "q2"}), 5, seed=0) == []  # one passage: nothing to cross-fit


def test_learned_gate_never_scores_a_question_it_was_fitted_on(v1):
    """The logistic gate's held-out scores come from models fitted without that passage: a
    model fitted on all 8 questions scores them differently."""
    from cascade_router.evaluation.analysis import _fit_logistic

    _, _, run = v1
    rows, f, g = run.signals("slm"), run.arrays["slm"].f1, run.arrays["llm"].f1
    splits = crossfit_splits(run, 5, seed=0)
    oof = np.full(8, np.nan)
    for tr, te in splits:
        oof[te] = _fit_logistic(rows, f, g, tr, te)[1]
    everything = np.arange(8)
    in_sample = _fit_logistic(rows, f, g, everything, everything)[1]
    assert np.isfinite(oof).all() and not np.allclose(oof, in_sample)


def test_curves_agree_with_curves_module(v1):
    _, _, run = v1
    res = analyse(run, seed=0)
    slm, llm = run.arrays["slm"].f1, run.arrays["llm"].f1
    assert {k: getattr(res.curves["oracle"], k) for k in ("apgr", "auc", "cpt50")} == pytest.approx(
        {k: v for k, v in summarize(oracle_curve(slm, llm), slm.mean(), llm.mean()).items() if k in ("apgr", "auc", "cpt50")})
    curve, cost = next((c, k) for c, k in res.curve_objects if c.name == "signal:mean_logprob")
    # costs along the curve: SLM mean over the 8 = 0.01816 / 8, then + LLM q7 (0.0302), q6, q3, q2 (0.0202 each) ...
    assert cost[:3] == pytest.approx([0.01816 / 8, (0.01816 + 0.0302) / 8, (0.01816 + 0.0504) / 8])
    assert cost[-1] == pytest.approx(0.18976 / 8)


def test_target_rate_crossfitted_never_escalates_a_nan_score(tmp_path):
    """-mlp scores q1..q8: .1 .2 nan 2 .3 .4 3 4 (q3's SLM produced no token: mean_logprob nan).
    Target 30% (<= 1 of 6 training questions): thresholds 3 3 3 .4 (P1..P4 held out) -> q7 q8
    escalate: rate .25, F1 75 (q3's empty answer and q6's wrong one stay). Target 50% (<= 3 of
    6): thresholds .4 .3 .2 .2 -> q4 q5 q6 q7 q8: rate .625, F1 87.5, median threshold .25. q3 is
    never escalated although every threshold is finite."""
    rows = [("q1", "P1", "a1", "a1", -0.1, "a1"), ("q2", "P1", "a2", "a2", -0.2, "a2"),
            ("q3", "P2", "a3", "", 0.0, "a3"), ("q4", "P2", "a4", "a4", -2.0, "a4"),
            ("q5", "P3", "a5", "a5", -0.3, "a5"), ("q6", "P3", "a6", "b6", -0.4, "a6"),
            ("q7", "P4", "a7", "b7", -3.0, "a7"), ("q8", "P4", "a8", "a8", -4.0, "a8")]
    store = RunStore(tmp_path / "nan")
    for qid, _p, _g, s_ans, lp, l_ans in rows:
        store.put(qid, "slm", s_ans, _gen(s_ans, lp))
        store.put(qid, "llm", l_ans, _gen(l_ans, -0.1))
    run = load_run(_examples(rows, "squad-v1.1"), store, {"slm": TierPrice(), "llm": TierPrice()})
    store.close()
    assert math.isnan(run.records[2].tiers["slm"].signals["mean_logprob"])
    c = analyse(run, seed=0).curves["signal:mean_logprob"]
    assert {k: v for k, v in vars(c.target30).items() if not k.endswith("_ci95")} == pytest.approx(
        {"threshold": 3.0, "llm_call_rate": 0.25, "f1": 75.0})
    assert {k: v for k, v in vars(c.target50).items() if not k.endswith("_ci95")} == pytest.approx(
        {"threshold": 0.25, "llm_call_rate": 0.625, "f1": 87.5})


# --- SQuAD v2.0 ------------------------------------------------------------------------------------
#   q    gold         slm     EM F1    llm            EM F1
#   a1   Paris        Paris   1  1     London         0  0
#   u1   (none)       Berlin  0  0     "" (abstain)   1  1
#   u2   (none)       ""      1  1     Rome           0  0
#   a2   Clara Voss   Voss    0  2/3   Clara Voss     1  1
V2 = [
    ("a1", "P1", "Paris", "Paris", -0.1, "London"),
    ("u1", "P1", "", "Berlin", -0.1, ""),
    ("u2", "P2", "", "", -0.1, "Rome"),
    ("a2", "P2", "Clara Voss", "Voss", -0.1, "Clara Voss"),
]


@pytest.fixture
def v2(tmp_path):
    examples = _examples(V2, "squad-v2.0")
    store = RunStore(tmp_path / "run2")
    for qid, _pid, _gold, s_ans, s_lp, l_ans in V2:
        store.put(qid, "slm", s_ans, _gen(s_ans, s_lp, latency=0.2))  # u2: no token -> nan signals
        store.put(qid, "llm", l_ans, _gen(l_ans, -0.2, latency=1.0))
    run = load_run(examples, store, {"slm": TierPrice(), "llm": TierPrice()})
    yield examples, store, run
    store.close()


def test_squad_v2_hasans_noans(v2):
    _, _, run = v2
    assert math.isnan(run.records[2].tiers["slm"].signals["mean_logprob"])
    pts = analyse(run).points
    s, l_, o = pts["always-slm"], pts["always-llm"], pts["oracle"]
    assert (s.exact, s.f1) == pytest.approx((50.0, 100 * (2 + 2 / 3) / 4))
    assert (s.HasAns_exact, s.HasAns_f1, s.HasAns_total) == pytest.approx((50.0, 100 * (5 / 3) / 2, 2))
    assert (s.NoAns_exact, s.NoAns_f1, s.NoAns_total) == pytest.approx((50.0, 50.0, 2))
    assert (l_.exact, l_.f1) == pytest.approx((50.0, 50.0))
    assert (l_.HasAns_exact, l_.HasAns_f1) == pytest.approx((50.0, 50.0))
    assert (l_.NoAns_exact, l_.NoAns_f1) == pytest.approx((50.0, 50.0))
    # oracle escalates u1 and a2: everything right
    assert o.llm_call_rate == 0.5
    assert (o.exact, o.HasAns_f1, o.NoAns_f1) == pytest.approx((100.0, 100.0, 100.0))
    # free tiers cost nothing; a nan signal never escalates a preset
    assert s.cost_total_usd == 0.0
    assert pts["seed-v1"].llm_call_rate == 0.0


# --- report files ------------------------------------------------------------------------------------


def _strict_json(text: str):
    def bad(c):
        raise ValueError(f"non-standard JSON constant {c}")
    return json.loads(text, parse_constant=bad)


def _score(dataset, data, pred):
    r = CliRunner().invoke(main, ["score", "--dataset", dataset, "--data", str(data), "--predictions", str(pred)])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_write_report_files(v1, tmp_path):
    examples, store, run = v1
    res = analyse(run, seed=0)
    identity = {"dataset": "squad-v1.1", "slm": "s", "llm": "l", "limit": 10, "seed": 0, "command": "x"}
    rd = tmp_path / "run"
    paths = write_report(rd, identity, run, res, {"last_run": {"generated": 3}})
    for name in ("summary.json", "report.md", "curve.png", "questions.csv"):
        assert (rd / name).is_file(), name
    assert set(paths) == {"summary", "report", "curve", "questions"}
    assert (rd / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    summary = _strict_json((rd / "summary.json").read_text())
    assert summary["identity"] == identity
    assert summary["scored_questions"] == 8
    assert summary["errors"] == {"slm": 0, "llm": 1} and summary["error_ids"]["llm"] == ["q9"]
    assert summary["not_yet_generated"] == 1
    assert summary["last_run"] == {"generated": 3}
    assert summary["points"]["seed-v1"]["f1"] == pytest.approx(EXPECTED_POINTS["seed-v1"][1])
    # the small gap over all 8 questions (SLM F1 74.6, LLM 79.5) makes the cross-fitted APGR large
    assert summary["curves"]["signal:mean_logprob"]["apgr"] == pytest.approx(res.curves["signal:mean_logprob"].apgr) == pytest.approx(3.0)
    assert summary["crossfit"] == {"folds": 4, "seed": 0, "n": 8, "unit": "passage"}
    # prompt cache over the 8 scored questions only (q9's 50k-token prompt is left out):
    # SLM 3000 + 7*1000 sent, 4*800 cached; LLM 7*1000 + 2000 sent, none cached
    pc = summary["prompt_cache"]
    assert pc["slm"]["prompt_tokens_sent"] == 10_000
    assert pc["slm"]["prompt_tokens_evaluated"] == 6_800
    assert pc["slm"]["cache_ratio"] == pytest.approx(0.32)
    assert pc["llm"]["prompt_tokens_sent"] == 9_000 and pc["llm"]["cache_ratio"] == 0.0
    assert pc["slm"]["model_seconds"] == pytest.approx(3.6)
    assert summary["prices"]["llm"] == {"per_call": 0.01, "prompt_per_mtok": 10.0, "completion_per_mtok": 20.0}

    with (rd / "questions.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["id"] for r in rows] == SCORED
    assert [r["route_seed-v1"] for r in rows] == ["slm", "slm", "llm", "slm", "slm", "llm", "llm", "slm"]
    assert float(rows[1]["slm_f1"]) == pytest.approx(2 / 3)
    assert rows[5]["llm_answer"] == "about twelve thousand people"
    assert float(rows[6]["mean_logprob"]) == pytest.approx(-1.2)

    md = (rd / "report.md").read_text()
    assert "| seed-v1 | 75.0 | 94.0 [" in md  # F1 with its 95% interval
    assert "llm 1 (left out of scoring)" in md

    # predictions in the official format, which `cascade-router score` reads and agrees with
    data = tmp_path / "dev.json"
    write_squad_file(data, [e for e in examples if e.id in SCORED], "1.1")
    assert [e.id for e in load_dataset("squad-v1.1", data)] == SCORED
    preds = _strict_json((rd / "predictions" / "slm.json").read_text())
    assert preds == {qid: s for qid, _p, _g, s, _lp, _l in V1}
    for name, point in (("slm", "always-slm"), ("llm", "always-llm"), ("seed-v1", "seed-v1"), ("seed-v3", "seed-v3")):
        got = _score("squad-v1.1", data, rd / "predictions" / f"{name}.json")
        assert got["exact_match"] == pytest.approx(res.points[point].exact), name
        assert got["f1"] == pytest.approx(res.points[point].f1), name


def test_write_report_v2_predictions_score_like_points(v2, tmp_path):
    examples, _, run = v2
    res = analyse(run, seed=0)
    rd = tmp_path / "run2"
    write_report(rd, {"dataset": "squad-v2.0"}, run, res)
    # over the 4 questions (2 folds, one passage each) the SLM (F1 1, 0, 1, 2/3) beats the LLM
    # (0, 1, 0, 1): no gap to recover, so APGR/CPT are nan -> null in strict JSON.
    summary = _strict_json((rd / "summary.json").read_text())
    assert summary["scored_questions"] == 4
    assert summary["baselines"] == pytest.approx({"slm_f1": 100 * (2 + 2 / 3) / 4, "llm_f1": 50.0})
    assert summary["curves"]["oracle"]["apgr"] is None and summary["curves"]["oracle"]["cpt50"] is None
    # oracle: escalate by gain, u1 (+1), a2 (+1/3), then the losses a1, u2 (-1 each): qualities
    # 2/3, 11/12, 1, 3/4, 1/2 at rates 0, 1/4, 1/2, 3/4, 1: trapezoids over [0, 1]
    auc = 0.25 * ((2 / 3 + 11 / 12) + (11 / 12 + 1) + (1 + 3 / 4) + (3 / 4 + 1 / 2)) / 2
    assert summary["curves"]["oracle"]["auc"] == pytest.approx(auc)
    assert "NoAns F1" in (rd / "report.md").read_text()
    data = tmp_path / "dev2.json"
    write_squad_file(data, examples, "v2.0")
    got = _score("squad-v2.0", data, rd / "predictions" / "slm.json")
    p = res.points["always-slm"]
    for k in ("exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1"):
        assert got[k] == pytest.approx(getattr(p, k)), k


def test_self_consistency_curves_when_every_question_has_samples(v1):
    """Two samples per question: for q1..q4 both repeat the SLM answer (agreement 1), for q5..q8
    one differs ("zzz": agreement 1/2). Each sample: prompt 100, completion 5 tokens at the SLM
    price: 0.001 + 100e-6 + 10e-6 = $0.00111, so $0.00222 per question."""
    examples, store, run = v1
    assert analyse(run).self_consistency is None  # no samples: no such curves
    for i, (qid, _p, _g, s_ans, _lp, _l) in enumerate(V1):
        for k in range(2):
            ans = s_ans if (i < 4 or k == 0) else "zzz"
            store.put_sample(qid, "slm", k, 0.7, ans, _gen(ans or "x", -0.5, prompt=100, completion=5))
    run2 = load_run(examples, store, {"slm": SLM_PRICE, "llm": LLM_PRICE})
    assert [x.sc["sc_agreement"] for x in run2.records] == pytest.approx([1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5])
    res = analyse(run2, seed=0)
    assert res.self_consistency == pytest.approx({"samples_per_question": 2, "extra_cost_per_question_usd": 0.00222,
                                                  "extra_seconds_per_question": 2.0})
    assert {"signal:sc_agreement", "signal:sc_f1", "signal:sc_entropy", "logistic + self-consistency"} <= set(res.curves)
    # scores -agreement: -1 (q1..q4), -0.5 (q5..q8). Target 50% (<= 3 of 6 training questions):
    # folds P1, P2 see four tied -0.5 (too many) and escalate nothing; folds P3, P4 see two and
    # escalate their own held-out q5 q6 / q7 q8: rate 4/8, F1 (1 + 2/3 + 0 + 1 + 0 + 6/7 + 1 + 1)/8
    c = res.curves["signal:sc_agreement"]
    assert (c.target50.llm_call_rate, c.target50.f1) == pytest.approx((0.5, 100 * (4 + 2 / 3 + 6 / 7) / 8))


def test_p_true_curves_charge_the_check_to_the_first_tier(v1):
    """P(True) per question (lower escalates): q7 .05, q3 .1, q6 .2, q2 .3, q8 .7, q4 .8, q1 .9,
    q5 .95. Each check: prompt 100, completion 1 token at the SLM price: 0.001 + 100e-6 + 2e-6 =
    $0.001102, 0.5 s. The signal curve escalates in that order; F1 gains (LLM - SLM) q7 +1/2,
    q3 +1, q6 6/7-4/5, q2 +1/3, q8 0, q4 -1/2, q1 0, q5 -1 give the qualities at k/8 escalated."""
    examples, store, run = v1
    assert analyse(run).self_check is None  # no checks: no such curves
    pt = {"q1": 0.9, "q2": 0.3, "q3": 0.1, "q4": 0.8, "q5": 0.95, "q6": 0.2, "q7": 0.05, "q8": 0.7}
    for qid, p in pt.items():
        store.put_check(qid, "slm", p, _gen("yes", -0.2, prompt=100, completion=1, latency=0.5))
    run2 = load_run(examples, store, {"slm": SLM_PRICE, "llm": LLM_PRICE})
    res = analyse(run2, seed=0)
    assert res.self_check == pytest.approx({"extra_cost_per_question_usd": 0.001102, "extra_seconds_per_question": 0.5,
                                            "p_true_mean": sum(pt.values()) / 8, "no_yes_or_no": 0,
                                            # SLM F1 1: q1 q4 q5 q8; F1 0: q3
                                            "p_true_mean_right": (0.9 + 0.8 + 0.95 + 0.7) / 4, "right": 4,
                                            "p_true_mean_wrong": 0.1, "wrong": 1})
    assert {"signal:p_true", "logistic + p_true"} <= set(res.curves)
    assert "logistic + self-consistency + p_true" not in res.curves  # no samples in this run
    gains = [0.5, 1.0, 6 / 7 - 0.8, 1 / 3, 0.0, -0.5, 0.0, -1.0]
    q = (4.5 + 2 / 3 + 0.8) / 8 + np.concatenate([[0.0], np.cumsum(gains)]) / 8
    assert res.curves["signal:p_true"].auc == pytest.approx(float(np.sum((q[1:] + q[:-1]) / 2) / 8))
