"""`cascade-router score` end to end through click's CliRunner."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cascade_router.cli import main
from cascade_router.datasets import load_raw


def _run(*args):
    return CliRunner().invoke(main, ["score", *map(str, args)])


def _write(tmp_path, name, obj):
    path = tmp_path / name
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def _bad(result, *fragments):
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert "\n" not in err and "Traceback" not in result.output
    assert err.startswith("Error: ")
    for fragment in fragments:
        assert fragment in err
    return err


def test_squad_v1_first_gold_scores_100(tmp_path):
    preds = {
        qa["id"]: qa["answers"][0]["text"]
        for article in load_raw("squad-v1.1")
        for para in article["paragraphs"]
        for qa in para["qas"]
    }
    result = _run("--dataset", "squad-v1.1", "--predictions", _write(tmp_path, "p.json", preds))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"exact_match": 100.0, "f1": 100.0}


def test_hotpot_gold_scores_one(tmp_path):
    records = load_raw("hotpotqa")
    pred = {"answer": {r["_id"]: r["answer"] for r in records},
            "sp": {r["_id"]: r["supporting_facts"] for r in records}}
    result = _run("--dataset", "hotpotqa", "--predictions", _write(tmp_path, "p.json", pred))
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert list(out) == ["em", "f1", "prec", "recall", "sp_em", "sp_f1", "sp_prec", "sp_recall",
                         "joint_em", "joint_f1", "joint_prec", "joint_recall"]
    assert set(out.values()) == {1.0}


def _v2_data(tmp_path):
    qas = [
        {"id": "q1", "question": "?", "answers": [{"text": "cat", "answer_start": 0}]},
        {"id": "q2", "question": "?", "answers": [{"text": "dog house", "answer_start": 4}]},
        {"id": "q3", "question": "?", "answers": [], "is_impossible": True},
        {"id": "q4", "question": "?", "answers": [], "is_impossible": True},
    ]
    doc = {"version": "v2.0",
           "data": [{"title": "T", "paragraphs": [{"context": "cat dog house", "qas": qas}]}]}
    return _write(tmp_path, "dev.json", doc)


def test_squad_v2_with_na_probs(tmp_path):
    data = _v2_data(tmp_path)
    preds = _write(tmp_path, "p.json", {"q1": "cat", "q2": "dog", "q3": "bird", "q4": ""})
    na = _write(tmp_path, "na.json", {"q1": 0.1, "q2": 0.4, "q3": 0.5, "q4": 0.9})
    result = _run("--dataset", "squad-v2.0", "--data", data, "--predictions", preds,
                  "--na-probs", na)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["exact"] == 50.0 and out["total"] == 4 and out["NoAns_total"] == 2
    assert out["best_exact"] == 75.0 and out["best_exact_thresh"] == 0.1
    assert out["best_f1"] == pytest.approx(91.6666667) and out["best_f1_thresh"] == 0.4


def test_squad_v2_missing_predictions(tmp_path):
    data = _v2_data(tmp_path)
    preds = _write(tmp_path, "p.json", {"q1": "cat", "q2": "dog"})
    _bad(_run("--dataset", "squad-v2.0", "--data", data, "--predictions", preds),
         "2 of 4", "q3, q4")
    ok = _run("--dataset", "squad-v2.0", "--data", data, "--predictions", preds,
              "--missing-as-zero")
    assert ok.exit_code == 0
    assert json.loads(ok.stdout)["exact"] == 25.0
    assert "q3, q4" in ok.stderr


def test_squad_v1_missing_listed_on_stderr(tmp_path):
    preds = _write(tmp_path, "p.json", {"56be4db0acb8001400a502ec": "Denver Broncos"})
    result = _run("--dataset", "squad-v1.1", "--predictions", preds)
    assert result.exit_code == 0
    assert json.loads(result.stdout)["exact_match"] == pytest.approx(100 / 10_570)
    assert "10569 of 10570 questions have no prediction" in result.stderr
    assert "56be4db0acb8001400a502ed" in result.stderr


def test_bad_inputs_exit_2(tmp_path):
    good = _write(tmp_path, "p.json", {"56be4db0acb8001400a502ec": "x"})
    broken = tmp_path / "broken.json"
    broken.write_text("{oops", encoding="utf-8")
    _bad(_run("--dataset", "squad-v1.1", "--predictions", broken), "broken.json", "not valid JSON")
    _bad(_run("--dataset", "squad-v1.1", "--predictions", tmp_path / "none.json"),
         "none.json: no such file")
    _bad(_run("--dataset", "squad", "--predictions", good), "valid names")
    _bad(_run("--dataset", "squad-v1.1", "--data", broken, "--predictions", good), "broken.json")
    _bad(_run("--dataset", "squad-v1.1", "--predictions", good, "--na-probs", good),
         "squad-v2.0 only")
    hotpot_style = _write(tmp_path, "h.json", {"answer": {"5a8b57f25542995d1e6f1371": "yes"}})
    _bad(_run("--dataset", "squad-v1.1", "--predictions", hotpot_style), "another dataset")
    _bad(_run("--dataset", "hotpotqa", "--predictions", good), '"answer"')
    _bad(_run("--dataset", "hotpotqa", "--predictions", hotpot_style.parent / "p.json"), "answer")


def test_only_predicted_scores_the_sample(tmp_path):
    # 4 questions of the first paragraph: 3 answered with their first gold answer, 1 wrong
    qas = load_raw("squad-v1.1")[0]["paragraphs"][0]["qas"][:4]
    preds = {qa["id"]: qa["answers"][0]["text"] for qa in qas[:3]}
    preds[qas[3]["id"]] = "zzz unrelated"
    p = tmp_path / "p.json"
    p.write_text(json.dumps(preds))
    r = _run("--dataset", "squad-v1.1", "--predictions", p, "--only-predicted")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["exact_match"] == pytest.approx(75.0)
    # without the flag, the same file is averaged over all 10,570 questions (official behaviour)
    r = _run("--dataset", "squad-v1.1", "--predictions", p)
    assert json.loads(r.stdout)["exact_match"] == pytest.approx(100 * 3 / 10570)
    # predictions for another dataset: nothing in common
    q = tmp_path / "q.json"
    q.write_text(json.dumps({"nope": "x"}))
    r = _run("--dataset", "squad-v1.1", "--predictions", q, "--only-predicted")
    assert r.exit_code == 2 and "no prediction id matches" in r.stderr
