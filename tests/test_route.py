"""`cascade-router route`: batch routing of a JSONL file (real models, resumable), and
`Cascade.answer_many`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cascade_router.cascade import Cascade
from cascade_router.cli import main
from cascade_router.models.base import ModelError
from cascade_router.routers import get_router
from cascade_router.tiers import Tier

PASSAGE = "Paris is the capital and largest city of France."


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_route_answers_writes_and_resumes(shared_models, tmp_path):
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n".join(json.dumps(d) for d in [
        {"id": "fr", "question": "What is the capital of France?", "context": PASSAGE},
        {"question": "Which is the largest city of France?", "context": PASSAGE},
        {"id": 7, "question": "What is the capital of France?", "context": PASSAGE, "task": "squad-v2"},
    ]) + "\n\n")
    out = tmp_path / "out.jsonl"
    # an earlier run that was killed: one line written, one cut in the middle
    out.write_text(json.dumps({"id": "fr", "answer": "Paris", "route": "slm"}) + '\n{"id": "line-2", "ans')
    r = _cli("route", "--input", inp, "--output", out, "--threads", "2", "--router", "always-llm", "--no-progress")
    assert r.exit_code == 0, r.output
    assert "3 questions" in r.stderr and "1 already in" in r.stderr and "answered 2, errors 0" in r.stderr
    recs = [d for d in _lines_tolerant(out) if "runs" in d]
    assert [d["id"] for d in recs] == ["line-2", "7"]  # "fr" was skipped, the cut line retried
    for d in recs:
        assert d["route"] == "llm" and [x["tier"] for x in d["runs"]] == ["slm", "llm"]
        assert [(g["after"], g["outcome"]) for g in d["gates"]] == [("slm", "escalate")]
        assert set(d["runs"][0]["signals"]) >= {"mean_logprob", "context_support"}
        assert d["total_tokens"] == sum(x["prompt_tokens"] + x["completion_tokens"] for x in d["runs"]) > 0
        assert d["cost_usd"] > 0 and d["latency_s"] > 0
    assert recs[0]["answer"] == "Paris"
    again = _cli("route", "--input", inp, "--output", out, "--no-progress")
    assert again.exit_code == 0 and "3 already in" in again.stderr


def _lines_tolerant(path):
    out = []
    for x in path.read_text().splitlines():
        try:
            out.append(json.loads(x))
        except ValueError:
            pass
    return out


@pytest.mark.parametrize("lines, where, what", [
    (['{"question": "ok"}', "not json"], ":2:", "not a JSON object"),
    (['["a list"]'], ":1:", "must be a JSON object"),
    (['{"question": ""}'], ":1:", "'question' must be a non-empty string"),
    (['{"question": "q", "context": 5}'], ":1:", "'context' must be a string"),
    (['{"question": "q", "task": "poem"}'], ":1:", "'task' must be one of"),
    (['{"id": "a", "question": "q"}', '', '{"id": "a", "question": "r"}'], ":3:", "duplicate id 'a'"),
])
def test_a_bad_input_line_is_named_before_any_model_loads(tmp_path, lines, where, what):
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n".join(lines) + "\n")
    r = _cli("route", "--input", inp, "--output", tmp_path / "out.jsonl", "--slm", "nosuch.gguf")
    assert r.exit_code == 2
    err = r.stderr.strip()
    assert err.startswith(f"error: --input {inp}{where}") and what in err and "\n" not in err
    assert not (tmp_path / "out.jsonl").exists()


class _Broken:
    model_id, family, n_ctx = "broken", "chat", None

    def generate(self, prompt):
        raise ModelError("down")

    def close(self):
        pass


def test_answer_many_goes_on_after_a_failure(slm):
    ok = Cascade([Tier("slm", slm), Tier("llm", slm)], [get_router("always-slm")])
    out = list(ok.answer_many([{"question": "What is the capital of France?", "context": PASSAGE},
                               {"question": "Which city is the largest?", "context": PASSAGE}]))
    assert [r.route for r in out] == ["slm", "slm"] and out[0].answer == "Paris"
    bad = Cascade([Tier("a", _Broken()), Tier("b", slm)], [get_router("always-slm")])
    got = list(bad.answer_many([{"question": "Q1?"}, {"question": "Q2?"}], task="open"))
    assert all(isinstance(g, ModelError) and g.tier == "a" for g in got) and len(got) == 2
