"""Cascade config files (TOML, YAML, JSON): loading, defaults, and errors naming file and field."""

import json

import pytest

from cascade_router.config import (
    DEFAULT_PRICES,
    CascadeConfig,
    ConfigError,
    TierConfig,
    config_from_dict,
    load_config,
)
from cascade_router.tiers import TierPrice
from cascade_router.routers import LogisticRouter, SignalRouter, ThresholdRouter

TOML = """
[slm]
model = "smollm2-135m"
threads = 2
n_ctx = 2048
[slm.price]
per_call = 0.0
prompt_per_mtok = 0.05
completion_per_mtok = 0.07

[llm]
model = "gpt-4o-mini@https://api.openai.com/v1"
api_key_env = "MY_KEY"
timeout_s = 12.5
retries = 4
[llm.price]
prompt_per_mtok = 0.15
completion_per_mtok = 0.60

[router]
name = "seed-v2"

[cascade]
max_tokens = 16
on_llm_error = "fail"
"""

YAML = """
slm: smollm2-135m
llm:
  model: gemma3-270m
  family: base
  top_k: 3
router: "signal:mean_logprob:-0.6"
cascade:
  max_tokens: 20
"""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_toml_loads(tmp_path):
    cfg = load_config(write(tmp_path, "c.toml", TOML))
    assert cfg.names == ["slm", "llm"] and cfg.legacy_pair
    slm, llm = cfg.tiers
    assert slm == TierConfig("smollm2-135m", name="slm", router={"name": "seed-v2"}, threads=2, n_ctx=2048,
                             price=TierPrice(per_call=0.0, prompt_per_mtok=0.05, completion_per_mtok=0.07))
    assert llm.model == "gpt-4o-mini@https://api.openai.com/v1" and llm.router is None
    assert (llm.api_key_env, llm.timeout_s, llm.retries) == ("MY_KEY", 12.5, 4)
    assert llm.price_or_default() == TierPrice(prompt_per_mtok=0.15, completion_per_mtok=0.60)
    assert (cfg.max_tokens, cfg.on_llm_error) == (16, "fail")
    r = cfg.build_router()
    assert isinstance(r, ThresholdRouter) and r.name == "seed-v2"
    assert len(cfg.build_gates()) == 1 and cfg.gate_labels() == ["seed-v2"]
    d = json.loads(json.dumps(cfg.to_dict()))
    assert [t["name"] for t in d["tiers"]] == ["slm", "llm"] and d["tiers"][0]["router"] == {"name": "seed-v2"}


def test_yaml_loads(tmp_path):
    for name in ("c.yaml", "c.yml"):
        cfg = load_config(write(tmp_path, name, YAML))
        assert cfg.first == TierConfig("smollm2-135m", name="slm", router="signal:mean_logprob:-0.6")
        assert cfg.last.name == "llm"
        assert (cfg.last.model, cfg.last.family, cfg.last.top_k) == ("gemma3-270m", "base", 3)
        assert (cfg.max_tokens, cfg.on_llm_error) == (20, "degrade")
        r = cfg.build_router()
        assert isinstance(r, SignalRouter) and r.signal == "mean_logprob"
        assert r.escalate({"mean_logprob": -0.61}) and not r.escalate({"mean_logprob": -0.6})
        # no price given: the illustrative defaults for the embedded models
        assert cfg.first.price_or_default() == DEFAULT_PRICES["smollm2-135m"]
        assert cfg.last.price_or_default() == DEFAULT_PRICES["gemma3-270m"]


def test_json_and_empty_files(tmp_path):
    cfg = load_config(write(tmp_path, "c.json", json.dumps({"router": "always-llm"})))
    assert cfg.first.router == "always-llm" and cfg.gate_labels() == ["always-llm"]
    assert cfg.names == ["slm", "llm"]
    assert cfg.first.model == "smollm2-135m" and cfg.last.model == "gemma3-270m"
    assert load_config(write(tmp_path, "empty.yaml", "")) == CascadeConfig()
    assert load_config(write(tmp_path, "empty.toml", "")) == CascadeConfig()


def test_router_forms(tmp_path):
    saved = LogisticRouter(signals=["mean_logprob", "length_words"]).fit(
        [{"mean_logprob": -x / 10, "length_words": float(x)} for x in range(10)], [0] * 5 + [1] * 5
    ).save(tmp_path / "r.json")
    by_path = load_config(write(tmp_path, "a.toml", f'[router]\npath = "{saved}"\n')).build_router()
    assert isinstance(by_path, LogisticRouter) and by_path.signals == ["mean_logprob", "length_words"]
    inline = load_config(write(tmp_path, "b.yaml", "router:\n  kind: signal\n  params: {signal: length_words, threshold: 5}\n"))
    r = inline.build_router()
    assert isinstance(r, SignalRouter) and r.escalate({"length_words": 6}) and not r.escalate({"length_words": 5})
    assert load_config(write(tmp_path, "c.toml", 'router = "random:0.2"\n')).build_router().rate == 0.2


@pytest.mark.parametrize(
    "name, text, field",
    [
        ("u1.toml", '[slm]\nmodel = "smollm2-135m"\ngpu_layers = 3\n', "gpu_layers"),
        ("u2.toml", '[server]\nport = 1\n', "server"),
        ("u3.toml", '[cascade]\nmax_tokens = 8\nstream = true\n', "stream"),
        ("u4.yaml", "llm:\n  model: gemma3-270m\n  temperature: 0.7\n", "temperature"),
        ("u5.yaml", "slm:\n  threads: 2\n", "model"),
        ("u6.yaml", "routers: seed-v1\n", "routers"),
    ],
)
def test_unknown_fields_name_file_and_field(tmp_path, name, text, field):
    path = write(tmp_path, name, text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert str(path) in msg and field in msg


def test_unknown_price_field_is_named(tmp_path):
    path = write(tmp_path, "p.toml", '[slm]\nmodel = "smollm2-135m"\n[slm.price]\nper_token = 1.0\n')
    with pytest.raises(ConfigError, match="per_token"):
        load_config(path)


def test_unknown_price_field_is_a_config_error(tmp_path):
    path = write(tmp_path, "p.toml", '[slm]\nmodel = "smollm2-135m"\n[slm.price]\nper_token = 1.0\n')
    with pytest.raises(ConfigError, match=r"p\.toml.*\[slm\.price\]"):
        load_config(path)


@pytest.mark.parametrize(
    "name, text, match",
    [
        ("r.toml", '[router]\nname = "seed-v9"\n', r"\[router\] unknown router 'seed-v9'; valid: seed-v1"),
        ("e.toml", '[cascade]\non_llm_error = "retry"\n', "on_llm_error must be 'degrade' or 'fail'"),
        ("s.toml", "[slm\nmodel = 1\n", "cannot parse"),
        ("s.yaml", "slm: [unclosed\n", "cannot parse"),
        ("l.yaml", "- a\n- b\n", "top level must be a table"),
        ("c.ini", "[slm]\n", "must be .toml, .yaml, .yml or .json"),
        ("q.toml", '[slm]\nmodel = "smollm2-135m"\n[slm.price]\nprompt_per_mtok = "cheap"\n', r"\[slm.price\]"),
    ],
)
def test_invalid_values_name_the_file(tmp_path, name, text, match):
    path = write(tmp_path, name, text)
    with pytest.raises(ConfigError, match=match) as e:
        load_config(path)
    assert str(path) in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read config"):
        load_config(tmp_path / "missing.toml")


@pytest.mark.parametrize("text", ['[cascade]\nmax_tokens = "many"\n', "cascade = 5\n"])
def test_bad_cascade_values_are_config_errors(tmp_path, text):
    path = write(tmp_path, "bad.toml", text)
    with pytest.raises(ConfigError, match="bad.toml"):
        load_config(path)


def test_config_from_dict_source_name():
    with pytest.raises(ConfigError, match="^inline: "):
        config_from_dict({"slm": {"model": "x", "bogus": 1}}, source="inline")
    cfg = config_from_dict({"slm": "gemma3-270m"})
    assert cfg.first.model == "gemma3-270m" and cfg.first.name == "slm" and cfg.last.model == "gemma3-270m"
    assert cfg.gate_labels() == ["seed-v1"]  # the default gate
