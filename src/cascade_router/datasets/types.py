"""The records every dataset loader produces: `QAExample`, `DatasetError` and the dataset names."""

from __future__ import annotations

from dataclasses import dataclass, field

#: The dataset names accepted everywhere (loaders, metrics, CLI).
DATASETS = ("squad-v1.1", "squad-v2.0", "hotpotqa")


class DatasetError(ValueError):
    """A dataset file is missing, unreadable or not in the official format.

    The message names the file and, where one is at fault, the record (question id or index).
    """


def check_name(name: str) -> str:
    """Return `name` if it is one of `DATASETS`; raise `DatasetError` listing the valid names."""
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    return name


@dataclass
class QAExample:
    """One question with its passage and gold answers, the same shape for every dataset.

    Attributes:
        id: the official question id (SQuAD ``id``, HotpotQA ``_id``).
        question: the question text.
        context: SQuAD: the paragraph, unchanged. HotpotQA: the context paragraphs in file order,
            each rendered as ``"Title: sent0 sent1 ..."`` (sentences stripped, empty ones
            dropped, joined by one space), paragraphs joined by ``"\\n\\n"``.
        answers: every gold answer text in file order (duplicates kept); ``[]`` for an
            unanswerable SQuAD v2.0 question; ``[answer]`` for HotpotQA.
        answerable: False only for SQuAD v2.0 questions with no answer (``bool(answers)``, as
            ``make_qid_to_has_ans`` in evaluate-v2.0.py).
        dataset: one of `DATASETS`.
        passage_id: groups the questions sharing one passage: SQuAD ``f"{title}#{paragraph_index}"``
            (index 0-based within the article); HotpotQA the ``_id`` itself.
        extra: dataset-specific fields. SQuAD: ``title``, ``paragraph_index``, ``answer_starts``
            (character offsets, one per answer) and, for v2.0, ``is_impossible``,
            ``plausible_answers`` (texts) and ``plausible_answer_starts`` where present.
            HotpotQA: ``type``, ``level``, ``paragraphs`` (``[[title, [sentences]], ...]`` as in
            the file) and ``supporting_facts`` (``[[title, sentence_index], ...]``).
    """

    id: str
    question: str
    context: str
    answers: list[str]
    answerable: bool
    dataset: str
    passage_id: str
    extra: dict = field(default_factory=dict)
