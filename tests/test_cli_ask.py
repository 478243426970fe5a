"""The `ask` and `models` commands: exit codes, one-line errors, JSON output, model listing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import cascade_router.config as config_mod
from cascade_router.cli import main
from cascade_router.models.base import Generation, ModelError
from cascade_router.models.registry import CACHE_ENV, EMBEDDED
from cascade_router.routers import ROUTER_NAMES
from cascade_router.signals import SIGNALS

PASSAGE = "Paris is the capital and largest city of France."
QUESTION = "What is the capital of France?"


def run(*args, env=None):
    return CliRunner().invoke(main, list(args), env=env)


def assert_one_line_error(result, code, *needles):
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for n in needles:
        assert n in lines[0]
    assert result.stdout == ""


# --- bad input: exit 2, one line -----------------------------------------------------------------


@pytest.mark.parametrize("q", ["", "   "])
def test_empty_question(q):
    assert_one_line_error(run("ask", "-q", q), 2, "--question is empty")


@pytest.mark.parametrize("c", ["", "   ", "\n\t"])
def test_empty_context(c, tmp_path):
    assert_one_line_error(run("ask", "-q", "Who?", "-c", c), 2, "--context is empty")
    f = tmp_path / "passage.txt"
    f.write_text(c)
    assert_one_line_error(run("ask", "-q", "Who?", "--context-file", str(f)), 2, "is empty")
    f.write_text("\ufeff\u200b" + c + "\x00")  # byte-order mark, zero-width space, NUL: nothing visible
    assert_one_line_error(run("ask", "-q", "Who?", "--context-file", str(f)), 2, "is empty")


def test_empty_question_exit_code_in_a_real_process():
    exe = Path(sys.executable).with_name("cascade-router")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from cascade_router.cli import main; main()"]
    p = subprocess.run([*cmd, "ask", "--question", " "], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "NO_COLOR": "1"})
    assert p.returncode == 2
    assert p.stderr == "error: --question is empty\n"
    assert p.stdout == ""


@pytest.mark.parametrize("opt", ["--slm", "--llm"])
def test_unknown_model_lists_valid_models(opt):
    r = run("ask", "-q", QUESTION, opt, "gpt-5")
    assert_one_line_error(r, 2, f"{opt}: unknown model 'gpt-5'", "smollm2-135m", "gemma3-270m", "MODEL@BASE_URL")


def test_missing_gguf_file(tmp_path):
    r = run("ask", "-q", QUESTION, "--slm", str(tmp_path / "nope.gguf"))
    assert_one_line_error(r, 2, "model file not found", "nope.gguf")


def test_unknown_router_lists_valid_names():
    r = run("ask", "-q", QUESTION, "--router", "seed-v9")
    assert_one_line_error(r, 2, "unknown router 'seed-v9'", *ROUTER_NAMES)


def test_context_and_context_file_conflict(tmp_path):
    f = tmp_path / "p.txt"
    f.write_text(PASSAGE)
    assert_one_line_error(run("ask", "-q", QUESTION, "-c", PASSAGE, "--context-file", str(f)), 2, "not both")
    assert_one_line_error(run("ask", "-q", QUESTION, "--context-file", str(tmp_path / "x.txt")), 2, "x.txt")


def test_bad_config_names_file_and_field(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[slm]\nmodel = "smollm2-135m"\ngpu_layers = 3\n')
    assert_one_line_error(run("ask", "-q", QUESTION, "--config", str(cfg)), 2, "bad.toml", "gpu_layers")


def test_bad_task_is_a_usage_error():
    r = run("ask", "-q", QUESTION, "--task", "trivia")
    assert r.exit_code == 2 and "trivia" in r.output


# --- answering (the session's embedded models, shared) -------------------------------------------


def test_ask_json(shared_models):
    r = run("ask", "-q", QUESTION, "-c", PASSAGE, "--json", "--threads", "2", "--router", "seed-v1")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["route"] in ("slm", "llm")
    assert d["answer"] == "Paris"
    first = d["runs"][0]
    assert first["tier"] == "slm" and first["model"] == "smollm2-135m"
    assert set(first["signals"]) == set(SIGNALS)
    assert first["signals"]["length_words"] == len(first["answer"].split()) >= 1
    (gate,) = d["decisions"]
    assert gate["after"] == "slm" and gate["router"] == "seed-v1"
    assert d["escalated"] == (d["route"] == "llm") == (gate["score"] > gate["threshold"])
    assert gate["outcome"] == ("escalate" if d["escalated"] else "accept")
    assert [x["tier"] for x in d["runs"]] == (["slm", "llm"] if d["escalated"] else ["slm"])
    assert d["question"] == QUESTION and first["generation"]["model"] == "smollm2-135m"
    assert first["generation"]["logprobs"] and len(first["generation"]["tokens"]) == len(first["generation"]["logprobs"])
    assert d["degraded"] is False and d["failures"] == [] and d["start"] == "slm"
    assert d["total_tokens"] == sum(x["generation"]["prompt_tokens"] + x["generation"]["completion_tokens"]
                                    for x in d["runs"])
    assert [s for s, _ in shared_models] == ["smollm2-135m", "gemma3-270m"]
    assert all(kw["threads"] == 2 for _, kw in shared_models)


def test_ask_text_explains_the_route(shared_models):
    r = run("ask", "-q", QUESTION, "-c", PASSAGE, "--router", "always-llm")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == "Paris"
    assert "gate after slm (always-llm): score inf vs threshold 0 -> escalate" in lines
    assert "answered by: llm (gemma3-270m)" in lines
    assert lines.index("gate after slm (always-llm): score inf vs threshold 0 -> escalate") < lines.index(
        "answered by: llm (gemma3-270m)")
    assert "\nslm answer: '" in r.stdout and "\nllm answer: 'Paris'" in r.stdout
    assert not any("escalate if" in ln for ln in lines)  # always-llm uses no signal
    assert not any("failed" in ln for ln in lines)
    assert lines[-1].startswith("tokens: ") and "latency: " in lines[-1] and "cost: $" in lines[-1]


def test_ask_text_lists_seed_v1_reasons(shared_models):
    r = run("ask", "-q", QUESTION, "-c", PASSAGE, "--router", "seed-v1")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    gate = [ln for ln in lines if ln.startswith("gate after ")]
    assert len(gate) == 1 and gate[0].startswith("gate after slm (seed-v1): score ")
    reasons = [ln.strip() for ln in lines if "escalate if" in ln]
    assert [x.split()[0] for x in reasons] == ["length_words", "mean_entropy", "mean_logprob"]
    assert "escalate if > 8" in reasons[0] and "escalate if > 1.5" in reasons[1] and "escalate if < -0.6" in reasons[2]
    fired = any(x.endswith("[ESCALATE]") for x in reasons)
    assert gate[0].endswith("-> escalate" if fired else "-> accept")
    assert (("answered by: llm (gemma3-270m)" if fired else "answered by: slm (smollm2-135m)") in lines)
    # the reasons are printed right under their gate line
    assert lines.index(gate[0]) + 1 == next(i for i, ln in enumerate(lines) if "escalate if" in ln)


def test_ask_open_question_without_passage(shared_models):
    r = run("ask", "-q", "What is the capital of France?", "--router", "always-slm", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["route"] == "slm" and not d["escalated"]
    assert [x["tier"] for x in d["runs"]] == ["slm"] and d["decisions"][0]["outcome"] == "accept"


def test_ask_json_is_strict_json_for_always_routers(shared_models):
    r = run("ask", "-q", QUESTION, "-c", PASSAGE, "--json", "--router", "always-llm")
    assert r.exit_code == 0, r.output

    def reject(token):
        raise ValueError(f"not JSON: {token}")

    d = json.loads(r.stdout, parse_constant=reject)
    assert d["route"] == "llm"
    assert d["decisions"][0]["score"] == "inf"  # +inf as a string, not the non-JSON Infinity


# --- N tiers, failures, abstention (stub tiers beside the shared models) ---------------------------


class _Broken:
    """A backend whose every call fails."""

    family, model_id = "base", "broken"

    def generate(self, prompt):
        raise ModelError("broken: unreachable (connection refused)")

    def close(self):
        pass


class _Silent:
    """A backend that always answers with nothing."""

    family, model_id = "base", "silent"

    def generate(self, prompt):
        return Generation(text="", tokens=[], logprobs=[], prompt_tokens=10, completion_tokens=0, model="silent")

    def close(self):
        pass


@pytest.fixture
def stub_models(shared_models, monkeypatch):
    """As shared_models, plus the config model names ``broken`` and ``silent`` (stub backends)."""
    real = config_mod.load_model

    def load(spec, **kw):
        if spec == "broken":
            return _Broken()
        if spec == "silent":
            return _Silent()
        return real(spec, **kw)

    monkeypatch.setattr(config_mod, "load_model", load)
    return shared_models


def tiers_toml(tmp_path, *tiers):
    """A [[tiers]] config file: each tier ``(name, model, router or None)``, threads = 2."""
    text = ""
    for name, model, router in tiers:
        text += f'[[tiers]]\nname = "{name}"\nmodel = "{model}"\nthreads = 2\n'
        text += f'router = "{router}"\n\n' if router else "\n"
    p = tmp_path / "tiers.toml"
    p.write_text(text)
    return str(p)


def test_ask_first_tier_failure_exits_1_naming_the_tier(stub_models, tmp_path):
    cfg = tiers_toml(tmp_path, ("front", "broken", "always-llm"), ("back", "gemma3-270m", None))
    assert_one_line_error(run("ask", "-q", QUESTION, "-c", PASSAGE, "--config", cfg), 1,
                          "tier front", "unreachable")


def test_ask_degraded_middle_tier_is_reported(stub_models, tmp_path):
    cfg = tiers_toml(tmp_path, ("small", "smollm2-135m", "always-llm"), ("medium", "broken", "always-llm"),
                     ("large", "gemma3-270m", None))
    r = run("ask", "-q", QUESTION, "-c", PASSAGE, "--config", cfg)
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == "Paris"
    assert [ln for ln in lines if ln.startswith("gate after ")] == [
        "gate after small (always-llm): score inf vs threshold 0 -> escalate"]
    assert "answered by: large (gemma3-270m)" in lines
    assert "tier medium failed: broken: unreachable (connection refused) (degraded)" in lines
    assert [ln.split(" answer: ")[0] for ln in lines if " answer: " in ln] == ["small", "large"]
    d = json.loads(run("ask", "-q", QUESTION, "-c", PASSAGE, "--config", cfg, "--json").stdout)
    assert d["degraded"] is True and d["route"] == "large"
    assert [f["tier"] for f in d["failures"]] == ["medium"]


def test_ask_abstain_gate_and_empty_answer(stub_models, tmp_path):
    cfg = tiers_toml(tmp_path, ("slm", "smollm2-135m", "always-llm"), ("llm", "gemma3-270m", "always-llm"))
    r = run("ask", "-q", QUESTION, "-c", PASSAGE, "--config", cfg)
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == "(abstained: the passage does not answer the question)"
    assert [ln for ln in lines if ln.startswith("gate after ")] == [
        "gate after slm (always-llm): score inf vs threshold 0 -> escalate",
        "gate after llm (always-llm): score inf vs threshold 0 -> abstain"]
    assert "answered by: abstain" in lines and "llm answer: 'Paris'" in lines
    d = json.loads(run("ask", "-q", QUESTION, "-c", PASSAGE, "--config", cfg, "--json").stdout)
    assert (d["route"], d["answer"]) == ("abstain", "")
    assert d["cost_usd"] == pytest.approx(sum(x["cost_usd"] for x in d["runs"])) and d["cost_usd"] > 0

    silent = tiers_toml(tmp_path, ("only", "silent", None))
    r = run("ask", "-q", QUESTION, "-c", PASSAGE, "--config", silent)
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == "(no answer)" and "answered by: only (silent)" in lines
    assert not any(ln.startswith("gate after ") for ln in lines)


def test_ask_three_tier_example_prints_every_gate(shared_models):
    example = str(Path(__file__).resolve().parent.parent / "examples" / "three-tier.toml")
    # the SLM is unsure (seed-v1 escalates), the medium tier's Gemma answer is not confident
    # enough (mean logprob < -0.3): both gates escalate and the large tier answers
    r = run("ask", "--config", example, "-q", "What is the capital of Germany?", "-c", PASSAGE, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    r = run("ask", "--config", example, "-q", "What is the capital of Germany?", "-c", PASSAGE)
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    gates = [ln for ln in lines if ln.startswith("gate after ")]
    assert [g.split(": score ")[0] for g in gates] == [f"gate after {x['after']} ({x['router']})" for x in d["decisions"]]
    assert gates[0].startswith("gate after small (seed-v1): score ")
    assert [g.rsplit("-> ", 1)[1] for g in gates] == [x["outcome"] for x in d["decisions"]]
    assert [x["outcome"] for x in d["decisions"]] == ["escalate", "escalate"]
    assert gates[1].startswith("gate after medium (signal:mean_logprob:-0.3): score ")
    assert "answered by: large (gemma3-270m)" in lines and d["route"] == "large"
    assert [ln.split(" answer: ")[0] for ln in lines if " answer: " in ln] == ["small", "medium", "large"]
    # the mean_logprob reason under the medium gate, beside its threshold
    under = lines[lines.index(gates[1]) + 1]
    assert under.split()[0] == "mean_logprob" and "escalate if < -0.3" in under and under.endswith("[ESCALATE]")
    # one Gemma for both Gemma tiers (same spec and options), threads = 2 from the file
    assert [s for s, _ in shared_models] == ["smollm2-135m", "gemma3-270m"] * 2
    assert all(kw["threads"] == 2 for _, kw in shared_models)

    # on an easy question the gates accept earlier; with --router always-llm the first gate
    # escalates and the medium gate decides
    r = run("ask", "--config", example, "-q", QUESTION, "-c", PASSAGE, "--router", "always-llm")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    gates = [ln for ln in lines if ln.startswith("gate after ")]
    assert gates[0] == "gate after small (always-llm): score inf vs threshold 0 -> escalate"
    assert gates[1].startswith("gate after medium (signal:mean_logprob:-0.3): score ")
    assert lines[0] == "Paris"
    route = next(ln for ln in lines if ln.startswith("answered by: "))
    assert route == ("answered by: medium (gemma3-270m)" if gates[1].endswith("-> accept")
                     else "answered by: large (gemma3-270m)")


# --- models ---------------------------------------------------------------------------------------


def test_models_lists_both_embedded_models_as_ready():
    for m in EMBEDDED.values():
        m.path(prepare=True)  # no-op when the file is there (Gemma is assembled once)
    r = run("models")
    assert r.exit_code == 0, r.output
    heads = [ln for ln in r.stdout.splitlines() if ln and not ln.startswith(" ")]
    ready = {ln.split()[0]: ln for ln in heads if ln.split()[0] in EMBEDDED}
    assert set(ready) == {"smollm2-135m", "gemma3-270m"}
    assert ready["smollm2-135m"].split()[1] == "SLM" and ready["gemma3-270m"].split()[1] == "LLM"
    assert all(ln.rstrip().endswith("ready") for ln in ready.values())
    assert "cache directory:" in r.stdout


def test_models_with_an_empty_cache_dir(tmp_path):
    r = run("models", env={CACHE_ENV: str(tmp_path)})
    assert r.exit_code == 0, r.output
    gemma = next(ln for ln in r.stdout.splitlines() if ln.startswith("gemma3-270m"))
    assert "not built yet" in gemma and "models --prepare" in gemma
    smol = next(ln for ln in r.stdout.splitlines() if ln.startswith("smollm2-135m"))
    assert smol.rstrip().endswith("ready")
    assert f"cache directory: {tmp_path}" in r.stdout
    assert not (tmp_path / "models").exists()  # listing builds nothing


def test_models_json(tmp_path):
    r = run("models", "--json", env={CACHE_ENV: str(tmp_path)})
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    by = {m["name"]: m for m in d["models"]}
    assert set(by) == {"smollm2-135m", "gemma3-270m"} and by["smollm2-135m"]["ready"] is True
    assert by["gemma3-270m"]["ready"] is False and "models --prepare" in by["gemma3-270m"]["state"]
    assert d["embedder"]["ready"] is True and d["embedder"]["path"].endswith("model.onnx")
    assert d["cache_dir"] == str(tmp_path)
