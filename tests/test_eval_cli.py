"""`cascade-router eval`, `report` and `calibrate` through click's CliRunner.

The calibrate/report checks run on a constructed store over a tiny official-format data file
(no model); one slow test runs the real harness on 3 SQuAD questions with the embedded models.
"""

from __future__ import annotations

from pathlib import Path
import json
import sqlite3

import pytest
from click.testing import CliRunner

from cascade_router.cli import main
from cascade_router.datasets import load_dataset
from cascade_router.evaluation.analysis import load_run
from cascade_router.tiers import TierPrice
from cascade_router.evaluation.store import DB_NAME, RunStore
from cascade_router.models.base import Generation, TokenTop
from cascade_router.routers import LogisticRouter, get_router
from cascade_router.signals import SIGNALS


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _one_line_error(result, code=2):
    assert result.exit_code == code, result.output
    err = result.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in result.output
    return err


def _gen(text: str, mean_lp: float) -> Generation:
    words = text.split()
    return Generation(text=text, tokens=words, logprobs=[mean_lp] * len(words),
                      top_logprobs=[[TokenTop(w, mean_lp), TokenTop("x", mean_lp - 1.0)] for w in words],
                      prompt_tokens=1000, completion_tokens=10, latency_s=0.5)


def _constructed_run(tmp_path, n=12, wrong_without_logprobs=False):
    """A squad-v1.1 data file with n questions (one passage each) and a stored run over it.

    Question i: gold ``answer{i}``; SLM mean logprob -i/10, right for i <= n/2 and wrong above;
    the LLM is always right. So escalating helps exactly on the n/2 least confident questions.
    ``wrong_without_logprobs``: the wrong SLM answers carry no logprobs (their logprob signals
    are nan, so a logprob router never escalates them).
    """
    data = tmp_path / "dev.json"
    arts = [{"title": f"T{i}", "paragraphs": [{"context": f"The thing {i} is answer{i}.", "qas": [
        {"id": f"q{i}", "question": f"What is thing {i}?", "answers": [{"text": f"answer{i}", "answer_start": 14 + len(str(i))}]}]}]}
        for i in range(1, n + 1)]
    data.write_text(json.dumps({"version": "1.1", "data": arts}))
    examples = load_dataset("squad-v1.1", data)
    rd = tmp_path / "run"
    store = RunStore(rd)
    store.bind({"dataset": "squad-v1.1", "data": str(data.resolve()), "slm": "smollm2-135m", "llm": "gemma3-270m",
                "limit": None, "seed": 0, "questions": n, "max_tokens": 24, "prompt_version": 1})
    for i, ex in enumerate(examples, start=1):
        s = f"answer{i}" if i <= n // 2 else "wrong"
        g = _gen(s, -i / 10)
        if wrong_without_logprobs and i > n // 2:
            g = Generation(text=s, prompt_tokens=1000, completion_tokens=10, latency_s=0.5)
        store.put(ex.id, "slm", s, g)
        store.put(ex.id, "llm", f"answer{i}", _gen(f"answer{i}", -0.2))
    store.close()
    return rd, examples


def test_eval_unknown_dataset_lists_valid_names():
    err = _one_line_error(_cli("eval", "--dataset", "nope", "--limit", "1"))
    assert "unknown dataset 'nope'" in err
    assert "squad-v1.1, squad-v2.0, hotpotqa" in err


def test_report_and_calibrate_refuse_a_dir_without_a_run(tmp_path):
    assert DB_NAME in _one_line_error(_cli("report", tmp_path))
    assert DB_NAME in _one_line_error(_cli("calibrate", tmp_path, "--target-rate", "0.3", "--out", tmp_path / "r.json"))


def test_calibrate_logistic_writes_a_loadable_router(tmp_path):
    rd, examples = _constructed_run(tmp_path)
    out = tmp_path / "r.json"
    res = _cli("calibrate", rd, "--router", "logistic", "--target-rate", "0.3", "--out", out)
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["kind"] == "logistic" and info["calibration_questions"] == 12
    # at most 30% of 12 questions: 3 (no ties in the fitted probabilities)
    assert info["llm_call_rate"] == pytest.approx(0.25)
    assert (info["slm_f1"], info["llm_f1"]) == pytest.approx((50.0, 100.0))
    assert info["f1"] == pytest.approx(75.0)  # the 3 escalated are wrong SLM answers made right
    # the promise comes with its 95% interval (bootstrap over the 12 one-question passages)
    lo, hi = info["f1_ci95"]
    assert 40.0 <= lo < 75.0 < hi <= 100.0
    lo, hi = info["llm_call_rate_ci95"]
    assert 0.0 <= lo < 0.25 < hi <= 0.6

    router = get_router(str(out))
    assert isinstance(router, LogisticRouter)
    assert router.threshold == pytest.approx(info["threshold"])
    store = RunStore(rd)
    run = load_run(examples, store, {"slm": TierPrice(), "llm": TierPrice()})
    store.close()
    esc = router.predict(run.signals("slm"))
    # the loaded router reproduces the reported decisions: the 3 least confident questions
    assert [r.ex.id for r, e in zip(run.records, esc) if e] == ["q10", "q11", "q12"]


def test_calibrate_preset_for_target_gap(tmp_path):
    rd, _ = _constructed_run(tmp_path)
    out = tmp_path / "v1.json"
    res = _cli("calibrate", rd, "--router", "seed-v1", "--target-gap", "1.0", "--out", out)
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    # recovering the whole gap needs all 6 wrong SLM answers (mlp -0.7 .. -1.2) escalated, no more
    assert info["llm_call_rate"] == pytest.approx(0.5) and info["f1"] == pytest.approx(100.0)
    r = get_router(str(out))
    assert r.kind == "threshold" and r.threshold == pytest.approx(info["threshold"])


def _three_tier_run(tmp_path, n=12):
    """The same data file with a three-tier run ``small -> medium -> large`` stored over it: small
    always wrong (mean logprob -i/20); medium right for i <= n/2 (mean logprob -i/10); large
    always right."""
    rd, examples = _constructed_run(tmp_path, n=n)
    old = RunStore(rd)
    ident = {k: v for k, v in old.meta().items() if k not in ("slm", "llm")}
    old.close()
    ident["tiers"] = [{"name": t, "model": "smollm2-135m", "family": None, "n_ctx": None, "top_k": None}
                      for t in ("small", "medium", "large")]
    rd3 = tmp_path / "run3"
    store = RunStore(rd3)
    store.bind(ident)
    for i, ex in enumerate(examples, start=1):
        m = f"answer{i}" if i <= n // 2 else "wrong"
        store.put(ex.id, "small", "wrong", _gen("wrong", -i / 20))
        store.put(ex.id, "medium", m, _gen(m, -i / 10))
        store.put(ex.id, "large", f"answer{i}", _gen(f"answer{i}", -0.2))
    store.close()
    return rd3


def test_calibrate_after_a_middle_tier(tmp_path):
    rd = _three_tier_run(tmp_path)
    out = tmp_path / "medium.json"
    res = _cli("calibrate", rd, "--after", "medium", "--router", "seed-v1", "--target-gap", "1.0", "--out", out)
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert (info["after"], info["next"]) == ("medium", "large")
    assert (info["medium_f1"], info["large_f1"]) == pytest.approx((50.0, 100.0))
    # the 6 wrong medium answers (mlp -0.7 .. -1.2) go on to large, no more
    assert info["llm_call_rate"] == pytest.approx(0.5) and info["f1"] == pytest.approx(100.0)
    # the default gate is the one after the first tier; escalating every question gives medium's F1
    first = _cli("calibrate", rd, "--router", "signal:mean_logprob:-0.5", "--target-rate", "1", "--out", out)
    assert first.exit_code == 0, first.output
    info = json.loads(first.stdout)
    assert (info["after"], info["next"]) == ("small", "medium")
    assert (info["small_f1"], info["medium_f1"], info["f1"]) == pytest.approx((0.0, 50.0, 50.0))
    for bad in ("large", "nope"):
        err = _one_line_error(_cli("calibrate", rd, "--after", bad, "--target-rate", "0.3", "--out", tmp_path / "x.json"))
        assert f"--after {bad}" in err and "small, medium, large" in err
    assert not (tmp_path / "x.json").exists()
    # report rebuilds a three-tier run from its identity's tiers list (no gates recorded: no chain)
    rep = _cli("report", rd)
    assert rep.exit_code == 0, rep.output
    s = json.loads((rd / "summary.json").read_text())
    assert s["tiers"] == ["small", "medium", "large"] and s["scored_questions"] == 12
    assert s["points"]["always-large"]["f1"] == pytest.approx(100.0) and "chain" not in s
    assert "tiers: small (smollm2-135m) -> medium (smollm2-135m) -> large (smollm2-135m)" in (rd / "report.md").read_text()


def test_calibrate_bad_input(tmp_path):
    rd, _ = _constructed_run(tmp_path, n=8)
    out = tmp_path / "r.json"
    assert "only 8 scored questions" in _one_line_error(_cli("calibrate", rd, "--target-rate", "0.3", "--out", out))
    assert "exactly one of" in _one_line_error(_cli("calibrate", rd, "--out", out))
    assert "must be in [0, 1]" in _one_line_error(_cli("calibrate", rd, "--target-rate", "1.5", "--out", out))
    assert not out.exists()


def test_calibrate_rate_zero_writes_standard_json(tmp_path):
    rd, _ = _constructed_run(tmp_path)
    out = tmp_path / "r.json"
    res = _cli("calibrate", rd, "--target-rate", "0", "--out", out)
    assert res.exit_code == 0, res.output
    assert get_router(str(out)).predict([dict.fromkeys(SIGNALS, -5.0)]).tolist() == [False]

    def strict(c):
        raise ValueError(c)
    json.loads(out.read_text(), parse_constant=strict)
    json.loads(res.stdout, parse_constant=strict)


def test_calibrate_refuses_routers_without_a_threshold_to_choose(tmp_path):
    rd, _ = _constructed_run(tmp_path)
    out = tmp_path / "r.json"
    for router in ("always-llm", "always-slm"):
        err = _one_line_error(_cli("calibrate", rd, "--router", router, "--target-rate", "0.5", "--out", out))
        assert "same decision score" in err and router in err
    assert not out.exists()
    (tmp_path / "nan").mkdir()
    rd2, _ = _constructed_run(tmp_path / "nan", wrong_without_logprobs=True)
    # one finite value + nan: a real split (escalate every scored question, keep the nan ones)
    ok = _cli("calibrate", rd2, "--router", "signal:mean_logprob:-0.5", "--target-rate", "1", "--out", out)
    assert ok.exit_code == 0, ok.output


def test_calibrate_target_gap_unreachable_when_scores_are_nan(tmp_path):
    """The wrong SLM answers have no logprobs: a logprob router can never escalate them, so no
    saved threshold recovers half the gap (the sweep's -inf end point would, the router does not)."""
    rd, _ = _constructed_run(tmp_path, wrong_without_logprobs=True)
    out = tmp_path / "r.json"
    err = _one_line_error(_cli("calibrate", rd, "--router", "signal:mean_logprob:-0.5", "--target-gap", "0.5",
                               "--out", out))
    assert "no threshold recovers 50%" in err and "6 questions have no decision score" in err
    assert not out.exists()
    ok = _cli("calibrate", rd, "--router", "signal:mean_logprob:-0.5", "--target-rate", "1", "--out", out)
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["llm_call_rate"] == pytest.approx(0.5)  # reports what the router does


def test_calibrate_unwritable_out_and_damaged_run(tmp_path):
    rd, _ = _constructed_run(tmp_path)
    # /proc exists but no file can be created in it (Linux)
    assert "--out /proc/cascade-router-test.json" in _one_line_error(
        _cli("calibrate", rd, "--target-rate", "0.3", "--out", "/proc/cascade-router-test.json"))
    db = sqlite3.connect(rd / DB_NAME)
    with db:
        db.execute("UPDATE generations SET generation = '{bad' WHERE qid = 'q3' AND tier = 'llm'")
    db.close()
    for args in (("report", rd), ("calibrate", rd, "--target-rate", "0.3", "--out", tmp_path / "r.json")):
        err = _one_line_error(_cli(*args))
        assert "damaged" in err and "'q3'" in err and "llm" in err
    # well-formed JSON with a wrong-typed field, and a row holding neither generation nor error
    for sql, needle in (("UPDATE generations SET generation = '{\"text\": \"a\", \"logprobs\": \"abc\"}' "
                         "WHERE qid = 'q3' AND tier = 'llm'", "'logprobs'"),
                        ("UPDATE generations SET generation = NULL WHERE qid = 'q3' AND tier = 'llm'", "neither")):
        db = sqlite3.connect(rd / DB_NAME)
        with db:
            db.execute(sql)
        db.close()
        err = _one_line_error(_cli("report", rd))
        assert "damaged" in err and needle in err


@pytest.mark.parametrize("key, value", [("seed", '"x"'), ("data", "5"), ("limit", '"all"'), ("seed", "{bad")])
def test_damaged_run_identity_is_a_one_line_error(tmp_path, key, value):
    rd, _ = _constructed_run(tmp_path, n=4)
    db = sqlite3.connect(rd / DB_NAME)
    with db:
        db.execute("UPDATE meta SET value = ? WHERE key = ?", (value, key))
    db.close()
    for args in (("report", rd), ("calibrate", rd, "--target-rate", "0.3", "--out", tmp_path / "r.json")):
        assert "run identity is damaged" in _one_line_error(_cli(*args))


def test_report_with_nothing_scored_exits_1_without_nan(tmp_path):
    rd, _ = _constructed_run(tmp_path, n=4)
    db = sqlite3.connect(rd / DB_NAME)
    with db:
        db.execute("DELETE FROM generations WHERE tier = 'llm'")
    db.close()
    err = _one_line_error(_cli("report", rd), code=1)
    assert "no question could be scored" in err and "not yet generated 4" in err
    md = (rd / "report.md").read_text()
    assert "nan" not in md.lower()


def test_report_rebuilds_a_constructed_run_with_default_prices(tmp_path):
    rd, _ = _constructed_run(tmp_path)
    res = _cli("report", rd)
    assert res.exit_code == 0, res.output
    assert "scored 12 questions" in res.stdout
    s = json.loads((rd / "summary.json").read_text())
    assert s["scored_questions"] == 12
    assert s["identity"]["slm"] == "smollm2-135m"
    # default illustrative prices ($0.05 / $0.10 per Mtok) on 1000 + 10 tokens per call
    assert s["points"]["always-slm"]["cost_per_question_usd"] == pytest.approx(1010 * 0.05e-6)
    assert s["points"]["always-llm"]["cost_per_question_usd"] == pytest.approx(1010 * 0.15e-6)
    assert (s["points"]["always-slm"]["f1"], s["points"]["oracle"]["f1"]) == pytest.approx((50.0, 100.0))
    for f in ("report.md", "questions.csv", "curve.png", "predictions/slm.json"):
        assert (rd / f).is_file(), f


def _rows(rd):
    db = sqlite3.connect(rd / DB_NAME)
    try:
        return db.execute("SELECT qid, tier, answer, error, created FROM generations ORDER BY rowid").fetchall()
    finally:
        db.close()


@pytest.mark.slow
def test_eval_real_run_resume_report_and_refusal(tmp_path):
    rd = tmp_path / "run"
    args = ["eval", "--dataset", "squad-v1.1", "--limit", "3", "--threads", "2", "--out", rd, "--no-progress"]
    first = _cli(*args)
    assert first.exit_code == 0, first.output
    assert "generated 6 (0 copied from a tier sharing the model), resumed past 0, errors 0" in first.stderr
    s1 = json.loads((rd / "summary.json").read_text())
    assert s1["scored_questions"] == 3 and s1["not_yet_generated"] == 0
    assert s1["identity"]["dataset"] == "squad-v1.1" and s1["identity"]["questions"] == 3
    assert s1["identity"]["slm"] == "smollm2-135m" and s1["identity"]["llm"] == "gemma3-270m"
    assert s1["last_run"]["generated"] == 6
    assert len(json.loads((rd / "predictions" / "slm.json").read_text())) == 3
    rows1 = _rows(rd)
    assert len(rows1) == 6 and all(r[3] is None for r in rows1)
    assert {(r[0], r[1]) for r in rows1} == {(q, t) for q in {r[0] for r in rows1} for t in ("slm", "llm")}

    # rerun on the same directory: everything is resumed, nothing generated
    again = _cli(*args)
    assert again.exit_code == 0, again.output
    assert "generated 0 (0 copied from a tier sharing the model), resumed past 6, errors 0" in again.stderr
    assert _rows(rd) == rows1  # same rows, same answers, same timestamps
    s2 = json.loads((rd / "summary.json").read_text())
    assert s2["last_run"]["generated"] == 0 and s2["last_run"]["resumed"] == 6
    assert s2["points"] == s1["points"]

    # report rebuilds every file from the store alone
    for f in ("report.md", "questions.csv", "predictions/slm.json"):
        (rd / f).unlink()
    rep = _cli("report", rd)
    assert rep.exit_code == 0, rep.output
    for f in ("report.md", "questions.csv", "predictions/slm.json"):
        assert (rd / f).is_file(), f
    s3 = json.loads((rd / "summary.json").read_text())
    assert s3["points"] == s1["points"] and s3["last_run"] == s2["last_run"]
    assert len((rd / "questions.csv").read_text().strip().splitlines()) == 1 + 3

    # another LLM on the same directory is refused, and the store is left as it was
    other = _cli(*args, "--llm", "smollm2-135m")
    err = _one_line_error(other)
    assert "llm: stored 'gemma3-270m', requested 'smollm2-135m'" in err
    assert _rows(rd) == rows1


def test_calibrate_boosted_on_a_committed_run(tmp_path):
    """`calibrate --router boosted` fits gradient-boosted trees on a real run (600 SQuAD
    questions) and writes JSON that loads and makes the promised decisions."""
    import shutil

    from cascade_router.evaluation.runs import open_run
    from cascade_router.routers import BoostedRouter

    src = Path(__file__).resolve().parents[1] / "results" / "squad-v1.1-n600-s1"
    rd = tmp_path / "run"
    rd.mkdir()
    for f in ("generations.sqlite", "summary.json"):
        shutil.copy(src / f, rd / f)
    out = tmp_path / "b.json"
    res = _cli("calibrate", rd, "--router", "boosted", "--target-rate", "0.3", "--out", out)
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["kind"] == "boosted" and 0.25 < info["llm_call_rate"] <= 0.3
    router = get_router(str(out))
    assert isinstance(router, BoostedRouter) and router.threshold == pytest.approx(info["threshold"])
    _, examples = open_run(rd)
    store = RunStore(rd)
    run = load_run(examples, store, {"slm": TierPrice(), "llm": TierPrice()})
    store.close()
    assert router.predict(run.signals("slm")).mean() == pytest.approx(info["llm_call_rate"])
