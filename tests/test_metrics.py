"""Per-question and corpus metrics against hand-computed values (official-script rules)."""

from __future__ import annotations

import pytest

from cascade_router.datasets import QAExample
from cascade_router.metrics import (
    MissingPredictionsError,
    PredictionsError,
    evaluate_hotpot,
    evaluate_squad_v1,
    evaluate_squad_v2,
    exact_match,
    f1,
    normalize_answer,
    score_example,
)

V1, V2, HP = "squad-v1.1", "squad-v2.0", "hotpotqa"


# --- normalisation -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("The Quick, Brown Fox!", "quick brown fox"),
        ("a an the", ""),
        ("Theatre and anthem", "theatre and anthem"),  # articles only as whole words
        ("  lots \t of\n space ", "lots of space"),
        ("1,000", "1000"),
        ("U.S.A.", "usa"),
        ("Café Noël", "café noël"),  # accents kept
        ("ÅNGSTRÖM", "ångström"),  # unicode lower-casing
        ("Arab–Israeli “war”", "arab–israeli “war”"),  # non-ASCII punctuation kept (official)
        ("the-end", "theend"),  # punctuation removed before articles
        ("", ""),
    ],
)
def test_normalize_answer(raw, expected):
    assert normalize_answer(raw) == expected


# --- per-question EM / F1 ------------------------------------------------------------------------

@pytest.mark.parametrize("dataset", [V1, V2, HP])
def test_punctuation_and_articles_do_not_matter(dataset):
    assert exact_match("the Denver Broncos.", ["Denver Broncos"], dataset) == 1.0
    assert f1("the Denver Broncos.", ["Denver Broncos"], dataset) == 1.0


def test_accents_matter_case_does_not():
    assert exact_match("ångström", ["Ångström"], V1) == 1.0
    assert exact_match("Ecole", ["École"], V1) == 0.0
    assert f1("Ecole", ["École"], V1) == 0.0


def test_numbers_with_commas():
    assert exact_match("1,000", ["1000"], V1) == 1.0
    assert exact_match("1 000", ["1000"], V1) == 0.0
    assert f1("1,000 people", ["1000"], V2) == pytest.approx(2 / 3)  # p=1/2, r=1


def test_f1_hand_computed():
    # "cat sat on mat" (4) vs "cat on mat" (3): 3 shared, p=3/4, r=1 -> 6/7
    assert f1("The cat sat on the mat", ["a cat on a mat"], V1) == pytest.approx(6 / 7)
    assert exact_match("The cat sat on the mat", ["a cat on a mat"], V1) == 0.0
    # repeated tokens count with multiplicity: "a a b" -> [b]... use real words
    assert f1("dog dog cat", ["dog cat cat"], V1) == pytest.approx(2 / 3)  # common {dog:1,cat:1}


def test_max_over_several_golds():
    # vs "broncos": p=1/2 r=1 -> 2/3; vs "denver broncos team": p=1 r=2/3 -> 0.8
    assert f1("Denver Broncos", ["Broncos", "Denver Broncos team"], V1) == pytest.approx(0.8)
    assert exact_match("Denver Broncos", ["Broncos", "denver broncos"], V1) == 1.0
    assert exact_match("Denver", ["Broncos", "denver broncos"], V1) == 0.0


def test_squad_v2_unanswerable_and_empty_predictions():
    assert exact_match("", [], V2) == 1.0 and f1("", [], V2) == 1.0
    assert exact_match("Paris", [], V2) == 0.0 and f1("Paris", [], V2) == 0.0
    assert exact_match("", ["Paris"], V2) == 0.0 and f1("", ["Paris"], V2) == 0.0
    assert exact_match("", ["Paris"], V1) == 0.0 and f1("", ["Paris"], V1) == 0.0


def test_golds_that_normalise_to_empty():
    # v1.1 compares with every gold: "" == normalize("the") for EM, but F1 needs a shared token.
    assert exact_match("", ["the"], V1) == 1.0
    assert f1("", ["the"], V1) == 0.0
    assert exact_match("", ["."], V1) == 1.0  # the bundled dev sets have 3 golds "."
    # v2.0 drops such golds; none left -> gold "" (only "no answer" is right).
    assert exact_match("", ["the"], V2) == 1.0 and f1("", ["the"], V2) == 1.0
    assert exact_match("an", ["the"], V2) == 1.0 and f1("an", ["the"], V2) == 1.0
    assert exact_match("", [".", "interventionism"], V2) == 0.0
    assert f1("interventionism", [".", "interventionism"], V2) == 1.0


def test_hotpot_yes_no_rule():
    assert f1("yes", ["no"], HP) == 0.0
    assert exact_match("Yes.", ["yes"], HP) == 1.0 and f1("Yes.", ["yes"], HP) == 1.0
    # a yes/no gold against a longer prediction: 0 for HotpotQA, plain overlap for SQuAD
    assert f1("yes it is", ["yes"], HP) == 0.0
    assert f1("yes it is", ["yes"], V1) == pytest.approx(0.5)  # p=1/3 r=1
    assert f1("noanswer", ["no answer"], HP) == 0.0
    assert f1("Paris, France", ["Paris"], HP) == pytest.approx(2 / 3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown dataset"):
        exact_match("a", ["a"], "squad")
    with pytest.raises(ValueError, match="at least one gold"):
        f1("a", [], V1)
    with pytest.raises(TypeError):
        f1("a", "a", V1)


def test_score_example():
    def ex(answers, dataset):
        return QAExample("q", "?", "ctx", answers, bool(answers), dataset, "p", {})

    assert score_example(ex([], V2), "") == (1.0, 1.0)
    assert score_example(ex(["Paris"], V2), "") == (0.0, 0.0)
    em, f = score_example(ex(["Denver Broncos"], V1), "Broncos")
    assert em == 0.0 and f == pytest.approx(2 / 3)
    assert score_example(ex(["no"], HP), "yes") == (0.0, 0.0)


# --- corpus scoring ------------------------------------------------------------------------------

def _squad(questions):
    """A one-article SQuAD "data" list from [(id, [golds])]."""
    context = "cat dog house Paris"
    qas = [
        {"id": qid, "question": "?", "answers": [{"text": g, "answer_start": 0} for g in golds]}
        for qid, golds in questions
    ]
    return [{"title": "T", "paragraphs": [{"context": context, "qas": qas}]}]


def test_evaluate_squad_v1_averages_over_all_questions(capsys):
    data = _squad([("q1", ["cat"]), ("q2", ["dog house", "house"]), ("q3", ["Paris"])])
    preds = {"q1": "The cat", "q2": "dog", "extra-id": "ignored"}
    # q1: 1/1; q2: EM 0, F1 max(2/3, 0) = 2/3; q3 missing: 0
    out = evaluate_squad_v1(data, preds)
    assert list(out) == ["exact_match", "f1"]
    assert out["exact_match"] == pytest.approx(100 / 3)
    assert out["f1"] == pytest.approx(100 * (1 + 2 / 3) / 3)
    assert "1 of 3 questions have no prediction and score 0: q3" in capsys.readouterr().err


def test_evaluate_rejects_predictions_for_another_dataset():
    data = _squad([("q1", ["cat"])])
    with pytest.raises(PredictionsError, match="another dataset"):
        evaluate_squad_v1(data, {"answer": {}, "sp": {}})
    with pytest.raises(PredictionsError, match="must be a string"):
        evaluate_squad_v1(data, {"q1": None})


def _v2_tiny():
    data = _squad([("q1", ["cat"]), ("q2", ["dog house"]), ("q3", []), ("q4", [])])
    preds = {"q1": "cat", "q2": "dog", "q3": "bird", "q4": ""}
    na = {"q1": 0.1, "q2": 0.4, "q3": 0.5, "q4": 0.9}
    return data, preds, na


def test_evaluate_squad_v2_plain():
    data, preds, _ = _v2_tiny()
    out = evaluate_squad_v2(data, preds)
    # EM: 1, 0, 0, 1.  F1: 1, 2/3 (p=1, r=1/2), 0, 1.
    assert out == pytest.approx({
        "exact": 50.0, "f1": 100 * (8 / 3) / 4, "total": 4,
        "HasAns_exact": 50.0, "HasAns_f1": 100 * (5 / 3) / 2, "HasAns_total": 2,
        "NoAns_exact": 50.0, "NoAns_f1": 50.0, "NoAns_total": 2,
    })
    assert list(out) == [
        "exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total",
        "NoAns_exact", "NoAns_f1", "NoAns_total",
    ]


def test_evaluate_squad_v2_best_threshold():
    data, preds, na = _v2_tiny()
    out = evaluate_squad_v2(data, preds, na)
    # Start: both unanswerable right -> 2. By na_prob: q1 (0.1) +1 -> 3 (best, 0.1);
    # q2 (0.4) EM +0 -> 3 / F1 +2/3 -> 3.667 (best F1, 0.4); q3 (0.5) "bird" -1; q4 (0.9) "" +0.
    assert out["best_exact"] == pytest.approx(75.0) and out["best_exact_thresh"] == 0.1
    assert out["best_f1"] == pytest.approx(100 * (11 / 3) / 4) and out["best_f1_thresh"] == 0.4
    assert out["exact"] == 50.0  # na_prob_thresh 1.0: nothing forced to ""
    assert list(out)[-4:] == ["best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh"]


def test_evaluate_squad_v2_na_prob_thresh():
    data, preds, na = _v2_tiny()
    out = evaluate_squad_v2(data, preds, na, na_prob_thresh=0.35)
    # q2, q3, q4 forced to "": q2 -> 0, q3 -> 1, q4 -> 1; q1 stays 1
    assert out["exact"] == 75.0 and out["f1"] == 75.0
    assert out["HasAns_exact"] == 50.0 and out["NoAns_exact"] == 100.0


def test_evaluate_squad_v2_best_thresh_when_nothing_beats_start():
    data = _squad([("q1", ["cat"]), ("q2", [])])
    out = evaluate_squad_v2(data, {"q1": "dog", "q2": ""}, {"q1": 0.2, "q2": 0.7})
    assert out["best_exact"] == 50.0 and out["best_exact_thresh"] == 0.0


def test_evaluate_squad_v2_missing_predictions(capsys):
    data, preds, na = _v2_tiny()
    del preds["q4"]
    with pytest.raises(MissingPredictionsError, match="1 of 4 .*q4") as info:
        evaluate_squad_v2(data, preds)
    assert info.value.missing == ["q4"]
    out = evaluate_squad_v2(data, preds, missing="zero")
    assert out["exact"] == 25.0 and out["NoAns_exact"] == 0.0
    assert "q4" in capsys.readouterr().err
    with pytest.raises(PredictionsError, match="no probability .*q2"):
        evaluate_squad_v2(data, {"q1": "cat", "q2": "dog"}, {"q1": 0.5}, missing="zero")


def _hotpot():
    return [
        {"_id": "r1", "answer": "yes", "supporting_facts": [["A", 0], ["B", 1]]},
        {"_id": "r2", "answer": "Paris France", "supporting_facts": [["C", 0]]},
    ]


def test_evaluate_hotpot_hand_computed():
    pred = {
        "answer": {"r1": "no", "r2": "Paris"},
        "sp": {"r1": [["A", 0]], "r2": [["C", 0], ["D", 2]]},
    }
    # answer r1: 0,0,0,0; r2: EM 0, p 1, r 1/2, F1 2/3.
    # sp r1: p 1, r 1/2, F1 2/3; r2: p 1/2, r 1, F1 2/3.  joint r2: p = r = 1/2 -> F1 1/2.
    out = evaluate_hotpot(_hotpot(), pred)
    assert out == pytest.approx({
        "em": 0.0, "f1": 1 / 3, "prec": 0.5, "recall": 0.25,
        "sp_em": 0.0, "sp_f1": 2 / 3, "sp_prec": 0.75, "sp_recall": 0.75,
        "joint_em": 0.0, "joint_f1": 0.25, "joint_prec": 0.25, "joint_recall": 0.25,
    })
    assert list(out)[:4] == ["em", "f1", "prec", "recall"]


def test_evaluate_hotpot_missing_and_answer_only(capsys):
    pred = {"answer": {"r1": "yes", "r2": "paris france"}, "sp": {"r1": [["B", 1], ["A", 0]]}}
    out = evaluate_hotpot(_hotpot(), pred)
    assert out["em"] == 1.0 and out["sp_em"] == 0.5 and out["joint_em"] == 0.5
    assert "no sp prediction and score 0: r2" in capsys.readouterr().err
    only = evaluate_hotpot(_hotpot(), {"answer": {"r1": "yes"}})
    assert only == {"em": 0.5, "f1": 0.5, "prec": 0.5, "recall": 0.5}
    with pytest.raises(PredictionsError, match='"answer"'):
        evaluate_hotpot(_hotpot(), {"r1": "yes"})
    with pytest.raises(PredictionsError, match="another dataset"):
        evaluate_hotpot(_hotpot(), {"answer": {"x": "yes"}})
