"""The router interface, in scikit-learn's habits.

A router maps one tier's confidence signals to a decision score (higher = more reason to go on
to the next tier, or to abstain after the last) and escalates a question iff
``score > threshold`` (:func:`decide`, the one place that states the rule). A router does not
know which tier it stands after. Constructor arguments are the
explicit parameters (``get_params``), learning routers have ``fit``, and every router saves to
and loads from JSON.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from ..jsonsafe import json_safe

SignalRows = Sequence[Mapping[str, float]]


@dataclass
class Reason:
    """One line of a routing explanation: a signal's value beside its threshold."""

    signal: str
    value: float
    op: str  # ">" or "<"
    threshold: float
    fired: bool

    def __str__(self) -> str:
        v = "n/a" if value_is_nan(self.value) else f"{self.value:.3f}"
        mark = "ESCALATE" if self.fired else "ok"
        return f"{self.signal:>20} = {v:>8}   escalate if {self.op} {self.threshold:g}   [{mark}]"


def decide(score, threshold: float):
    """THE decision rule of every gate: escalate iff ``score > threshold``; a nan score never
    escalates. ``score`` a float (returns bool) or an array (returns a bool array, same shape)."""
    with np.errstate(invalid="ignore"):
        out = np.asarray(score, dtype=float) > float(threshold)
    return bool(out) if out.ndim == 0 else out


def check_c_and_threshold(C: float, threshold: float) -> tuple[float, float]:
    """A learned router's regularisation strength and probability threshold as floats.

    Raises:
        ValueError: ``C`` not > 0, or a nan threshold (naming the parameter).
    """
    if not float(C) > 0:
        raise ValueError(f"C must be > 0, got {C!r}")
    threshold = float(threshold)
    if math.isnan(threshold):
        raise ValueError("threshold must be a probability (or +-inf), not nan")
    return float(C), threshold


def value_is_nan(v: Any) -> bool:
    """True for None or a float nan."""
    return v is None or (isinstance(v, float) and math.isnan(v))


def as_rows(signals: Mapping[str, float] | SignalRows) -> list[Mapping[str, float]]:
    """Accept one signal dict or a sequence of them; return a list of dicts."""
    if isinstance(signals, Mapping):
        return [signals]
    return list(signals)


def column(rows: SignalRows, name: str) -> np.ndarray:
    """The values of one signal over rows, shape ``(n,)``, missing -> nan.

    Raises:
        KeyError: no row has the signal at all (a misspelt name), naming it.
    """
    if rows and all(name not in r for r in rows):
        raise KeyError(f"signal {name!r} not present; available: {', '.join(sorted(rows[0]))}")
    return np.array([np.nan if value_is_nan(r.get(name)) else float(r[name]) for r in rows], dtype=float)


class Router:
    """Base class. Subclasses set ``kind`` and implement :meth:`decision_function`."""

    kind: ClassVar[str] = "router"
    threshold: float = 0.0

    def decision_function(self, signals: Mapping[str, float] | SignalRows) -> np.ndarray:
        """Decision scores, shape ``(n,)``; higher means escalate sooner."""
        raise NotImplementedError

    def predict(self, signals: Mapping[str, float] | SignalRows) -> np.ndarray:
        """Escalate (True) or keep the SLM answer (False), shape ``(n,)``: ``score > threshold``.
        A nan score never escalates."""
        return np.asarray(decide(self.decision_function(signals), self.threshold), dtype=bool)

    def escalate(self, signals: Mapping[str, float]) -> bool:
        """The decision for one question."""
        return bool(self.predict(signals)[0])

    def explain(self, signals: Mapping[str, float]) -> list[Reason]:
        """Per-signal reasons for one question (empty for routers that use no signal)."""
        return []

    def fit(self, signals: SignalRows, y: Sequence[int] | None = None,
            sample_weight: Sequence[float] | None = None) -> "Router":
        """No-op for routers that do not learn; returns self."""
        return self

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters, JSON-serialisable."""
        raise NotImplementedError

    @classmethod
    def upgrade_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """Saved params as this version's constructor reads them (a kind whose params changed
        meaning maps older files here); the identity by default."""
        return params

    def with_threshold(self, threshold: float) -> "Router":
        """A copy with another threshold (used by sweeps and calibration)."""
        d = self.to_dict()
        d["params"]["threshold"] = float(threshold)
        return router_from_dict(d)

    # --- persistence -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """``{"kind": ..., "params": {...}, "state": {...}}``; ``state`` holds fitted values."""
        return {"kind": self.kind, "params": self.get_params(), "state": self._get_state()}

    def _get_state(self) -> dict[str, Any]:
        return {}

    def _set_state(self, state: Mapping[str, Any]) -> None:
        pass

    def save(self, path: str | Path) -> Path:
        """Write the router as JSON; returns the path."""
        path = Path(path)
        path.write_text(json.dumps(json_safe(self.to_dict(), nan="string"), indent=2, allow_nan=False) + "\n")
        return path

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


ROUTER_KINDS: dict[str, type[Router]] = {}


def register(cls: type[Router]) -> type[Router]:
    """Class decorator: make a router kind loadable from JSON."""
    ROUTER_KINDS[cls.kind] = cls
    return cls


def router_from_dict(d: Mapping[str, Any], source: str = "router") -> Router:
    """Rebuild a router from :meth:`Router.to_dict` output.

    Raises:
        ValueError: unknown ``kind`` or bad params, naming ``source`` (e.g. the file).
    """
    try:
        kind = d["kind"]
        cls = ROUTER_KINDS[kind]
    except (KeyError, TypeError):
        raise ValueError(
            f"{source}: 'kind' must be one of {', '.join(sorted(ROUTER_KINDS))}; got {d.get('kind') if isinstance(d, Mapping) else d!r}"
        ) from None
    params, state = d.get("params") or {}, d.get("state") or {}
    if not isinstance(params, Mapping) or not isinstance(state, Mapping):
        raise ValueError(f"{source}: 'params' and 'state' must be JSON objects")
    try:
        r = cls(**cls.upgrade_params(dict(params)))
        r._set_state(state)
    except (TypeError, ValueError, AttributeError, KeyError) as e:
        raise ValueError(f"{source}: bad params or state for router kind {kind!r}: {e}") from None
    return r


def load_router_file(path: str | Path) -> Router:
    """Load a router saved with :meth:`Router.save`.

    Raises:
        ValueError: the file is not JSON or not a router, naming the file.
    """
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read router JSON: {e}") from None
    return router_from_dict(d, source=str(path))
