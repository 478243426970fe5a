"""The one JSON sanitiser: non-finite floats, numpy scalars and dataclasses made JSON-ready.

Standard JSON has no nan or infinity. The rule everywhere in this project (stored routers,
``summary.json``, ``ask --json``, the server's ``cascade`` object):

* ``nan`` (an undefined value: a signal without logprobs) becomes ``null``, or the string
  ``"nan"`` with ``nan="string"`` (router files, where ``float("nan")`` must read it back);
* ``+inf`` / ``-inf`` become the strings ``"inf"`` / ``"-inf"`` (``float()`` reads them back);
* numpy scalars become Python numbers, tuples become lists, dataclasses become dicts.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any


def json_safe(x: Any, nan: str = "null") -> Any:
    """``x`` made JSON-serialisable with ``allow_nan=False`` (see the module docstring).

    Args:
        x: any nesting of dicts, lists, tuples, dataclasses, numbers, strings, None.
        nan: ``"null"`` (default) or ``"string"``: how a nan is written.

    Raises:
        ValueError: an unknown ``nan`` mode.
    """
    if nan not in ("null", "string"):
        raise ValueError(f"nan must be 'null' or 'string', got {nan!r}")
    return _safe(x, nan)


def _safe(x: Any, nan: str) -> Any:
    if isinstance(x, dict):
        return {str(k): _safe(v, nan) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_safe(v, nan) for v in x]
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return _safe(dataclasses.asdict(x), nan)
    if x is None or isinstance(x, (bool, str)):
        return x
    if isinstance(x, numbers.Integral):
        return int(x)
    if isinstance(x, numbers.Real):
        f = float(x)
        if math.isnan(f):
            return None if nan == "null" else "nan"
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return f
    if hasattr(x, "item"):  # numpy bool_
        return _safe(x.item(), nan)
    return x
