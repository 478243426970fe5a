"""Baseline routers: always the SLM, always the LLM, and seeded random routing."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Router, as_rows, register


@register
class AlwaysSLM(Router):
    """Never escalate (decision score -inf)."""

    kind = "always-slm"

    def __init__(self, threshold: float = 0.0) -> None:
        self.threshold = float(threshold)

    def get_params(self) -> dict[str, Any]:
        return {"threshold": self.threshold}

    def decision_function(self, signals) -> np.ndarray:
        return np.full(len(as_rows(signals)), -np.inf)


@register
class AlwaysLLM(Router):
    """Always escalate (decision score +inf)."""

    kind = "always-llm"

    def __init__(self, threshold: float = 0.0) -> None:
        self.threshold = float(threshold)

    def get_params(self) -> dict[str, Any]:
        return {"threshold": self.threshold}

    def decision_function(self, signals) -> np.ndarray:
        return np.full(len(as_rows(signals)), np.inf)


@register
class RandomRouter(Router):
    """Escalate a random share ``rate`` of questions, ignoring the signals.

    Decision scores are uniform draws in [0, 1) from ``numpy.random.default_rng(seed)``, and the
    threshold is ``1 - rate``, so each question escalates with probability ``rate``. The stream is
    reproducible: a fresh router with the same seed gives the same draws in the same order.

    Raises:
        ValueError: ``rate`` outside [0, 1].
    """

    kind = "random"

    def __init__(self, rate: float = 0.5, seed: int = 0, threshold: float | None = None) -> None:
        if not 0.0 <= float(rate) <= 1.0:
            raise ValueError(f"random router: rate must be in [0, 1], got {rate!r}")
        self.rate = float(rate)
        self.seed = int(seed)
        self.threshold = 1.0 - self.rate if threshold is None else float(threshold)
        self._rng = np.random.default_rng(self.seed)

    def get_params(self) -> dict[str, Any]:
        return {"rate": self.rate, "seed": self.seed, "threshold": self.threshold}

    def decision_function(self, signals) -> np.ndarray:
        return self._rng.random(len(as_rows(signals)))
