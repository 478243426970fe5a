"""The committed runs under results/ are the project's reference numbers: `report` on each gives
the numbers committed in its summary.json (no model runs; the stored generations are re-scored).

Each run is copied to a temporary folder first, so the committed files are never rewritten, and
the copied database must come out byte-identical (reading a run never migrates it).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cascade_router.cli import main

RESULTS = Path(__file__).resolve().parents[1] / "results"
RUNS = sorted(p.name for p in RESULTS.iterdir()
              if (p / "generations.sqlite").is_file() and (p / "summary.json").is_file())


def _same(a, b, path="") -> None:
    """``b`` holds everything ``a`` holds, equal up to float rounding (1e-9 relative)."""
    if isinstance(a, dict):
        assert isinstance(b, dict), path
        missing = set(a) - set(b)
        assert not missing, f"{path}: missing keys {sorted(missing)}"
        for k in a:
            _same(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, (int, float)):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), f"{path}: {a} != {b}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def test_there_are_committed_runs():
    assert {"squad-v1.1-n1000", "squad-v2.0-n1000", "hotpotqa-all"} <= set(RUNS)


@pytest.mark.parametrize("name", RUNS)
def test_report_reproduces_committed_numbers(tmp_path, name):
    src = RESULTS / name
    dst = tmp_path / name
    dst.mkdir()
    for f in ("generations.sqlite", "summary.json"):
        shutil.copy(src / f, dst / f)
    before = (dst / "generations.sqlite").read_bytes()
    committed = json.loads((src / "summary.json").read_text())
    r = CliRunner().invoke(main, ["report", str(dst)])
    assert r.exit_code == 0, r.output
    new = json.loads((dst / "summary.json").read_text())
    for key in ("identity", "scored_questions", "errors", "prompt_cache", "prices", "points", "split",
                "crossfit", "baselines", "curves", "ranking", "pregen"):
        _same(committed[key], new[key], key)
    assert new["tiers"] == committed.get("tiers", ["slm", "llm"])
    for key in ("chain", "abstain", "self_consistency", "self_check"):  # sections present only in some runs
        if key in committed:
            _same(committed[key], new[key], key)
    assert (dst / "generations.sqlite").read_bytes() == before  # read, never migrated
    # the committed predictions and per-question table are what report writes now
    assert (dst / "questions.csv").read_text() == (src / "questions.csv").read_text()
    for p in (src / "predictions").iterdir():
        assert (dst / "predictions" / p.name).read_text() == p.read_text(), p.name
