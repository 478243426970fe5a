"""Threshold routers over confidence signals: one signal, or several OR-ed rules (the presets)."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..signals import DIRECTION
from .base import Reason, Router, as_rows, column, decide, register, value_is_nan


def _direction(signal: str, direction: int | None) -> int:
    if direction is None:
        if signal not in DIRECTION:
            raise ValueError(f"unknown signal {signal!r}; valid: {', '.join(DIRECTION)}")
        return DIRECTION[signal]
    if direction not in (1, -1):
        raise ValueError(f"direction must be 1 or -1, got {direction!r}")
    return direction


@register
class SignalRouter(Router):
    """Escalate on one signal against a threshold **in the signal's own units**.

    ``direction`` is +1 when larger values mean less confidence (length, entropy): escalate when
    ``signal > threshold``; -1 when smaller values do (logprobs, margin, context support): escalate
    when ``signal < threshold``. It defaults to :data:`cascade_router.signals.DIRECTION`. So
    ``SignalRouter("mean_logprob", -0.6)`` escalates when the mean logprob is below -0.6, as the
    CLI spelling ``signal:mean_logprob:-0.6`` does. A nan signal never escalates.

    The decision score is ``direction * signal`` (higher = less confident) and
    :attr:`threshold` is in the same score units (``direction * threshold`` of the signal);
    :attr:`signal_threshold` is the threshold as given. Router files written before this
    convention (``params`` without ``"units": "signal"``) held the score-units threshold and load
    as they were meant.
    """

    kind = "signal"

    def __init__(self, signal: str, threshold: float = 0.0, direction: int | None = None, units: str = "signal") -> None:
        if units not in ("signal", "score"):
            raise ValueError(f"units must be 'signal' (or 'score' for files written before it), got {units!r}")
        self.signal = signal
        self.direction = _direction(signal, direction)
        t = float(threshold)
        self.signal_threshold = t if units == "signal" else self.direction * t

    @property
    def threshold(self) -> float:
        """The threshold on the decision score ``direction * signal``."""
        return self.direction * self.signal_threshold

    def get_params(self) -> dict[str, Any]:
        return {"signal": self.signal, "threshold": self.signal_threshold, "direction": self.direction, "units": "signal"}

    @classmethod
    def upgrade_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """Files written before thresholds were in signal units have no ``units``: score units."""
        return params if "units" in params else {**params, "units": "score"}

    def with_threshold(self, threshold: float) -> "SignalRouter":
        """A copy whose decision-score threshold is ``threshold`` (score units, as sweeps choose it)."""
        return SignalRouter(self.signal, self.direction * float(threshold), self.direction)

    def decision_function(self, signals) -> np.ndarray:
        return self.direction * column(as_rows(signals), self.signal)

    def explain(self, signals: Mapping[str, float]) -> list[Reason]:
        v = signals.get(self.signal, float("nan"))
        op = ">" if self.direction > 0 else "<"
        fired = not value_is_nan(v) and decide(self.direction * v, self.threshold)
        return [Reason(self.signal, v, op, self.signal_threshold, fired)]


@register
class ThresholdRouter(Router):
    """Escalate if ANY rule fires: ``signal > t`` (direction +1) or ``signal < t`` (direction -1).

    Args:
        rules: ``{signal: threshold}`` in the signal's own units (e.g. ``{"length_words": 8,
            "mean_entropy": 1.5, "mean_logprob": -0.6}``).
        directions: per-signal +1/-1; defaults from :data:`cascade_router.signals.DIRECTION`.
        threshold: offset on the decision score (0 reproduces the rules exactly).

    Decision score: the largest relative exceedance over the rules,
    ``max_i d_i * (s_i - t_i) / max(|t_i|, 1e-9)``, so ``score > 0`` iff some rule fires. Raising
    the router's ``threshold`` to ``x`` moves every rule's threshold by the same fraction ``x`` of
    its own size, which is how a preset is swept along a cost-quality curve. nan signals are
    skipped; with all signals nan the score is nan (never escalates).
    """

    kind = "threshold"

    def __init__(
        self,
        rules: Mapping[str, float],
        directions: Mapping[str, int] | None = None,
        threshold: float = 0.0,
        name: str | None = None,
    ) -> None:
        if not isinstance(rules, Mapping) or not rules:
            raise ValueError("'rules' must be a non-empty object {signal: threshold}")
        directions = dict(directions or {})
        self.rules = {k: float(v) for k, v in rules.items()}
        self.directions = {k: _direction(k, directions.get(k)) for k in self.rules}
        self.threshold = float(threshold)
        self.name = name

    def get_params(self) -> dict[str, Any]:
        return {
            "rules": dict(self.rules),
            "directions": dict(self.directions),
            "threshold": self.threshold,
            "name": self.name,
        }

    def decision_function(self, signals) -> np.ndarray:
        rows = as_rows(signals)
        parts = []
        for sig, t in self.rules.items():
            d = self.directions[sig]
            parts.append(d * (column(rows, sig) - t) / max(abs(t), 1e-9))
        stacked = np.vstack(parts)
        out = np.full(len(rows), np.nan)
        ok = ~np.all(np.isnan(stacked), axis=0)
        if ok.any():
            out[ok] = np.nanmax(stacked[:, ok], axis=0)
        return out

    def explain(self, signals: Mapping[str, float]) -> list[Reason]:
        out = []
        for sig, t in self.rules.items():
            d = self.directions[sig]
            eff = t + d * self.threshold * max(abs(t), 1e-9)
            v = signals.get(sig, float("nan"))
            fired = not value_is_nan(v) and d * (v - eff) > 0
            out.append(Reason(sig, v, ">" if d > 0 else "<", eff, fired))
        return out


#: The original project's presets (length in words, entropy in nats over the top-k, mean logprob).
PRESETS: dict[str, dict[str, float]] = {
    "seed-v1": {"length_words": 8, "mean_entropy": 1.5, "mean_logprob": -0.6},
    "seed-v2": {"length_words": 5, "mean_entropy": 1.1, "mean_logprob": -0.45},
    "seed-v3": {"length_words": 10, "mean_entropy": 1.8, "mean_logprob": -0.8},
}


def preset(name: str) -> ThresholdRouter:
    """A preset threshold router by name (``seed-v1``, ``seed-v2``, ``seed-v3``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; valid: {', '.join(PRESETS)}")
    return ThresholdRouter(PRESETS[name], name=name)


