"""RunStore (one committed row per (question, tier), identity binding) and run_generations
(resume after a crash, model errors recorded and left out), with fake in-memory backends."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from cascade_router.datasets import QAExample
from cascade_router.tiers import TierPrice
from cascade_router.evaluation.analysis import load_run, point_metrics
from cascade_router.evaluation.runner import run_generations
from cascade_router.evaluation.store import DB_NAME, RunMismatchError, RunStore
from cascade_router.models.base import Generation, ModelError, TokenTop


def _examples(n: int = 6) -> list[QAExample]:
    """n questions, two per passage; question i's gold answer is ``answer{i}``."""
    out = []
    for i in range(1, n + 1):
        pid = f"P{(i + 1) // 2}"
        out.append(QAExample(
            id=f"q{i}", question=f"What is item number {i}?", context=f"Passage {pid}: item {i} is answer{i}.",
            answers=[f"answer{i}"], answerable=True, dataset="squad-v1.1", passage_id=pid,
        ))
    return out


class FakeBackend:
    """A backend that answers from a table, counts its calls, and can crash or fail on purpose.

    ``crash_after=k``: the (k+1)-th call raises KeyboardInterrupt (the process being stopped).
    ``fail_ids``: questions on which it raises ModelError.
    ``wrong``: answer something other than the gold answer.
    """

    family = "base"
    n_ctx = None

    def __init__(self, model_id, examples, prefix="", crash_after=None, fail_ids=(), wrong=False):
        self.model_id = model_id
        self.examples = examples
        self.prefix = prefix
        self.crash_after = crash_after
        self.fail_ids = set(fail_ids)
        self.wrong = wrong
        self.calls: list[str] = []
        self.closed = False

    def _which(self, text: str) -> QAExample:
        hits = [ex for ex in self.examples if text.endswith(f"Question: {ex.question}\nAnswer:")]
        assert len(hits) == 1, text[-200:]
        return hits[0]

    def generate(self, prompt) -> Generation:
        ex = self._which(prompt.text)
        if self.crash_after is not None and len(self.calls) >= self.crash_after:
            raise KeyboardInterrupt
        self.calls.append(ex.id)
        if ex.id in self.fail_ids:
            raise ModelError(f"{self.model_id}: connection refused")
        text = f"{self.prefix}{'nothing' if self.wrong else ex.answers[0]}"
        return Generation(text=text, tokens=[text], logprobs=[-0.25], top_logprobs=[[TokenTop(text, -0.25)]],
                          prompt_tokens=100, completion_tokens=1, latency_s=0.01, model=self.model_id)

    def count_tokens(self, text):
        return None

    def close(self):
        self.closed = True


def _gen(text="x") -> Generation:
    return Generation(text=text, tokens=[text], logprobs=[-0.5], top_logprobs=[[TokenTop(text, -0.5), TokenTop("y", -1.5)]],
                      prompt_tokens=12, completion_tokens=1, cached_prompt_tokens=4, latency_s=0.3, model="m")


# --- store ---------------------------------------------------------------------------------------------


def test_put_rows_roundtrip_and_no_duplicates(tmp_path):
    store = RunStore(tmp_path / "r")
    assert store.put("q1", "slm", "x", _gen("x")) is True
    assert store.put("q1", "llm", None, None, error="boom") is True
    # a second result for the same (qid, tier) is refused and the first one kept
    assert store.put("q1", "slm", "other", _gen("other")) is False
    assert store.count() == 2
    # an error row is not done: a rerun retries it
    assert store.done() == {("q1", "slm")}
    rows = list(store.rows())
    assert [(r.qid, r.tier, r.answer, r.error) for r in rows] == [("q1", "slm", "x", None), ("q1", "llm", None, "boom")]
    assert rows[0].generation == _gen("x")  # incl. TokenTop alternatives and cached tokens
    assert rows[1].generation is None
    # the retry replaces the error row (still one row per (qid, tier)); a later put is refused
    assert store.put("q1", "llm", "y", _gen("y")) is True
    assert store.put("q1", "llm", "z", _gen("z")) is False
    assert store.count() == 2
    assert store.done() == {("q1", "slm"), ("q1", "llm")}
    assert [(r.tier, r.answer, r.error) for r in store.rows()] == [("slm", "x", None), ("llm", "y", None)]
    store.close()


def test_any_tier_name_is_stored_and_read_back(tmp_path):
    """Tiers are data: a three-tier run stores a row per tier under any name."""
    store = RunStore(tmp_path / "r")
    assert store.put("q2", "slm", "a", _gen("a")) is True
    assert store.put("q2", "medium", "x", _gen("x")) is True
    assert store.put("q2", "llm", None, None, error="boom") is True
    assert store.put("q2", "medium", "other", _gen("other")) is False  # still one row per (qid, tier)
    assert store.count() == 3
    assert store.done() == {("q2", "slm"), ("q2", "medium")}
    store.close()
    again = RunStore(tmp_path / "r")
    rows = list(again.rows())
    assert [(r.qid, r.tier, r.answer, r.error) for r in rows] == [
        ("q2", "slm", "a", None), ("q2", "medium", "x", None), ("q2", "llm", None, "boom")]
    assert rows[1].generation == _gen("x")
    again.close()


_OLD_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE generations (
    qid TEXT NOT NULL,
    tier TEXT NOT NULL CHECK (tier IN ('slm', 'llm')),
    answer TEXT,
    generation TEXT,
    error TEXT,
    created REAL NOT NULL,
    PRIMARY KEY (qid, tier)
);
"""


def _old_database(rd, journal="wal"):
    """A run database made before tiers became data (the tier CHECK), with rows inserted out of
    key order so that rowid order is observable. ``journal``: ``wal`` as the old RunStore made
    them, ``delete`` as any other sqlite3 client makes them."""
    rd.mkdir(parents=True)
    db = sqlite3.connect(rd / DB_NAME)
    db.execute(f"PRAGMA journal_mode={journal}")
    db.executescript(_OLD_SCHEMA)
    rows = [("q2", "llm", "b2", json.dumps(_gen("b2").to_dict()), None, 1.0),
            ("q1", "slm", "a1", json.dumps(_gen("a1").to_dict()), None, 2.0),
            ("q2", "slm", None, None, "boom", 3.0),
            ("q1", "llm", "b1", json.dumps(_gen("b1").to_dict()), None, 4.0)]
    with db:
        db.execute("INSERT INTO meta VALUES ('dataset', ?)", (json.dumps("squad-v1.1"),))
        db.executemany("INSERT INTO generations VALUES (?, ?, ?, ?, ?, ?)", rows)
        with pytest.raises(sqlite3.IntegrityError):  # the old schema does refuse other tiers
            db.execute("INSERT INTO generations VALUES ('q3', 'medium', 'x', NULL, NULL, 5.0)")
    db.close()
    return rows


def _dump(rd):
    db = sqlite3.connect(rd / DB_NAME)
    try:
        return (db.execute("SELECT qid, tier, answer, generation, error, created FROM generations ORDER BY rowid").fetchall(),
                db.execute("SELECT sql FROM sqlite_master WHERE name = 'generations'").fetchone()[0])
    finally:
        db.close()


@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_reader_leaves_an_old_database_byte_identical(tmp_path, journal):
    rd = tmp_path / "old"
    rows = _old_database(rd, journal)
    before = (rd / DB_NAME).read_bytes()
    store = RunStore(rd)  # a reader (report, calibrate): never migrates
    assert store.meta() == {"dataset": "squad-v1.1"}
    assert [(r.qid, r.tier, r.answer, r.error) for r in store.rows()] == [(q, t, a, e) for q, t, a, _g, e, _c in rows]
    assert store.done() == {("q2", "llm"), ("q1", "slm"), ("q1", "llm")}
    store.close()
    assert (rd / DB_NAME).read_bytes() == before
    assert "CHECK" in _dump(rd)[1]


@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_writer_migrates_an_old_database_keeping_every_row(tmp_path, journal):
    rd = tmp_path / "old"
    rows = _old_database(rd, journal)
    store = RunStore(rd, lock=True)
    try:
        assert "CHECK" in _dump(rd)[1]  # not before the identity is accepted
        with pytest.raises(RunMismatchError):
            store.bind({"dataset": "squad-v2.0"})
        assert "CHECK" in _dump(rd)[1]  # a refused run leaves the file as it was
        store.bind({"dataset": "squad-v1.1"})
        got, sql = _dump(rd)
        assert "CHECK" not in sql
        assert got == rows  # every column of every row, in the old rowid order
        assert [(r.qid, r.tier) for r in store.rows()] == [(q, t) for q, t, *_ in rows]
        assert store.meta() == {"dataset": "squad-v1.1"}
        assert store.put("q1", "medium", "m1", _gen("m1")) is True
        assert store.put("q2", "slm", "a2", _gen("a2")) is True  # the old error row is retried in place
        assert store.count() == 5
        assert [(r.qid, r.tier, r.answer) for r in store.rows()] == [
            ("q2", "llm", "b2"), ("q1", "slm", "a1"), ("q2", "slm", "a2"), ("q1", "llm", "b1"), ("q1", "medium", "m1")]
    finally:
        store.close()
    # a second writer finds nothing left to migrate and keeps the rows
    again = RunStore(rd, lock=True)
    assert again.count() == 5
    again.close()


def test_each_row_is_committed_at_once(tmp_path):
    """A crash after put() loses nothing: another connection sees the row before close()."""
    store = RunStore(tmp_path / "r")
    store.put("q1", "slm", "x", _gen())
    other = sqlite3.connect(tmp_path / "r" / DB_NAME)
    assert other.execute("SELECT qid, tier, answer FROM generations").fetchall() == [("q1", "slm", "x")]
    other.close()
    store.close()


IDENT = {"dataset": "squad-v1.1", "data": "bundled", "slm": "smollm2-135m", "llm": "gemma3-270m",
         "limit": 20, "seed": 0, "questions": 20, "max_tokens": 24, "prompt_version": 1}


def test_bind_records_and_accepts_same_identity(tmp_path):
    store = RunStore(tmp_path / "r")
    assert store.meta() == {}
    store.bind(IDENT)
    store.close()
    again = RunStore(tmp_path / "r")
    assert again.meta() == IDENT
    again.bind(dict(IDENT))  # same settings: resume
    again.close()


@pytest.mark.parametrize("key,value", [("dataset", "squad-v2.0"), ("llm", "smollm2-135m"), ("limit", 50)])
def test_bind_refuses_other_settings(tmp_path, key, value):
    store = RunStore(tmp_path / "r")
    store.bind(IDENT)
    store.close()
    again = RunStore(tmp_path / "r")
    with pytest.raises(RunMismatchError) as ei:
        again.bind(dict(IDENT, **{key: value}))
    msg = str(ei.value)
    assert f"{key}: stored {IDENT[key]!r}, requested {value!r}" in msg
    assert "refusing to mix" in msg and str(tmp_path / "r") in msg
    assert again.meta() == IDENT  # the stored identity is untouched
    again.close()


def test_bind_names_every_differing_key(tmp_path):
    store = RunStore(tmp_path / "r")
    store.bind(IDENT)
    with pytest.raises(RunMismatchError, match=r"dataset: .*; slm: stored 'smollm2-135m', requested 'qwen'"):
        store.bind(dict(IDENT, dataset="hotpotqa", slm="qwen"))
    store.close()


# --- runner --------------------------------------------------------------------------------------------


def test_resume_after_interrupt_regenerates_nothing(tmp_path):
    ex = _examples(6)
    store = RunStore(tmp_path / "r")
    slm1 = FakeBackend("slm", ex)
    llm1 = FakeBackend("llm", ex, crash_after=2)  # dies on its 3rd call: q3's LLM turn
    with pytest.raises(KeyboardInterrupt):
        run_generations(ex, {"slm": slm1, "llm": llm1}, store, "squad", progress=False)
    assert slm1.calls == ["q1", "q2", "q3"] and llm1.calls == ["q1", "q2"]
    # the process died: no close(); a new process opens the same directory
    store2 = RunStore(tmp_path / "r")
    assert store2.done() == {("q1", "slm"), ("q1", "llm"), ("q2", "slm"), ("q2", "llm"), ("q3", "slm")}

    slm2 = FakeBackend("slm", ex, prefix="NEW ")
    llm2 = FakeBackend("llm", ex, prefix="NEW ")
    stats = run_generations(ex, {"slm": slm2, "llm": llm2}, store2, "squad", progress=False)
    assert slm2.calls == ["q4", "q5", "q6"]  # q1..q3 SLM kept
    assert llm2.calls == ["q3", "q4", "q5", "q6"]
    assert (stats.generated, stats.skipped, stats.errors) == (7, 5, 0)
    assert stats.model_s == pytest.approx(0.07)
    assert stats.wall_s > 0

    rows = list(store2.rows())
    assert len(rows) == 12 == store2.count()
    assert sorted((r.qid, r.tier) for r in rows) == sorted((e.id, t) for e in ex for t in ("slm", "llm"))
    old = {(r.qid, r.tier): r.answer for r in rows}
    for key in [("q1", "slm"), ("q1", "llm"), ("q2", "slm"), ("q2", "llm"), ("q3", "slm")]:
        assert old[key] == f"answer{key[0][1:]}", key  # first run's answer, not regenerated
    assert old[("q3", "llm")] == "NEW answer3"

    # a third run finds everything done
    slm3, llm3 = FakeBackend("slm", ex), FakeBackend("llm", ex)
    stats3 = run_generations(ex, {"slm": slm3, "llm": llm3}, store2, "squad", progress=False)
    assert (stats3.generated, stats3.skipped) == (0, 12)
    assert slm3.calls == llm3.calls == []
    assert store2.count() == 12
    store2.close()


def test_model_error_recorded_run_continues_and_not_scored(tmp_path):
    ex = _examples(6)
    store = RunStore(tmp_path / "r")
    slm = FakeBackend("slm", ex, wrong=True)
    llm = FakeBackend("llm", ex, fail_ids={"q2"})
    stats = run_generations(ex, {"slm": slm, "llm": llm}, store, "squad", progress=False)
    assert (stats.generated, stats.skipped, stats.errors) == (11, 0, 1)
    assert llm.calls == ["q1", "q2", "q3", "q4", "q5", "q6"]  # went on after q2
    err = [r for r in store.rows() if r.error is not None]
    assert [(r.qid, r.tier, r.answer, r.generation) for r in err] == [("q2", "llm", None, None)]
    assert "connection refused" in err[0].error
    assert store.count() == 12

    run = load_run(ex, store, {"slm": TierPrice(), "llm": TierPrice()})
    assert run.errors == {"slm": [], "llm": ["q2"]}
    assert [r.ex.id for r in run.records] == ["q1", "q3", "q4", "q5", "q6"]
    assert run.missing == 0
    # the LLM answered every scored question right; q2 counted as wrong would give 5/6
    assert point_metrics(run, np.ones(run.n, bool)).exact == 100.0
    assert point_metrics(run, np.zeros(run.n, bool)).exact == 0.0

    # a rerun retries only the failed (question, tier), and then q2 is scored
    slm2, llm2 = FakeBackend("slm", ex, wrong=True), FakeBackend("llm", ex)
    stats2 = run_generations(ex, {"slm": slm2, "llm": llm2}, store, "squad", progress=False)
    assert (stats2.generated, stats2.skipped, stats2.errors) == (1, 11, 0)
    assert slm2.calls == [] and llm2.calls == ["q2"]
    assert store.count() == 12
    run2 = load_run(ex, store, {"slm": TierPrice(), "llm": TierPrice()})
    assert run2.errors == {"slm": [], "llm": []} and run2.n == 6
    store.close()


def test_empty_question_is_recorded_as_error(tmp_path):
    ex = _examples(2)
    ex[0].question = "  "
    store = RunStore(tmp_path / "r")
    slm = FakeBackend("slm", ex)
    stats = run_generations(ex, {"slm": slm}, store, "squad", progress=False)
    assert stats.errors == 1 and stats.generated == 1 and slm.calls == ["q2"]
    assert [(r.qid, r.error) for r in store.rows()] == [("q1", "question is empty"), ("q2", None)]
    store.close()


def test_any_tier_names_run_in_order(tmp_path):
    """run_generations takes any tier names, in cascade order, and load_run scores them."""
    ex = _examples(2)
    store = RunStore(tmp_path / "r")
    tiers = {"small": FakeBackend("s", ex, wrong=True), "mid": FakeBackend("m", ex), "big": FakeBackend("b", ex)}
    stats = run_generations(ex, tiers, store, "squad", progress=False)
    assert (stats.generated, stats.errors) == (6, 0)
    assert [(r.qid, r.tier) for r in store.rows()] == [(q, t) for q in ("q1", "q2") for t in ("small", "mid", "big")]
    run = load_run(ex, store, dict.fromkeys(tiers, TierPrice()))
    assert run.names == ["small", "mid", "big"] and run.first == "small" and run.last == "big"
    assert run.arrays["small"].em.tolist() == [0.0, 0.0]
    assert run.arrays["mid"].em.tolist() == run.arrays["big"].em.tolist() == [1.0, 1.0]
    assert run.errors == {"small": [], "mid": [], "big": []}
    store.close()


def test_tiers_sharing_a_backend_ask_it_once(tmp_path):
    """Two tiers on one backend object (same model and options): one call per question, the
    generation stored for both, latency counted once."""
    ex = _examples(2)
    store = RunStore(tmp_path / "r")
    shared, big = FakeBackend("s", ex), FakeBackend("b", ex)
    stats = run_generations(ex, {"small": shared, "again": shared, "big": big}, store, "squad", progress=False)
    assert shared.calls == ["q1", "q2"] and big.calls == ["q1", "q2"]
    assert (stats.generated, stats.reused, stats.errors) == (6, 2, 0)
    assert stats.model_s == pytest.approx(0.04)
    rows = {(r.qid, r.tier): r for r in store.rows()}
    assert rows[("q1", "again")].generation == rows[("q1", "small")].generation
    store.close()


def test_samples_are_stored_apart_and_reading_never_changes_the_file(tmp_path):
    from cascade_router.models.base import Generation

    store = RunStore(tmp_path / "r", lock=True)
    store.put("q1", "slm", "Paris", Generation(text=" Paris"))
    before = (tmp_path / "r" / "generations.sqlite").read_bytes()
    assert store.samples("slm") == {} and store.sample_temperature("slm") is None
    assert (tmp_path / "r" / "generations.sqlite").read_bytes() == before  # no table created by reading
    store.put_sample("q1", "slm", 1, 0.7, "Lyon", Generation(text=" Lyon"))
    store.put_sample("q1", "slm", 0, 0.7, "Paris", Generation(text=" Paris"))
    store.put_sample("q1", "slm", 0, 0.7, "Rome", Generation(text=" Rome"))  # kept: the first stays
    got = store.samples("slm")
    assert [a for a, _ in got["q1"]] == ["Paris", "Lyon"] and got["q1"][1][1].text == " Lyon"
    assert store.sample_temperature("slm") == 0.7 and store.samples("llm") == {}
    assert store.done() == {("q1", "slm")}  # samples are not generations
    store.close()
