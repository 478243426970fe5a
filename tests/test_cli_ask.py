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


class _Shared:
    """A session model handed to the CLI; the command's close() must not close the fixture."""

    def __init__(self, backend):
        self._b = backend

    def __getattr__(self, name):
        return getattr(self._b, name)

    def close(self):
        pass


@pytest.fixture
def shared_models(monkeypatch, slm, llm):
    """Make the CLI's model loading return the already-loaded session models; records the calls."""
    calls = []
    by_spec = {"smollm2-135m": slm, "gemma3-270m": llm}

    def fake_load_model(spec, **kw):
        calls.append((spec, kw))
        return _Shared(by_spec[spec])

    monkeypatch.setattr(config_mod, "load_model", fake_load_model)
    return calls


def test_ask_json(shared_models):
    r = run("ask", "-q", QUESTION, "-c", PASSAGE, "--json", "--threads", "2", "--router", "seed-v1")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["route"] in ("slm", "llm")
    assert d["answer"] == "Paris"
    assert set(d["signals"]) == set(SIGNALS)
    assert d["signals"]["length_words"] == len(d["slm_answer"].split()) >= 1
    assert d["escalated"] == (d["route"] == "llm") == (d["decision_score"] > d["threshold"])
    assert d["question"] == QUESTION and d["slm"]["model"] == "smollm2-135m"
    assert d["slm"]["logprobs"] and len(d["slm"]["tokens"]) == len(d["slm"]["logprobs"])
    assert [s for s, _ in shared_models] == ["smollm2-135m", "gemma3-270m"]
    assert all(kw["threads"] == 2 for _, kw in shared_models)


def test_ask_text_explains_the_route(shared_models):
    r = run("ask", "-q", QUESTION, "-c", PASSAGE, "--router", "always-llm")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == "Paris"
    assert "answered by: llm (gemma3-270m); router always-llm escalated" in r.stdout
    assert "\nSLM answer: '" in r.stdout and "\nLLM answer: 'Paris'" in r.stdout
    assert not any("escalate if" in ln for ln in lines)  # always-llm uses no signal
    assert "decision score inf vs threshold 0" in r.stdout


def test_ask_text_lists_seed_v1_reasons(shared_models):
    r = run("ask", "-q", QUESTION, "-c", PASSAGE, "--router", "seed-v1")
    assert r.exit_code == 0, r.output
    reasons = [ln.strip() for ln in r.stdout.splitlines() if "escalate if" in ln]
    assert [x.split()[0] for x in reasons] == ["length_words", "mean_entropy", "mean_logprob"]
    assert "escalate if > 8" in reasons[0] and "escalate if > 1.5" in reasons[1] and "escalate if < -0.6" in reasons[2]
    fired = any(x.endswith("[ESCALATE]") for x in reasons)
    assert ("router seed-v1 escalated" in r.stdout) == fired


def test_ask_open_question_without_passage(shared_models):
    r = run("ask", "-q", "What is the capital of France?", "--router", "always-slm", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["route"] == "slm" and not d["escalated"]


def test_ask_json_is_strict_json_for_always_routers(shared_models):
    r = run("ask", "-q", QUESTION, "-c", PASSAGE, "--json", "--router", "always-llm")
    assert r.exit_code == 0, r.output

    def reject(token):
        raise ValueError(f"not JSON: {token}")

    d = json.loads(r.stdout, parse_constant=reject)
    assert d["route"] == "llm"


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
