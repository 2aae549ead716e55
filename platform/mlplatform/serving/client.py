"""A small client for deployed model servers, and the demo's burst of realistic traffic.

Both backends answer the JSON form with the same body (model, version, request_id, predictions, errors); they
differ only in the path and the request's top-level key: BentoML ``POST /predict {"entities": [...]}``, KServe
``POST /v1/models/<name>:predict {"instances": [...]}``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from mlplatform.deploy.base import Deployment


class PredictionError(RuntimeError):
    """The server refused the request; the message carries its status and explanation."""


def request_body(deployment: Deployment, entities: list[dict[str, Any]]) -> dict[str, Any]:
    key = "instances" if deployment.backend == "kserve" else "entities"
    return {key: entities}


def predict(
    deployment: Deployment, entities: list[dict[str, Any]], client: httpx.Client | None = None
) -> dict[str, Any]:
    """One prediction request; raises ``PredictionError`` with the server's explanation on any non-200."""
    session = client or httpx.Client(timeout=10.0)
    try:
        response = session.post(deployment.predict_url, json=request_body(deployment, entities))
    except httpx.HTTPError as error:
        raise PredictionError(f"{deployment.predict_url} did not answer: {error}") from None
    finally:
        if client is None:
            session.close()
    if response.status_code != 200:
        raise PredictionError(f"{deployment.predict_url} answered {response.status_code}: {response.text[:500]}")
    body: dict[str, Any] = response.json()
    return body


@dataclass(frozen=True)
class TrafficReport:
    requests: int
    failures: int
    seconds: float
    latencies_ms: list[float]
    samples: list[dict[str, Any]]

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


def send_traffic(
    deployment: Deployment, entities: list[dict[str, Any]], rate_per_s: float, warmup: int = 20
) -> TrafficReport:
    """One entity per request, paced at ``rate_per_s`` by one client (the benchmark has the open-loop generator).

    The first ``warmup`` requests are sent but not measured: a fresh server pays one-off costs (first Feast
    registry read, code paths compiled on first use) that say nothing about steady-state latency.
    """
    with httpx.Client(timeout=10.0) as client:
        for entity in entities[:warmup]:
            try:
                predict(deployment, [entity], client)
            except PredictionError:
                break
    latencies: list[float] = []
    samples: list[dict[str, Any]] = []
    failures = 0
    interval = 1.0 / rate_per_s
    started = time.perf_counter()
    with httpx.Client(timeout=10.0) as client:
        for index, entity in enumerate(entities):
            delay = started + index * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sent = time.perf_counter()
            try:
                answer = predict(deployment, [entity], client)
            except PredictionError:
                failures += 1
                continue
            latencies.append((time.perf_counter() - sent) * 1000.0)
            if len(samples) < 5 and answer["predictions"]:
                samples.append({**entity, **answer["predictions"][0], "version": answer["version"]})
    return TrafficReport(
        requests=len(entities),
        failures=failures,
        seconds=time.perf_counter() - started,
        latencies_ms=latencies,
        samples=samples,
    )
