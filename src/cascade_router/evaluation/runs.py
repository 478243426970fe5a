"""A run directory: its identity (what was run), its tiers, and loading it for scoring.

The identity recorded in the run store says what the stored generations were made with; a
resume must match it. Two-tier runs whose tiers are named ``slm`` and ``llm`` keep the
historical identity (``slm``, ``llm``, ``slm_options``, ``llm_options``), so every run made
before tiers became data resumes unchanged; any other cascade records a ``tiers`` list.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any, Sequence

from ..datasets import DatasetError, QAExample, exclude, load_dataset, sample
from ..tiers import TierPrice
from .analysis import RunData, load_run
from .store import DB_NAME, RunStore, StoreError

#: The prompt version of a run whose tiers all use revision 1 of their prompts (every run made
#: before prompts had revisions). A run with a newer prompt records ``{tier: revision}`` instead
#: (:func:`tier_prompt_revisions`), so old generations are never mixed with new ones.
PROMPT_VERSION = 1


class RunError(ValueError):
    """A run directory that cannot be used; the message names the directory or file."""


def sample_digest(examples: Sequence[QAExample]) -> str:
    """sha256 over the sampled questions (id, question, passage, gold answers), so that a data
    file edited in place is not scored with generations made for its old content."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps([ex.id, ex.question, ex.context, ex.answers], ensure_ascii=False).encode())
    return h.hexdigest()


def identity_for(cfg, dataset: str, data: str | None, limit: int | None, seed: int,
                 examples: Sequence[QAExample], exclude_ids: Sequence[str] | None = None) -> dict[str, Any]:
    """The identity of an eval run of ``cfg`` (a :class:`~cascade_router.config.CascadeConfig`):
    dataset, data file, tiers and their options, sample (``limit``, ``seed``, the questions left
    out before sampling, ``exclude_ids``, and a digest of the sampled questions), answer budget and
    the prompt version (``1``, or ``{tier: revision}`` where a tier's prompt has a newer revision,
    :func:`cascade_router.prompts.prompt_revision`)."""
    from ..prompts import DATASET_TASK, prompt_revision

    ident: dict[str, Any] = {"dataset": dataset, "data": str(Path(data).resolve()) if data else "bundled"}
    if cfg.names == ["slm", "llm"]:
        ident.update(slm=cfg.first.model, llm=cfg.last.model)
    else:
        ident["tiers"] = [{"name": t.name, "model": t.model, "family": t.family, "n_ctx": t.n_ctx, "top_k": t.top_k}
                          for t in cfg.tiers]
    ident.update(limit=limit, seed=seed, questions=len(examples), max_tokens=cfg.max_tokens)
    if cfg.names == ["slm", "llm"]:
        for key, t in (("slm_options", cfg.first), ("llm_options", cfg.last)):
            ident[key] = {"family": t.family, "n_ctx": t.n_ctx, "top_k": t.top_k}
    from ..models.registry import effective_family, prompt_variant, spec_model_id

    task = DATASET_TASK[dataset]
    revs = {t.name: prompt_revision(task, effective_family(t.model, t.family), prompt_variant(spec_model_id(t.model), task))
            for t in cfg.tiers}
    version: Any = PROMPT_VERSION if set(revs.values()) == {PROMPT_VERSION} else revs
    ident.update(prompt_version=version, sample_sha256=sample_digest(examples))
    if exclude_ids:
        ident["exclude_ids"] = sorted(exclude_ids)
    return ident


def tier_prompt_revisions(ident: dict[str, Any]) -> dict[str, Any]:
    """``{tier name: prompt revision}`` of a run identity (an int ``prompt_version`` applies to
    every tier)."""
    v = ident.get("prompt_version", PROMPT_VERSION)
    names = [n for n, _ in run_tiers(ident)]
    return dict(v) if isinstance(v, dict) else {n: v for n in names}


#: Identity keys that may differ between a run and one whose generations it reuses: the sample.
SAMPLE_KEYS = ("limit", "seed", "questions", "sample_sha256", "command", "exclude_ids")


def reusable(ident: dict[str, Any], other: dict[str, Any], where: str = "--reuse") -> list[str]:
    """Check that generations stored under identity ``other`` can be reused by a run with
    identity ``ident``: the same dataset, data file, tiers (names, models, options) and answer
    budget; only the sample and the prompt revisions may differ.

    Returns:
        The tier names whose prompt revision is the same in both runs (their generations can be
        copied; the others are generated anew).

    Raises:
        RunError: naming each differing key, or no tier with the same prompt.
    """
    keys = (set(ident) & set(other)) - set(SAMPLE_KEYS) - {"prompt_version"}  # keys an older run lacks are not compared (as bind)
    diffs = [f"{k}: {other.get(k)!r} there, {ident.get(k)!r} here" for k in sorted(keys) if ident.get(k) != other.get(k)]
    try:
        if run_tiers(other) != run_tiers(ident):
            diffs.append(f"tiers: {run_tiers(other)} there, {run_tiers(ident)} here")
    except (KeyError, TypeError):
        diffs.append("tiers: not recorded there")
    for k in ("dataset", "data"):
        if k not in other:
            diffs.append(f"{k}: not recorded there")
    if diffs:
        raise RunError(f"{where}: that run was made with other settings; cannot reuse its generations ({'; '.join(diffs)})")
    mine, theirs = tier_prompt_revisions(ident), tier_prompt_revisions(other)
    same = [n for n, _ in run_tiers(ident) if mine.get(n) == theirs.get(n)]
    if not same:
        raise RunError(f"{where}: every tier's prompt changed since that run (prompt revisions {theirs} there, "
                       f"{mine} here); nothing to reuse")
    return same


def check_same_tiers(stored: dict[str, Any], ident: dict[str, Any], where: str) -> None:
    """Refuse a run directory whose stored tiers (names and models) differ from ``ident``'s,
    whatever shape either identity has (``slm``/``llm`` keys or a ``tiers`` list).

    Raises:
        RunError: naming both tier lists.
    """
    if not stored or ("tiers" in stored) == ("tiers" in ident):
        return  # nothing stored yet, or the same shape: RunStore.bind compares key by key
    try:
        old = run_tiers(stored)
    except (KeyError, TypeError):
        return  # no tiers recorded yet: bind() records them
    if old != run_tiers(ident):
        raise RunError(f"{where} holds a run of other tiers ({', '.join(f'{n}={m}' for n, m in old)}); refusing to mix "
                       f"with {', '.join(f'{n}={m}' for n, m in run_tiers(ident))}. Use another --out directory.")


def run_tiers(ident: dict[str, Any]) -> list[tuple[str, str]]:
    """``[(tier name, model spec), ...]`` of a run identity, in cascade order."""
    if "tiers" in ident:
        return [(t["name"], t["model"]) for t in ident["tiers"]]
    return [("slm", ident["slm"]), ("llm", ident["llm"])]


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def open_run(run_dir: str | Path) -> tuple[dict[str, Any], list[QAExample]]:
    """The identity and the sampled questions of a run directory made by ``eval``.

    Raises:
        RunError: no database, a corrupt one, no or a damaged identity, or data that no longer
            loads; the message names the directory or file.
    """
    rd = Path(run_dir)
    if not (rd / DB_NAME).is_file():
        raise RunError(f"{rd}: no {DB_NAME} here; is this a run directory made by `cascade-router eval`?")
    try:
        store = RunStore(rd)
        ident = store.meta()
        store.close()
    except sqlite3.DatabaseError as e:
        raise RunError(f"{rd / DB_NAME}: not a usable run database: {e}") from None
    except ValueError as e:  # a meta value that is not JSON
        raise RunError(f"{rd / DB_NAME}: the run identity is damaged: {e}") from None
    if not all(k in ident for k in ("dataset", "data", "limit", "seed")):
        raise RunError(f"{rd}: the run has no recorded identity (dataset, data, limit, seed)")
    checks = (("dataset", isinstance(ident["dataset"], str)), ("data", isinstance(ident["data"], str)),
              ("limit", ident["limit"] is None or _is_int(ident["limit"])), ("seed", _is_int(ident["seed"])),
              ("exclude_ids", isinstance(ident.get("exclude_ids", []), list)
               and all(isinstance(i, str) for i in ident.get("exclude_ids", []))),
              ("prompt_version", _is_int(ident.get("prompt_version", 1)) or (
                  isinstance(ident.get("prompt_version"), dict)
                  and all(_is_int(v) for v in ident["prompt_version"].values()))))
    bad = [k for k, ok in checks if not ok]
    try:
        tiers = run_tiers(ident)
        if not tiers or not all(isinstance(n, str) and isinstance(m, str) for n, m in tiers):
            bad.append("tiers")
    except (KeyError, TypeError):
        bad.append("tiers (slm/llm or a tiers list)")
    if bad:
        raise RunError(f"{rd / DB_NAME}: the run identity is damaged: wrong type for {', '.join(bad)}")
    try:
        data = None if ident["data"] == "bundled" else ident["data"]
        pool = load_dataset(ident["dataset"], data)
        if ident.get("exclude_ids"):
            pool = exclude(pool, ident["exclude_ids"], source=f"{rd / DB_NAME}: exclude_ids")
        examples = sample(pool, ident["limit"], seed=ident["seed"])
    except DatasetError as e:
        raise RunError(f"{rd}: cannot rebuild the run's questions: {e}") from None
    return ident, examples


def run_prices(ident: dict[str, Any], cfg=None) -> dict[str, TierPrice]:
    """Each tier's price: the price configured in ``cfg`` for a tier of the same name, else the
    illustrative default of the run's model (:data:`cascade_router.config.DEFAULT_PRICES`), else free."""
    from ..config import DEFAULT_PRICES

    configured = {t.name: t.price for t in (cfg.tiers if cfg is not None else []) if t.price is not None}
    return {name: configured.get(name) or DEFAULT_PRICES.get(model, TierPrice()) for name, model in run_tiers(ident)}


def load_scored_run(run_dir: str | Path, ident: dict[str, Any], examples: Sequence[QAExample], cfg=None) -> RunData:
    """The run's stored generations joined with its questions and scored (:func:`load_run`),
    tiers from the identity, prices from :func:`run_prices`.

    Raises:
        RunError: a damaged stored row (the message names the database, question and tier).
    """
    store = RunStore(run_dir)
    try:
        return load_run(examples, store, run_prices(ident, cfg), [n for n, _ in run_tiers(ident)])
    except StoreError as e:
        raise RunError(str(e)) from None
    finally:
        store.close()


def question_embeddings(run_dir: str | Path, examples: Sequence[QAExample], embedder_spec: str = "minilm",
                        embedder=None) -> dict[str, Any]:
    """Question embeddings of a run's questions, computed offline (no tier runs) and kept in
    ``RUN_DIR/question-embeddings-SPEC.npz`` (arrays only, read with ``allow_pickle=False``) so a
    report rebuilds without embedding again. Questions are embedded in the cache's normalised
    form (:func:`cascade_router.stages.cache.normalise_question`), as the server embeds them.

    Args:
        run_dir: the run directory.
        examples: the run's questions.
        embedder_spec: ``minilm`` or ``MODEL@URL``.
        embedder: an open embedder for that spec (default: opened here and closed after).

    Returns:
        question id -> unit vector.

    Raises:
        EmbeddingError: the embedder failed. ValueError: an unknown spec.
    """
    import re

    import numpy as np

    from ..stages.cache import normalise_question

    path = Path(run_dir) / f"question-embeddings-{re.sub(r'[^A-Za-z0-9._-]+', '_', embedder_spec)}.npz"
    have: dict[str, np.ndarray] = {}
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                ids, vecs = z["ids"], z["vectors"]
                ok = (vecs.ndim == 2 and ids.ndim == 1 and len(ids) == len(vecs) and np.isfinite(vecs).all()
                      and (embedder_spec != "minilm" or vecs.shape[1] == 384))
                have = dict(zip(ids.tolist(), vecs)) if ok else {}
        except Exception:  # a damaged file of any kind (a cut zip, wrong arrays): computed again below
            have = {}
    todo = [ex for ex in examples if ex.id not in have]
    if todo:
        from ..embeddings import load_embedder

        own = embedder is None
        emb = load_embedder(embedder_spec) if own else embedder
        try:
            vecs = emb.embed([normalise_question(ex.question) for ex in todo])
        finally:
            if own:
                emb.close()
        have.update({ex.id: v for ex, v in zip(todo, vecs)})
        ids = sorted(have)
        np.savez(path, ids=np.array(ids), vectors=np.stack([have[i] for i in ids]).astype(np.float32))
    return {ex.id: have[ex.id] for ex in examples}
