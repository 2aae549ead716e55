"""Alertmanager's webhook payload (version 4), validated at the boundary.

Only the fields the platform acts on are strict (status, labels, startsAt, fingerprint); the rest is accepted as
Alertmanager sends it and ignored, so a newer Alertmanager adding fields keeps working.  Sizes are bounded: the
webhook is reachable from the network and must not be a way to fill memory or the database.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from mlplatform.state import generated_secret

if TYPE_CHECKING:
    from mlplatform.config import Settings

MAX_ALERTS = 1000
# Not ``mlp_``: this secret must never be mistaken for (or accepted as) an API token, nor an API token for it.
WEBHOOK_TOKEN_PREFIX = "mlpwh_"  # noqa: S105 - a public marker, not a secret
LabelName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
LabelValue = Annotated[str, StringConstraints(max_length=1024)]
Labels = Annotated[dict[LabelName, LabelValue], Field(max_length=64)]


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class Alert(_Payload):
    """One alert of a notification."""

    status: Literal["firing", "resolved"]
    labels: Labels
    annotations: Labels = Field(default_factory=dict)
    starts_at: AwareDatetime = Field(alias="startsAt")
    ends_at: datetime | None = Field(None, alias="endsAt")
    generator_url: Annotated[str, StringConstraints(max_length=2048)] = Field("", alias="generatorURL")
    fingerprint: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{1,64}$")]

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def idempotency_key(self) -> str:
        """Same alert, same episode: Alertmanager's repeats and replays of it share this key.

        The fingerprint identifies the alert (its label set); ``startsAt`` the episode, so the same alert firing
        again after it resolved is a new key.
        """
        return f"{self.fingerprint.lower()}@{self.starts_at.isoformat()}"

    @property
    def run_id(self) -> str:
        """The Airflow run id of a retrain started by this alert: derived from the key, so a retry after a lost
        answer finds the run Airflow did create instead of starting a second one."""
        digest = hashlib.sha256(self.idempotency_key.encode()).hexdigest()[:24]
        return f"retrain__{digest}"


class WebhookPayload(_Payload):
    """A notification: one alert group, as Alertmanager's webhook receiver posts it."""

    version: Literal["4"]
    group_key: Annotated[str, StringConstraints(max_length=4096)] = Field(alias="groupKey")
    truncated_alerts: int = Field(0, ge=0, alias="truncatedAlerts")
    status: Literal["firing", "resolved"]
    receiver: Annotated[str, StringConstraints(max_length=256)]
    group_labels: Labels = Field(default_factory=dict, alias="groupLabels")
    common_labels: Labels = Field(default_factory=dict, alias="commonLabels")
    common_annotations: Labels = Field(default_factory=dict, alias="commonAnnotations")
    external_url: Annotated[str, StringConstraints(max_length=2048)] = Field("", alias="externalURL")
    alerts: list[Alert] = Field(max_length=MAX_ALERTS)


def webhook_token(settings: Settings) -> str:
    """The webhook's bearer token: ``alerts.webhook_token``, else one generated once under state_dir (0600).

    A shared secret rather than a user's API token: it authorises exactly one route, so it needs no user, role
    or expiry, and the embedded stack can hand the same value to Alertmanager's ``credentials_file``.
    """
    if settings.alerts.webhook_token is not None:
        return settings.alerts.webhook_token.get_secret_value()
    return generated_secret(settings.layout.webhook_token, prefix=WEBHOOK_TOKEN_PREFIX)
