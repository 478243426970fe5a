"""The semantic cache: a stage before the first tier that answers from earlier answers.

Lookup order: an **exact** match of the question (case, spacing and a trailing ``?`` ignored:
:func:`normalise_question`, the form that is also embedded), then the
**nearest** earlier question by cosine similarity of their embeddings, if at or above the
threshold. Both are searched only among entries with the same **cache key**: the task, a
sha256 of the passage (a question about another passage is never answered), the answer budget,
the starting tier, and a fingerprint of the cascade's configuration (tiers and gates, see
:meth:`cascade_router.cascade.Cascade.fingerprint`), so a changed cascade never serves stale
answers.

Storage: :class:`SQLiteCacheStore` (the embedded default) keeps entries in one SQLite file and
a usearch HNSW vector index per cache key in memory, built from the file on first use (usearch
was chosen over numpy brute force and faiss by ``benchmarks/cache_index.py``). :class:`RedisCacheStore`
is the same interface on a Redis server shared by several server replicas. Entries expire after
``ttl`` seconds and the least recently used go beyond ``max_entries``.

A failing store or embedder never fails a request: :func:`answer_with_cache` logs, counts the
error and answers through the cascade.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..embeddings import Embedder

log = logging.getLogger(__name__)

#: The route of a result served from the cache.
CACHE_ROUTE = "cache"


class CacheError(RuntimeError):
    """The cache store cannot be opened or used; the message names the file or server."""


@dataclass
class CacheSettings:
    """The ``[cache]`` section of a config file (and ``serve --cache``).

    Attributes:
        path: the SQLite file (default ``CACHE_DIR/semantic-cache.sqlite``); ignored with ``redis_url``.
        threshold: cosine similarity at or above which an earlier question answers (default
            0.95, measured: README "Semantic cache").
        ttl: seconds an entry lives (None: forever).
        max_entries: entries kept; the least recently used go first beyond it.
        embedder: ``minilm`` (embedded) or ``MODEL@BASE_URL``.
        redis_url: ``redis://HOST:PORT/DB`` to share one cache between replicas.
    """

    path: str | None = None
    threshold: float = 0.95
    ttl: float | None = 7 * 24 * 3600.0
    max_entries: int = 100_000
    embedder: str = "minilm"
    redis_url: str | None = None

    def __post_init__(self) -> None:
        if self.path is not None and not str(self.path).strip():
            raise ValueError("path must not be empty (omit it for the default file)")
        if not 0.0 < float(self.threshold) <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold!r}")
        if self.ttl is not None and (isinstance(self.ttl, bool) or not 0 < float(self.ttl) <= 1e9):
            raise ValueError(f"ttl must be a number of seconds in (0, 1e9] (omit it for the 7-day default), got {self.ttl!r}")
        if isinstance(self.max_entries, bool) or not isinstance(self.max_entries, int) or self.max_entries < 1:
            raise ValueError(f"max_entries must be a positive integer, got {self.max_entries!r}")


@dataclass
class CacheHit:
    """An answer served from the cache.

    Attributes:
        kind: ``"exact"`` or ``"semantic"``; similarity: cosine similarity (1.0 for exact).
        question: the cached question that matched; answer: its answer.
        route: the tier that answered it originally (or ``abstain``).
        age_s: seconds since it was stored; lookup_s: seconds this lookup took.
        original: what the original answer cost and who ran (``tiers``, ``cost_usd``, ...).
    """

    kind: str
    similarity: float
    question: str
    answer: str
    route: str
    age_s: float
    lookup_s: float = 0.0
    original: dict[str, Any] = field(default_factory=dict)


def normalise_question(q: str) -> str:
    """The form of a question that is matched and embedded: lower case, spacing collapsed,
    trailing ``?``/``.``/``!`` and spaces removed (for MiniLM a missing question mark alone moves
    the cosine similarity of a question to itself from 1.0 to about 0.9)."""
    return re.sub(r"\s+", " ", q).strip().lower().rstrip("?.! ").strip()


def cache_key(task: str, passage: str | None, fingerprint: str, max_tokens: int, start: str | None) -> str:
    """sha256 hex of everything that must match for an earlier answer to be reused."""
    ph = hashlib.sha256((passage or "").encode("utf-8")).hexdigest()
    raw = json.dumps([task, ph, fingerprint, int(max_tokens), start or ""])
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


class CacheStore(Protocol):
    """Where entries live. Vectors are unit float32 rows."""

    def exact(self, key: str, qnorm: str, now: float) -> tuple[dict, float] | None: ...
    def nearest(self, key: str, vec: np.ndarray, now: float, min_sim: float = -1.0) -> tuple[dict, float, float] | None: ...
    def add(self, key: str, qnorm: str, vec: np.ndarray | None, entry: dict, now: float) -> None: ...
    def size(self) -> int: ...
    def close(self) -> None: ...


class SQLiteCacheStore:
    """Entries in SQLite (one row each: key, normalised question, vector, answer record, times),
    and an in-memory usearch index per cache key, built from the file on first use.

    Args:
        path: the database file (created with its folder).
        ttl_s: entry lifetime in seconds (None: forever).
        max_entries: rows kept; beyond it the least recently used rows are deleted.

    Raises:
        CacheError: the file exists but is not a cache database (the message names it).
    """

    def __init__(self, path: str | Path, ttl_s: float | None = None, max_entries: int = 100_000) -> None:
        self.path = Path(path)
        self.ttl_s = ttl_s
        self.max_entries = int(max_entries)
        self._lock = threading.Lock()
        self._indexes: dict[str, Any] = {}  # key -> usearch Index of that key's row ids
        self._newest: dict[str, int] = {}  # key -> the newest row id its index holds
        self._db = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables - {"entries", "meta"}:
                raise CacheError(f"{self.path}: a database of another program (tables {sorted(tables)}); "
                                 "give the cache a file of its own")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript("""
                CREATE TABLE IF NOT EXISTS entries (
                    id INTEGER PRIMARY KEY, key TEXT NOT NULL, qnorm TEXT NOT NULL, vector BLOB NOT NULL,
                    entry TEXT NOT NULL, created REAL NOT NULL, used REAL NOT NULL);
                CREATE UNIQUE INDEX IF NOT EXISTS entries_exact ON entries (key, qnorm);
                CREATE INDEX IF NOT EXISTS entries_used ON entries (used);
                CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
            """)
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('format', 'cascade-router semantic cache 1')")
            fmt = self._db.execute("SELECT v FROM meta WHERE k = 'format'").fetchone()[0]
            self._db.commit()
        except CacheError:
            self._db.close()
            raise
        except (sqlite3.DatabaseError, OSError) as e:
            if getattr(self, "_db", None) is not None:
                self._db.close()
            raise CacheError(f"{self.path}: not a usable cache database ({e}); move it away or give another path") from None
        if fmt != "cascade-router semantic cache 1":
            self._db.close()
            raise CacheError(f"{self.path}: a database of another kind ({fmt!r}); give another cache path")

    def _alive(self, created: float, now: float) -> bool:
        return self.ttl_s is None or now - created <= self.ttl_s

    def _index(self, key: str):
        """The usearch index of ``key``'s entries that have a vector, built from the file on
        first use. The file is the truth: an index is only a cache of it, dropped whenever a
        write fails and rebuilt on the next lookup."""
        try:  # onnxruntime first: importing it after usearch (whose wheel links libstdc++
            import onnxruntime  # noqa: F401  statically) segfaults the process (usearch 2.26, ort 1.32)
        except ImportError:
            pass
        from usearch.index import Index

        ix = self._indexes.get(key)
        newest = self._db.execute("SELECT MAX(id) FROM entries WHERE key = ?", (key,)).fetchone()[0] or 0
        if ix is not None and newest > self._newest.get(key, 0):
            ix = None  # another process wrote under this key since the index was built
        if ix is None:
            self._newest[key] = newest
            rows = self._db.execute("SELECT id, vector FROM entries WHERE key = ? AND length(vector) > 0",
                                    (key,)).fetchall()
            dims = {len(r[1]) // 4 for r in rows}
            if len(dims) > 1:  # vectors of another embedder under this key: keep the newest dimension
                newest = len(rows[-1][1]) // 4
                rows = [r for r in rows if len(r[1]) // 4 == newest]
            ix = Index(ndim=(len(rows[0][1]) // 4) if rows else 1, metric="cos", dtype="f32")
            if rows:
                ix.add(np.array([r[0] for r in rows], dtype=np.uint64),
                       np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows]))
            self._indexes[key] = ix
        return ix

    def exact(self, key: str, qnorm: str, now: float) -> tuple[dict, float] | None:
        with self._lock:
            row = self._db.execute("SELECT id, entry, created FROM entries WHERE key = ? AND qnorm = ?",
                                   (key, qnorm)).fetchone()
            if row is None or not self._alive(row[2], now):
                return None
            with self._db:
                self._db.execute("UPDATE entries SET used = ? WHERE id = ?", (now, row[0]))
            return json.loads(row[1]), row[2]

    def nearest(self, key: str, vec: np.ndarray, now: float, min_sim: float = -1.0) -> tuple[dict, float, float] | None:
        """The most similar live entry under ``key`` if its cosine similarity is at least
        ``min_sim`` (only then is it marked used), else None."""
        with self._lock:
            ix = self._index(key)
            if len(ix) == 0 or ix.ndim != vec.shape[0]:
                return None
            m = ix.search(np.asarray(vec, np.float32), min(8, len(ix)))
            for rid, dist in zip(m.keys, m.distances):
                row = self._db.execute("SELECT entry, created, key FROM entries WHERE id = ?", (int(rid),)).fetchone()
                if row is None or row[2] != key:  # the index is stale: rebuild it next time
                    self._indexes.pop(key, None)
                    continue
                if not self._alive(row[1], now):
                    continue
                if 1.0 - float(dist) < min_sim:
                    return None
                with self._db:
                    self._db.execute("UPDATE entries SET used = ? WHERE id = ?", (now, int(rid)))
                return json.loads(row[0]), row[1], 1.0 - float(dist)
            return None

    def add(self, key: str, qnorm: str, vec: np.ndarray | None, entry: dict, now: float) -> None:
        """Store an entry (``vec`` None: exact matches only). The file is written in one
        transaction; the in-memory indexes follow only once it has committed."""
        blob = b"" if vec is None else np.asarray(vec, np.float32).tobytes()
        with self._lock:
            try:
                with self._db:
                    gone: list[tuple[int, str]] = []
                    old = self._db.execute("SELECT id FROM entries WHERE key = ? AND qnorm = ?", (key, qnorm)).fetchone()
                    if old is not None:  # a newer answer to the same question replaces the old one
                        self._db.execute("DELETE FROM entries WHERE id = ?", (old[0],))
                        gone.append((old[0], key))
                    cur = self._db.execute(
                        "INSERT INTO entries (key, qnorm, vector, entry, created, used) VALUES (?, ?, ?, ?, ?, ?)",
                        (key, qnorm, blob, json.dumps(entry), now, now))
                    rid = cur.lastrowid
                    gone += self._evict(now)
            except Exception:
                self._indexes.clear()  # rolled back: no index may hold a row id the file lacks
                raise
            for old_id, old_key in gone:
                ix = self._indexes.get(old_key)
                if ix is not None and int(old_id) in ix:
                    ix.remove(int(old_id))
            ix = self._indexes.get(key)
            if ix is not None:
                self._newest[key] = max(self._newest.get(key, 0), int(rid))
            if ix is not None and vec is not None:
                try:
                    if len(ix) == 0 and ix.ndim != len(blob) // 4:
                        raise ValueError("dimension")
                    ix.add(np.array([rid], dtype=np.uint64), np.frombuffer(blob, dtype=np.float32)[None, :])
                except Exception:
                    self._indexes.pop(key, None)  # rebuilt from the file on next use

    def _evict(self, now: float) -> list[tuple[int, str]]:
        """Delete expired rows and the least recently used beyond ``max_entries`` (inside the
        caller's transaction); returns the deleted ``(id, key)``."""
        gone: list[tuple[int, str]] = []
        if self.ttl_s is not None:
            gone += self._db.execute("SELECT id, key FROM entries WHERE created < ?", (now - self.ttl_s,)).fetchall()
        extra = self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0] - len(gone) - self.max_entries
        if extra > 0:
            ids = {g[0] for g in gone}
            for rid, key in self._db.execute("SELECT id, key FROM entries ORDER BY used, id"):
                if rid not in ids:
                    gone.append((rid, key))
                    extra -= 1
                    if extra == 0:
                        break
        for rid, _key in gone:
            self._db.execute("DELETE FROM entries WHERE id = ?", (rid,))
        return gone

    def size(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._indexes.clear()


class SemanticCache:
    """Lookups and writes of answers (see the module docstring).

    Args:
        store: where entries live (:class:`SQLiteCacheStore`, :class:`RedisCacheStore`).
        embedder: question embeddings (:mod:`cascade_router.embeddings`).
        threshold: cosine similarity at or above which the nearest earlier question answers.
    """

    def __init__(self, store: CacheStore, embedder: Embedder, threshold: float = 0.95) -> None:
        self.store = store
        self.embedder = embedder
        self.threshold = float(threshold)

    def _key(self, key: str) -> str:
        """The storage key: the caller's key and the embedder (vectors of two embedders never mix)."""
        return hashlib.sha256(f"{key}|{self.embedder.model_id}".encode("utf-8")).hexdigest()

    def _vector(self, qnorm: str) -> np.ndarray | None:
        """The question's vector, or None when the embedder would truncate it (two long questions
        sharing their opening would look identical): such a question matches exactly only."""
        fits = getattr(self.embedder, "fits", None)
        if fits is not None and not fits(qnorm):
            return None
        return self.embedder.embed([qnorm])[0]

    def lookup(self, question: str, key: str) -> CacheHit | None:
        """The cached answer for ``question`` under ``key``, or None (also for a question that
        normalises to nothing, such as ``"???"``).

        Raises:
            CacheError, EmbeddingError, sqlite3.Error: the store or embedder failed.
        """
        t0 = time.perf_counter()
        now = time.time()
        qnorm = normalise_question(question)
        if not qnorm:
            return None
        key = self._key(key)
        found = self.store.exact(key, qnorm, now)
        if found is not None:
            entry, created = found
            return _hit("exact", 1.0, entry, now - created, time.perf_counter() - t0)
        vec = self._vector(qnorm)
        if vec is None:
            return None
        near = self.store.nearest(key, vec, now, min_sim=self.threshold - 1e-6)
        if near is not None:
            entry, created, sim = near
            return _hit("semantic", sim, entry, now - created, time.perf_counter() - t0)
        return None

    def put(self, question: str, key: str, answer: str, route: str, original: dict[str, Any]) -> None:
        """Store an answer (nothing for a question that normalises to nothing). Raises what the
        store or embedder raises."""
        qnorm = normalise_question(question)
        if not qnorm:
            return
        entry = {"question": question, "answer": answer, "route": route, "original": original}
        self.store.add(self._key(key), qnorm, self._vector(qnorm), entry, time.time())

    def close(self) -> None:
        self.store.close()
        self.embedder.close()


def _hit(kind: str, sim: float, entry: dict, age: float, lookup_s: float) -> CacheHit:
    return CacheHit(kind, float(sim), entry["question"], entry["answer"], entry["route"], float(age), lookup_s,
                    entry.get("original") or {})


def open_cache(settings: CacheSettings, default_dir: Path | None = None, threads: int | None = None) -> SemanticCache:
    """The cache a :class:`CacheSettings` describes (opens the store and the embedder).

    Raises:
        CacheError: the store cannot be opened (a corrupt file, Redis unreachable).
        EmbeddingError, ValueError: the embedder cannot be opened.
    """
    from ..embeddings import load_embedder

    if settings.redis_url:
        from .redis_store import RedisCacheStore

        store: CacheStore = RedisCacheStore(settings.redis_url, settings.ttl, settings.max_entries)
    else:
        if settings.path:
            path = Path(settings.path).expanduser()
        else:
            from ..models.registry import cache_dir

            path = (default_dir or cache_dir()) / "semantic-cache.sqlite"
        store = SQLiteCacheStore(path, settings.ttl, settings.max_entries)
    try:
        embedder = load_embedder(settings.embedder, threads=threads)
    except Exception:
        store.close()
        raise
    return SemanticCache(store, embedder, settings.threshold)
