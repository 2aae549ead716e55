"""Firing alerts of a model, read from Alertmanager's API v2, for the model page.

Why read Alertmanager rather than the platform DB: the webhook only hears about drift alerts routed to it, and
only when a notification goes out; Alertmanager knows every alert that is firing right now (drift, stale checks,
serving errors), including silenced and inhibited ones.  The page must still render when Alertmanager is down or
not installed, so ``firing_alerts`` never raises: it answers with a state (``ok``, ``unreachable``, ``disabled``)
and a short timeout keeps a hung Alertmanager from holding the page.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

if TYPE_CHECKING:
    from mlplatform.config import Settings

log = logging.getLogger(__name__)
TIMEOUT_S = 2.0
MAX_ALERTS = 100  # a page lists a handful; more would only mean a misrouted label
AlertsState = Literal["ok", "unreachable", "disabled"]
Text = Annotated[str, StringConstraints(max_length=2048)]


class _Status(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    state: Literal["active", "suppressed", "unprocessed"]
    silenced_by: list[str] = Field(default_factory=list, alias="silencedBy")
    inhibited_by: list[str] = Field(default_factory=list, alias="inhibitedBy")


class GettableAlert(BaseModel):
    """One alert as ``GET /api/v2/alerts`` returns it; only the fields the page shows are read."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    labels: dict[str, Text]
    annotations: dict[str, Text] = Field(default_factory=dict)
    starts_at: datetime = Field(alias="startsAt")
    fingerprint: str
    status: _Status

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "")

    @property
    def summary(self) -> str:
        return self.annotations.get("summary") or self.annotations.get("description", "")

    @property
    def state(self) -> str:
        """``firing``, or why it does not notify: ``silenced``/``inhibited``."""
        if self.status.silenced_by:
            return "silenced"
        if self.status.inhibited_by:
            return "inhibited"
        return "firing"

    @property
    def extra_labels(self) -> dict[str, str]:
        """Labels other than the ones shown in their own column (e.g. ``feature``)."""
        return {key: value for key, value in self.labels.items() if key not in ("alertname", "model", "severity")}


_ALERTS = TypeAdapter(list[GettableAlert])


@dataclass(frozen=True)
class FiringAlerts:
    """What the page shows: the alerts, or why there are none to show."""

    state: AlertsState
    url: str
    alerts: tuple[GettableAlert, ...] = ()
    detail: str = ""

    @property
    def firing(self) -> list[GettableAlert]:
        return [alert for alert in self.alerts if alert.state == "firing"]

    @property
    def muted(self) -> list[GettableAlert]:
        """Silenced or inhibited (e.g. feature drift while the data set drifts): shown apart, they page nobody."""
        return [alert for alert in self.alerts if alert.state != "firing"]


def alertmanager_url(settings: Settings) -> str:
    """Where the platform's Alertmanager answers; a wildcard bind address is reached on loopback."""
    conf = settings.prometheus
    host = "127.0.0.1" if conf.host in ("0.0.0.0", "::", "") else conf.host  # noqa: S104 - compared, not bound
    return f"http://{host}:{conf.alertmanager_port}"


def label_filter(name: str, value: str) -> str:
    """An Alertmanager equality matcher with the value quoted (backslash and double quote escaped)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'{name}="{escaped}"'


def firing_alerts(settings: Settings, model: str, *, timeout: float = TIMEOUT_S) -> FiringAlerts:
    """The model's active alerts (``model`` label), newest first; never raises."""
    url = alertmanager_url(settings)
    if not settings.prometheus.enabled:
        return FiringAlerts("disabled", url, detail="Alertmanager is switched off (MLP_PROMETHEUS__ENABLED=false)")
    params = {"filter": label_filter("model", model), "active": "true"}
    try:
        response = httpx.get(f"{url}/api/v2/alerts", params=params, timeout=timeout)
        response.raise_for_status()
        alerts = _ALERTS.validate_json(response.content)
    except httpx.TimeoutException:
        return FiringAlerts("unreachable", url, detail=f"Alertmanager at {url} did not answer within {timeout:g} s")
    except httpx.TransportError as error:
        return FiringAlerts("unreachable", url, detail=f"Alertmanager at {url} is unreachable ({type(error).__name__})")
    except httpx.HTTPStatusError as error:
        return FiringAlerts("unreachable", url, detail=f"Alertmanager at {url} answered {error.response.status_code}")
    except ValidationError:
        log.warning("Alertmanager at %s sent alerts this page cannot read", url, exc_info=True)
        return FiringAlerts("unreachable", url, detail=f"Alertmanager at {url} sent an unexpected answer")
    ordered = sorted(alerts, key=lambda alert: alert.starts_at, reverse=True)[:MAX_ALERTS]
    return FiringAlerts("ok", url, tuple(ordered))
