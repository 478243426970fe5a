"""Prometheus metrics of one server instance (each app owns its registry).

Exposed names (``GET /metrics``, Prometheus text format):

* ``cascade_requests_total{endpoint, status}``: HTTP requests by path and status code
  (429 = rejected because the queue was full).
* ``cascade_request_latency_seconds{endpoint}``: histogram, seconds from request to response
  (includes queueing; for streams, until the response starts).
* ``cascade_answers_total{route, mode}``: answers by the tier whose answer was returned
  (``slm``/``llm``) and ``mode`` (``routed`` or ``forced`` for direct tier requests).
* ``cascade_escalations_total``: routed requests the router sent to the LLM.
* ``cascade_degraded_total``: escalations whose LLM call failed, answered by the SLM.
* ``cascade_tier_calls_total{tier, outcome}``: model calls per tier, ``ok`` or ``error``.
* ``cascade_tier_tokens_total{tier, kind}``: tokens per tier, ``prompt`` or ``completion``.
* ``cascade_tier_latency_seconds{tier}``: histogram, seconds per successful tier call.
* ``cascade_cost_usd_total``: dollars spent over both tiers at the configured prices.
* ``cascade_in_flight_requests``, ``cascade_queued_requests``: gauges, cascade calls running
  in worker threads and waiting for one.
"""

from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE  # noqa: F401  (re-exported)

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class ServerMetrics:
    """The counters, histograms and gauges listed in the module docstring.

    Args:
        in_flight: returns the number of cascade calls running now.
        queued: returns the number of admitted requests waiting for a worker.
    """

    def __init__(self, in_flight: Callable[[], float], queued: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("cascade_requests", "HTTP requests by endpoint and status code",
                                ["endpoint", "status"], registry=r)
        self.request_latency = Histogram("cascade_request_latency_seconds",
                                         "Seconds from request to response start, queueing included",
                                         ["endpoint"], buckets=_LATENCY_BUCKETS, registry=r)
        self.answers = Counter("cascade_answers", "Answers by final tier and mode (routed|forced)",
                               ["route", "mode"], registry=r)
        self.escalations = Counter("cascade_escalations", "Routed requests escalated to the LLM", registry=r)
        self.degraded = Counter("cascade_degraded", "Escalations answered by the SLM because the LLM failed",
                                registry=r)
        self.tier_calls = Counter("cascade_tier_calls", "Model calls per tier and outcome (ok|error)",
                                  ["tier", "outcome"], registry=r)
        self.tier_tokens = Counter("cascade_tier_tokens", "Tokens per tier and kind (prompt|completion)",
                                   ["tier", "kind"], registry=r)
        self.tier_latency = Histogram("cascade_tier_latency_seconds", "Seconds per successful tier call",
                                      ["tier"], buckets=_LATENCY_BUCKETS, registry=r)
        self.cost = Counter("cascade_cost_usd", "Dollars spent over both tiers", registry=r)
        Gauge("cascade_in_flight_requests", "Cascade calls running in worker threads",
              registry=r).set_function(in_flight)
        Gauge("cascade_queued_requests", "Admitted requests waiting for a worker thread",
              registry=r).set_function(queued)

    def record_tier(self, tier: str, gen) -> None:
        """Count one successful call of ``tier`` from its :class:`Generation`."""
        self.tier_calls.labels(tier, "ok").inc()
        self.tier_tokens.labels(tier, "prompt").inc(gen.prompt_tokens)
        self.tier_tokens.labels(tier, "completion").inc(gen.completion_tokens)
        self.tier_latency.labels(tier).observe(gen.latency_s)

    def render(self) -> bytes:
        """The registry in Prometheus text exposition format (UTF-8 bytes)."""
        return generate_latest(self.registry)
