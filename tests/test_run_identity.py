"""A run's sample and prompt identity: ``--exclude-ids`` (a dev slice left out before sampling)
and per-tier prompt revisions (a changed prompt is never mixed with old generations, while a
tier whose prompt did not change can be reused)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cascade_router import prompts
from cascade_router.cli import main
from cascade_router.config import CascadeConfig
from cascade_router.datasets import DatasetError, exclude, load_dataset, read_id_list, sample
from cascade_router.evaluation.runs import RunError, identity_for, open_run, reusable, tier_prompt_revisions
from cascade_router.evaluation.store import RunStore


def _squad_file(tmp_path, n=6):
    data = tmp_path / "dev.json"
    arts = [{"title": f"T{i}", "paragraphs": [{"context": f"Thing {i} is a{i}.", "qas": [
        {"id": f"q{i}", "question": f"What is thing {i}?", "answers": [{"text": f"a{i}", "answer_start": 12}]}]}]}
        for i in range(1, n + 1)]
    data.write_text(json.dumps({"version": "1.1", "data": arts}))
    return data


def test_read_id_list_skips_comments_and_names_bad_lines(tmp_path):
    f = tmp_path / "ids.txt"
    f.write_text("# dev slice\n\nq1\n  q3  \n")
    assert read_id_list(str(f)) == ["q1", "q3"]
    f.write_text("q1\nq2 q3\n")
    with pytest.raises(DatasetError, match=r"ids.txt line 2: expected one question id"):
        read_id_list(str(f))
    f.write_text("q1\n#\nq1\n")
    with pytest.raises(DatasetError, match=r"ids.txt line 3: question id 'q1' is listed twice"):
        read_id_list(str(f))
    with pytest.raises(DatasetError, match="missing.txt: cannot read"):
        read_id_list(str(tmp_path / "missing.txt"))
    f.write_bytes(b"\xef\xbb\xbfq3\r\nq4\r\n")  # a byte-order mark and Windows line ends
    assert read_id_list(str(f)) == ["q3", "q4"]
    f.write_bytes(b"\xff\xfe\x00q")
    with pytest.raises(DatasetError, match="cannot read"):
        read_id_list(str(f))


def test_exclude_keeps_order_and_refuses_ids_of_another_dataset(tmp_path):
    exs = load_dataset("squad-v1.1", _squad_file(tmp_path))
    assert [e.id for e in exclude(exs, ["q2", "q5"])] == ["q1", "q3", "q4", "q6"]
    with pytest.raises(DatasetError, match=r"dev.txt: 1 question id\(s\) not in the dataset, e.g. zz"):
        exclude(exs, ["q1", "zz"], source="dev.txt")


def test_the_bundled_hotpotqa_dev_slice_is_the_seeded_sample():
    from importlib import resources

    path = resources.files("cascade_router.data").joinpath("hotpotqa-prompt-dev-ids.txt")
    ids = read_id_list(str(path))
    pool = load_dataset("hotpotqa")
    assert ids == [e.id for e in sample(pool, 40, seed=123)]
    assert len(exclude(pool, ids)) == 460


def test_identity_records_exclusion_and_open_run_rebuilds_the_sample(tmp_path):
    data = _squad_file(tmp_path)
    cfg = CascadeConfig()  # the embedded pair: both tiers of the base family
    pool = exclude(load_dataset("squad-v1.1", data), ["q4", "q2"])
    exs = sample(pool, 3, seed=1)
    ident = identity_for(cfg, "squad-v1.1", str(data), 3, 1, exs, ["q4", "q2"])
    assert ident["exclude_ids"] == ["q2", "q4"] and ident["prompt_version"] == 1 and ident["questions"] == 3
    store = RunStore(tmp_path / "run")
    store.bind(ident)
    store.close()
    got_ident, got = open_run(tmp_path / "run")
    assert [e.id for e in got] == [e.id for e in exs] and not {"q2", "q4"} & {e.id for e in got}
    # the same sample without the exclusion is another run: refused rather than mixed
    other = identity_for(CascadeConfig(), "squad-v1.1", str(data), 3, 1, sample(load_dataset("squad-v1.1", data), 3, seed=1))
    store = RunStore(tmp_path / "run")
    with pytest.raises(ValueError, match="sample_sha256"):
        store.bind(other)
    store.close()


def test_a_new_prompt_revision_changes_the_identity_and_reuses_only_unchanged_tiers(tmp_path, monkeypatch):
    data = _squad_file(tmp_path)
    cfg = CascadeConfig()
    cfg.tiers[0].family = "chat"  # the LLM keeps its embedded default, base
    exs = sample(load_dataset("squad-v1.1", data), None)
    old = identity_for(cfg, "squad-v1.1", str(data), None, 0, exs)
    assert old["prompt_version"] == 1 and tier_prompt_revisions(old) == {"slm": 1, "llm": 1}
    monkeypatch.setitem(prompts.PROMPT_REVISIONS, ("squad", "chat", "standard"), 2)
    new = identity_for(cfg, "squad-v1.1", str(data), None, 0, exs)
    assert new["prompt_version"] == {"slm": 2, "llm": 1}
    assert reusable(new, old) == ["llm"]  # the LLM's base prompt did not change
    store = RunStore(tmp_path / "run")
    store.bind(old)
    with pytest.raises(ValueError, match="prompt_version: stored 1"):
        store.bind(new)
    store.close()
    monkeypatch.setitem(prompts.PROMPT_REVISIONS, ("squad", "base", "standard"), 2)
    with pytest.raises(RunError, match="every tier's prompt changed"):
        reusable(identity_for(cfg, "squad-v1.1", str(data), None, 0, exs), old)


def test_eval_exclude_ids_bad_file_is_a_one_line_error(tmp_path):
    f = tmp_path / "ids.txt"
    f.write_text("not-a-hotpot-id\n")
    r = CliRunner().invoke(main, ["eval", "--dataset", "hotpotqa", "--exclude-ids", str(f), "--out", str(tmp_path / "r")])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert r.stderr.strip() == (f"error: --exclude-ids {f}: 1 question id(s) not in the dataset, e.g. not-a-hotpot-id")
    assert not (tmp_path / "r").exists()


def test_the_embedded_pair_on_hotpotqa_reuses_only_the_llm_of_a_revision_1_run():
    """SmolLM2 is asked HotpotQA with the reminded prompt (revision 2), Gemma with revision 1,
    so a run made before (prompt_version 1, like results/hotpotqa-all) lends only its LLM rows."""
    exs = load_dataset("hotpotqa")[:3]
    ident = identity_for(CascadeConfig(), "hotpotqa", None, None, 0, exs)
    assert ident["prompt_version"] == {"slm": 2, "llm": 1}
    old = dict(ident, prompt_version=1)
    assert reusable(ident, old) == ["llm"]


def test_resume_with_another_exclusion_list_is_refused_even_for_the_same_sample(tmp_path):
    data = _squad_file(tmp_path)
    exs = sample(load_dataset("squad-v1.1", data), 2, seed=0)  # q3, q4 below are not in it
    plain = identity_for(CascadeConfig(), "squad-v1.1", str(data), 2, 0, exs)
    excl = identity_for(CascadeConfig(), "squad-v1.1", str(data), 2, 0, exs, ["q5", "q6"])
    for first, then in ((excl, plain), (plain, excl)):
        store = RunStore(tmp_path / f"run{len(first)}")
        store.bind(first)
        with pytest.raises(ValueError, match="exclude_ids: stored"):
            store.bind(then)
        store.close()


def test_eval_exclude_ids_empty_path_and_everything_excluded(tmp_path):
    data = _squad_file(tmp_path, n=2)
    base = ["eval", "--dataset", "squad-v1.1", "--data", str(data), "--out", str(tmp_path / "r")]
    r = CliRunner().invoke(main, [*base, "--exclude-ids", ""])
    assert r.exit_code == 2 and r.stderr.strip() == "error: --exclude-ids: the path is empty"
    f = tmp_path / "all.txt"
    f.write_text("q1\nq2\n")
    r = CliRunner().invoke(main, [*base, "--exclude-ids", str(f)])
    assert r.exit_code == 2
    assert r.stderr.strip() == f"error: squad-v1.1: no questions to evaluate (--exclude-ids {f} left out 2)"
