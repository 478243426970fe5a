"""Loading the bundled files, sampling/splitting by passage, and rejecting malformed files."""

from __future__ import annotations

import gzip
import hashlib
import json

import pytest

from cascade_router.datasets import (
    DATASETS,
    DatasetError,
    bundled_path,
    load_dataset,
    load_raw,
    sample,
    split_by_passage,
)

SHA256 = {
    "squad-v1.1": "95aa6a52d5d6a735563366753ca50492a658031da74f301ac5238b03966972c9",
    "squad-v2.0": "80a5225e94905956a6446d296ca1093975c4d3b3260f1d6c8f68bc2ab77182d8",
    "hotpotqa": "ee6cc2748082c1e0bc76e442808f8cd6e56a4a3c271bad1c73629899d8f35ac4",
}


@pytest.fixture(scope="module")
def bundled():
    return {name: load_dataset(name) for name in DATASETS}


# --- bundled files -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", DATASETS)
def test_bundled_sha256(name):
    with gzip.open(bundled_path(name), "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == SHA256[name]


def test_bundled_counts(bundled):
    v1, v2, hp = bundled["squad-v1.1"], bundled["squad-v2.0"], bundled["hotpotqa"]
    assert len(v1) == 10_570 and all(e.answerable for e in v1)
    assert len(v2) == 11_873 and sum(e.answerable for e in v2) == 5_928
    assert len(hp) == 500 and all(e.answerable for e in hp)
    assert len({e.passage_id for e in v1}) == 2_067
    assert len({e.passage_id for e in v2}) == 1_204
    assert len({e.passage_id for e in hp}) == 500
    for name, examples in bundled.items():
        assert {e.dataset for e in examples} == {name}
        assert len({e.id for e in examples}) == len(examples)


def test_squad_example_fields(bundled):
    first = bundled["squad-v1.1"][0]
    assert first.id == "56be4db0acb8001400a502ec"
    assert first.question == "Which NFL team represented the AFC at Super Bowl 50?"
    assert first.answers == ["Denver Broncos"] * 3
    assert first.passage_id == "Super_Bowl_50#0"
    assert first.extra["answer_starts"] == [177, 177, 177]
    assert first.context[177:191] == "Denver Broncos"
    unanswerable = next(e for e in bundled["squad-v2.0"] if not e.answerable)
    assert unanswerable.id == "5ad39d53604f3c001a3fe8d1"
    assert unanswerable.answers == [] and unanswerable.extra["is_impossible"] is True
    assert unanswerable.extra["plausible_answers"] == ["Normans"]


def test_hotpot_example_fields(bundled):
    first = bundled["hotpotqa"][0]
    assert first.id == first.passage_id == "5a8b57f25542995d1e6f1371"
    assert first.answers == ["yes"]
    assert first.extra["type"] == "comparison" and first.extra["level"] == "hard"
    assert first.extra["supporting_facts"] == [["Scott Derrickson", 0], ["Ed Wood", 0]]
    blocks = first.context.split("\n\n")
    assert len(blocks) == len(first.extra["paragraphs"]) == 10
    assert blocks[0].startswith("Ed Wood (film): Ed Wood is a 1994 American biographical")
    assert ". The film concerns" in blocks[0]  # sentence's leading space stripped, one space kept
    assert "  " not in first.context


def test_load_raw_shapes():
    assert isinstance(load_raw("squad-v1.1"), list)
    assert load_raw("squad-v2.0")[0]["title"] == "Normans"
    assert load_raw("hotpotqa")[0]["_id"] == "5a8b57f25542995d1e6f1371"


def test_unknown_name():
    with pytest.raises(DatasetError, match="squad-v1.1, squad-v2.0, hotpotqa"):
        load_dataset("squad")
    with pytest.raises(DatasetError):
        bundled_path("nq")


# --- sample / split ------------------------------------------------------------------------------

def _contiguous(examples):
    seen, last = set(), None
    for e in examples:
        if e.passage_id != last:
            assert e.passage_id not in seen, f"passage {e.passage_id} is split"
            seen.add(e.passage_id)
            last = e.passage_id
    return True


def test_sample_is_seeded_exact_and_grouped(bundled):
    v1 = bundled["squad-v1.1"]
    a, b, c = sample(v1, 100, seed=0), sample(v1, 100, seed=0), sample(v1, 100, seed=1)
    assert [e.id for e in a] == [e.id for e in b]
    assert [e.id for e in a] != [e.id for e in c]
    assert len(a) == 100 and _contiguous(a)
    sizes = {pid: sum(e.passage_id == pid for e in v1) for pid in {e.passage_id for e in a}}
    partial = [pid for pid in sizes if sum(e.passage_id == pid for e in a) < sizes[pid]]
    assert len(partial) <= 1  # only the last passage taken may be cut
    assert {e.id for e in a} <= {e.id for e in sample(v1, 300, seed=0)}


def test_sample_edges(bundled):
    hp = bundled["hotpotqa"]
    assert [e.id for e in sample(hp, None)] == [e.id for e in hp]
    assert len(sample(hp, 10_000)) == 500
    assert sample(hp, 0) == []
    with pytest.raises(ValueError):
        sample(hp, -1)
    shuffled = list(reversed(bundled["squad-v2.0"][:40]))
    assert _contiguous(sample(shuffled + shuffled[:3], None))


def test_split_by_passage(bundled):
    v2 = bundled["squad-v2.0"]
    calib, test = split_by_passage(v2, 0.5, seed=0)
    assert len(calib) + len(test) == len(v2)
    assert {e.id for e in calib}.isdisjoint({e.id for e in test})
    assert {e.passage_id for e in calib}.isdisjoint({e.passage_id for e in test})
    assert len({e.passage_id for e in calib}) == 602
    assert _contiguous(calib) and _contiguous(test)
    again, _ = split_by_passage(v2, 0.5, seed=0)
    other, _ = split_by_passage(v2, 0.5, seed=1)
    assert [e.id for e in again] == [e.id for e in calib]
    assert [e.id for e in other] != [e.id for e in calib]
    assert split_by_passage(v2[:50], 0.0)[0] == [] and split_by_passage(v2[:50], 1.0)[1] == []
    with pytest.raises(ValueError):
        split_by_passage(v2, 1.5)


# --- malformed files -----------------------------------------------------------------------------

def _squad_doc(**qa_changes):
    qa = {"id": "q1", "question": "Who?", "answers": [{"text": "Bob", "answer_start": 0}]}
    qa.update(qa_changes)
    qa = {k: v for k, v in qa.items() if v is not None}
    return {"version": "1.1", "data": [{"title": "T", "paragraphs": [
        {"context": "Bob went home.", "qas": [qa]}]}]}


def _write(tmp_path, name, doc):
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_valid_custom_files_load(tmp_path):
    path = _write(tmp_path, "ok.json", _squad_doc())
    assert [e.id for e in load_dataset("squad-v1.1", path)] == ["q1"]
    gz = tmp_path / "ok.json.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert load_dataset("squad-v1.1", str(gz))[0].answers == ["Bob"]
    # offsets at the very end, or not pointing at the text, are tolerated
    answers = [{"text": "Bob", "answer_start": 14}, {"text": "x", "answer_start": 3}]
    doc = _squad_doc(answers=answers)
    assert len(load_dataset("squad-v1.1", _write(tmp_path, "end.json", doc))) == 1


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (_squad_doc(id=None), "question without an id"),
        (_squad_doc(answers=[{"text": "Bob", "answer_start": 15}]), "'q1'.*outside its passage"),
        (_squad_doc(answers=[{"text": "Bob", "answer_start": -1}]), "'q1'.*outside its passage"),
        (_squad_doc(answers=[{"text": "Bob"}]), "'q1'.*answer_start"),
        (_squad_doc(answers=[]), "'q1'.*no answers"),
        (_squad_doc(question=None), "'q1'.*question"),
        ({"data": {"title": "T"}}, "'data' list"),
        ([{"_id": "x"}], "HotpotQA"),
        ({"version": "v2.0", "data": []}, "version"),
    ],
)
def test_malformed_squad(tmp_path, doc, message):
    path = _write(tmp_path, "bad-squad.json", doc)
    with pytest.raises(DatasetError, match=message) as info:
        load_dataset("squad-v1.1", path)
    assert "bad-squad.json" in str(info.value)


def test_duplicate_and_inconsistent_v2(tmp_path):
    doc = _squad_doc()
    doc["data"][0]["paragraphs"][0]["qas"].append(dict(doc["data"][0]["paragraphs"][0]["qas"][0]))
    with pytest.raises(DatasetError, match="'q1'.*duplicate"):
        load_dataset("squad-v1.1", _write(tmp_path, "dup.json", doc))
    doc = _squad_doc(is_impossible=True)
    doc["version"] = "v2.0"
    with pytest.raises(DatasetError, match="is_impossible is true"):
        load_dataset("squad-v2.0", _write(tmp_path, "imp.json", doc))


@pytest.mark.parametrize(
    ("record_changes", "message"),
    [
        ({"_id": None}, "record 0.*without an '_id'"),
        ({"answer": 3}, "'h1'.*answer"),
        ({"context": [["Title", "not a list"]]}, "'h1'.*context"),
        ({"supporting_facts": [["Title", "0"]]}, "'h1'.*supporting_facts"),
    ],
)
def test_malformed_hotpot(tmp_path, record_changes, message):
    rec = {"_id": "h1", "question": "?", "answer": "yes", "type": "comparison", "level": "hard",
           "context": [["Title", ["One.", " Two."]]], "supporting_facts": [["Title", 0]]}
    rec.update(record_changes)
    rec = {k: v for k, v in rec.items() if v is not None}
    path = _write(tmp_path, "bad-hotpot.json", [rec])
    with pytest.raises(DatasetError, match=message) as info:
        load_dataset("hotpotqa", path)
    assert "bad-hotpot.json" in str(info.value)


def test_hotpot_given_a_squad_file(tmp_path):
    with pytest.raises(DatasetError, match="SQuAD file"):
        load_dataset("hotpotqa", _write(tmp_path, "s.json", _squad_doc()))


def test_unreadable_files(tmp_path):
    not_json = tmp_path / "broken.json"
    not_json.write_text("{not json", encoding="utf-8")
    with pytest.raises(DatasetError, match="broken.json: not valid JSON"):
        load_dataset("squad-v1.1", not_json)
    not_gz = tmp_path / "plain.json.gz"
    not_gz.write_text("{}", encoding="utf-8")
    with pytest.raises(DatasetError, match="plain.json.gz: not a valid gzip"):
        load_raw("squad-v1.1", not_gz)
    with pytest.raises(DatasetError, match="nowhere.json: no such file"):
        load_dataset("hotpotqa", tmp_path / "nowhere.json")
    with pytest.raises(DatasetError, match="is a directory"):
        load_dataset("hotpotqa", tmp_path)
