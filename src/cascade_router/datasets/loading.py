"""`load_raw` / `load_dataset`: read a dataset file (bundled or given), check it, convert it."""

from __future__ import annotations

import os

from .files import bundled_path, read_json
from .hotpot import parse_hotpot
from .squad import parse_squad
from .types import QAExample, check_name


def _load(name: str, path: str | os.PathLike | None) -> tuple[list, list[QAExample]]:
    check_name(name)
    p = bundled_path(name) if path is None else path
    doc = read_json(p)
    source = os.fspath(p)
    if name == "hotpotqa":
        return parse_hotpot(doc, source)
    return parse_squad(doc, name, source)


def load_dataset(name: str, path: str | os.PathLike | None = None) -> list[QAExample]:
    """Load dataset `name` as `QAExample`s in file order.

    Args:
        name: one of `DATASETS`.
        path: a ``.json`` or ``.json.gz`` file in the official format; ``None`` loads the bundled
            dev file (see ``data/SOURCES.md``).

    Raises:
        DatasetError: unknown `name` (the message lists the valid names), or a missing,
            unreadable or malformed file (the message names the file and the record).
    """
    return _load(name, path)[1]


def load_raw(name: str, path: str | os.PathLike | None = None) -> list:
    """The parsed official JSON, checked as by `load_dataset`: for SQuAD the ``"data"`` list, for
    HotpotQA the list of records. This is what the ``evaluate_*`` functions in
    `cascade_router.metrics` take.

    Raises:
        DatasetError: as `load_dataset`.
    """
    return _load(name, path)[0]


def restrict_raw(name: str, raw: list, ids: set[str]) -> list:
    """The official-format data (as from `load_raw`) keeping only the questions in `ids`.

    SQuAD: articles and paragraphs that keep no question are dropped; HotpotQA: records are
    filtered by ``_id``. The result is what the ``evaluate_*`` functions take, and scores a
    sample the way the official scripts would score a file holding just that sample.
    """
    check_name(name)
    if name == "hotpotqa":
        return [r for r in raw if r.get("_id") in ids]
    out = []
    for art in raw:
        paras = []
        for para in art.get("paragraphs", []):
            qas = [qa for qa in para.get("qas", []) if qa.get("id") in ids]
            if qas:
                paras.append({**para, "qas": qas})
        if paras:
            out.append({**art, "paragraphs": paras})
    return out


def official_document(name: str, raw: list) -> object:
    """Wrap `raw` data as a complete official file body (SQuAD: ``{"version", "data"}``)."""
    check_name(name)
    if name == "hotpotqa":
        return raw
    return {"version": "v2.0" if name == "squad-v2.0" else "1.1", "data": raw}
