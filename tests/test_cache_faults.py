"""Faults found by an adversarial pass over the semantic cache and the pre-generation router, each
fixed: a failed write must never let a question be answered from another passage, long questions
that the embedder truncates match exactly only, the fingerprint covers what changes answers, a
pre-generation router is refused as a post-generation gate, damaged embedding files are rebuilt."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cascade_router.cascade import Cascade
from cascade_router.cli import main
from cascade_router.config import ConfigError, load_config
from cascade_router.evaluation.runs import open_run, question_embeddings
from cascade_router.models.openai_compat import OpenAICompatBackend
from cascade_router.routers import EmbeddingRouter, get_router
from cascade_router.stages.cache import CacheError, SemanticCache, SQLiteCacheStore, cache_key
from cascade_router.tiers import Tier

RESULTS = Path(__file__).resolve().parents[1] / "results"




def _unit(*xs):
    v = np.array(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_a_failed_write_never_answers_from_another_key(tmp_path, monkeypatch):
    store = SQLiteCacheStore(tmp_path / "c.sqlite")
    store.add("A", "q1", _unit(1, 0, 0), {"question": "q1", "answer": "a1", "route": "slm"}, 1.0)
    assert store.nearest("A", _unit(1, 0, 0), 2.0) is not None  # A's index is now built in memory
    real = store._evict
    monkeypatch.setattr(store, "_evict", lambda now: (_ for _ in ()).throw(sqlite3.OperationalError("disk I/O error")))
    with pytest.raises(sqlite3.OperationalError):
        store.add("A", "q2", _unit(0, 1, 0), {"question": "q2", "answer": "a2", "route": "slm"}, 3.0)
    monkeypatch.setattr(store, "_evict", real)
    # the next row takes the row id the failed write had; it belongs to another key
    store.add("B", "other", _unit(0, 1, 0), {"question": "other", "answer": "WRONG", "route": "llm"}, 4.0)
    got = store.nearest("A", _unit(0, 1, 0), 5.0)
    assert got is None or got[0]["answer"] != "WRONG"
    # and storing under A works again
    store.add("A", "q2", _unit(0, 1, 0), {"question": "q2", "answer": "a2", "route": "slm"}, 6.0)
    assert store.nearest("A", _unit(0, 1, 0), 7.0)[0]["answer"] == "a2"
    store.close()


def test_questions_too_long_to_embed_whole_match_exactly_only(tmp_path, emb):
    cache = SemanticCache(SQLiteCacheStore(tmp_path / "c.sqlite"), emb, 0.95)
    pre = "Answer using only the passage and reply in as few words as possible. " * 40
    key = cache_key("squad", "Paris is the capital of France. Berlin is the capital of Germany.", "fp", 24, None)
    cache.put(pre + "What is the capital of France?", key, "Paris", "slm", {})
    assert cache.lookup(pre + "What is the capital of Germany?", key) is None
    hit = cache.lookup(pre + "what is the capital of france", key)
    assert hit is not None and hit.kind == "exact" and hit.answer == "Paris"
    cache.store.close()


def test_questions_that_normalise_to_nothing_are_not_cached(tmp_path, emb):
    cache = SemanticCache(SQLiteCacheStore(tmp_path / "c.sqlite"), emb, 0.95)
    cache.put("???", "k", "x", "slm", {})
    assert cache.store.size() == 0 and cache.lookup("!!!", "k") is None
    cache.store.close()


def test_vectors_of_another_embedder_never_mix(tmp_path, emb):
    class Other:
        model_id, dim = "other", 3

        def embed(self, texts):
            return np.stack([_unit(1, 0, 0)] * len(texts))

        def close(self):
            pass

    path = tmp_path / "c.sqlite"
    a = SemanticCache(SQLiteCacheStore(path), Other(), 0.95)
    a.put("Who wrote Hamlet?", "k", "Shakespeare", "slm", {})
    a.store.close()
    b = SemanticCache(SQLiteCacheStore(path), emb, 0.95)
    assert b.lookup("who wrote hamlet", "k") is None  # another embedder: another storage key
    b.put("Who wrote Hamlet?", "k", "Shakespeare", "llm", {})  # stores without a dimension clash
    assert b.lookup("Who wrote Hamlet", "k").route == "llm"
    b.store.close()


def test_fingerprint_covers_top_k_context_and_endpoint():
    def fp(**kw):
        args = dict(model="m", base_url="http://127.0.0.1:9/v1", api_key_env=None, top_k=5, n_ctx=4096)
        args.update(kw)
        b = OpenAICompatBackend(**args)
        try:
            return Cascade([Tier("slm", b), Tier("llm", b)], [get_router("seed-v1")]).fingerprint()
        finally:
            b.close()

    base = fp()
    assert fp() == base
    assert fp(top_k=1) != base and fp(n_ctx=128) != base and fp(base_url="http://127.0.0.1:10/v1") != base


def _pregen_router(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 384))
    y = (X[:, 0] > 0).astype(int)
    path = tmp_path / "pg.json"
    EmbeddingRouter().fit(X, y).save(path)
    return path


def test_a_pregeneration_router_is_refused_as_a_gate(tmp_path):
    pg = _pregen_router(tmp_path)
    r = CliRunner().invoke(main, ["ask", "-q", "Who?", "-c", "Text.", "--router", str(pg)])
    assert r.exit_code == 2 and "is a pre-generation router" in r.stderr and "Traceback" not in r.output
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[router]\npath = "{pg}"\n')
    r = CliRunner().invoke(main, ["ask", "-q", "Who?", "--config", str(cfg)])
    assert r.exit_code == 2 and "[pregate]" in r.stderr


def test_pregate_needs_a_fitted_embedding_router(tmp_path):
    (tmp_path / "empty.json").write_text(json.dumps({"kind": "embedding-logistic", "params": {}, "state": {}}))
    (tmp_path / "c.toml").write_text('[pregate]\npath = "empty.json"\n')
    with pytest.raises(ConfigError, match="holds no fitted state"):
        load_config(tmp_path / "c.toml")
    shutil.copy(_pregen_router(tmp_path), tmp_path / "ok.json")
    (tmp_path / "c2.toml").write_text('[pregate]\npath = "ok.json"\nto = "llm"\n')
    assert load_config(tmp_path / "c2.toml").pregate["to"] == "llm"


def test_a_foreign_sqlite_file_is_refused(tmp_path):
    db = sqlite3.connect(tmp_path / "other.sqlite")
    db.execute("CREATE TABLE foo (x)")
    db.commit()
    db.close()
    before = (tmp_path / "other.sqlite").read_bytes()
    with pytest.raises(CacheError, match="a database of another program"):
        SQLiteCacheStore(tmp_path / "other.sqlite")
    assert (tmp_path / "other.sqlite").read_bytes() == before


def test_damaged_embedding_files_are_computed_again(tmp_path, emb):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(RESULTS / "squad-v1.1-three-tier-n200" / "generations.sqlite", run)
    _ident, examples = open_run(run)
    examples = examples[:6]
    good = question_embeddings(run, examples, embedder=emb)
    path = run / "question-embeddings-minilm.npz"
    path.write_bytes(path.read_bytes()[:200])  # a cut zip
    again = question_embeddings(run, examples, embedder=emb)
    assert all(np.allclose(good[k], again[k], atol=1e-6) for k in good)
    np.savez(path, ids=np.array(list(good)), vectors=np.stack(list(good.values()))[:, :10])  # wrong dimension
    assert question_embeddings(run, examples, embedder=emb)[examples[0].id].shape == (384,)


def test_two_processes_sharing_one_file_see_each_others_entries(tmp_path):
    """A replica's index is rebuilt when another writer added rows under the key."""
    path = tmp_path / "shared.sqlite"
    a, b = SQLiteCacheStore(path), SQLiteCacheStore(path)
    a.add("k", "first", _unit(1, 0, 0), {"question": "first", "answer": "1", "route": "slm"}, 1.0)
    assert b.nearest("k", _unit(1, 0, 0), 2.0)[0]["answer"] == "1"  # b builds its index now
    a.add("k", "second", _unit(0, 1, 0), {"question": "second", "answer": "2", "route": "slm"}, 3.0)
    got = b.nearest("k", _unit(0, 1, 0), 4.0)
    assert got is not None and got[0]["answer"] == "2" and got[2] == pytest.approx(1.0)
    a.close()
    b.close()


def test_ask_cache_hit_never_loads_a_model(shared_models, tmp_path, monkeypatch):
    """`ask --cache` opens in-process tiers lazily: a hit answers without loading any."""
    monkeypatch.setenv("CASCADE_ROUTER_CACHE_DIR", str(tmp_path))
    args = ["ask", "--cache", "--threads", "2", "-q", "What is the capital of France?", "-c",
            "Paris is the capital and largest city of France."]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0 and "cache: miss" in first.stdout
    n = len(shared_models)
    assert n >= 1  # the miss loaded the first tier (and only the tiers it ran)
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "answered by: cache" in again.stdout
    assert len(shared_models) == n  # nothing loaded for the hit


def test_lazy_backend_knows_its_metadata_before_loading():
    from cascade_router.models.registry import LazyBackend

    calls = []
    lb = LazyBackend("smollm2-135m", n_ctx=2048, top_k=3, loader=lambda spec, **kw: calls.append((spec, kw)) or "B")
    assert (lb.model_id, lb.family, lb.n_ctx, lb.top_k, lb.loaded) == ("smollm2-135m", "base", 2048, 3, False)
    assert calls == []
    with pytest.raises(ValueError, match="in-process"):
        LazyBackend("m@http://127.0.0.1:9/v1")
