"""`run_generations(..., concurrency=N)` and `cascade-router eval --concurrency N`.

Fake backends (sleeping, counting the calls in flight) check that N questions really are in
flight, that the stored rows are the same set as with one in flight, that failures are stored as
errors, and that an interrupted run resumes past what it stored. One slow test runs the CLI on 4
SQuAD questions with the embedded models loaded with 2 llama.cpp slots each.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time

import pytest
from click.testing import CliRunner

from cascade_router.cli import main
from cascade_router.config import CascadeConfig, TierConfig
from cascade_router.datasets import QAExample
from cascade_router.evaluation.runner import run_generations
from cascade_router.evaluation.store import RunStore
from cascade_router.models.base import Generation, ModelError

N_QUESTIONS = 12


def _examples(n: int = N_QUESTIONS) -> list[QAExample]:
    return [QAExample(id=f"q{i}", question=f"What is thing {i}?", context=f"The thing {i} is answer{i}.",
                      answers=[f"answer{i}"], answerable=True, dataset="squad-v1.1", passage_id=f"p{i}")
            for i in range(1, n + 1)]


class InFlight:
    """Counts calls in flight (now and at most) across the backends that share it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.max = 0

    def __enter__(self):
        with self.lock:
            self.now += 1
            self.max = max(self.max, self.now)

    def __exit__(self, *exc):
        with self.lock:
            self.now -= 1


class FakeBackend:
    """A base-family model that answers ``{model_id}-{i}`` for "What is thing i?" after
    ``delay_s`` seconds; ``fail`` maps a question number to the exception (class or instance)
    its call raises."""

    family = "base"
    n_ctx = None

    def __init__(self, model_id: str, delay_s: float = 0.04, fail: dict | None = None,
                 shared: InFlight | None = None) -> None:
        self.model_id = model_id
        self.delay_s = delay_s
        self.fail = fail or {}
        self.own = InFlight()
        self.shared = shared or InFlight()
        self.asked: list[str] = []  # question ids, in call order
        self._lock = threading.Lock()

    def generate(self, prompt) -> Generation:
        i = int(re.findall(r"What is thing (\d+)\?", prompt.text)[-1])  # the last question: the one asked
        with self._lock:
            self.asked.append(f"q{i}")
        if i in self.fail:
            raise self.fail[i]
        t0 = time.perf_counter()
        with self.own, self.shared:
            time.sleep(self.delay_s)
        text = f"{self.model_id}-{i}"
        return Generation(text=text, tokens=[text], logprobs=[-0.1], prompt_tokens=50, completion_tokens=1,
                          latency_s=time.perf_counter() - t0, model=self.model_id)


def _stored(store: RunStore) -> dict[tuple[str, str], tuple[str | None, str | None]]:
    return {(r.qid, r.tier): (r.answer, r.error) for r in store.rows()}


def _run(tmp_path, name, tiers, concurrency, examples=None):
    store = RunStore(tmp_path / name, lock=True)
    try:
        stats = run_generations(examples or _examples(), tiers, store, "squad", progress=False, concurrency=concurrency)
        return stats, _stored(store)
    finally:
        store.close()


def test_four_questions_in_flight_store_the_same_rows_as_one(tmp_path):
    expected = {(f"q{i}", t): (f"{m}-{i}", None) for i in range(1, N_QUESTIONS + 1) for t, m in (("slm", "a"), ("llm", "b"))}

    shared1 = InFlight()
    a1, b1 = FakeBackend("a", shared=shared1), FakeBackend("b", shared=shared1)
    s1, rows1 = _run(tmp_path, "one", {"slm": a1, "llm": b1}, 1)
    assert rows1 == expected
    assert (a1.own.max, b1.own.max, shared1.max) == (1, 1, 1)
    assert a1.asked == [f"q{i}" for i in range(1, N_QUESTIONS + 1)]  # one after the other, in order

    shared4 = InFlight()  # longer calls, so that the four first calls surely overlap on a busy machine
    a4, b4 = FakeBackend("a", delay_s=0.1, shared=shared4), FakeBackend("b", delay_s=0.1, shared=shared4)
    s4, rows4 = _run(tmp_path, "four", {"slm": a4, "llm": b4}, 4)
    assert rows4 == expected  # the same (question, tier) rows with the same answers
    assert shared4.max == 4  # four questions in flight, never more
    assert a4.own.max == 4  # the first four questions all start on the first tier at once
    assert sorted(a4.asked) == sorted(a1.asked) and sorted(b4.asked) == sorted(b1.asked)  # each asked once

    for s in (s1, s4):
        assert (s.generated, s.skipped, s.reused, s.errors) == (2 * N_QUESTIONS, 0, 0, 0)
    # model_s sums the latencies (24 calls of >= 40 ms, >= 100 ms); with four in flight the wall time is well under it
    assert s1.model_s >= 2 * N_QUESTIONS * 0.04 and s4.model_s >= 2 * N_QUESTIONS * 0.1
    assert s1.wall_s >= s1.model_s
    assert s4.wall_s < s4.model_s / 2


def test_shared_backend_is_asked_once_per_question_with_several_in_flight(tmp_path):
    a, b = FakeBackend("a"), FakeBackend("b")
    stats, rows = _run(tmp_path, "run", {"small": a, "mid": a, "large": b}, 3)
    assert sorted(a.asked) == sorted(f"q{i}" for i in range(1, N_QUESTIONS + 1))  # once per question, not twice
    assert (stats.generated, stats.reused, stats.errors) == (3 * N_QUESTIONS, N_QUESTIONS, 0)
    assert all(rows[(f"q{i}", "mid")] == rows[(f"q{i}", "small")] == (f"a-{i}", None) for i in range(1, N_QUESTIONS + 1))


def test_a_failing_question_is_stored_as_an_error_and_the_run_goes_on(tmp_path):
    a = FakeBackend("a", fail={3: ModelError("a: llama.cpp failed: boom"), 7: RuntimeError("socket closed")})
    b = FakeBackend("b")
    stats, rows = _run(tmp_path, "run", {"slm": a, "llm": b}, 4)
    assert rows[("q3", "slm")] == (None, "a: llama.cpp failed: boom")
    assert rows[("q7", "slm")] == (None, "RuntimeError: socket closed")
    assert rows[("q3", "llm")] == ("b-3", None)  # the next tier of the same question still runs
    assert len(rows) == 2 * N_QUESTIONS
    assert (stats.generated, stats.errors) == (2 * N_QUESTIONS - 2, 2)

    # a rerun retries only the error rows, and replaces them
    a.fail = {}
    a.asked.clear()
    b.asked.clear()
    again, rows2 = _run(tmp_path, "run", {"slm": a, "llm": b}, 4)
    assert sorted(a.asked) == ["q3", "q7"] and b.asked == []
    assert (again.generated, again.skipped, again.errors) == (2, 2 * N_QUESTIONS - 2, 0)
    assert rows2[("q3", "slm")] == ("a-3", None) and rows2[("q7", "slm")] == ("a-7", None)


def test_questions_in_flight_come_from_different_passages_while_there_are_enough():
    from cascade_router.evaluation.runner import _Lanes

    exs = _examples(8)
    for ex, pid in zip(exs, "AAABBBCD"):
        ex.passage_id = pid
    lanes = _Lanes(exs)
    (q1, a), (q4, b) = lanes.take(), lanes.take()  # two in flight: the first question of two passages
    assert (q1.id, q4.id) == ("q1", "q4")
    assert lanes.take(a)[0].id == "q2"  # q1 finished: the next question of its passage
    assert lanes.take(b)[0].id == "q5"
    assert lanes.take(a)[0].id == "q3"
    assert lanes.take(a)[0].id == "q7"  # passage A done: the next passage
    c_item = lanes.take(a)  # (a is empty) -> passage D
    assert c_item[0].id == "q8"
    assert lanes.take(c_item[1])[0].id == "q6"  # no passage left to start: one more of B (1 left)
    assert lanes.take() is None and lanes.take(b) is None


def test_each_passage_is_asked_in_order_with_several_in_flight(tmp_path):
    exs = _examples(9)
    for ex, pid in zip(exs, "AAABBBCCC"):
        ex.passage_id = pid
    a, b = FakeBackend("a", delay_s=0.02), FakeBackend("b", delay_s=0.02)
    stats, rows = _run(tmp_path, "run", {"slm": a, "llm": b}, 3, examples=exs)
    assert len(rows) == 18 and stats.generated == 18
    for passage in (["q1", "q2", "q3"], ["q4", "q5", "q6"], ["q7", "q8", "q9"]):
        assert [q for q in a.asked if q in passage] == passage  # one lane per passage, in order
    assert sorted(a.asked[:3]) == ["q1", "q4", "q7"]  # the first question of each passage first


def test_bad_concurrency_is_refused():
    for bad in (0, -1, True, 2.0):
        with pytest.raises(ValueError, match="concurrency must be an integer >= 1"):
            run_generations(_examples(1), {"slm": FakeBackend("a")}, None, "squad", progress=False, concurrency=bad)


def test_prefilled_store_is_skipped(tmp_path):
    store = RunStore(tmp_path / "run", lock=True)
    for i in range(1, 5):
        for t in ("slm", "llm"):
            store.put(f"q{i}", t, "old", Generation(text="old", latency_s=1.0))
    store.put("q5", "slm", "old", Generation(text="old", latency_s=1.0))
    store.close()
    a, b = FakeBackend("a"), FakeBackend("b")
    stats, rows = _run(tmp_path, "run", {"slm": a, "llm": b}, 4)
    assert sorted(a.asked) == sorted(f"q{i}" for i in range(6, N_QUESTIONS + 1))
    assert sorted(b.asked) == sorted(f"q{i}" for i in range(5, N_QUESTIONS + 1))
    assert (stats.generated, stats.skipped, stats.errors) == (2 * N_QUESTIONS - 9, 9, 0)
    assert rows[("q1", "slm")] == ("old", None) and rows[("q5", "slm")] == ("old", None)
    assert rows[("q5", "llm")] == ("b-5", None) and len(rows) == 2 * N_QUESTIONS


def test_an_interrupt_stores_the_questions_in_flight_and_the_run_resumes(tmp_path):
    # q1 is interrupted at once; q2..q4 (in flight beside it, 0.1 s per tier) are finished and
    # stored; no question after them is started
    a = FakeBackend("a", delay_s=0.1, fail={1: KeyboardInterrupt()})
    b = FakeBackend("b", delay_s=0.1)
    store = RunStore(tmp_path / "run", lock=True)
    with pytest.raises(KeyboardInterrupt):
        run_generations(_examples(), {"slm": a, "llm": b}, store, "squad", progress=False, concurrency=4)
    stored = _stored(store)
    store.close()
    assert stored == {(f"q{i}", t): (f"{m}-{i}", None) for i in (2, 3, 4) for t, m in (("slm", "a"), ("llm", "b"))}
    assert sorted(a.asked) == ["q1", "q2", "q3", "q4"]

    # resume, with another number in flight: only what is not stored is asked
    a.fail = {}
    a.asked.clear()
    b.asked.clear()
    stats, rows = _run(tmp_path, "run", {"slm": a, "llm": b}, 2)
    todo = sorted(f"q{i}" for i in range(1, N_QUESTIONS + 1) if i not in (2, 3, 4))
    assert sorted(a.asked) == todo and sorted(b.asked) == todo
    assert (stats.generated, stats.skipped, stats.errors) == (2 * len(todo), 6, 0)
    assert rows == {(f"q{i}", t): (f"{m}-{i}", None) for i in range(1, N_QUESTIONS + 1) for t, m in (("slm", "a"), ("llm", "b"))}


def test_an_interrupt_from_a_later_question_keeps_every_finished_one(tmp_path):
    # the interrupt comes after several questions have finished: whatever was stored stays, and a
    # resume asks exactly the rest
    a = FakeBackend("a", delay_s=0.02, fail={7: KeyboardInterrupt()})
    b = FakeBackend("b", delay_s=0.02)
    store = RunStore(tmp_path / "run", lock=True)
    with pytest.raises(KeyboardInterrupt):
        run_generations(_examples(), {"slm": a, "llm": b}, store, "squad", progress=False, concurrency=3)
    stored = _stored(store)
    store.close()
    done_q = {q for q, _ in stored}
    assert {f"q{i}" for i in range(1, 7)} <= done_q and "q7" not in done_q  # q1..q6 started before q7 and finished
    assert all(stored[(q, t)] == (f"{m}-{q[1:]}", None) for q in done_q for t, m in (("slm", "a"), ("llm", "b")))
    assert len(stored) == 2 * len(done_q)  # whole questions only

    a.fail = {}
    a.asked.clear()
    stats, rows = _run(tmp_path, "run", {"slm": a, "llm": b}, 3)
    assert sorted(a.asked) == sorted({f"q{i}" for i in range(1, N_QUESTIONS + 1)} - done_q)
    assert stats.skipped == 2 * len(done_q) and stats.generated == 2 * (N_QUESTIONS - len(done_q))
    assert len(rows) == 2 * N_QUESTIONS and all(e is None for _, e in rows.values())


def test_eval_gives_in_process_tiers_the_slots_and_leaves_endpoints():
    from cascade_router.commands.eval import _give_slots

    cfg = CascadeConfig([TierConfig("smollm2-135m", name="small"), TierConfig("gemma3-270m", name="mid", parallel=8),
                         TierConfig("m@http://127.0.0.1:9/v1", name="large")])
    _give_slots(cfg, 1)
    assert [t.parallel for t in cfg.tiers] == [None, 8, None]  # one in flight: nothing changes
    _give_slots(cfg, 4)
    assert [t.parallel for t in cfg.tiers] == [4, 8, None]


def test_eval_refuses_a_bad_concurrency():
    for bad in ("0", "-2", "two"):
        r = CliRunner().invoke(main, ["eval", "--dataset", "squad-v1.1", "--limit", "1", "--concurrency", bad])
        assert r.exit_code == 2, r.output
        assert "Invalid value for '--concurrency'" in r.output


def _rows(rd):
    db = sqlite3.connect(rd / "generations.sqlite")
    try:
        return db.execute("SELECT qid, tier, answer, error FROM generations ORDER BY qid, tier").fetchall()
    finally:
        db.close()


@pytest.mark.slow
def test_eval_cli_with_two_in_flight_on_the_embedded_models(tmp_path, monkeypatch):
    import cascade_router.config as config_mod
    from cascade_router.models.registry import load_model

    loads = []

    def load(spec, **kw):
        loads.append((spec, kw["parallel"]))
        return load_model(spec, **kw)

    monkeypatch.setattr(config_mod, "load_model", load)
    rd = tmp_path / "run"
    args = ["eval", "--dataset", "squad-v1.1", "--limit", "4", "--threads", "2", "--out", rd, "--no-progress"]
    r = CliRunner().invoke(main, [str(a) for a in args + ["--concurrency", "2"]])
    assert r.exit_code == 0, r.output
    assert sorted(loads) == [("gemma3-270m", 2), ("smollm2-135m", 2)]  # two llama.cpp slots each
    assert "generated 8 (0 copied from a tier sharing the model), resumed past 0, errors 0" in r.stderr
    assert "2 questions in flight" in r.stderr
    rows = _rows(rd)
    qids = {q for q, *_ in rows}
    assert len(qids) == 4 and {(q, t) for q, t, *_ in rows} == {(q, t) for q in qids for t in ("llm", "slm")}
    assert all(err is None and ans is not None for *_, ans, err in rows)
    s1 = json.loads((rd / "summary.json").read_text())
    assert s1["scored_questions"] == 4 and s1["last_run"]["concurrency"] == 2
    assert "concurrency" not in s1["identity"] and "parallel" not in json.dumps(s1["identity"])

    # resume with one in flight: the identity matches, nothing is generated again
    again = CliRunner().invoke(main, [str(a) for a in args])
    assert again.exit_code == 0, again.output
    assert "generated 0 (0 copied from a tier sharing the model), resumed past 8, errors 0" in again.stderr
    assert _rows(rd) == rows

    (rd / "report.md").unlink()
    rep = CliRunner().invoke(main, ["report", str(rd)])
    assert rep.exit_code == 0, rep.output
    assert (rd / "report.md").is_file()
    assert json.loads((rd / "summary.json").read_text())["scored_questions"] == 4
