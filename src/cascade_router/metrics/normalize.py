"""Answer normalisation shared by evaluate-v1.1.py, evaluate-v2.0.py and hotpot_evaluate_v1.py."""

from __future__ import annotations

import re
import string

_PUNCTUATION = frozenset(string.punctuation)  # ASCII punctuation only, as the official scripts
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(s: str) -> str:
    """The official SQuAD normalisation (``normalize_answer`` in evaluate-v1.1.py / -v2.0.py; the
    HotpotQA script uses the same): lower-case, delete ASCII punctuation characters, replace the
    whole words ``a``/``an``/``the`` by a space, collapse whitespace.

    Non-ASCII punctuation (``–``, ``“``) and accents are kept, as in the official scripts;
    ``"1,000"`` becomes ``"1000"``.
    """
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCTUATION)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def answer_tokens(s: str) -> list[str]:
    """Whitespace tokens of ``normalize_answer(s)`` (``get_tokens`` in evaluate-v2.0.py)."""
    return normalize_answer(s).split()
