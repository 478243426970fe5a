"""The evaluation datasets: SQuAD v1.1, SQuAD v2.0 and HotpotQA (distractor), in the official
JSON formats, bundled as package data (``cascade_router/data``, see ``SOURCES.md``)."""

from .files import BUNDLED_FILES, bundled_path
from .loading import load_dataset, load_raw, official_document, restrict_raw
from .sampling import exclude, group_by_passage, read_id_list, sample, split_by_passage
from .types import DATASETS, DatasetError, QAExample

__all__ = [
    "BUNDLED_FILES",
    "DATASETS",
    "DatasetError",
    "QAExample",
    "bundled_path",
    "exclude",
    "group_by_passage",
    "load_dataset",
    "load_raw",
    "official_document",
    "read_id_list",
    "restrict_raw",
    "sample",
    "split_by_passage",
]
