"""Alertmanager webhook bodies (version 4), as Alertmanager posts them, for the retrain tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.api_world import MODEL


def alert(
    name: str = "DatasetDriftDetected",
    *,
    status: str = "firing",
    fingerprint: str = "a1b2c3d4e5f60718",
    starts_at: datetime | None = None,
    **labels: str,
) -> dict[str, Any]:
    starts = starts_at or datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    return {
        "status": status,
        "labels": {"alertname": name, "severity": "warning", "area": "drift", "model": MODEL, **labels},
        "annotations": {"summary": f"{MODEL}: served data drifted (62% of features)"},
        "startsAt": starts.isoformat(),
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else (starts + timedelta(hours=1)).isoformat(),
        "generatorURL": "http://127.0.0.1:9490/graph",
        "fingerprint": fingerprint,
    }


def payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "version": "4",
        "groupKey": '{}/{alertname=~"DatasetDriftDetected|FeatureDriftDetected"}:{alertname="x", model="m"}',
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": "platform-webhook",
        "groupLabels": {"alertname": alerts[0]["labels"]["alertname"]},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9493",
        "alerts": list(alerts),
    }
