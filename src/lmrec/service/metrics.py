"""Prometheus metrics: requests and latency per route, the model version, the index size.

Each app has its own :class:`~prometheus_client.CollectorRegistry` (no global state), so
several apps can live in one process (tests). Routes are labelled by their template
(``/v1/users/{user_id}/recommendations``), never by the raw path: ids stay out of metrics.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lmrec.service.runtime import RecommendationService

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "<unmatched>"


class ServiceMetrics:
    """The request counter and latency histogram, and the model gauges, in one registry."""

    def __init__(self, service: RecommendationService) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "lmrec_http_requests",
            "HTTP requests answered, by route and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "lmrec_http_request_duration_seconds",
            "Time from request to the end of the response, by route.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(ModelCollector(service))


class ModelCollector(Collector):
    """Reads the current model version at scrape time."""

    def __init__(self, service: RecommendationService) -> None:
        self.service = service

    def collect(self) -> Iterator[Any]:
        model = self.service.current
        info = InfoMetricFamily("lmrec_model", "The model version being served.")
        info.add_metric([], {"version": model.version, "name": model.pipeline.name})
        yield info
        yield GaugeMetricFamily(
            "lmrec_model_loaded_timestamp_seconds",
            "When the served model version was loaded (Unix time).",
            value=model.loaded_at,
        )
        yield GaugeMetricFamily(
            "lmrec_catalog_items", "Items the served model knows.", value=model.n_items
        )
        yield GaugeMetricFamily(
            "lmrec_index_items",
            "Items in the similar-items vector index.",
            value=len(model.index) if model.index is not None else 0,
        )
        yield GaugeMetricFamily(
            "lmrec_deleted_items",
            "Items removed from results.",
            value=len(self.service.deleted_items),
        )
        queue = self.service.queue
        yield CounterMetricFamily(
            "lmrec_recommend_batches",
            "Batches the user-recommendation queue served (one store read, one model call).",
            value=queue.calls,
        )
        yield CounterMetricFamily(
            "lmrec_recommend_batched_requests",
            "User-recommendation requests served by the queue (over batches: mean batch size).",
            value=queue.queries,
        )
        yield GaugeMetricFamily(
            "lmrec_store_changes_applied",
            "The store's change count (items, reloads) this process has applied.",
            value=self.service.changes_applied,
        )


class MetricsMiddleware:
    """Counts and times every HTTP request under its route template."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            method = scope.get("method", "")
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - start)
