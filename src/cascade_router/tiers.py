"""Tiers: the models of a cascade as data (a name, a backend, a price).

A cascade is an ordered list of :class:`Tier` objects with a gate (a router) after each one;
see :mod:`cascade_router.cascade`. This module holds only the runtime records: it imports no
evaluation code, so configuration and serving never pull in the evaluation package.

Units: money in **dollars**, prices per **million tokens**.
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .models.base import Backend, Generation


def nonnegative(x, name: str) -> np.ndarray:
    """``x`` as a float array; ValueError naming ``name`` if it holds a NaN or a negative value."""
    arr = np.asarray(x, dtype=float)
    if np.any(np.isnan(arr)):
        raise ValueError(f"{name} must not contain NaN")
    if np.any(arr < 0):
        raise ValueError(f"{name} must be >= 0")
    return arr


@dataclass(frozen=True)
class TierPrice:
    """Price of one model tier.

    Attributes:
        per_call: dollars per call (e.g. request fee or amortised fixed cost), >= 0.
        prompt_per_mtok: dollars per million prompt tokens, >= 0.
        completion_per_mtok: dollars per million completion tokens, >= 0.

    Raises:
        ValueError: a negative or NaN price (the message names the field).
    """

    per_call: float = 0.0
    prompt_per_mtok: float = 0.0
    completion_per_mtok: float = 0.0

    def __post_init__(self) -> None:
        for name in ("per_call", "prompt_per_mtok", "completion_per_mtok"):
            v = float(getattr(self, name))
            if not (v >= 0 and math.isfinite(v)):  # also catches NaN
                raise ValueError(f"TierPrice.{name} must be a finite number >= 0, got {v}")

    def cost(self, prompt_tokens, completion_tokens):
        """Dollars for one call (or element-wise for arrays of calls).

        ``per_call + prompt_tokens * prompt_per_mtok / 1e6 + completion_tokens * completion_per_mtok / 1e6``

        Args:
            prompt_tokens: prompt tokens, scalar or array, >= 0.
            completion_tokens: completion tokens, same shape as ``prompt_tokens``, >= 0.

        Returns:
            float for scalar inputs, otherwise an array of dollars with the inputs' shape.

        Raises:
            ValueError: negative/NaN token counts or mismatched shapes.
        """
        p = nonnegative(prompt_tokens, "prompt_tokens")
        c = nonnegative(completion_tokens, "completion_tokens")
        if p.shape != c.shape:
            raise ValueError(
                f"completion_tokens must have the same shape as prompt_tokens, got {c.shape} and {p.shape}")
        out = self.per_call + p * (self.prompt_per_mtok / 1e6) + c * (self.completion_per_mtok / 1e6)
        return float(out) if out.ndim == 0 else out

    def of(self, gen: Generation | None) -> float:
        """Dollars for one generation (0 for None)."""
        if gen is None:
            return 0.0
        return float(self.cost(gen.prompt_tokens, gen.completion_tokens))


class CircuitBreaker:
    """A per-tier circuit breaker (LiteLLM's cooldowns are the model): after ``failures``
    consecutive failures the tier is skipped for ``cooldown_s`` seconds (the cascade degrades at
    once instead of paying the tier's timeouts again); after the cool-down one request probes it
    (half-open): a success closes the breaker, a failure opens it for another cool-down.
    Thread-safe.

    Args:
        failures: consecutive failures that open it (>= 1).
        cooldown_s: seconds it stays open (> 0).
        clock: seconds, monotonic (``time.monotonic``; tests pass their own).

    Raises:
        ValueError: a bound out of range.
    """

    def __init__(self, failures: int = 3, cooldown_s: float = 30.0, clock=None) -> None:
        if isinstance(failures, bool) or not isinstance(failures, int) or failures < 1:
            raise ValueError(f"breaker failures must be an integer >= 1, got {failures!r}")
        if not float(cooldown_s) > 0:
            raise ValueError(f"breaker cooldown_s must be > 0 seconds, got {cooldown_s!r}")
        self.failures, self.cooldown_s = failures, float(cooldown_s)
        self._clock = clock or time.monotonic
        self._lock = threading.Lock()
        self._count = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        """``closed``, ``open`` (skipping) or ``half-open`` (the cool-down is over: one probe)."""
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "open" if self._clock() - self._opened_at < self.cooldown_s else "half-open"

    def allow(self) -> bool:
        """Whether a call may go to the tier now (in half-open state, only one probe at a time)."""
        with self._lock:
            st = self._state()
            if st == "closed":
                return True
            if st == "half-open" and not self._probing:
                self._probing = True
                return True
            return False

    def seconds_left(self) -> float:
        """Seconds until the next probe (0 when closed)."""
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self.cooldown_s - (self._clock() - self._opened_at))

    def release_probe(self) -> None:
        """End a half-open probe that said nothing about the tier's health (the request was
        too long, or no call slot came free): the next request may probe."""
        with self._lock:
            self._probing = False

    def record_success(self) -> None:
        with self._lock:
            self._count, self._opened_at, self._probing = 0, None, False

    def record_failure(self) -> None:
        with self._lock:
            self._count += 1
            if self._probing or self._count >= self.failures:
                self._opened_at, self._probing = self._clock(), False


#: Calls at once on a tier whose backend has no ``parallel`` slots of its own (an endpoint).
ENDPOINT_PARALLEL = 4


class TierQueueTimeout(TimeoutError):
    """No call slot of a tier came free within its queue timeout (the tier is saturated)."""


class TierSlots:
    """A tier's own bounded pool of call slots: at most ``parallel`` model calls on the tier at
    once; more callers wait (their own queue), at most ``queue_timeout_s`` seconds. A cascade
    request holds a slot only while its call to this tier runs, so requests that need only an
    earlier tier never wait behind a slow or hung later tier. Thread-safe.

    Args:
        parallel: calls at once (>= 1): llama.cpp slots of an in-process tier, concurrent
            requests to an endpoint.
        queue_timeout_s: seconds a call may wait for a slot (> 0), then
            :class:`TierQueueTimeout`; None waits as long as it takes.

    Raises:
        ValueError: a bound out of range.
    """

    def __init__(self, parallel: int = 1, queue_timeout_s: float | None = None) -> None:
        if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
            raise ValueError(f"parallel must be an integer >= 1, got {parallel!r}")
        if queue_timeout_s is not None and not float(queue_timeout_s) > 0:
            raise ValueError(f"queue_timeout_s must be > 0 seconds, got {queue_timeout_s!r}")
        self.parallel = parallel
        self.queue_timeout_s = None if queue_timeout_s is None else float(queue_timeout_s)
        self._sem = threading.BoundedSemaphore(parallel)
        self._lock = threading.Lock()
        self.busy = 0  # calls holding a slot now
        self.waiting = 0  # calls waiting for one

    @contextlib.contextmanager
    def hold(self):
        """Hold one slot for a ``with`` block; yields the seconds waited for it.

        Raises:
            TierQueueTimeout: no slot within ``queue_timeout_s``.
        """
        t0 = time.perf_counter()
        with self._lock:
            self.waiting += 1
        try:
            got = self._sem.acquire(timeout=self.queue_timeout_s) if self.queue_timeout_s else self._sem.acquire()
        finally:
            with self._lock:
                self.waiting -= 1
        if not got:
            raise TierQueueTimeout(f"all {self.parallel} call slot(s) busy for {self.queue_timeout_s:g} s")
        waited = time.perf_counter() - t0
        with self._lock:
            self.busy += 1
        try:
            yield waited
        finally:
            with self._lock:
                self.busy -= 1
            self._sem.release()


@dataclass
class Tier:
    """One tier of a cascade.

    Attributes:
        name: unique within the cascade (``"slm"``, ``"medium"``, ...); names the tier in
            results, the run store, the server's ``model`` field and metrics labels.
        backend: the model (:class:`~cascade_router.models.base.Backend`).
        price: what a call costs (default free).
        options: per-tier settings kept for records (prompt family, threads, model spec, ...).
        breaker: the tier's :class:`CircuitBreaker` (None: never skipped).
        slots: the tier's own pool of call slots (:class:`TierSlots`); default: the backend's
            ``parallel`` (llama.cpp slots) where it has one, else :data:`ENDPOINT_PARALLEL`,
            waiting without limit. Two tiers on one backend should share one pool.
    """

    name: str
    backend: Backend
    price: TierPrice = field(default_factory=TierPrice)
    options: dict[str, Any] = field(default_factory=dict)
    breaker: CircuitBreaker | None = None
    slots: TierSlots | None = None

    def __post_init__(self) -> None:
        if self.slots is None:
            n = vars(self.backend).get("parallel") if hasattr(self.backend, "__dict__") else None
            self.slots = TierSlots(n if isinstance(n, int) and not isinstance(n, bool) and n >= 1 else ENDPOINT_PARALLEL)

    @property
    def model_id(self) -> str:
        """The backend's model id (what generations record)."""
        return str(getattr(self.backend, "model_id", self.name))

    def close(self) -> None:
        """Close the backend."""
        self.backend.close()


def check_tier_names(names: list[str], where: str = "tiers") -> None:
    """Raise ValueError naming the first bad, reserved or duplicate tier name.

    A name is 1-64 ASCII letters, digits, ``.``, ``_`` or ``-``, starting with a letter or a
    digit (it becomes an HTTP header value, a metrics label and a file name in a run directory),
    and not one of :data:`RESERVED_NAMES`."""
    seen: set[str] = set()
    for n in names:
        if not isinstance(n, str) or not _NAME_RE.fullmatch(n):
            raise ValueError(f"{where}: tier name {n!r} must be 1-64 ASCII letters, digits, '.', '_' or '-', "
                             "starting with a letter or digit")
        if n in RESERVED_NAMES:
            raise ValueError(f"{where}: tier name {n!r} is reserved ({', '.join(RESERVED_NAMES)})")
        if n in seen:
            raise ValueError(f"{where}: duplicate tier name {n!r}; tier names must be unique")
        seen.add(n)


#: Names a tier may not take: routes, server model ids and report files that mean something else.
RESERVED_NAMES = ("abstain", "cascade", "cache", "oracle", "random", "seed-v1", "seed-v2", "seed-v3")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
