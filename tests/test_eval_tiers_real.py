"""`eval`, `report` and `--reuse` on a three-tier cascade of real models: SmolLM2 in-process,
Gemma in-process, and Gemma behind llama.cpp's own OpenAI-compatible HTTP server (the third tier).

The CLI's model loading is pointed at the session's already-loaded models, so no model loads
twice; the endpoint tier is a real HTTP client of a real llama.cpp server.
"""

from __future__ import annotations

import json
import sqlite3

import pytest
from click.testing import CliRunner

from cascade_router.cli import main


@pytest.fixture
def three_tier(shared_models, tmp_path, llm):
    """A config file with small (in-process SmolLM2) -> medium (in-process Gemma) -> large (Gemma
    over HTTP); returns its path."""
    cfg = tmp_path / "three.toml"
    cfg.write_text(f"""
[[tiers]]
name = "small"
model = "smollm2-135m"
router = "always-llm"

[[tiers]]
name = "medium"
model = "gemma3-270m"
router = "signal:mean_logprob:-0.3"

[[tiers]]
name = "large"
model = "gemma3-270m@{llm.base_url}/v1"
family = "base"
api_key_env = "NO_SUCH_KEY_VARIABLE"
retries = 0
""")
    return cfg


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _rows(rd):
    db = sqlite3.connect(rd / "generations.sqlite")
    try:
        return db.execute("SELECT qid, tier, answer, error FROM generations ORDER BY rowid").fetchall()
    finally:
        db.close()


def test_eval_three_tiers_report_and_reuse(three_tier, tmp_path):
    rd = tmp_path / "run3"
    args = ["eval", "--dataset", "squad-v1.1", "--limit", "3", "--config", three_tier, "--out", rd, "--no-progress"]
    r = _cli(*args)
    assert r.exit_code == 0, r.output
    assert "generated 9 (0 copied from a tier sharing the model), resumed past 0, errors 0" in r.stderr
    rows = _rows(rd)
    assert len(rows) == 9 and all(e is None for *_, e in rows)
    by_tier = {t: {q: a for q, t2, a, _ in rows if t2 == t} for t in ("small", "medium", "large")}
    assert set(by_tier["small"]) == set(by_tier["medium"]) == set(by_tier["large"])
    # (the same greedy Gemma in-process and over HTTP agrees on short answers, but a long answer can
    # differ: llama.cpp's numerics depend on how much of the prompt its KV cache already holds)
    assert sum(by_tier["medium"][q] == by_tier["large"][q] for q in by_tier["medium"]) >= 1

    s = json.loads((rd / "summary.json").read_text())
    assert s["tiers"] == ["small", "medium", "large"]
    assert [t["name"] for t in s["identity"]["tiers"]] == ["small", "medium", "large"]
    assert s["identity"]["tiers"][2]["model"].startswith("gemma3-270m@http://127.0.0.1:")
    assert s["scored_questions"] == 3 and s["errors"] == {"small": 0, "medium": 0, "large": 0}
    assert s["gate_specs"] == ["always-llm", "signal:mean_logprob:-0.3"]
    assert set(s["prompt_cache"]) == {"small", "medium", "large"}
    for t in ("small", "medium", "large"):
        assert len(json.loads((rd / "predictions" / f"{t}.json").read_text())) == 3
    # 3 questions split by passage leave too few for the calibrated sections; the fixed pair points exist
    assert set(s["points"]) >= {"always-small", "always-large", "oracle", "seed-v1"}
    md = (rd / "report.md").read_text()
    assert "small (smollm2-135m) -> medium (gemma3-270m) -> large (gemma3-270m@" in md

    # report rebuilds the same numbers from the store alone
    rep = _cli("report", rd)
    assert rep.exit_code == 0, rep.output
    assert json.loads((rd / "summary.json").read_text())["points"] == s["points"]

    # a larger sample reuses the 9 stored generations and makes only the new ones
    rd5 = tmp_path / "run5"
    r5 = _cli("eval", "--dataset", "squad-v1.1", "--limit", "5", "--config", three_tier, "--out", rd5,
              "--no-progress", "--reuse", rd)
    assert r5.exit_code == 0, r5.output
    assert "reused 9 stored generations" in r5.stderr
    assert "generated 6 (0 copied from a tier sharing the model), resumed past 9, errors 0" in r5.stderr
    old = {(q, t): a for q, t, a, _ in rows}
    new = {(q, t): a for q, t, a, _ in _rows(rd5)}
    assert len(new) == 15 and all(new[k] == a for k, a in old.items())

    # a run of another dataset (or other tiers) cannot be reused
    bad = _cli("eval", "--dataset", "squad-v2.0", "--limit", "2", "--config", three_tier, "--out",
               tmp_path / "v2", "--reuse", rd)
    assert bad.exit_code == 2
    assert "cannot reuse its generations (dataset: 'squad-v1.1' there, 'squad-v2.0' here)" in bad.stderr


def test_a_fourth_tier_is_one_more_table(shared_models, tmp_path, llm):
    """Adding a tier is editing the config file only: four tiers, every gate escalating."""
    cfg = tmp_path / "four.toml"
    text = ""
    for name, model in (("t1", "smollm2-135m"), ("t2", "gemma3-270m"), ("t3", "smollm2-135m"),
                        ("t4", f"gemma3-270m@{llm.base_url}/v1")):
        text += f'[[tiers]]\nname = "{name}"\nmodel = "{model}"\nrouter = "always-llm"\n'
        text += 'family = "base"\napi_key_env = "NO_SUCH_KEY_VARIABLE"\nretries = 0\n\n' if "@" in model else "\n"
    cfg.write_text(text.replace('router = "always-llm"\nfamily', 'family'))  # t4: no gate after the last tier
    r = _cli("ask", "-q", "What is the capital of France?", "-c", "Paris is the capital and largest city of France.",
             "--config", cfg, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert [x["tier"] for x in d["runs"]] == ["t1", "t2", "t3", "t4"] and d["route"] == "t4"
    assert [(g["after"], g["outcome"]) for g in d["decisions"]] == [("t1", "escalate"), ("t2", "escalate"), ("t3", "escalate")]
    assert d["answer"] == "Paris"
