"""A run's generations, stored in SQLite as they are made, so that a run resumes after a crash.

One row per (question id, tier name); any tier names (a run of an N-tier cascade stores one row
per tier). Each row is committed as soon as its generation returns, so a
crash or kill loses at most the question in flight, and the primary key stops any question from
being stored twice. The run's identity (dataset, models, prompts, sample) lives in the ``meta``
table; a run directory made with other settings is refused rather than mixed.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..models.base import Generation

DB_NAME = "generations.sqlite"

_GENERATIONS = """
CREATE TABLE IF NOT EXISTS generations (
    qid TEXT NOT NULL,
    tier TEXT NOT NULL,
    answer TEXT,
    generation TEXT,
    error TEXT,
    created REAL NOT NULL,
    PRIMARY KEY (qid, tier)
)"""
_SCHEMA = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);\n" + _GENERATIONS + ";\n"


class RunLockedError(RuntimeError):
    """Another process is writing to this run directory."""


#: Sampled generations for self-consistency: k = 0, 1, ... per (question, tier).
_SAMPLES = """CREATE TABLE IF NOT EXISTS samples (
    qid TEXT NOT NULL, tier TEXT NOT NULL, k INTEGER NOT NULL, temperature REAL NOT NULL,
    answer TEXT, generation TEXT NOT NULL, PRIMARY KEY (qid, tier, k))"""


#: Self-checks (P(True)) of a tier's stored answer: one per (question, tier).
_CHECKS = """CREATE TABLE IF NOT EXISTS checks (
    qid TEXT NOT NULL, tier TEXT NOT NULL, p_true REAL, generation TEXT NOT NULL, PRIMARY KEY (qid, tier))"""


#: Identity keys added after runs existed, recorded only when not at this default (so older
#: identities stay as they were); :meth:`RunStore.bind` reads a missing one as the default.
IDENTITY_DEFAULTS: dict[str, Any] = {"exclude_ids": []}


class RunMismatchError(ValueError):
    """The run directory was made with other settings (dataset, models, prompts, sample)."""


@dataclass
class StoredGeneration:
    """One stored row: the cleaned answer and the generation, or the error for that question."""

    qid: str
    tier: str
    answer: str | None
    generation: Generation | None
    error: str | None


class StoreError(ValueError):
    """A run database whose content cannot be read back (a damaged or hand-edited row)."""


class RunStore:
    """SQLite store of one evaluation run (``RUN_DIR/generations.sqlite``).

    Args:
        run_dir: the run directory (created if missing).
        lock: take an exclusive lock on ``RUN_DIR/.lock`` (``fcntl.flock``) for this object's
            life, so that two writers never share a run directory.

    Raises:
        sqlite3.DatabaseError: the file exists but is not a usable database.
        OSError: the directory cannot be created.
        RunLockedError: ``lock`` and another process holds the lock.
    """

    def __init__(self, run_dir: str | Path, lock: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / DB_NAME
        self._lock_fh = None
        if lock:
            import fcntl

            fh = open(self.run_dir / ".lock", "w")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                raise RunLockedError(f"{self.run_dir} is in use by another cascade-router process") from None
            self._lock_fh = fh
        try:
            new = not self.path.exists()
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            if lock or new:  # switching the journal mode rewrites the file header: writers only
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
            self._db.commit()

        except sqlite3.DatabaseError:
            self._release()
            raise

    def _migrate(self) -> None:
        """Drop the ``CHECK (tier IN ('slm', 'llm'))`` of databases made before tiers became
        data, keeping every row (and its rowid order). Only a writer (``lock=True``) migrates,
        and only after :meth:`bind` accepted the identity, so reading a committed run or being
        refused never changes its file."""
        row = self._db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'generations'").fetchone()
        if row is None or "CHECK" not in row[0]:
            return
        with self._db:
            self._db.execute("ALTER TABLE generations RENAME TO generations_old")
            self._db.execute(_GENERATIONS)
            self._db.execute("INSERT INTO generations SELECT * FROM generations_old ORDER BY rowid")
            self._db.execute("DROP TABLE generations_old")

    # --- identity ----------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        """The stored run identity ``{key: value}`` (empty for a new run)."""
        return {k: json.loads(v) for k, v in self._db.execute("SELECT key, value FROM meta")}

    def bind(self, identity: dict[str, Any]) -> None:
        """Record the run identity, or check it against the stored one. Keys of
        :data:`IDENTITY_DEFAULTS` (recorded only when not at their default) are compared in both
        directions, a missing one counting as its default.

        Raises:
            RunMismatchError: a stored key differs; the message names each differing key.
        """
        stored = self.meta()
        diffs = [
            f"{k}: stored {stored[k]!r}, requested {v!r}"
            for k, v in identity.items()
            if k in stored and stored[k] != v
        ]
        if stored:  # an existing run: a default key missing on either side counts as its default
            diffs += [f"{k}: stored {stored.get(k, d)!r}, requested {identity.get(k, d)!r}"
                      for k, d in IDENTITY_DEFAULTS.items()
                      if (k not in identity or k not in stored) and stored.get(k, d) != identity.get(k, d)]
        if diffs:
            raise RunMismatchError(
                f"{self.run_dir} holds a run made with other settings; refusing to mix "
                f"({'; '.join(diffs)}). Use another --out directory."
            )
        with self._db:
            for k, v in identity.items():
                self._db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (k, json.dumps(v)))
        if self._lock_fh is not None:
            self._migrate()  # only once the identity matched: a refused run leaves the file as it was

    # --- rows --------------------------------------------------------------------------------
    def done(self) -> set[tuple[str, str]]:
        """The (qid, tier) pairs stored with a generation. Error rows are not done: a rerun
        retries them (and :meth:`put` replaces them)."""
        return set(self._db.execute("SELECT qid, tier FROM generations WHERE error IS NULL"))

    def put(self, qid: str, tier: str, answer: str | None, gen: Generation | None, error: str | None = None) -> bool:
        """Store one result and commit.

        Returns False (and keeps the old row) if a generation is already stored for (qid, tier);
        an earlier error row is replaced.

        Raises:
            sqlite3.IntegrityError: a database made before tiers became data, opened without
                ``lock`` (not migrated), and a tier other than ``slm``/``llm``.
        """
        with self._db:
            cur = self._db.execute(
                "INSERT INTO generations VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (qid, tier) DO UPDATE SET "
                "answer = excluded.answer, generation = excluded.generation, error = excluded.error, "
                "created = excluded.created WHERE generations.error IS NOT NULL",
                (qid, tier, answer, json.dumps(gen.to_dict()) if gen is not None else None, error, time.time()),
            )
        return cur.rowcount == 1

    # --- sampled generations (self-consistency) -----------------------------------------------
    def put_sample(self, qid: str, tier: str, k: int, temperature: float, answer: str, gen: Generation) -> None:
        """Store the ``k``-th sampled generation (temperature > 0) of ``tier`` on ``qid`` and
        commit (the ``samples`` table is created by the first one, so reading a run never
        changes its file); an existing sample is kept."""
        with self._db:
            self._db.execute(_SAMPLES)
            self._db.execute("INSERT OR IGNORE INTO samples VALUES (?, ?, ?, ?, ?, ?)",
                             (qid, tier, int(k), float(temperature), answer, json.dumps(gen.to_dict())))

    def samples(self, tier: str) -> dict[str, list[tuple[str, Generation]]]:
        """``{qid: [(answer, generation), ...]}`` of ``tier``'s sampled generations, in ``k``
        order (empty when none were made).

        Raises:
            StoreError: a damaged stored sample.
        """
        has = self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'samples'").fetchone()
        out: dict[str, list[tuple[str, Generation]]] = {}
        if has is None:
            return out
        for qid, ans, gen in self._db.execute(
                "SELECT qid, answer, generation FROM samples WHERE tier = ? ORDER BY qid, k", (tier,)):
            try:
                out.setdefault(qid, []).append((ans or "", Generation.from_json(gen)))
            except ValueError as e:
                raise StoreError(f"{self.path}: the stored {tier} sample of question {qid!r} is damaged: {e}") from e
        return out

    def sample_temperature(self, tier: str) -> float | None:
        """The temperature of ``tier``'s stored samples (None without samples)."""
        has = self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'samples'").fetchone()
        if has is None:
            return None
        row = self._db.execute("SELECT temperature FROM samples WHERE tier = ? LIMIT 1", (tier,)).fetchone()
        return None if row is None else float(row[0])

    # --- self-checks (P(True)) ------------------------------------------------------------------
    def put_check(self, qid: str, tier: str, p_true: float, gen: Generation) -> None:
        """Store ``tier``'s self-check of its answer to ``qid`` (``p_true`` nan is stored as
        NULL) and commit; the ``checks`` table is created by the first one; an existing check is kept."""
        import math

        try:
            with self._db:
                self._db.execute(_CHECKS)
                self._db.execute("INSERT OR IGNORE INTO checks (qid, tier, p_true, generation) VALUES (?, ?, ?, ?)",
                                 (qid, tier, None if math.isnan(p_true) else float(p_true), json.dumps(gen.to_dict())))
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path}: cannot store a self-check in table checks: {e}") from None

    def checks(self, tier: str) -> dict[str, tuple[float, Generation]]:
        """``{qid: (p_true, generation)}`` of ``tier``'s stored self-checks (p_true nan where
        neither yes nor no was among the alternatives; empty when none were made).

        Raises:
            StoreError: a damaged stored check.
        """
        has = self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'checks'").fetchone()
        out: dict[str, tuple[float, Generation]] = {}
        if has is None:
            return out
        try:
            found = self._db.execute("SELECT qid, p_true, generation FROM checks WHERE tier = ?", (tier,)).fetchall()
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path}: table checks is not a table of self-checks: {e}") from None
        for qid, p, gen in found:
            try:
                if p is not None and not (isinstance(p, (int, float)) and 0.0 <= p <= 1.0):
                    raise ValueError(f"p_true {p!r} is not a probability")
                out[qid] = (float("nan") if p is None else float(p), Generation.from_json(gen))
            except ValueError as e:
                raise StoreError(f"{self.path}: the stored {tier} self-check of question {qid!r} is damaged: {e}") from e
        return out

    def rows(self) -> Iterator[StoredGeneration]:
        """Every stored row, in insertion order.

        Raises:
            StoreError: a row's stored generation is not a valid generation record (edited or
                damaged database); the message names the database, the question and the tier.
        """
        for qid, tier, ans, gen, err in self._db.execute(
            "SELECT qid, tier, answer, generation, error FROM generations ORDER BY rowid"
        ):
            try:
                if gen is None and err is None:
                    raise ValueError("neither a generation nor an error is stored")
                g = Generation.from_json(gen) if gen is not None else None
            except ValueError as e:
                raise StoreError(f"{self.path}: the stored {tier} generation of question {qid!r} is damaged: {e}") from e
            yield StoredGeneration(qid, tier, ans, g, err)

    def copy_from(self, other: "RunStore", qids: set[str], tiers: set[str]) -> int:
        """Copy the stored generations (not error rows) of questions ``qids`` and tiers ``tiers``
        from another run's store, keeping rows already here; commits. Returns rows copied.

        The caller checks that both runs were made with the same models, options and prompts
        (:func:`cascade_router.evaluation.runs.reusable`)."""
        rows = [r for r in other._db.execute(
            "SELECT qid, tier, answer, generation, error, created FROM generations WHERE error IS NULL ORDER BY rowid")
            if r[0] in qids and r[1] in tiers]
        with self._db:
            before = self.count()
            self._db.executemany("INSERT OR IGNORE INTO generations VALUES (?, ?, ?, ?, ?, ?)", rows)
            return self.count() - before

    def count(self) -> int:
        """Rows stored."""
        return self._db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]

    def _release(self) -> None:
        if self._lock_fh is not None:
            self._lock_fh.close()  # closing the file releases the flock
            self._lock_fh = None

    def close(self) -> None:
        """Close the database and release the lock."""
        self._db.close()
        self._release()
