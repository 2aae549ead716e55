"""Request and response bodies: validation happens here, at the boundary, so handlers get trusted values."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints

from mlplatform.specs import NAME_PATTERN
from mlplatform.store.auth import USERNAME_PATTERN

MAX_REASON = 500
MAX_OVERRIDES = 32
# Ids of platform DB rows (audit events, tokens, drift checks): 64-bit signed integers on sqlite and PostgreSQL.
MAX_ROW_ID = 2**63 - 1
# At least one character that no one counts as whitespace: not JSON Schema's (ECMAScript) \s, nor Unicode's
# White_Space (which adds U+0085), nor Python's str.strip (which adds U+001C..U+001F) and not U+FEFF (ECMAScript's
# only addition).  A reason that matches keeps a character after stripping, so the schema and the server agree
# on what is "only blanks".
NOT_BLANK = r"[^\s\x1c-\x1f\x85\ufeff]"
Reason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_REASON, pattern=NOT_BLANK)
]
ModelName = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
Version = Annotated[int, Field(gt=0, le=10**9)]
Username = Annotated[str, StringConstraints(pattern=USERNAME_PATTERN)]
Role = Literal["viewer", "data-scientist", "approver", "admin"]
ParamKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
# Finite only: JSON parsers (Python's included) take NaN and Infinity, which no estimator parameter means.
ParamValue = (
    StrictBool
    | StrictInt
    | Annotated[float, Field(strict=True, allow_inf_nan=False)]
    | Annotated[str, StringConstraints(max_length=256)]
    | None
)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(_Body):
    username: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class SessionInfo(BaseModel):
    username: str
    role: str
    via: str
    csrf_token: str | None = Field(None, description="Send as X-CSRF-Token with state-changing session requests.")


class TrainRequest(_Body):
    estimator_params: dict[ParamKey, ParamValue] = Field(
        default_factory=dict,
        max_length=MAX_OVERRIDES,
        description="Overrides of the spec's estimator parameters.",
        # pydantic documents the key pattern as patternProperties, which alone still admits any other key.
        json_schema_extra={"additionalProperties": False},
    )
    window_days: int | None = Field(None, ge=1, le=3650, description="Days of labelled data to train on.")
    promote: bool = Field(
        True,
        description="Move champion when the gate passes; false: the version stays challenger, for a rollout to "
        "decide on outcomes.",
    )
    reason: Reason = Field(description="Why this run is started (recorded as lineage and in the audit log).")


class PromoteRequest(_Body):
    # The route refuses an override without a reason (after the admin check, so a non-admin's attempt is audited as
    # denied); the schema states the same rule so clients and fuzzers know it.
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"override": {"const": True}}, "required": ["override"]},
            "then": {"required": ["reason"], "properties": {"reason": {"type": "string", "pattern": r"\S"}}},
        }
    )

    version: Version
    reason: Reason | None = Field(None, description="Why; required with override.")
    override: bool = Field(False, description="Promote even if the gate refuses (admin only, reason required).")


class RollbackRequest(_Body):
    reason: Reason


class DeployRequest(_Body):
    model: ModelName
    backend: Literal["bentoml", "kserve"] | None = Field(None, description="Default: settings.serving.backend.")
    port: int | None = Field(
        None,
        ge=1024,
        le=65535,
        description="Local deploys: the port the model server listens on (unprivileged). Default: the first free "
        "port from settings.serving.port up, or the one the model held. Refused by deployers that choose their own.",
    )
    reason: Reason | None = None


class CanaryRequest(_Body):
    percent: int = Field(ge=0, le=100)
    reason: Reason | None = None


class UndeployRequest(_Body):
    reason: Reason | None = None


class CreateUserRequest(_Body):
    username: Username
    role: Role
    password: Annotated[str, StringConstraints(min_length=12, max_length=1024)] | None = None


class UpdateUserRequest(_Body):
    role: Role | None = None
    active: bool | None = None
    password: Annotated[str, StringConstraints(min_length=12, max_length=1024)] | None = None


class CreateTokenRequest(_Body):
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    ttl_days: int | None = Field(None, ge=1, le=3650)
    role: Role | None = Field(None, description="Limit the token to this role (never more than the user's).")


class _FromDomain(BaseModel):
    """Response models read straight from the store's and clients' objects (``XOut.model_validate(obj)``)."""

    model_config = ConfigDict(from_attributes=True)


class UserOut(_FromDomain):
    username: str
    role: str
    active: bool
    created_at: datetime
    has_password: bool
    external_issuer: str | None = Field(None, description="OpenID Connect issuer of an SSO user; null for local users.")


class TokenOut(_FromDomain):
    id: int
    username: str
    name: str
    prefix: str
    role: str | None
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class IssuedTokenOut(TokenOut):
    token: str = Field(description="The secret; shown this once and never again.")


class AuditEventOut(_FromDomain):
    id: int
    created_at: datetime
    actor: str
    action: str
    target: str
    from_value: str | None
    to_value: str | None
    reason: str
    result: str
    client: str | None
    detail: dict[str, Any]


class GateOut(BaseModel):
    passed: bool
    reasons: list[str]
    challenger_score: float | None
    champion_score: float | None
    champion_version: str | None
    champion_metrics_source: str


class PromoteOut(BaseModel):
    model: str
    version: str
    previous_champion: str | None
    promoted: bool
    overridden: bool
    gate: GateOut


class RollbackOut(BaseModel):
    model: str
    from_version: str
    to_version: str


class TrainingRunOut(_FromDomain):
    dag_id: str
    run_id: str
    state: str
    queued_at: datetime | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    conf: dict[str, Any] | None = None
    failure_reason: str | None = Field(None, description="Why a failed run failed: its failed task and the error.")


class DeploymentOut(BaseModel):
    model: str
    backend: str
    url: str
    running: bool
    ready: bool
    detail: str
    canary_percent: int
    deployed_by: str | None


class RetrainOut(_FromDomain):
    """One drift alert the webhook received and what the retraining policy did with it."""

    id: int
    created_at: datetime
    updated_at: datetime
    model: str
    source: str = Field(description="Who asked: alertmanager.")
    alertname: str | None
    fingerprint: str | None
    starts_at: datetime | None
    idempotency_key: str | None = Field(description="Alert fingerprint @ startsAt: one run per key, ever.")
    status: Literal["triggered", "pending", "failed", "skipped"] = Field(
        description="pending: Airflow has not taken the run yet (retried with backoff); failed: given up."
    )
    skip_reason: str | None = Field(
        description="For skipped: duplicate, cooldown, in_flight, not_a_drift_alert, resolved or unknown_model."
    )
    reason: str = Field(description="The reason sent in the training run's conf.")
    dag_id: str | None
    dag_run_id: str | None = Field(description="The Airflow run (chosen by the platform before Airflow takes it).")
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None


class AlertsReceivedOut(BaseModel):
    received: int = Field(description="Alerts in the notification.")
    retrains: list[RetrainOut] = Field(description="One record per alert, in the notification's order.")


ColumnName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]


class NewModelRequest(_Body):
    """The fields of a new model besides its uploaded files (the CLI's ``models init`` options, the UI's form)."""

    name: ModelName = Field(description="Model name: lowercase letters, digits and underscores.")
    entity_key: ColumnName = Field(description="Entity key column, in every file.")
    label: ColumnName = Field(description="Label column of the label table.")
    task: Literal["classification", "regression"] = Field("classification", description="What the label is.")
    estimator: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.]{0,199}$")] | None = Field(
        None, description="Estimator class path. Unset: a random forest for the task."
    )
    timestamp_column: ColumnName = Field("event_timestamp", description="Event timestamp column, in every file.")
    timezone: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_+\-/]{1,64}$")] | None = Field(
        None, description="Zone of naive timestamps. Unset: UTC."
    )


class CheckOut(BaseModel):
    name: str
    passed: bool
    detail: str


class ValidationOut(BaseModel):
    model: str
    passed: bool
    checks: list[CheckOut]


class NewModelOut(BaseModel):
    name: str
    task: str
    folder: str
    data_dir: str
    feature_views: list[str]
    notices: list[str]
    materialized_up_to: datetime
    validation: ValidationOut
