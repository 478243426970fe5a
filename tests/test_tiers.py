"""Tiers as data: N-tier cascades on real models (in process and over HTTP), gate decisions,
abstention after the last tier, failing tiers, and the [[tiers]] configuration."""

import json
import shutil
from pathlib import Path

import pytest

from cascade_router.cascade import Cascade, CascadeResult, TierFailure
from cascade_router.config import ConfigError, build_router, config_from_dict, load_config
from cascade_router.models.base import Generation, ModelError
from cascade_router.models.openai_compat import OpenAICompatBackend
from cascade_router.routers import LogisticRouter, SignalRouter, ThresholdRouter, get_router
from cascade_router.routers.base import decide
from cascade_router.signals import SIGNALS, compute_signals
from cascade_router.tiers import RESERVED_NAMES, Tier, TierPrice, check_tier_names

PASSAGE = "Paris is the capital and largest city of France."
QUESTION = "What is the capital of France?"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

SMALL_PRICE = TierPrice(prompt_per_mtok=1.0, completion_per_mtok=2.0)
MEDIUM_PRICE = TierPrice(per_call=0.001, prompt_per_mtok=3.0)
LARGE_PRICE = TierPrice(per_call=0.01, completion_per_mtok=50.0)


def always():
    return get_router("always-llm")


def check_result(res: CascadeResult, context=PASSAGE):
    """What holds for every result: runs and decisions in order, cost/latency summed, strict JSON."""
    assert [d.after for d in res.decisions] == [r.tier for r in res.runs][: len(res.decisions)]
    for d in res.decisions:
        assert (d.outcome != "accept") == decide(d.score, d.threshold)
    for r in res.runs:
        assert set(r.signals) == set(SIGNALS)
        assert r.signals == pytest.approx(compute_signals(r.generation, r.answer, context), nan_ok=True)
    assert res.cost_usd == pytest.approx(sum(r.cost_usd for r in res.runs))
    if res.failures:  # the time lost on a failed tier counts too
        assert res.latency_s >= sum(r.latency_s for r in res.runs)
    else:
        assert res.latency_s == pytest.approx(sum(r.latency_s for r in res.runs))
    d = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert d["route"] == res.route and len(d["runs"]) == len(res.runs)


@pytest.fixture
def remote(llm):
    """Gemma behind llama.cpp's own OpenAI-compatible HTTP server (the session model's)."""
    b = OpenAICompatBackend("gemma3-270m", llm.base_url, family="base", api_key_env=None, retries=0)
    yield b
    b.close()


# --- N tiers on real models ---------------------------------------------------------------------


def test_three_tiers_on_real_models_escalate_to_the_http_tier(slm, llm, remote):
    tiers = [Tier("small", slm, SMALL_PRICE), Tier("medium", llm, MEDIUM_PRICE), Tier("large", remote, LARGE_PRICE)]
    c = Cascade(tiers, [always(), always()], gate_labels=["always-llm", "always-llm"])
    res = c.answer(QUESTION, PASSAGE)
    check_result(res)
    assert [r.tier for r in res.runs] == ["small", "medium", "large"]
    assert [r.model for r in res.runs] == ["smollm2-135m", "gemma3-270m", "gemma3-270m"]
    assert [(d.after, d.router, d.outcome) for d in res.decisions] == [
        ("small", "always-llm", "escalate"), ("medium", "always-llm", "escalate")]
    assert res.route == "large" and res.answer == "Paris" == res.run("large").answer
    assert res.escalated and not res.degraded and res.error is None and res.start == "small"
    # no gate reads the last (HTTP) tier's signals, so logprobs="auto" does not ask for them
    g = res.run("large").generation
    assert g.logprobs is None and "mean_logprob" in res.run("large").unavailable
    # every tier is paid at its own price
    s, m = res.run("small").generation, res.run("medium").generation
    assert res.run("small").cost_usd == pytest.approx((s.prompt_tokens * 1.0 + s.completion_tokens * 2.0) / 1e6)
    assert res.run("medium").cost_usd == pytest.approx(0.001 + m.prompt_tokens * 3.0 / 1e6)
    assert res.run("large").cost_usd == pytest.approx(0.01 + g.completion_tokens * 50.0 / 1e6)
    assert res.total_tokens == sum(r.generation.prompt_tokens + r.generation.completion_tokens for r in res.runs)


def test_start_at_a_middle_tier_skips_the_gates_before(slm, llm, remote):
    c = Cascade([Tier("small", slm), Tier("medium", llm), Tier("large", remote)], [always(), always()])
    res = c.answer(QUESTION, PASSAGE, start="medium")
    check_result(res)
    assert res.start == "medium" and [r.tier for r in res.runs] == ["medium", "large"]
    assert [d.after for d in res.decisions] == ["medium"] and res.route == "large"
    assert c.answer(QUESTION, PASSAGE, start="large").decisions == []


def test_abstain_gate_after_the_last_tier(slm, llm):
    tiers = [Tier("small", slm, SMALL_PRICE), Tier("large", llm, LARGE_PRICE)]
    c = Cascade(tiers, [always(), always()])
    assert c.abstain_gate is not None
    res = c.answer(QUESTION, PASSAGE)
    check_result(res)
    assert res.route == "abstain" and res.abstained and res.answer == ""
    assert [d.outcome for d in res.decisions] == ["escalate", "abstain"]
    assert [r.tier for r in res.runs] == ["small", "large"] and res.run("large").answer == "Paris"
    assert res.cost_usd == pytest.approx(res.run("small").cost_usd + res.run("large").cost_usd) and res.cost_usd > 0.01
    d = res.to_dict()
    assert (d["route"], d["answer"], d["escalated"], d["degraded"]) == ("abstain", "", True, False)
    # an accepting abstain gate keeps the last answer
    kept = Cascade(tiers, [always(), get_router("always-slm")]).answer(QUESTION, PASSAGE)
    assert kept.route == "large" and kept.answer == "Paris" and kept.decisions[-1].outcome == "accept"


@pytest.mark.parametrize("gate, signal", [("signal:context_support:0.5", "context_support"),
                                          ("signal:mean_logprob:-0.3", "mean_logprob")])
def test_abstain_gate_on_a_squad_v2_question(slm, llm, gate, signal):
    """SQuAD v2.0 style: the passage does not answer the question. Gemma answers from its own
    knowledge ('Berlin', not in the passage, and unsure); the abstain gate abstains. On the
    answerable question it accepts."""
    c = Cascade([Tier("small", slm), Tier("large", llm)], [always(), build_router(gate)], gate_labels=["always-llm", gate])
    res = c.answer("What is the capital of Germany?", PASSAGE, task="squad-v2")
    check_result(res)
    last = res.decisions[-1]
    assert (last.after, last.router, last.outcome) == ("large", gate, "abstain")
    assert res.route == "abstain" and res.answer == ""
    assert res.run("large").answer and res.run("large").answer not in PASSAGE  # what it did not say
    assert [r.signal for r in last.reasons] == [signal] and last.reasons[0].fired
    ok = c.answer(QUESTION, PASSAGE, task="squad-v2")
    check_result(ok)
    assert ok.decisions[-1].outcome == "accept" and ok.route == "large" and ok.answer == "Paris"


# --- failing tiers --------------------------------------------------------------------------------


class Broken:
    """A backend whose generate always raises ModelError."""

    family, model_id = "base", "broken-model"

    def __init__(self):
        self.calls = 0

    def generate(self, prompt):
        self.calls += 1
        raise ModelError("broken-model: unreachable (connection refused)")

    def close(self):
        pass


class Fixed:
    """A stub backend answering ``text`` with fixed logprobs."""

    family = "base"

    def __init__(self, text, model_id="fixed"):
        self.text, self.model_id, self.closed = text, model_id, 0

    def generate(self, prompt):
        return Generation(text=self.text, tokens=[self.text], logprobs=[-0.1], prompt_tokens=20,
                          completion_tokens=1, latency_s=0.01, model=self.model_id)

    def close(self):
        self.closed += 1


def test_failing_middle_tier_is_skipped_on_real_models(slm, llm):
    broken = Broken()
    c = Cascade([Tier("small", slm), Tier("medium", broken), Tier("large", llm)], [always(), always()])
    res = c.answer(QUESTION, PASSAGE)
    check_result(res)
    assert broken.calls == 1
    assert [r.tier for r in res.runs] == ["small", "large"]
    assert res.route == "large" and res.answer == "Paris"
    assert res.degraded and res.failures == [TierFailure("medium", "broken-model: unreachable (connection refused)")]
    assert res.error == "medium: broken-model: unreachable (connection refused)"
    assert [d.after for d in res.decisions] == ["small"]  # the failed tier's gate never ran
    assert res.to_dict()["degraded"] is True


def test_failing_last_tier_degrades_to_the_last_answer():
    c = Cascade([Tier("a", Fixed("Paris")), Tier("b", Broken()), Tier("c", Broken())], [always(), always()])
    res = c.answer(QUESTION, PASSAGE)
    assert res.route == "a" and res.answer == "Paris" and [f.tier for f in res.failures] == ["b", "c"]


def test_failing_first_tier_raises_with_the_tier(llm):
    c = Cascade([Tier("small", Broken()), Tier("large", llm)], [always()])
    with pytest.raises(ModelError, match="broken-model") as e:
        c.answer(QUESTION, PASSAGE)
    assert e.value.tier == "small"
    # starting at a failing tier is the same: nothing answered yet
    c = Cascade([Tier("a", Fixed("x")), Tier("b", Broken())], [always()])
    with pytest.raises(ModelError) as e:
        c.answer(QUESTION, PASSAGE, start="b")
    assert e.value.tier == "b"


def test_on_error_raise():
    c = Cascade([Tier("a", Fixed("Paris")), Tier("b", Broken()), Tier("c", Fixed("Lyon"))], [always(), always()],
                on_error="raise")
    with pytest.raises(ModelError, match="unreachable") as e:
        c.answer(QUESTION, PASSAGE)
    assert e.value.tier == "b"


# --- construction -----------------------------------------------------------------------------------


def test_duplicate_and_reserved_tier_names():
    with pytest.raises(ValueError, match="duplicate tier name 'a'"):
        Cascade([Tier("a", Fixed("x")), Tier("b", Fixed("y")), Tier("a", Fixed("z"))], [always(), always()])
    for name in RESERVED_NAMES:
        with pytest.raises(ValueError, match=f"tier name '{name}' is reserved"):
            Cascade([Tier("a", Fixed("x")), Tier(name, Fixed("y"))], [always()])
    with pytest.raises(ValueError, match="must be 1-64 ASCII letters"):
        check_tier_names(["a", " "])
    check_tier_names(["small", "medium", "large"])


@pytest.mark.parametrize("n_gates", [0, 3])
def test_wrong_gate_count(n_gates):
    with pytest.raises(ValueError, match=f"2 tiers need 1 gates .* got {n_gates}"):
        Cascade([Tier("a", Fixed("x")), Tier("b", Fixed("y"))], [always()] * n_gates)


def test_missing_gate_and_no_tier():
    with pytest.raises(ValueError, match="the gate after tier 'a' is missing"):
        Cascade([Tier("a", Fixed("x")), Tier("b", Fixed("y"))], [None])
    with pytest.raises(ValueError, match="at least one tier"):
        Cascade([], [])
    # None as the last entry: no abstain gate
    c = Cascade([Tier("a", Fixed("x")), Tier("b", Fixed("y"))], [always(), None])
    assert c.abstain_gate is None and c.answer(QUESTION, PASSAGE).route == "b"


def test_close_closes_a_shared_backend_once():
    shared, other = Fixed("x"), Fixed("y")
    c = Cascade([Tier("a", shared), Tier("b", shared), Tier("c", other)], [always(), always()])
    c.close()
    assert (shared.closed, other.closed) == (1, 1)


def test_gate_labels_default_to_the_router_kind():
    c = Cascade([Tier("a", Fixed("x")), Tier("b", Fixed("y"))], [get_router("seed-v1")])
    assert c.gate_labels == ["threshold"] and c.names == ["a", "b"]
    with pytest.raises(ValueError, match="unknown tier 'z'; tiers: a, b"):
        c.tier("z")


# --- [[tiers]] configuration ------------------------------------------------------------------------

THREE_TIERS = """
[[tiers]]
name = "small"
model = "smollm2-135m"
router = "seed-v1"

[[tiers]]
name = "medium"
model = "gemma3-270m"
router = "signal:mean_logprob:-0.3"

[[tiers]]
name = "large"
model = "gemma3-270m"
"""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_three_tier_config_parses_with_gate_labels(tmp_path):
    cfg = load_config(write(tmp_path, "three.toml", THREE_TIERS))
    assert cfg.names == ["small", "medium", "large"]
    assert [t.model for t in cfg.tiers] == ["smollm2-135m", "gemma3-270m", "gemma3-270m"]
    assert cfg.gate_labels() == ["seed-v1", "signal:mean_logprob:-0.3"]
    assert not cfg.legacy_pair
    gates = cfg.build_gates()
    assert len(gates) == 2
    assert isinstance(gates[0], ThresholdRouter) and gates[0].name == "seed-v1"
    assert isinstance(gates[1], SignalRouter) and gates[1].signal == "mean_logprob"
    assert gates[1].escalate({"mean_logprob": -0.31}) and not gates[1].escalate({"mean_logprob": -0.3})
    assert cfg.gate_spec(2) is None  # no abstain gate
    assert [t.price_or_default() for t in cfg.tiers][1].prompt_per_mtok == 0.10


def test_the_three_tier_example_file():
    cfg = load_config(EXAMPLES / "three-tier.toml")
    assert cfg.names == ["small", "medium", "large"]
    assert [t.model for t in cfg.tiers] == ["smollm2-135m", "gemma3-270m", "gemma3-270m"]
    assert [t.threads for t in cfg.tiers] == [2, 2, 2]
    assert cfg.gate_labels() == ["seed-v1", "signal:mean_logprob:-0.3"]
    assert (cfg.max_tokens, cfg.on_llm_error) == (24, "degrade")


def test_a_tier_without_router_gets_seed_v1():
    cfg = config_from_dict({"tiers": [{"name": "a", "model": "smollm2-135m"}, {"name": "b", "model": "gemma3-270m"}]})
    assert cfg.gate_labels() == ["seed-v1"] and len(cfg.build_gates()) == 1


def test_router_on_the_last_tier_is_the_abstain_gate(tmp_path):
    text = THREE_TIERS + 'router = "signal:context_support:0.5"\n'
    cfg = load_config(write(tmp_path, "abstain.toml", text))
    gates = cfg.build_gates()
    assert len(gates) == 3
    assert isinstance(gates[2], SignalRouter) and gates[2].signal == "context_support"
    assert cfg.gate_labels()[-1] == "signal:context_support:0.5"


@pytest.mark.parametrize("section", ["slm", "llm", "router"])
def test_tiers_mixed_with_legacy_sections_is_an_error(tmp_path, section):
    extra = f'\n[{section}]\nname = "seed-v1"\n' if section == "router" else f'\n[{section}]\nmodel = "smollm2-135m"\n'
    path = write(tmp_path, "mixed.toml", THREE_TIERS + extra)
    with pytest.raises(ConfigError, match=rf"mixed\.toml: \[\[tiers\]\] cannot be mixed with \[{section}\]"):
        load_config(path)


def test_duplicate_tier_name_is_a_config_error(tmp_path):
    path = write(tmp_path, "dup.toml", THREE_TIERS.replace('name = "large"', 'name = "small"'))
    with pytest.raises(ConfigError, match="duplicate tier name 'small'") as e:
        load_config(path)
    assert "dup.toml" in str(e.value)


@pytest.mark.parametrize("tiers, match", [
    ([{"model": "smollm2-135m"}], r"\[\[tiers\]\] #1 needs a 'name' field"),
    ([{"name": "a"}], "needs a 'model' field"),
    ([{"name": "cache", "model": "smollm2-135m"}], "reserved"),
    ([{"name": "a", "model": "smollm2-135m", "router": "seed-v9"}], r"\[\[tiers\]\] a router unknown router 'seed-v9'"),
    ([{"name": "a", "model": "smollm2-135m", "router": {"kind": "bogus"}}],
     r"^inline: \[\[tiers\]\] a router: 'kind' must be one of .*; got 'bogus'$"),
    ([{"name": "a", "model": "smollm2-135m", "price": {"per_token": 1}}], r"#1 \(a\) price unknown field\(s\) \['per_token'\]"),
    ([], "non-empty array"),
])
def test_bad_tiers_are_config_errors(tiers, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict({"tiers": tiers}, source="inline")


def test_relative_router_path_resolves_against_the_config_folder(tmp_path, monkeypatch):
    get_router("seed-v2").save(tmp_path / "gate.json")
    path = write(tmp_path, "rel.toml", THREE_TIERS.replace('router = "seed-v1"', 'router = "gate.json"'))
    monkeypatch.chdir(EXAMPLES)  # not where the router is: the path must not depend on the cwd
    cfg = load_config(path)
    assert cfg.first.router == str(tmp_path / "gate.json")
    gate = cfg.build_gates()[0]
    assert isinstance(gate, ThresholdRouter) and gate.name == "seed-v2"
    # and in the table form, and for the legacy [router] section
    cfg = load_config(write(tmp_path, "tab.toml", '[router]\npath = "gate.json"\n'))
    assert cfg.first.router == {"path": str(tmp_path / "gate.json")} and cfg.build_router().name == "seed-v2"
    # a GGUF path resolves the same way
    cfg = load_config(write(tmp_path, "g.toml", '[[tiers]]\nname = "x"\nmodel = "models/m.gguf"\n'))
    assert cfg.first.model == str(tmp_path / "models" / "m.gguf")


def test_missing_relative_router_names_the_resolved_path(tmp_path):
    path = write(tmp_path, "nogate.toml", THREE_TIERS.replace('router = "seed-v1"', 'router = "gate.json"'))
    with pytest.raises(ConfigError, match="router file not found") as e:
        load_config(path)
    assert str(tmp_path / "gate.json") in str(e.value)


def test_legacy_two_tier_example_files(tmp_path):
    cfg = load_config(EXAMPLES / "cascade.toml")
    assert cfg.names == ["slm", "llm"] and cfg.legacy_pair
    assert [t.model for t in cfg.tiers] == ["smollm2-135m", "gemma3-270m"]
    assert cfg.gate_labels() == ["seed-v1"]
    (gate,) = cfg.build_gates()
    assert isinstance(gate, ThresholdRouter) and gate.name == "seed-v1"
    # the OpenAI example's router.json is found beside the config file
    shutil.copy(EXAMPLES / "cascade-openai.toml", tmp_path / "cascade-openai.toml")
    LogisticRouter(signals=["mean_logprob"]).fit([{"mean_logprob": -x / 4} for x in range(8)], [0] * 4 + [1] * 4) \
        .save(tmp_path / "router.json")
    cfg = load_config(tmp_path / "cascade-openai.toml")
    assert cfg.names == ["slm", "llm"] and cfg.last.model == "gpt-4o-mini@https://api.openai.com/v1"
    assert cfg.last.price_or_default() == TierPrice(prompt_per_mtok=0.15, completion_per_mtok=0.60)
    assert isinstance(cfg.build_router(), LogisticRouter) and cfg.gate_labels() == [str(tmp_path / "router.json")]
