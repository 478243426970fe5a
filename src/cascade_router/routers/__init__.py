"""Routers: decide from the SLM's confidence signals whether to escalate to the LLM.

Names accepted by :func:`get_router`: ``seed-v1``, ``seed-v2``, ``seed-v3`` (preset threshold
routers), ``always-slm``, ``always-llm``, ``random`` or ``random:RATE`` (seeded),
``signal:NAME:THRESHOLD`` (one signal; THRESHOLD in the signal's own units, e.g.
``signal:mean_logprob:-0.6`` escalates when mean logprob < -0.6), or a
path to a router saved as JSON.
"""

from __future__ import annotations

from pathlib import Path

from .base import Reason, Router, load_router_file, router_from_dict
from .baselines import AlwaysLLM, AlwaysSLM, RandomRouter
from .boosted import BoostedRouter
from .logistic import LogisticRouter, gain_labels
from .pregen import EmbeddingRouter
from .threshold import PRESETS, SignalRouter, ThresholdRouter, preset

ROUTER_NAMES = (*PRESETS, "always-slm", "always-llm", "random")

__all__ = [
    "Router", "Reason", "AlwaysSLM", "AlwaysLLM", "RandomRouter", "SignalRouter",
    "ThresholdRouter", "LogisticRouter", "BoostedRouter", "EmbeddingRouter", "gain_labels", "PRESETS", "ROUTER_NAMES", "get_router",
    "router_from_dict", "load_router_file", "preset",
]


def get_router(spec: str, seed: int = 0) -> Router:
    """Build a router from a name or a JSON path (see module docstring).

    Raises:
        ValueError: unknown name (the message lists the valid ones) or bad parameters.
    """
    if not isinstance(spec, str):
        raise ValueError(f"router must be a name or a path (a string), got {spec!r}")
    spec = spec.strip()
    if spec in PRESETS:
        return preset(spec)
    if spec == "always-slm":
        return AlwaysSLM()
    if spec == "always-llm":
        return AlwaysLLM()
    if spec == "random" or spec.startswith("random:"):
        rate = 0.5
        if ":" in spec:
            try:
                rate = float(spec.split(":", 1)[1])
            except ValueError:
                raise ValueError(f"bad router {spec!r}: use random:RATE with RATE in [0, 1]") from None
        return RandomRouter(rate=rate, seed=seed)
    if spec.startswith("signal:"):
        parts = spec.split(":")
        if len(parts) != 3:
            raise ValueError(f"bad router {spec!r}: use signal:NAME:THRESHOLD")
        try:
            name, t = parts[1], float(parts[2])
            return SignalRouter(name, threshold=t)
        except ValueError as e:
            raise ValueError(f"bad router {spec!r}: {e}") from None
    valid = f"valid: {', '.join(ROUTER_NAMES)}, random:RATE, signal:NAME:THRESHOLD, or a router .json file"
    if spec.endswith(".json"):
        if not Path(spec).is_file():
            raise ValueError(f"router file not found: {spec}; {valid}")
        return load_router_file(spec)
    raise ValueError(f"unknown router {spec!r}; {valid}")
