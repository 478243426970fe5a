"""P(True) self-check: the probability read from the first token, the prompt, the real model,
and ``eval --self-check`` adding checks to a stored run."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from cascade_router.cascade import ask_model
from cascade_router.cli import main
from cascade_router.datasets import load_dataset, sample
from cascade_router.evaluation.store import RunStore, StoreError
from cascade_router.models.base import Generation, TokenTop
from cascade_router.prompts import ABSTAIN, build_prompt, build_self_check_prompt
from cascade_router.selfcheck import p_true, self_check


def _first(*alts) -> Generation:
    return Generation(text=alts[0][0], tokens=[alts[0][0]], logprobs=[math.log(alts[0][1])],
                      top_logprobs=[[TokenTop(t, math.log(p)) for t, p in alts]], completion_tokens=1)


def test_p_true_normalises_yes_against_no_over_spellings():
    # yes: " Yes" 0.3 + "yes" 0.1; no: " no" 0.1; the newline (0.4) counts for neither
    g = _first(("\n", 0.4), (" Yes", 0.3), (" no", 0.1), ("yes", 0.1), (" I", 0.05))
    assert p_true(g) == pytest.approx(0.4 / 0.5)
    assert p_true(_first((" No.", 0.6), (" TRUE", 0.2))) == pytest.approx(0.25)
    assert math.isnan(p_true(_first(("\n", 0.9), (" I", 0.05))))  # neither answer among the alternatives
    # no alternatives returned: the generated token itself decides
    assert p_true(Generation(text=" yes", tokens=[" yes"], logprobs=[-0.1])) == 1.0
    assert math.isnan(p_true(Generation(text="")))


def test_self_check_prompt_extends_the_qa_prompt():
    base = build_self_check_prompt("Who?", "Ann met Bob.", "Bob", "squad", "base")
    qa = build_prompt("Who?", "Ann met Bob.", "squad", "base")
    assert base.text.startswith(qa.text) and base.text.endswith("Reply yes or no.\nReply:")
    assert base.text[len(qa.text):].startswith(" Bob\n\n") and base.max_tokens == 1 and base.stop == []
    chat = build_self_check_prompt("Who?", "Ann met Bob.", "", "hotpotqa", "chat")
    qa_chat = build_prompt("Who?", "Ann met Bob.", "hotpotqa", "chat")
    assert chat.messages[:-2] == qa_chat.messages
    assert chat.messages[-2] == {"role": "assistant", "content": ABSTAIN}  # an empty answer is shown as abstaining
    assert "paragraphs" in chat.messages[-1]["content"]
    with pytest.raises(ValueError, match="general chat"):
        build_self_check_prompt("hi", None, "x", "chat", "chat")


def test_checks_are_stored_apart_and_a_damaged_one_is_named(tmp_path):
    store = RunStore(tmp_path / "r", lock=True)
    store.put("q1", "slm", "Paris", Generation(text=" Paris"))
    before = (tmp_path / "r" / "generations.sqlite").read_bytes()
    assert store.checks("slm") == {}
    assert (tmp_path / "r" / "generations.sqlite").read_bytes() == before  # reading creates no table
    store.put_check("q1", "slm", 0.25, Generation(text=" yes", completion_tokens=1))
    store.put_check("q1", "slm", 0.9, Generation(text=" no"))  # an existing check is kept
    store.put_check("q2", "slm", float("nan"), Generation(text="\n"))
    got = store.checks("slm")
    assert got["q1"][0] == 0.25 and got["q1"][1].text == " yes" and math.isnan(got["q2"][0])
    assert store.checks("llm") == {} and store.done() == {("q1", "slm")}
    store._db.execute("UPDATE checks SET p_true = 7 WHERE qid = 'q1'")
    with pytest.raises(StoreError, match=r"self-check of question 'q1' is damaged: p_true 7"):
        store.checks("slm")
    store.close()


def test_real_self_check_reuses_the_answer_prompt_prefix(slm):
    ex = sample(load_dataset("squad-v1.1"), 1, seed=0)[0]
    ans = ask_model(slm, ex.question, ex.context, "squad")
    chk = self_check(slm, ex.question, ex.context, ans.answer, "squad")
    g = chk.generation
    assert 0.0 <= chk.p_true <= 1.0 and g.completion_tokens == 1
    assert g.cached_prompt_tokens >= ans.generation.prompt_tokens - 1  # the QA prompt was in the cache
    assert g.prompt_tokens > ans.generation.prompt_tokens
    again = self_check(slm, ex.question, ex.context, ans.answer, "squad")
    # the same prompt, now wholly cached: llama.cpp evaluates it in other batches, so the
    # logprobs move slightly (about 0.02 in P(True) measured here), never the decision's scale
    assert again.p_true == pytest.approx(chk.p_true, abs=0.05)


@pytest.mark.slow
def test_eval_self_check_adds_checks_and_the_report_scores_them(tmp_path, shared_models):
    rd = tmp_path / "run"
    args = ["eval", "--dataset", "squad-v1.1", "--limit", "4", "--out", str(rd), "--no-progress"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "self_check" not in json.loads((rd / "summary.json").read_text())
    r = CliRunner().invoke(main, [*args, "--self-check"])
    assert r.exit_code == 0, r.output
    assert "self-checks of slm: 4 new, 0 stored, errors 0" in r.stderr
    s = json.loads((rd / "summary.json").read_text())
    assert s["self_check"]["no_yes_or_no"] in range(5) and s["self_check"]["extra_seconds_per_question"] > 0
    assert s["curves"] == {}  # one passage: no folds, no curves (tests/test_eval_analysis.py scores them)
    assert "## Self-check (P(True))" in (rd / "report.md").read_text()
    again = CliRunner().invoke(main, [*args, "--self-check"])
    assert "self-checks of slm: 0 new, 4 stored, errors 0" in again.stderr


def test_a_foreign_checks_table_is_a_store_error_not_a_crash(tmp_path):
    store = RunStore(tmp_path / "r", lock=True)
    store._db.execute("CREATE TABLE checks (qid TEXT, tier TEXT, score REAL)")
    with pytest.raises(StoreError, match=r"generations.sqlite: table checks is not a table of self-checks"):
        store.checks("slm")
    with pytest.raises(StoreError, match="cannot store a self-check in table checks"):
        store.put_check("q1", "slm", 0.5, Generation(text="yes"))
    store.close()
    other = RunStore(tmp_path / "v", lock=True)
    other._db.execute("CREATE VIEW checks AS SELECT 1 AS qid, 'slm' AS tier, 0.5 AS p_true, '{}' AS generation")
    with pytest.raises(StoreError, match="cannot store a self-check"):
        other.put_check("q1", "slm", 0.5, Generation(text="yes"))
    other.close()
