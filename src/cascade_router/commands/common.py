"""Shared CLI plumbing: one-line errors with exit code 2, and building a config from options."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from ..config import CascadeConfig, ConfigError, TierConfig, load_config
from ..models.registry import parse_spec


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` on one line to stderr and exit with ``code`` (2: bad input)."""
    click.echo(f"error: {message}".splitlines()[0], err=True)
    sys.exit(code)


def resolve_config(
    config_path: str | None,
    slm: str | None,
    llm: str | None,
    router: str | None,
    threads: int | None = None,
) -> CascadeConfig:
    """The config file's settings (or the defaults) with command-line options on top:
    ``--slm`` replaces the first tier's model, ``--llm`` the last tier's, ``--router`` the gate
    after the first tier, ``--threads`` every tier's threads."""
    try:
        cfg = load_config(config_path) if config_path else CascadeConfig()
    except ConfigError as e:
        fail(str(e))
    for spec, tier in ((slm, cfg.first), (llm, cfg.last)):
        if spec:
            keep = TierConfig(spec, name=tier.name, router=tier.router)
            cfg.tiers[cfg.tiers.index(tier)] = keep
    if threads:
        for t in cfg.tiers:
            t.threads = threads
    if router:
        if len(cfg.tiers) < 2:
            fail("--router: the cascade has one tier, so there is no gate to set")
        cfg.first.router = router
    try:
        cfg.build_gates()
    except ValueError as e:
        fail(str(e))
    return cfg


def check_specs(slm: str | None, llm: str | None) -> None:
    """Exit 2 with the valid forms listed if ``--slm``/``--llm`` is not a model spec."""
    for opt, spec in (("--slm", slm), ("--llm", llm)):
        if spec:
            try:
                parse_spec(spec)
            except ValueError as e:
                fail(f"{opt}: {e}")


def open_run(run_dir: str) -> tuple[dict, list]:
    """The identity and the sampled questions of a run directory made by ``eval``.

    Exits 2 with a message naming the directory when it holds no usable run (no database, a
    corrupt one, no recorded identity, or data that no longer loads).
    """
    import sqlite3
    from pathlib import Path

    from ..datasets import DatasetError, load_dataset, sample
    from ..evaluation.store import DB_NAME, RunStore

    rd = Path(run_dir)
    if not (rd / DB_NAME).is_file():
        fail(f"{rd}: no {DB_NAME} here; is this a run directory made by `cascade-router eval`?")
    try:
        store = RunStore(rd)
        ident = store.meta()
        store.close()
    except sqlite3.DatabaseError as e:
        fail(f"{rd / DB_NAME}: not a usable run database: {e}")
    except ValueError as e:  # a meta value that is not JSON
        fail(f"{rd / DB_NAME}: the run identity is damaged: {e}")
    if not all(k in ident for k in ("dataset", "data", "limit", "seed")):
        fail(f"{rd}: the run has no recorded identity (dataset, data, limit, seed)")
    bad = [k for k, ok in (("dataset", isinstance(ident["dataset"], str)), ("data", isinstance(ident["data"], str)),
                           ("limit", ident["limit"] is None or _is_int(ident["limit"])), ("seed", _is_int(ident["seed"])))
           if not ok]
    if bad:
        fail(f"{rd / DB_NAME}: the run identity is damaged: wrong type for {', '.join(bad)}")
    try:
        data = None if ident["data"] == "bundled" else ident["data"]
        examples = sample(load_dataset(ident["dataset"], data), ident["limit"], seed=ident["seed"])
    except DatasetError as e:
        fail(f"{rd}: cannot rebuild the run's questions: {e}")
    return ident, examples


def load_scored_run(run_dir, examples: list, cfg):
    """The run's stored generations joined with its questions and scored
    (:func:`cascade_router.evaluation.analysis.load_run`, prices from ``cfg``).

    Exits 2 with the message of a damaged stored row (:class:`StoreError`).
    """
    from ..evaluation.analysis import load_run
    from ..evaluation.store import RunStore, StoreError

    store = RunStore(run_dir)
    try:
        return load_run(examples, store, cfg)
    except StoreError as e:
        fail(str(e))
    finally:
        store.close()


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)
