"""Prometheus metrics of one server instance (each app owns its registry).

Every ``tier`` label is a tier NAME of the cascade (``slm``, ``llm``, ``small``, ``medium``,
...), never a model id. Exposed names (``GET /metrics``, Prometheus text format):

* ``cascade_requests_total{endpoint, status}``: HTTP requests by route and status code
  (429 = rejected because the queue was full; ``endpoint`` is ``/v1/models/{model_id}`` for a
  single-model lookup and ``other`` for unknown paths).
* ``cascade_request_latency_seconds{endpoint}``: histogram, seconds from request to response
  (includes queueing; for streams, until the response starts).
* ``cascade_answers_total{route, mode}``: answers by ``route``, the tier whose answer was
  returned or ``abstain``, and ``mode``: ``routed`` (from the first tier) or ``started`` (the
  request's ``model`` named a tier, so the cascade started there).
* ``cascade_escalations_total{tier}``: gate decisions that escalated, by the tier whose gate
  escalated (the tier before the escalation).
* ``cascade_abstentions_total``: answers where the abstain gate after the last tier abstained.
* ``cascade_degraded_total``: answers in which some tier failed, so a later tier or an earlier
  answer was used instead.
* ``cascade_tier_calls_total{tier, outcome}``: model calls per tier, ``ok`` or ``error`` (a
  failure inside a degraded answer, or the failure that made a request 503).
* ``cascade_tier_tokens_total{tier, kind}``: tokens per tier, ``prompt`` or ``completion``.
* ``cascade_tier_latency_seconds{tier}``: histogram, model seconds per successful tier call
  (from sending the call to its answer; waiting for a call slot is not included).
* ``cascade_tier_queue_seconds{tier}``: histogram, seconds a tier call waited for one of the
  tier's call slots (its ``parallel`` bound) before it was sent.
* ``cascade_tier_busy_slots{tier}``, ``cascade_tier_waiting_calls{tier}``: gauges, calls
  holding one of the tier's slots now, and calls waiting for one.
* ``cascade_tier_busy_total{tier}``: calls that found every one of the tier's slots busy for its
  ``queue_timeout_s`` (counted among the ``error`` calls too; the request degraded or got 503).
* ``cascade_early_escalations_total{tier}``: escalations decided before the tier's answer was
  complete (early escalation stopped its generation).
* ``cascade_cost_usd_total``: dollars spent over every tier that ran, at the configured prices.
* ``cascade_tier_breaker_open{tier}``: 1 while that tier's circuit breaker skips it.
* ``cascade_in_flight_requests``, ``cascade_queued_requests``: gauges, cascade calls running
  in worker threads and waiting for one.

The per-tier counters start at 0 for every tier of the cascade (so a tier that never ran
still shows up).
"""

from __future__ import annotations

from typing import Callable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE  # noqa: F401  (re-exported)

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

#: ``mode`` labels of ``cascade_answers_total``.
MODES = ("routed", "started")


class ServerMetrics:
    """The counters, histograms and gauges listed in the module docstring.

    Args:
        in_flight: returns the number of cascade calls running now.
        queued: returns the number of admitted requests waiting for a worker.
        tiers: the cascade's tier names, in order (their per-tier counters start at 0).
        breakers: ``{tier name: CircuitBreaker}``; slots: ``{tier name: TierSlots}``.
    """

    def __init__(self, in_flight: Callable[[], float], queued: Callable[[], float],
                 tiers: Sequence[str] = (), breakers: dict | None = None, slots: dict | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("cascade_requests", "HTTP requests by endpoint and status code",
                                ["endpoint", "status"], registry=r)
        self.request_latency = Histogram("cascade_request_latency_seconds",
                                         "Seconds from request to response start, queueing included",
                                         ["endpoint"], buckets=_LATENCY_BUCKETS, registry=r)
        self.answers = Counter("cascade_answers",
                               "Answers by route (answering tier name or abstain) and mode (routed|started)",
                               ["route", "mode"], registry=r)
        self.escalations = Counter("cascade_escalations", "Gate escalations, by the tier whose gate escalated",
                                   ["tier"], registry=r)
        self.abstentions = Counter("cascade_abstentions", "Answers where the abstain gate abstained", registry=r)
        self.degraded = Counter("cascade_degraded", "Answers in which a tier failed (degraded answers)",
                                registry=r)
        self.tier_calls = Counter("cascade_tier_calls", "Model calls per tier and outcome (ok|error)",
                                  ["tier", "outcome"], registry=r)
        self.tier_tokens = Counter("cascade_tier_tokens", "Tokens per tier and kind (prompt|completion)",
                                   ["tier", "kind"], registry=r)
        self.tier_latency = Histogram("cascade_tier_latency_seconds",
                                      "Model seconds per successful tier call (slot wait excluded)",
                                      ["tier"], buckets=_LATENCY_BUCKETS, registry=r)
        self.tier_queue = Histogram("cascade_tier_queue_seconds", "Seconds a tier call waited for a call slot",
                                    ["tier"], buckets=(0.0,) + _LATENCY_BUCKETS, registry=r)
        self.busy = Counter("cascade_tier_busy", "Calls that found every call slot of the tier busy "
                            "for its queue timeout", ["tier"], registry=r)
        self.early = Counter("cascade_early_escalations",
                             "Escalations decided before the tier's answer was complete", ["tier"], registry=r)
        self.cost = Counter("cascade_cost_usd", "Dollars spent over every tier that ran", registry=r)
        self.cache_lookups = Counter("cascade_cache_lookups", "Semantic cache lookups by result (hit|miss|bypass)",
                                     ["result"], registry=r)
        self.cache_errors = Counter("cascade_cache_errors",
                                    "Semantic cache lookups or writes that failed (the tiers answered)", registry=r)
        Gauge("cascade_in_flight_requests", "Cascade calls running in worker threads",
              registry=r).set_function(in_flight)
        Gauge("cascade_queued_requests", "Admitted requests waiting for a worker thread",
              registry=r).set_function(queued)
        for result in ("hit", "miss", "bypass"):
            self.cache_lookups.labels(result)
        open_ = Gauge("cascade_tier_breaker_open", "1 while a tier's circuit breaker skips it (open), else 0",
                      ["tier"], registry=r)
        for name, b in (breakers or {}).items():
            open_.labels(name).set_function(lambda b=b: 1.0 if b.state == "open" else 0.0)
        busy = Gauge("cascade_tier_busy_slots", "Calls holding one of a tier's call slots", ["tier"], registry=r)
        waiting = Gauge("cascade_tier_waiting_calls", "Calls waiting for one of a tier's call slots", ["tier"],
                        registry=r)
        for name, sl in (slots or {}).items():
            busy.labels(name).set_function(lambda sl=sl: float(sl.busy))
            waiting.labels(name).set_function(lambda sl=sl: float(sl.waiting))
        tiers = list(tiers)
        for i, name in enumerate(tiers):
            for outcome in ("ok", "error"):
                self.tier_calls.labels(name, outcome)
            for kind in ("prompt", "completion"):
                self.tier_tokens.labels(name, kind)
            self.busy.labels(name)
            if i < len(tiers) - 1:
                self.escalations.labels(name)
                self.early.labels(name)

    def record_run(self, run) -> None:
        """Count one successful tier call from its :class:`~cascade_router.cascade.TierRun`."""
        gen = run.generation
        self.tier_calls.labels(run.tier, "ok").inc()
        self.tier_tokens.labels(run.tier, "prompt").inc(max(0, int(gen.prompt_tokens)))
        self.tier_tokens.labels(run.tier, "completion").inc(max(0, int(gen.completion_tokens)))
        self.tier_latency.labels(run.tier).observe(max(0.0, float(run.latency_s)))
        self.tier_queue.labels(run.tier).observe(max(0.0, float(getattr(run, "queue_s", 0.0))))

    def record_failure(self, tier: str, busy: bool = False) -> None:
        """Count one failed call of ``tier`` (``busy``: no call slot came free)."""
        self.tier_calls.labels(tier, "error").inc()
        if busy:
            self.busy.labels(tier).inc()

    def record_result(self, res, mode: str, answered: bool = True) -> None:
        """Count one answered request from its :class:`~cascade_router.cascade.CascadeResult`:
        every tier that ran or failed, every escalation, the route, abstention, degradation, cost.

        Args:
            res: the result.
            mode: ``routed`` or ``started`` (see :data:`MODES`).
            answered: False for the partial result of a request that ended in a 503 (fail
                mode): its tiers, escalations and cost count, no answer does.
        """
        for run in res.runs:
            self.record_run(run)
        for f in res.failures:
            self.record_failure(f.tier, f.busy)
        for d in res.decisions:
            if d.outcome == "escalate":
                self.escalations.labels(d.after).inc()
                if d.early:
                    self.early.labels(d.after).inc()
        if res.abstained:
            self.abstentions.inc()
        if res.degraded:
            self.degraded.inc()
        if res.cache_status is not None:
            self.cache_lookups.labels(res.cache_status).inc()
        if res.cache_error is not None:
            self.cache_errors.inc()
        if answered:
            self.answers.labels(res.route, mode).inc()
        self.cost.inc(max(0.0, float(res.cost_usd)))

    def render(self) -> bytes:
        """The registry in Prometheus text exposition format (UTF-8 bytes)."""
        return generate_latest(self.registry)
