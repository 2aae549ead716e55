"""Prometheus metrics of the API, in a registry of its own.

An own ``CollectorRegistry`` (not the process-global one) keeps several apps in one process (tests, an embedding
server) from colliding over metric names, and keeps library metrics out of the platform's scrape.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from mlplatform.monitoring import metric_names

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "mlplatform_api_requests_total",
            "API requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mlplatform_api_request_duration_seconds",
            "API request latency by method and route template.",
            ["method", "route"],
            registry=self.registry,
        )
        self.login_failures = Counter(
            "mlplatform_api_login_failures_total",
            "Failed logins, including those refused by the rate limit.",
            ["reason"],
            registry=self.registry,
        )
        self.audit_events = Counter(
            "mlplatform_api_audit_events_total",
            "Audit events written by the API, by result.",
            ["result"],
            registry=self.registry,
        )
        self.retrain_triggers = Counter(
            metric_names.RETRAIN_TRIGGERS.name.removesuffix("_total"),
            metric_names.RETRAIN_TRIGGERS.help,
            list(metric_names.RETRAIN_TRIGGERS.labels),
            registry=self.registry,
        )

    def start_model_counters(self, models: list[str]) -> None:
        """Every model's counters at 0 from the start: ``increase()`` cannot see a series born at 1."""
        for model in models:
            for result in metric_names.RETRAIN_TRIGGER_RESULTS:
                self.retrain_triggers.labels(model, result)

    def render(self) -> bytes:
        """The exposition of every collector in the registry (``mlplatform.webapp`` adds the drift collector)."""
        return generate_latest(self.registry)

    async def middleware(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """Count and time each request by its route template (bounded label values, unlike raw paths)."""
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        self.latency.labels(request.method, template).observe(time.perf_counter() - started)
        self.requests.labels(request.method, template, str(response.status_code)).inc()
        return response
