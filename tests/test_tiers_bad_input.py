"""Bad input around N tiers, found by an adversarial pass: tier names that would escape a run
directory or break an HTTP header, run directories of another cascade shape, model specs that are
not models, damaged earlier summaries, and command-line overrides that must keep a tier's settings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cascade_router.cli import main
from cascade_router.commands.common import resolve_config
from cascade_router.config import ConfigError, build_cascade, config_from_dict, load_config
from cascade_router.evaluation.runs import RunError, check_same_tiers
from cascade_router.routers import get_router
from cascade_router.tiers import TierPrice, check_tier_names

RESULTS = Path(__file__).resolve().parents[1] / "results"


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("name", ["a/b", "../../evil", "名 ü", "a\nb", " a ", "", "-x", "x" * 65, "seed-v1", "oracle"])
def test_unsafe_or_reserved_tier_names_are_refused(name):
    with pytest.raises(ValueError):
        check_tier_names([name])
    d = {"tiers": [{"name": name, "model": "smollm2-135m"}, {"name": "b", "model": "gemma3-270m"}]}
    with pytest.raises(ConfigError, match="tier name"):
        config_from_dict(d, source="x.toml")


@pytest.mark.parametrize("name", ["small", "t1", "gpt-4o.mini_v2", "A"])
def test_plain_tier_names_are_accepted(name):
    check_tier_names([name])


def test_prices_must_be_finite_numbers():
    with pytest.raises(ValueError, match="finite"):
        TierPrice(prompt_per_mtok=float("inf"))
    for bad in ({"per_call": True}, {"prompt_per_mtok": "1"}):
        with pytest.raises(ConfigError, match="must be a number of dollars"):
            config_from_dict({"slm": {"model": "smollm2-135m", "price": bad}}, source="p.toml")


def test_two_tier_run_directory_refuses_another_shape():
    two = {"dataset": "squad-v1.1", "slm": "smollm2-135m", "llm": "gemma3-270m"}
    three = {"dataset": "squad-v1.1", "tiers": [{"name": "slm", "model": "smollm2-135m"}, {"name": "mid", "model": "x@http://h/v1"},
                                                {"name": "llm", "model": "gemma3-270m"}]}
    with pytest.raises(RunError, match="holds a run of other tiers"):
        check_same_tiers(two, three, "RUN")
    with pytest.raises(RunError, match="holds a run of other tiers"):
        check_same_tiers(three, two, "RUN")
    check_same_tiers({}, three, "RUN")  # a new directory
    check_same_tiers(two, dict(two), "RUN")  # same shape: RunStore.bind compares the keys


def test_eval_refuses_a_committed_two_tier_run_with_a_three_tier_config(tmp_path):
    run = tmp_path / "copy"
    run.mkdir()
    shutil.copy(RESULTS / "squad-v1.1-n1000" / "generations.sqlite", run)
    before = (run / "generations.sqlite").read_bytes()
    cfg = tmp_path / "three.toml"
    cfg.write_text('[[tiers]]\nname = "slm"\nmodel = "smollm2-135m"\n[[tiers]]\nname = "mid"\nmodel = "x@http://127.0.0.1:1/v1"\n'
                   '[[tiers]]\nname = "llm"\nmodel = "gemma3-270m"\n')
    r = _cli("eval", "--dataset", "squad-v1.1", "--limit", "1000", "--config", cfg, "--out", run, "--no-progress")
    assert r.exit_code == 2, r.output
    assert "holds a run of other tiers (slm=smollm2-135m, llm=gemma3-270m)" in r.stderr
    assert (run / "generations.sqlite").read_bytes() == before  # refused: not migrated, not written


@pytest.mark.parametrize("model, expect", [("nosuchmodel", "unknown model 'nosuchmodel'"),
                                           ("nosuch.gguf", "model file not found")])
def test_a_tier_model_that_is_not_a_model_is_a_config_error(tmp_path, model, expect):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(f'[[tiers]]\nname = "a"\nmodel = "smollm2-135m"\n[[tiers]]\nname = "b"\nmodel = "{model}"\n')
    with pytest.raises(ConfigError) as e:
        build_cascade(load_config(cfg))
    assert str(cfg) in str(e.value) and "tier 'b'" in str(e.value) and expect in str(e.value)


def test_ask_with_a_bad_tier_model_exits_2_naming_file_and_tier(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[[tiers]]\nname = "a"\nmodel = "nosuchmodel"\n[[tiers]]\nname = "b"\nmodel = "gemma3-270m"\n')
    r = _cli("ask", "-q", "Who?", "--config", cfg)
    assert r.exit_code == 2
    err = r.stderr.strip()
    assert err.startswith(f"error: {cfg}: tier 'a' model 'nosuchmodel': unknown model") and "\n" not in err


def test_home_relative_gguf_path_is_expanded_not_joined(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "m.gguf").write_bytes(b"x")
    sub = tmp_path / "cfg"
    sub.mkdir()
    cfg = sub / "c.toml"
    cfg.write_text('[slm]\nmodel = "~/m.gguf"\n')
    assert load_config(cfg).first.model == str(tmp_path / "m.gguf")


def test_router_table_name_json_resolves_against_the_config_folder(tmp_path, monkeypatch):
    sub = tmp_path / "sub"
    sub.mkdir()
    get_router("seed-v2").save(sub / "r.json")
    monkeypatch.chdir(tmp_path)  # no r.json here
    for text in ('[router]\nname = "r.json"\n', '[[tiers]]\nname = "a"\nmodel = "smollm2-135m"\nrouter = {name = "r.json"}\n'
                 '[[tiers]]\nname = "b"\nmodel = "gemma3-270m"\n'):
        cfg = sub / "c.toml"
        cfg.write_text(text)
        gate = load_config(cfg).build_gates()[0]
        assert gate.get_params()["name"] == "seed-v2"


def test_slm_and_llm_overrides_keep_the_tiers_other_settings(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[slm]\nmodel = "smollm2-135m"\nthreads = 1\n[slm.price]\nper_call = 1.0\n'
                   '[llm]\nmodel = "gemma3-270m"\ntimeout_s = 1\nretries = 0\n[router]\nname = "seed-v3"\n')
    c = resolve_config(str(cfg), "other-slm@http://127.0.0.1:9/v1", "other-llm@http://127.0.0.1:9/v1", None)
    assert c.first.model.startswith("other-slm@") and c.first.threads == 1 and c.first.price == TierPrice(per_call=1.0)
    assert c.last.model.startswith("other-llm@") and c.last.timeout_s == 1 and c.last.retries == 0
    assert c.first.router == {"name": "seed-v3"} and c.names == ["slm", "llm"]


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"identity": "x", "extra_routers": 5}'])
def test_report_survives_a_damaged_earlier_summary(tmp_path, content):
    run = tmp_path / "r"
    run.mkdir()
    shutil.copy(RESULTS / "squad-v1.1-three-tier-n200" / "generations.sqlite", run)
    (run / "summary.json").write_text(content)
    r = _cli("report", run)
    assert r.exit_code == 0, r.output
    assert "warning:" in r.stderr and "chain section is left out" in r.stderr
    assert json.loads((run / "summary.json").read_text())["tiers"] == ["small", "medium", "large"]


def test_family_flag_sets_a_tiers_prompt_family():
    c = resolve_config(None, None, "gemma3-270m@http://127.0.0.1:9/v1", None, families=("base",))
    assert c.last.family == "base" and c.first.family is None
    c = resolve_config(None, None, None, None, families=("slm=chat", "llm=base"))
    assert (c.first.family, c.last.family) == ("chat", "base")


@pytest.mark.parametrize("value, msg", [("poem", "must be chat or base"), ("nope=base", "no tier 'nope'"),
                                        ("base", "say which tier")])
def test_family_flag_errors(value, msg, capsys):
    with pytest.raises(SystemExit) as e:
        resolve_config(None, None, None, None, families=(value,))
    assert e.value.code == 2 and msg in capsys.readouterr().err


def test_verbose_and_quiet_set_the_log_level():
    import logging

    r = CliRunner().invoke(main, ["-q", "models"])
    assert r.exit_code == 0 and logging.getLogger().level == logging.ERROR
    r = CliRunner().invoke(main, ["-vv", "models"])
    assert r.exit_code == 0 and logging.getLogger().level == logging.DEBUG
    r = CliRunner().invoke(main, ["models"])
    assert logging.getLogger().level == logging.WARNING
