"""Locating the bundled data files and reading a `.json` / `.json.gz` file into Python objects."""

from __future__ import annotations

import gzip
import json
import os
import pathlib
import zlib
from importlib import resources

from .types import DatasetError, check_name

#: Bundled file name per dataset, under the package's ``data/`` folder (see data/SOURCES.md).
BUNDLED_FILES = {
    "squad-v1.1": "squad-v1.1-dev.json.gz",
    "squad-v2.0": "squad-v2.0-dev.json.gz",
    "hotpotqa": "hotpotqa-dev-distractor-first500.json.gz",
}

_GZIP_MAGIC = b"\x1f\x8b"


def bundled_path(name: str) -> pathlib.Path:
    """Path of the bundled official file for dataset `name` (gzip JSON, package data).

    Raises:
        DatasetError: `name` is not one of `DATASETS`.
    """
    check_name(name)
    resource = resources.files("cascade_router").joinpath("data", BUNDLED_FILES[name])
    return pathlib.Path(str(resource))


def read_json(path: str | os.PathLike) -> object:
    """Parse the JSON file at `path`; gzip is decompressed when the name ends in ``.gz``
    (or the content starts with the gzip magic bytes).

    Returns:
        the parsed JSON value.

    Raises:
        DatasetError: the file is missing, is a directory, is named ``.gz`` but is not gzip,
            is not UTF-8, or is not valid JSON. The message starts with the path.
    """
    p = pathlib.Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise DatasetError(f"{p}: is a directory, not a JSON file") from None
    except OSError as exc:
        raise DatasetError(f"{p}: cannot read file ({exc.strerror or exc})") from None
    if p.name.endswith(".gz") or raw.startswith(_GZIP_MAGIC):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetError(f"{p}: not a valid gzip file ({exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{p}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
