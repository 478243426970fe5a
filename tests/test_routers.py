"""Routers decide as specified: presets at their boundaries, baselines, random, logistic, specs."""

import json
import math

import numpy as np
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cascade_router.routers import (
    PRESETS,
    ROUTER_NAMES,
    AlwaysLLM,
    AlwaysSLM,
    LogisticRouter,
    router_from_dict,
    gain_labels,
    RandomRouter,
    SignalRouter,
    ThresholdRouter,
    get_router,
    load_router_file,
)
from cascade_router.signals import SIGNALS

NAN = float("nan")


def sig(length_words=3.0, mean_entropy=0.2, mean_logprob=-0.1, **more):
    """A full signal row (every SIGNALS name present), confident by default."""
    row = {name: 0.0 for name in SIGNALS}
    row.update(length_words=length_words, mean_entropy=mean_entropy, mean_logprob=mean_logprob, **more)
    return row


SPEC = {
    "seed-v1": (8, 1.5, -0.6),
    "seed-v2": (5, 1.1, -0.45),
    "seed-v3": (10, 1.8, -0.8),
}


def test_preset_values():
    for name, (lw, ent, lp) in SPEC.items():
        assert PRESETS[name] == {"length_words": lw, "mean_entropy": ent, "mean_logprob": lp}


@pytest.mark.parametrize("name", sorted(SPEC))
def test_preset_boundaries(name):
    lw, ent, lp = SPEC[name]
    r = get_router(name)
    assert r.threshold == 0.0
    # confident: no rule fires
    assert not r.escalate(sig())
    # exactly at each threshold: not escalated (strict inequalities)
    assert not r.escalate(sig(length_words=lw))
    assert not r.escalate(sig(mean_entropy=ent))
    assert not r.escalate(sig(mean_logprob=lp))
    assert not r.escalate(sig(length_words=lw, mean_entropy=ent, mean_logprob=lp))
    # just past each threshold, alone: escalated
    assert r.escalate(sig(length_words=lw + 1))
    assert r.escalate(sig(mean_entropy=ent + 1e-6))
    assert r.escalate(sig(mean_logprob=lp - 1e-6))
    # just inside: not escalated
    assert not r.escalate(sig(length_words=lw - 1, mean_entropy=ent - 1e-6, mean_logprob=lp + 1e-6))


def test_seed_v1_decides_iff_rule_on_a_grid():
    r = get_router("seed-v1")
    rows, expected = [], []
    for lw in (0, 7, 8, 9, 20):
        for ent in (0.0, 1.49, 1.5, 1.51):
            for lp in (-0.05, -0.59, -0.6, -0.61, -3.0):
                rows.append(sig(lw, ent, lp))
                expected.append(lw > 8 or ent > 1.5 or lp < -0.6)
    assert r.predict(rows).tolist() == expected
    # decision score > 0 exactly where escalated
    assert ((r.decision_function(rows) > 0) == np.array(expected)).all()


def test_nan_signals_never_fire():
    r = get_router("seed-v1")
    assert not r.escalate(sig(mean_entropy=NAN, mean_logprob=NAN))  # length 3 alone: fine
    assert r.escalate(sig(length_words=9, mean_entropy=NAN, mean_logprob=NAN))  # length still routes
    assert not r.escalate(sig(length_words=NAN, mean_entropy=NAN, mean_logprob=NAN))
    assert math.isnan(r.decision_function(sig(length_words=NAN, mean_entropy=NAN, mean_logprob=NAN))[0])
    s = SignalRouter("mean_logprob", -0.6)
    assert not s.escalate(sig(mean_logprob=NAN))
    assert not s.explain(sig(mean_logprob=NAN))[0].fired
    assert "n/a" in str(s.explain(sig(mean_logprob=NAN))[0])


def test_explain_lists_each_rule():
    r = get_router("seed-v1")
    reasons = r.explain(sig(length_words=12, mean_entropy=0.1, mean_logprob=-0.7))
    by = {x.signal: x for x in reasons}
    assert set(by) == {"length_words", "mean_entropy", "mean_logprob"}
    assert (by["length_words"].op, by["length_words"].threshold, by["length_words"].fired) == (">", 8, True)
    assert (by["mean_entropy"].op, by["mean_entropy"].fired) == (">", False)
    assert (by["mean_logprob"].op, by["mean_logprob"].threshold, by["mean_logprob"].fired) == ("<", -0.6, True)
    assert "ESCALATE" in str(by["length_words"]) and "[ok]" in str(by["mean_entropy"])


def test_threshold_sweep_moves_rules_proportionally():
    # threshold 0.5 moves each rule by half its size: length 8 -> 12, logprob -0.6 -> -0.9
    r = get_router("seed-v1").with_threshold(0.5)
    assert not r.escalate(sig(length_words=12))
    assert r.escalate(sig(length_words=13))
    # (at exactly -0.9 the score is 0.3 / 0.6 = 0.5000000000000001 in floating point: avoid it)
    assert not r.escalate(sig(mean_logprob=-0.89))
    assert r.escalate(sig(mean_logprob=-0.91))
    eff = {x.signal: x.threshold for x in r.explain(sig())}
    assert eff["length_words"] == pytest.approx(12) and eff["mean_logprob"] == pytest.approx(-0.9)


def test_always_routers():
    rows = [sig(), sig(length_words=100, mean_logprob=-9), sig(length_words=NAN)]
    assert get_router("always-slm").predict(rows).tolist() == [False] * 3
    assert get_router("always-llm").predict(rows).tolist() == [True] * 3
    assert isinstance(get_router("always-slm"), AlwaysSLM) and isinstance(get_router("always-llm"), AlwaysLLM)


def test_random_router_is_reproducible_and_escalates_at_rate():
    rows = [{}] * 10_000
    a = get_router("random:0.3", seed=7)
    b = get_router("random:0.3", seed=7)
    da, db = a.predict(rows), b.predict(rows)
    assert (da == db).all()
    # sd of the share = sqrt(0.3 * 0.7 / 10000) = 0.0046; 0.02 is > 4 sd
    assert abs(da.mean() - 0.3) < 0.02
    assert not (get_router("random:0.3", seed=8).predict(rows) == da).all()
    # the stream continues: the next draws differ from the first ones
    assert not (a.predict(rows) == da).all()
    assert abs(get_router("random", seed=1).predict(rows).mean() - 0.5) < 0.02
    assert get_router("random:0", seed=1).predict(rows).sum() == 0
    assert get_router("random:1", seed=1).predict(rows).all()


@pytest.mark.parametrize("spec", ["random:1.5", "random:-0.1", "random:half"])
def test_random_router_bad_rate(spec):
    with pytest.raises(ValueError, match="rate|RATE"):
        get_router(spec)


def test_signal_spec_mean_logprob():
    r = get_router("signal:mean_logprob:-0.6")
    assert isinstance(r, SignalRouter)
    assert r.escalate(sig(mean_logprob=-0.61))
    assert not r.escalate(sig(mean_logprob=-0.6))
    assert not r.escalate(sig(mean_logprob=-0.59))
    (reason,) = r.explain(sig(mean_logprob=-0.7))
    assert (reason.op, reason.threshold, reason.fired) == ("<", -0.6, True)


def test_signal_spec_length():
    r = get_router("signal:length_words:8")
    assert not r.escalate(sig(length_words=8)) and r.escalate(sig(length_words=9))


@pytest.mark.parametrize("spec", ["signal:mean_logprob", "signal:bogus:1", "signal:mean_logprob:x"])
def test_signal_spec_errors(spec):
    with pytest.raises(ValueError, match="bad router"):
        get_router(spec)


@pytest.mark.parametrize("spec", ["seed-v4", "", "Seed-V1", "nope.json"])
def test_get_router_unknown_lists_valid_names(spec):
    with pytest.raises(ValueError) as e:
        get_router(spec)
    msg = str(e.value)
    for name in ROUTER_NAMES:
        assert name in msg
    assert "signal:NAME:THRESHOLD" in msg and "random:RATE" in msg


def test_missing_signal_is_named():
    with pytest.raises(KeyError, match="mean_entropy"):
        get_router("seed-v1").predict({"length_words": 1.0, "mean_logprob": -0.1})


# --- persistence ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "router",
    [
        get_router("seed-v2"),
        get_router("signal:mean_logprob:-0.6"),
        AlwaysSLM(),
        AlwaysLLM(),
        ThresholdRouter({"min_logprob": -2.0, "length_tokens": 12}, threshold=0.25, name="mine"),
    ],
    ids=lambda r: r.kind,
)
def test_save_load_roundtrip(router, tmp_path):
    rows = [sig(length_words=w, mean_logprob=lp, min_logprob=lp * 3, length_tokens=w * 1.5)
            for w in (1, 6, 9, 14) for lp in (-0.1, -0.5, -0.7)]
    path = router.save(tmp_path / "r.json")
    loaded = get_router(str(path))
    assert type(loaded) is type(router)
    assert loaded.get_params() == router.get_params()
    np.testing.assert_array_equal(loaded.decision_function(rows), router.decision_function(rows))
    assert loaded.predict(rows).tolist() == router.predict(rows).tolist()


def test_load_router_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        load_router_file(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"kind": "tree", "params": {}}))
    with pytest.raises(ValueError, match=r"wrong.json.*threshold"):
        load_router_file(wrong)


def _toy_rows():
    """Separable toy set: escalating helps (y=1) exactly when mean_logprob < -0.5."""
    rng = np.random.default_rng(3)
    rows, y = [], []
    for i in range(60):
        good = i % 2 == 0
        lp = rng.uniform(-0.4, -0.05) if good else rng.uniform(-1.5, -0.6)
        ent = rng.uniform(0.0, 1.6)  # uninformative
        row = {"mean_logprob": lp, "mean_entropy": ent, "length_words": float(rng.integers(1, 12))}
        if i % 7 == 3:
            row["mean_entropy"] = NAN  # exercised by the median imputer
        rows.append(row)
        y.append(0 if good else 1)
    return rows, np.array(y)


def test_logistic_router_fit_save_load_matches_sklearn(tmp_path):
    rows, y = _toy_rows()
    names = ["mean_logprob", "mean_entropy", "length_words"]
    r = LogisticRouter(signals=names, C=1.0).fit(rows, y)
    scores = r.decision_function(rows)
    assert ((scores > 0.5) == y.astype(bool)).all()  # separable: fits the training set
    assert r.predict(rows).tolist() == y.astype(bool).tolist()

    X = np.array([[row[n] for n in names] for row in rows], dtype=float)
    ref = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    ref.fit(X, y)
    np.testing.assert_allclose(scores, ref.predict_proba(X)[:, 1], rtol=1e-9, atol=1e-12)

    loaded = get_router(str(r.save(tmp_path / "logit.json")))
    assert isinstance(loaded, LogisticRouter) and loaded.signals == names
    np.testing.assert_array_equal(loaded.decision_function(rows), scores)
    new = [{"mean_logprob": -1.0, "mean_entropy": NAN, "length_words": 3.0},
           {"mean_logprob": -0.1, "mean_entropy": 0.5, "length_words": 3.0}]
    np.testing.assert_array_equal(loaded.decision_function(new), r.decision_function(new))
    Xn = np.array([[row[n] for n in names] for row in new])
    np.testing.assert_allclose(loaded.decision_function(new), ref.predict_proba(Xn)[:, 1], rtol=1e-9)
    assert loaded.predict(new).tolist() == [True, False]
    assert loaded.with_threshold(0.999).predict(new).tolist() == [False, False]


def test_logistic_router_errors():
    rows, y = _toy_rows()
    with pytest.raises(RuntimeError, match="not fitted"):
        LogisticRouter(signals=["mean_logprob"]).decision_function(rows)
    with pytest.raises(ValueError, match="both classes"):
        LogisticRouter(signals=["mean_logprob"]).fit(rows, np.zeros(len(rows)))
    with pytest.raises(ValueError, match="one label per row"):
        LogisticRouter(signals=["mean_logprob"]).fit(rows, y[:-1])
    with pytest.raises(ValueError, match="unknown signals"):
        LogisticRouter(signals=["confidence"])


def test_logistic_rejects_bad_labels_and_params():
    rows, y = _toy_rows()
    names = ["mean_logprob", "mean_entropy"]
    for bad in (np.where(y == 1, 2, 0), np.where(y == 1, np.nan, 0), np.where(y == 1, 0.9, 0.0)):
        with pytest.raises(ValueError, match="0/1"):
            LogisticRouter(signals=names).fit(rows, bad)
    with pytest.raises(ValueError, match="1-D"):
        LogisticRouter(signals=names).fit(rows, y.reshape(-1, 1))
    assert LogisticRouter(signals=names).fit(rows, y.astype(bool)).predict(rows).tolist() == y.astype(bool).tolist()
    with pytest.raises(ValueError, match="not nan"):
        LogisticRouter(threshold=float("nan"))
    for bad in ("mean_logprob", {"mean_logprob", "mean_entropy"}, b"x"):
        with pytest.raises(ValueError, match="list of signal names"):
            LogisticRouter(signals=bad)
    with pytest.raises(ValueError, match="repeat"):
        LogisticRouter(signals=["mean_logprob", "mean_logprob"])
    d = LogisticRouter(signals=names).fit(rows, y).to_dict()
    for key, val in (("scale", [0.0, 1.0]), ("coef", [float("inf"), 1.0]), ("intercept", float("nan"))):
        bad = {**d, "state": {**d["state"], key: val}}
        with pytest.raises(ValueError, match="logistic state"):
            router_from_dict(bad)


def test_logistic_treats_infinite_signals_as_missing():
    rows, y = _toy_rows()
    names = ["mean_logprob", "mean_entropy"]
    r = LogisticRouter(signals=names).fit(rows, y)
    inf_rows = [dict(rows[0], mean_logprob=-np.inf), dict(rows[1], mean_logprob=np.inf)]
    nan_rows = [dict(rows[0], mean_logprob=NAN), dict(rows[1], mean_logprob=NAN)]
    np.testing.assert_array_equal(r.decision_function(inf_rows), r.decision_function(nan_rows))
    bad = [dict(row, mean_entropy=np.inf) if i % 3 == 0 else row for i, row in enumerate(rows)]
    assert np.all(np.isfinite(LogisticRouter(signals=names).fit(bad, y).decision_function(bad)))


def test_gain_labels_by_hand():
    y, w = gain_labels([1.0, 0.0, 0.5, 0.2], [0.0, 1.0, 0.5, 0.6])
    assert y.tolist() == [0, 1, 0, 1]
    np.testing.assert_allclose(w, [1.0, 1.0, 0.0, 0.4])
    # the LLM never scores below the SLM: weights fall back to 1 (helps vs does not matter)
    y, w = gain_labels([1.0, 0.0, 0.5], [1.0, 1.0, 0.9])
    assert y.tolist() == [0, 1, 1] and w.tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="same shape"):
        gain_labels([1.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="finite"):
        gain_labels([np.nan], [0.0])


def test_logistic_sample_weight_matches_sklearn_and_zero_weight_rows_do_not_count():
    rows, y = _toy_rows()
    names = ["mean_logprob", "mean_entropy", "length_words"]
    w = np.where(np.arange(len(rows)) % 5 == 0, 0.0, 1.0 + (np.arange(len(rows)) % 3))
    r = LogisticRouter(signals=names).fit(rows, y, sample_weight=w)
    X = np.array([[row[n] for n in names] for row in rows], dtype=float)
    ref = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    ref.fit(X, y, logisticregression__sample_weight=w)
    np.testing.assert_allclose(r.decision_function(rows), ref.predict_proba(X)[:, 1], rtol=1e-9, atol=1e-12)
    # flipping the labels of zero-weight rows changes nothing in the fitted classifier
    flipped = np.where(w == 0, 1 - y, y)
    r2 = LogisticRouter(signals=names).fit(rows, flipped, sample_weight=w)
    np.testing.assert_allclose(r2.decision_function(rows), r.decision_function(rows), rtol=1e-9)
    # ...while uniform weights are a different fit
    assert not np.allclose(LogisticRouter(signals=names).fit(rows, y).decision_function(rows), r.decision_function(rows))
    with pytest.raises(ValueError, match="one weight per row"):
        LogisticRouter(signals=names).fit(rows, y, sample_weight=w[:-1])
    with pytest.raises(ValueError, match=">= 0"):
        LogisticRouter(signals=names).fit(rows, y, sample_weight=-w)
    with pytest.raises(ValueError, match="both classes"):  # the only positive-weight rows are one class
        LogisticRouter(signals=names).fit(rows, y, sample_weight=(y == 1).astype(float))


def test_random_router_roundtrip_restarts_stream(tmp_path):
    r = RandomRouter(rate=0.25, seed=11)
    first = r.decision_function([{}] * 50)
    loaded = get_router(str(r.save(tmp_path / "rand.json")))
    np.testing.assert_array_equal(loaded.decision_function([{}] * 50), first)
    assert loaded.threshold == pytest.approx(0.75)


def test_signal_router_threshold_is_in_the_signals_own_units():
    """SignalRouter("mean_logprob", -0.6) means what signal:mean_logprob:-0.6 means (issue 11)."""
    r = SignalRouter("mean_logprob", -0.6)
    assert r.escalate(sig(mean_logprob=-0.7)) and not r.escalate(sig(mean_logprob=-0.5))
    assert r.get_params() == {"signal": "mean_logprob", "threshold": -0.6, "direction": -1, "units": "signal"}
    assert r.threshold == pytest.approx(0.6)  # on the decision score -mean_logprob
    assert get_router("signal:mean_logprob:-0.6").get_params() == r.get_params()
    reason = r.explain(sig(mean_logprob=-0.7))[0]
    assert (reason.op, reason.threshold, reason.fired) == ("<", -0.6, True)
    up = SignalRouter("length_words", 8)
    assert up.escalate(sig(length_words=9)) and not up.escalate(sig(length_words=8))
    # JSON round trip, and a file written before the convention (score units, no "units") loads as meant
    assert router_from_dict(r.to_dict()).get_params() == r.get_params()
    legacy = router_from_dict({"kind": "signal", "params": {"signal": "mean_logprob", "threshold": 0.6, "direction": -1}})
    assert legacy.signal_threshold == pytest.approx(-0.6) and legacy.escalate(sig(mean_logprob=-0.7))
    # with_threshold takes a decision-score threshold (as sweeps choose them)
    moved = r.with_threshold(0.3)
    assert moved.signal_threshold == pytest.approx(-0.3) and moved.escalate(sig(mean_logprob=-0.4))


def test_boosted_router_json_reproduces_scikit_learn_and_rejects_damage():
    """BoostedRouter's exported trees give scikit-learn's probabilities (checked in fit), survive
    a JSON round trip exactly, route missing values, and a damaged state is refused."""
    import json as _json

    from sklearn.ensemble import HistGradientBoostingClassifier

    from cascade_router.routers import BoostedRouter, router_from_dict

    rng = np.random.default_rng(1)
    rows = [{"mean_logprob": float(rng.normal(-1, 0.5)), "length_words": float(rng.integers(1, 12))} for _ in range(300)]
    for r in rows[::9]:
        r["mean_logprob"] = float("nan")
    y = np.array([int(r["length_words"] > 6 or (r["mean_logprob"] == r["mean_logprob"] and r["mean_logprob"] < -1.2)) for r in rows])
    b = BoostedRouter(signals=["mean_logprob", "length_words"], max_iter=20).fit(rows, y)
    X = np.array([[r["mean_logprob"], r["length_words"]] for r in rows])
    clf = HistGradientBoostingClassifier(max_iter=20, learning_rate=0.05, max_leaf_nodes=8, min_samples_leaf=20,
                                         l2_regularization=1.0, early_stopping=False, random_state=0).fit(X, y)
    assert b.decision_function(rows) == pytest.approx(clf.predict_proba(X)[:, 1], rel=1e-9)
    back = router_from_dict(_json.loads(_json.dumps(b.to_dict())))
    assert np.array_equal(back.decision_function(rows), b.decision_function(rows))
    assert ((b.decision_function(rows) > 0.5) == y).mean() > 0.9  # it learned the rule
    bad = b.to_dict()
    bad["state"]["trees"][0]["left"][0] = 0  # a cycle
    with pytest.raises(ValueError, match="later node"):
        router_from_dict(bad)
    with pytest.raises(RuntimeError, match="not fitted"):
        BoostedRouter().decision_function(rows)
    with pytest.raises(ValueError, match="both classes"):
        BoostedRouter().fit(rows, np.zeros(300, int))
