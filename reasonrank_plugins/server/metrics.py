"""Prometheus metrics of one app, in its own registry (several apps may live in one process)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ..engine import Engine
from ..types import RerankResult

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class Metrics:
    def __init__(self, engine: Engine, queued: Callable[[], float]) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "reasonrank_requests", "Rerank requests by HTTP status", ["status"], registry=r
        )
        self.rejected = Counter("reasonrank_rejected", "Requests refused by a limit", ["reason"], registry=r)
        self.latency = Histogram(
            "reasonrank_request_seconds", "Rerank request latency", buckets=LATENCY_BUCKETS, registry=r
        )
        self.documents = Counter("reasonrank_documents", "Documents reranked", registry=r)
        self.windows = Counter("reasonrank_windows", "Model windows by parse status", ["status"], registry=r)
        self.forced = Counter("reasonrank_forced_answers", "Windows whose answer was forced", registry=r)
        self.tokens = Counter("reasonrank_tokens", "Model tokens", ["kind"], registry=r)
        self.cached = Counter("reasonrank_cached_results", "Results answered from the result cache", registry=r)
        Gauge(
            "reasonrank_queued_requests", "Rerank requests admitted and not finished", registry=r
        ).set_function(queued)
        Gauge("reasonrank_windows_in_flight", "Model calls running now", registry=r).set_function(
            lambda: engine.in_flight
        )
        Gauge(
            "reasonrank_windows_in_flight_peak", "Most model calls ever running at once", registry=r
        ).set_function(lambda: engine.peak_in_flight)

    def observe(self, result: RerankResult) -> None:
        """Count one result; a cached one cost no model call, so only its documents count."""
        self.documents.inc(len(result.passages))
        if result.cached:
            self.cached.inc()
            return
        for status, count in result.statuses.items():
            self.windows.labels(status).inc(count)
        self.forced.inc(result.forced)
        self.tokens.labels("prompt").inc(result.prompt_tokens)
        self.tokens.labels("completion").inc(result.completion_tokens)

    def render(self) -> bytes:
        return generate_latest(self.registry)
