"""Bad input found by adversarial testing: each gets a clear error, never a traceback or a
silently wrong result."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cascade_router.cli import main
from cascade_router.config import ConfigError, load_config
from cascade_router.evaluation.store import RunLockedError, RunStore
from cascade_router.models.base import ModelError
from cascade_router.models.parsing import parse_response
from cascade_router.routers import get_router


def _ok_body(**choice):
    return {"choices": [{"text": " Paris", "finish_reason": "stop", **choice}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1}}


@pytest.mark.parametrize("body", [
    {"choices": [5]},
    {"choices": [{"text": 5}]},
    _ok_body(logprobs={"content": [{"token": " Paris", "logprob": None}]}),
    _ok_body(logprobs={"content": [{"token": " Paris", "logprob": "x"}]}),
    _ok_body(logprobs={"content": [{"token": " Paris", "logprob": 0.7}]}),
    {"choices": [{"text": "a"}], "usage": [1]},
    {"choices": [{"text": "a"}], "usage": {"prompt_tokens": "x"}},
    {"choices": [{"text": "a"}], "usage": {"prompt_tokens": -3, "completion_tokens": 1}},
])
def test_malformed_replies_are_model_errors(body):
    with pytest.raises(ModelError, match="m1: malformed reply"):
        parse_response(body, chat=False, model="m1", latency_s=0.1)


def test_a_wellformed_reply_still_parses():
    g = parse_response(_ok_body(logprobs={"content": [{"token": " Paris", "logprob": -0.25, "top_logprobs": []}]}),
                       chat=False, model="m1", latency_s=0.1)
    assert (g.text, g.logprobs, g.prompt_tokens) == (" Paris", [-0.25], 5)


def test_run_directory_lock(tmp_path):
    first = RunStore(tmp_path / "r", lock=True)
    with pytest.raises(RunLockedError, match="in use by another"):
        RunStore(tmp_path / "r", lock=True)
    first.close()
    RunStore(tmp_path / "r", lock=True).close()  # released on close


@pytest.mark.parametrize("text, field", [
    ('[slm]\nmodel = 5\n', "model"),
    ('[slm]\nmodel = "smollm2-135m"\nthreads = "two"\n', "threads"),
    ('[slm]\nmodel = "smollm2-135m"\nn_ctx = -5\n', "n_ctx"),
    ('[llm]\nmodel = "x@http://127.0.0.1:9"\ntimeout_s = -1\n', "timeout_s"),
    ('[llm]\nmodel = "x@http://127.0.0.1:9"\nretries = -1\n', "retries"),
    ('[slm]\nmodel = "smollm2-135m"\ntop_k = -3\n', "top_k"),
    ('[slm]\nmodel = "smollm2-135m"\nfamily = "weird"\n', "family"),
    ('[slm]\nmodel = "smollm2-135m"\napi_key_env = 5\n', "api_key_env"),
    ('[router]\nname = 5\n', "name"),
    ('[router]\nname = "seed-v1"\nbogus = 1\n', "bogus"),
    ('router = 5\n', "router"),
])
def test_config_field_errors_name_file_and_field(tmp_path, text, field):
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(p) in str(e.value) and field in str(e.value)


def test_non_utf8_config(tmp_path):
    p = tmp_path / "c.toml"
    p.write_bytes(b"[slm]\nmodel = \"\xff\xfe\"\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(p)


@pytest.mark.parametrize("doc, msg", [
    ({"kind": "logistic", "params": {}, "state": {"medians": [1.0]}}, "lacks"),
    ({"kind": "logistic", "params": {"signals": ["mean_logprob"]},
      "state": {"medians": [1, 2], "mean": [0], "scale": [1], "coef": [1], "intercept": 0}}, "one value per signal"),
    ({"kind": "threshold", "params": {"rules": [1]}}, "rules"),
    ({"kind": "threshold", "params": {"rules": {"mean_logprob": "abc"}}}, "bad params"),
    ({"kind": "signal", "params": "x"}, "must be JSON objects"),
])
def test_bad_router_files_name_the_file(tmp_path, doc, msg):
    p = tmp_path / "r.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(ValueError) as e:
        get_router(str(p))
    assert str(p) in str(e.value) and msg in str(e.value)


def test_get_router_rejects_non_strings():
    with pytest.raises(ValueError, match="must be a name"):
        get_router(5)


def test_eval_refuses_a_negative_seed():
    r = CliRunner().invoke(main, ["eval", "--dataset", "squad-v1.1", "--seed", "-1"])
    assert r.exit_code == 2 and "seed" in r.output.lower()


def test_calibrate_out_in_missing_directory(tmp_path):
    r = CliRunner().invoke(main, ["calibrate", str(tmp_path), "--target-rate", "0.3", "--out", str(tmp_path / "no" / "r.json")])
    assert r.exit_code == 2 and "does not exist" in r.stderr


def test_score_na_probs_errors_name_the_na_file(tmp_path):
    from cascade_router.datasets import load_raw

    qa = load_raw("squad-v2.0")[0]["paragraphs"][0]["qas"][0]
    pred, na = tmp_path / "p.json", tmp_path / "na.json"
    pred.write_text(json.dumps({qa["id"]: "x"}))
    na.write_text('{"%s": NaN}' % qa["id"])
    r = CliRunner().invoke(main, ["score", "--dataset", "squad-v2.0", "--predictions", str(pred), "--na-probs", str(na),
                                  "--only-predicted"])
    assert r.exit_code == 2 and str(na) in r.stderr and "finite" in r.stderr


@pytest.mark.slow
def test_eval_refuses_an_edited_data_file_and_reports_extra_routers(tmp_path):
    from cascade_router.datasets import load_raw, official_document

    raw = load_raw("squad-v1.1")
    para = raw[0]["paragraphs"][0]
    doc = official_document("squad-v1.1", [{"title": raw[0]["title"], "paragraphs": [{**para, "qas": para["qas"][:2]}]}])
    data = tmp_path / "tiny.json"
    data.write_text(json.dumps(doc))
    out = tmp_path / "run"
    args = ["eval", "--dataset", "squad-v1.1", "--data", str(data), "--limit", "0", "--threads", "2", "--out", str(out),
            "--no-progress", "--routers", "signal:mean_logprob:-0.5"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert "signal:mean_logprob:-0.5" in summary["points"]
    assert summary["extra_routers"] == ["signal:mean_logprob:-0.5"]
    # the same path, edited content: refused, and nothing is regenerated or mixed
    doc["data"][0]["paragraphs"][0]["qas"][0]["question"] = "Something else entirely?"
    data.write_text(json.dumps(doc))
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and "sample_sha256" in r.stderr
