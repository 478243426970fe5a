"""Seeded, passage-preserving subsets of a dataset: `sample` and `split_by_passage`."""

from __future__ import annotations

import random
from collections.abc import Sequence

from .types import QAExample


def group_by_passage(examples: Sequence[QAExample]) -> dict[str, list[QAExample]]:
    """Questions per ``passage_id``: passages in order of first appearance, questions in input
    order."""
    groups: dict[str, list[QAExample]] = {}
    for ex in examples:
        groups.setdefault(ex.passage_id, []).append(ex)
    return groups


def _flatten(
    groups: dict[str, list[QAExample]], keep: dict[str, list[QAExample]]
) -> list[QAExample]:
    return [ex for pid in groups if pid in keep for ex in keep[pid]]


def sample(
    examples: Sequence[QAExample], limit: int | None, seed: int = 0
) -> list[QAExample]:
    """A seeded sample of exactly ``min(limit, len(examples))`` questions, kept in whole passages.

    Passages are visited in an order shuffled by ``random.Random(seed)``; all questions of each
    are taken until `limit` is reached, and the last passage is cut to its first questions to hit
    `limit` exactly. With the same `seed`, a smaller `limit` gives a subset of a larger one.

    Returns:
        the chosen questions grouped by passage (one passage's questions contiguous, so prompt
        prefixes can be cached), passages in input order, questions in input order.
        ``limit=None`` returns every question, grouped the same way.

    Raises:
        ValueError: `limit` is negative.
    """
    groups = group_by_passage(examples)
    if limit is None:
        return _flatten(groups, groups)
    if limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    order = list(groups)
    random.Random(seed).shuffle(order)
    chosen: dict[str, list[QAExample]] = {}
    taken = 0
    for pid in order:
        if taken >= limit:
            break
        part = groups[pid][: limit - taken]
        chosen[pid] = part
        taken += len(part)
    return _flatten(groups, chosen)


def split_by_passage(
    examples: Sequence[QAExample], calib_fraction: float = 0.5, seed: int = 0
) -> tuple[list[QAExample], list[QAExample]]:
    """Seeded split into calibration and test parts; a passage's questions never straddle the two.

    The passages are shuffled by ``random.Random(seed)`` and the first
    ``round_half_up(calib_fraction * n_passages)`` go to calibration (the fraction is of
    *passages*, so the question fraction is close to it but not exact for SQuAD).

    Returns:
        ``(calibration, test)``, each grouped by passage in input order.

    Raises:
        ValueError: `calib_fraction` outside ``[0, 1]``.
    """
    if not 0.0 <= calib_fraction <= 1.0:
        raise ValueError(f"calib_fraction must be in [0, 1], got {calib_fraction}")
    groups = group_by_passage(examples)
    order = list(groups)
    random.Random(seed).shuffle(order)
    n_calib = int(calib_fraction * len(order) + 0.5)
    calib_ids = set(order[:n_calib])
    calib = {pid: g for pid, g in groups.items() if pid in calib_ids}
    test = {pid: g for pid, g in groups.items() if pid not in calib_ids}
    return _flatten(groups, calib), _flatten(groups, test)


def read_id_list(path: str) -> list[str]:
    """Question ids from a text file: one per line; blank lines and lines starting with ``#``
    are skipped (used by ``eval --exclude-ids``).

    Raises:
        DatasetError: the file cannot be read or is not UTF-8 text, a line holds more than one
            word, or an id is repeated; the message names the file and line.
    """
    from .types import DatasetError

    try:
        with open(path, encoding="utf-8-sig") as fh:  # a byte-order mark is not part of the first id
            lines = fh.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: cannot read the question id list: {e}") from None
    ids: list[str] = []
    seen: set[str] = set()
    for i, line in enumerate(lines, 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if len(s.split()) != 1:
            raise DatasetError(f"{path} line {i}: expected one question id, got {s[:60]!r}")
        if s in seen:
            raise DatasetError(f"{path} line {i}: question id {s!r} is listed twice")
        seen.add(s)
        ids.append(s)
    return ids


def exclude(examples: Sequence[QAExample], ids: Sequence[str], source: str = "the id list") -> list[QAExample]:
    """``examples`` without the questions whose id is in ``ids`` (order kept).

    Raises:
        DatasetError: an id of ``ids`` is not among ``examples`` (a list meant for another
            dataset); the message names ``source`` and the first such ids.
    """
    from .types import DatasetError

    have = {ex.id for ex in examples}
    unknown = [i for i in ids if i not in have]
    if unknown:
        raise DatasetError(f"{source}: {len(unknown)} question id(s) not in the dataset, e.g. {', '.join(unknown[:3])}")
    drop = set(ids)
    return [ex for ex in examples if ex.id not in drop]
