"""Typed settings for every part of the platform.

One ``Settings`` object is built once (``get_settings()``) at an entry point and passed down; nothing reads
configuration at import time.  Every value can be set through an environment variable with the ``MLP_`` prefix,
nested values with ``__`` (``MLP_MLFLOW__PORT=5600``).  ``docs/settings.md`` is generated from the field
descriptions here (``mlplatform settings docs``) and a test keeps the two in step.

Unset service addresses derive from the embedded stack (everything under ``state_dir`` on 127.0.0.1), so the
embedded profile needs no configuration at all while the production profile overrides URLs only.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from mlplatform.state import StateLayout

LOOPBACK = "127.0.0.1"
# The variable naming the secrets directory (see Settings.secrets_dir), read when settings are built.
SECRETS_DIR_VARIABLE = "MLP_SECRETS_DIR"
# The shortest session-signing key accepted: 32 characters of a URL-safe token carry 192 bits.
MIN_SESSION_SECRET_CHARS = 32


def _access_log_rate(value: Any) -> Any:
    """``off`` and ``all`` read as the share of successful requests they mean (0 and 1)."""
    named = {"off": 0.0, "all": 1.0}
    return named.get(value.strip().lower(), value) if isinstance(value, str) else value


TASK_LIBRARIES = (
    "pandas",
    "pyarrow.parquet",
    "sklearn.ensemble",
    "sklearn.inspection",
    "sklearn.metrics",
    "matplotlib.pyplot",
    "mlflow",
    "mlflow.sklearn",
    "feast",
    "skops.io",
)
"""What the training DAG's tasks import (``airflow.preload_modules``'s default)."""


class _Section(BaseModel):
    """A nested settings block; unknown keys are errors so typos never pass silently.  Validation errors never
    show the rejected value: it may be a secret (a too-short session key) and errors reach logs."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


class MlflowSettings(_Section):
    """MLflow tracking server and model registry."""

    tracking_uri: str | None = Field(
        None, description="Tracking/registry URI clients use. Unset: the embedded server at http://host:port."
    )
    host: str = Field(LOOPBACK, description="Address the embedded `mlflow server` binds to.")
    port: int = Field(5500, ge=1, le=65535, description="Port of the embedded `mlflow server`.")
    backend_store_uri: str | None = Field(
        None,
        description="Backend store of the embedded server. Unset: sqlite under state_dir/mlflow. "
        "Production: a postgresql:// URL.",
    )
    artifacts_destination: str | None = Field(
        None, description="Where the embedded server stores artifacts. Unset: state_dir/mlflow/artifacts."
    )
    request_timeout_s: int = Field(30, ge=1, description="HTTP timeout of MLflow client calls, in seconds.")

    def resolved_tracking_uri(self) -> str:
        """The URI clients should use."""
        return self.tracking_uri or f"http://{self.host}:{self.port}"


class AirflowSettings(_Section):
    """Airflow 3: the embedded stack's processes and the REST client that triggers DAG runs."""

    api_url: str | None = Field(None, description="Airflow API server base URL. Unset: http://host:port.")
    host: str = Field(LOOPBACK, description="Address the embedded Airflow api-server binds to.")
    port: int = Field(8280, ge=1, le=65535, description="Port of the embedded Airflow api-server.")
    username: str = Field("admin", description="User the platform authenticates to Airflow's REST API as.")
    password: SecretStr | None = Field(
        None,
        description="Password for `username`. Unset in embedded mode: generated once and kept under "
        "state_dir/airflow (mode 0600).",
    )
    database_url: str | None = Field(
        None, description="Airflow metadata DB. Unset: sqlite under state_dir/airflow. Production: PostgreSQL."
    )
    parallelism: int = Field(2, ge=1, le=64, description="LocalExecutor task slots in the embedded stack.")
    dags_folder: Path = Field(Path("pipelines/dags"), description="Folder of DAG files the dag-processor parses.")
    run_schedules: bool = Field(
        False,
        description="Run training DAGs on their spec schedules. Off by default so a laptop never starts training "
        "by itself; production (the Helm chart) turns it on.",
    )
    poll_interval_s: float = Field(3.0, gt=0, description="How often `train --wait` polls a DAG run's state.")
    preload_modules: list[str] = Field(
        default_factory=lambda: list(TASK_LIBRARIES),
        description="Libraries the embedded stack's scheduler imports before it starts, as JSON: LocalExecutor "
        "forks every task from it, so each training task finds them loaded instead of importing them again (2-5 s "
        "a task on a 2-core machine; the scheduler holds about 0.25 GB more, shared with its forks). [] switches "
        "it off. Third-party modules only: the platform's own code is always imported fresh by each task.",
    )

    def resolved_api_url(self) -> str:
        """The base URL of Airflow's API server."""
        return (self.api_url or f"http://{self.host}:{self.port}").rstrip("/")


class FeastSettings(_Section):
    """Feast feature store: where definitions live and which stores back them."""

    repo_path: Path = Field(
        Path("feature_repo"), description="Feast's project directory; definitions come from each model's folder."
    )
    project: str = Field("mlplatform", pattern=r"^[a-z][a-z0-9_]*$", description="Feast project name.")
    online_store: Literal["sqlite", "redis"] = Field("sqlite", description="Online store backend.")
    redis_connection_string: str = Field(
        f"{LOOPBACK}:6379", description="Feast Redis connection string (host:port[,db=N][,password=...])."
    )
    redis_timeout_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="Connect and socket timeout of every Redis call, unless the connection string sets "
        "socket_timeout / socket_connect_timeout itself.",
    )
    offline_store: Literal["duckdb", "file"] = Field(
        "duckdb", description="Offline store engine over the parquet sources (duckdb streams the join)."
    )
    registry_path: Path | None = Field(None, description="Feast registry file. Unset: state_dir/feast/registry.db.")
    data_dir: Path | None = Field(
        None, description="Models' tables, one folder per model (<data_dir>/<model>/). Unset: state_dir/data."
    )


class TrainingSettings(_Section):
    """Resources of the training step."""

    threads: int = Field(
        1,
        ge=1,
        le=256,
        description="OpenMP/BLAS threads for fitting and scoring. Busy small machines are far faster with 1: "
        "spinning OpenMP threads that compete with other processes slowed a 2-core fit twentyfold.",
    )


class ServingSettings(_Section):
    """Model servers (BentoML or KServe) and their prediction log."""

    backend: Literal["bentoml", "kserve"] = Field("bentoml", description="Which server `deploy` starts by default.")
    servers_dir: Path = Field(
        Path("serving"),
        validate_default=True,
        description="Folder of the model server entry points (bentoml/, kserve/) local deploys run.",
    )
    host: str = Field(LOOPBACK, description="Address model servers bind to.")
    port: int = Field(
        8300,
        ge=1,
        le=65535,
        description="HTTP port of a model server. Local deploys take the first free port from here up (each "
        "model its own, kept while it is deployed) unless `deploy --port` names one.",
    )
    grpc_port: int | None = Field(
        None, ge=1, le=65535, description="KServe gRPC port; unset disables gRPC (HTTP only)."
    )
    alias: str = Field("champion", pattern=r"^[a-z][a-z0-9_-]*$", description="Registry alias the server serves.")
    poll_interval_s: float = Field(10.0, gt=0, description="How often a server checks the alias for a new version.")
    model_cache_dir: Path | None = Field(
        None, description="Last good model per name, for restarts while MLflow is down. Unset: state_dir/serving."
    )
    max_batch_size: int = Field(256, ge=1, le=100_000, description="Entities per request; more is answered 413.")
    max_body_kb: int = Field(
        1024,
        ge=1,
        le=1024 * 1024,
        description="Largest request body a model server reads, in KiB; a longer one is answered 413 as soon as its "
        "Content-Length or its bytes so far exceed it, before it is parsed.",
    )
    scoring_threads: int = Field(
        4, ge=1, le=64, description="Threads that score requests (and read the online store) off the event loop."
    )
    score_on_loop: Literal["auto", "never"] = Field(
        "auto",
        description="auto: requests are scored on the server's event loop, without the hand-off to a scoring thread "
        "and back (about a sixth of a one-entity request's CPU), wherever every online-store read fails within "
        "serving.loop_read_timeout_s: a local sqlite store, or a single Redis server (the reader's own connections; "
        "over a plain TCP or Unix socket the loop scores other requests while one waits for Redis, over TLS the read "
        "holds the loop within that socket and connect timeout); a Redis cluster or sentinel, and stores read "
        "through Feast's general path, keep the threads. never: always in the scoring threads.",
    )
    loop_read_timeout_s: float = Field(
        0.25,
        gt=0,
        le=5,
        description="With serving.score_on_loop=auto, the longest an online-store read may hold the event loop "
        "(and with it the server's other requests and probes), or a request wait for Redis's reply on it (a quarter "
        "more at most), before it fails with a 503 and the store's fail-fast window (serving.feature_store_retry_s) "
        "begins.",
    )
    gil_switch_interval_ms: float = Field(
        1.0,
        gt=0,
        le=100,
        description="How long a model server's background thread (the prediction log's writer, the alias poll) may "
        "keep the interpreter once the event loop asks for it (Python's switch interval, 5 ms by default). At 1,000 "
        "requests/s a parquet log batch held the loop for up to that long twice a second, and the requests queued "
        "behind it set the p99.",
    )
    shadow_queue: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="Shadow scorings of a rollout waiting for the shadow thread; beyond it a request is not shadowed "
        "(counted in mlplatform_serving_shadow_skipped_total), so shadowing never delays or queues answers.",
    )
    scoring_timeout_s: float = Field(
        2.0,
        gt=0,
        le=60,
        description="Longest a request waits for its scoring (online-store read, model); then a 503, so a stuck "
        "store never holds clients or the server's probes.",
    )
    feature_store_retry_s: float = Field(
        2.0,
        ge=0,
        le=300,
        description="After the online store fails, how long requests get a 503 at once before it is tried again.",
    )
    auth_token_file: Path | None = Field(
        None,
        description="File holding the bearer token model servers require on every route but health, readiness and "
        "metrics (at least 16 characters; in the chart, a mounted Secret). Unset: no token, for servers bound to "
        "loopback or reachable only through NetworkPolicy peers.",
    )
    prediction_log: Literal["parquet", "postgres", "off"] = Field(
        "parquet", description="Prediction log sink: partitioned parquet under state_dir, or a PostgreSQL table."
    )
    prediction_log_url: str | None = Field(
        None, description="SQLAlchemy URL of the PostgreSQL prediction log. Unset: the platform DB URL."
    )
    log_queue_size: int = Field(10_000, ge=1, description="Records buffered before new ones are dropped (counted).")
    log_batch_size: int | None = Field(
        None,
        ge=1,
        description="Records written per batch. Unset: 500 for the parquet log (a file per batch), 100 for "
        "PostgreSQL, where a COPY of 500 rows held the server's writer thread and the database for about 7 ms, "
        "long enough to show in the requests' p99 at 1,000/s.",
    )
    log_flush_interval_s: float = Field(1.0, gt=0, description="Longest a record waits before it is written.")
    access_log: Annotated[float, BeforeValidator(_access_log_rate)] = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Share of successful predictions that write an access line: 0 or `off` (none: the prediction "
        "log is the record), 1 or `all`, or a sample rate such as 0.01. Refusals and errors always write one.",
    )

    @field_validator("servers_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        """Pinned to the working directory when built, so a server started elsewhere finds the same folder."""
        return value.resolve()

    @property
    def resolved_log_batch_size(self) -> int:
        """``log_batch_size``, else the sink's default: a file per batch wants large ones, a transaction small."""
        if self.log_batch_size is not None:
            return self.log_batch_size
        return 100 if self.prediction_log == "postgres" else 500


KUBERNETES_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
"""A Kubernetes object name (DNS subdomain), as the chart's values.schema.json checks Secret names."""
DATA_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
"""A key of a Secret's data."""


class DeploySettings(_Section):
    """Where `deploy` runs model servers: local processes, or KServe/BentoML objects in a Kubernetes namespace."""

    target: Literal["local", "kubernetes", "auto"] = Field(
        "local",
        description="Deployer the API, UI and CLI use. auto: kubernetes when a service-account token is mounted "
        "(/var/run/secrets/kubernetes.io/serviceaccount/token, i.e. inside a pod), else local. The Helm chart "
        "sets kubernetes.",
    )
    namespace: str | None = Field(
        None,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Namespace of the model servers. Unset: the pod's own namespace in a cluster, else default.",
    )
    kserve_mode: Literal["RawDeployment", "Serverless"] = Field(
        "RawDeployment",
        description="KServe deployment mode annotation. RawDeployment needs neither Knative nor Istio; traffic "
        "splitting (canary) needs Serverless.",
    )
    image_registry: str = Field("ghcr.io/mlplatform", description="Registry prefix of the platform's images.")
    serving_image: str = Field("mlplatform-serving", description="Model server image name (both backends).")
    image_tag: str | None = Field(None, description="Model server image tag. Unset: the platform's own version.")
    image_digest: str | None = Field(
        None,
        pattern=r"^sha256:[0-9a-f]{64}$",
        description="Digest pinning the model server image (<registry>/<image>:<tag>@<digest>), as the chart's "
        "image.digests.serving. Unset: the tag alone.",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", description="Pull policy of the model server container."
    )
    image_servers_dir: str = Field(
        "/app/serving", description="Folder of the model server entry points (bentoml/, kserve/) inside the image."
    )
    serving_secret: str | None = Field(
        None,
        description="Secret whose keys become extra environment variables of the model servers (envFrom, "
        "optional in the pod). Older installs kept their credentials here; prefer the secret files below, and never "
        "put MLP_DB__URL (the platform DB owner) here. Unset: none.",
    )
    prediction_writer_secret: str | None = Field(
        None,
        pattern=KUBERNETES_NAME_PATTERN,
        description="Secret holding the prediction writer's URL (a role that may only insert into the prediction "
        "log), mounted as the file MLP_SERVING__PREDICTION_LOG_URL in the servers' secrets directory (the chart's "
        "postgresql.predictionWriter.secretName). Required when serving.prediction_log is postgres and "
        "serving_secret is unset.",
    )
    prediction_writer_url_key: str = Field(
        "url", pattern=DATA_KEY_PATTERN, description="Key of the writer's URL in prediction_writer_secret."
    )
    redis_secret: str | None = Field(
        None,
        pattern=KUBERNETES_NAME_PATTERN,
        description="Secret holding Feast's Redis connection string, mounted as the file "
        "MLP_FEAST__REDIS_CONNECTION_STRING (the chart's redis.secretName). Unset: none.",
    )
    redis_secret_key: str = Field(
        "connection-string", pattern=DATA_KEY_PATTERN, description="Key of the connection string in redis_secret."
    )
    serving_auth_secret: str | None = Field(
        None,
        pattern=KUBERNETES_NAME_PATTERN,
        description="Secret holding the bearer token model servers require, mounted as a file that "
        "MLP_SERVING__AUTH_TOKEN_FILE names (the chart's serving.auth Secret). Unset: no token.",
    )
    serving_auth_secret_key: str = Field(
        "token", pattern=DATA_KEY_PATTERN, description="Key of the token in serving_auth_secret."
    )
    mlflow_auth_secret: str | None = Field(
        None,
        pattern=KUBERNETES_NAME_PATTERN,
        description="Secret holding the read-only MLflow user's client credentials, mounted where MLflow's client "
        "reads them (~/.mlflow/credentials; the chart's mlflow.auth.secretName). Unset: none.",
    )
    mlflow_reader_credentials_key: str = Field(
        "reader-credentials",
        pattern=DATA_KEY_PATTERN,
        description="Key of the reader's credentials file in mlflow_auth_secret.",
    )
    feast_volume_claim: str | None = Field(
        None,
        description="PersistentVolumeClaim with the Feast registry and offline sources, mounted read-only at "
        "feast_mount_path in model server pods. Unset: an emptyDir.",
    )
    feast_mount_path: str = Field(
        "/var/lib/mlplatform-feast", description="Where model server pods mount the Feast volume."
    )
    service_account: str | None = Field(None, description="ServiceAccount of model server pods. Unset: default.")
    cpu_request: str = Field("250m", description="CPU request of a model server container.")
    cpu_limit: str = Field("1", description="CPU limit of a model server container.")
    memory_request: str = Field("512Mi", description="Memory request of a model server container.")
    memory_limit: str = Field("1Gi", description="Memory limit of a model server container.")
    min_replicas: int = Field(1, ge=1, le=1000, description="Fewest model server replicas.")
    max_replicas: int = Field(3, ge=1, le=1000, description="Most model server replicas (CPU-based autoscaling).")
    target_cpu_percent: int = Field(70, ge=1, le=100, description="CPU utilisation the autoscaler aims for.")
    canary_alias: str = Field(
        "challenger", pattern=r"^[a-z][a-z0-9_-]*$", description="Registry alias a canary revision serves."
    )
    ready_timeout_s: float = Field(300.0, gt=0, description="How long deploy and canary wait for readiness.")
    poll_interval_s: float = Field(2.0, gt=0, description="How often readiness is polled while waiting.")
    force_conflicts: bool = Field(
        False,
        description="Server-side apply with force: take over fields another manager (kubectl, a GitOps tool) "
        "owns. Off: such a conflict fails the deploy and names the other manager.",
    )

    @model_validator(mode="after")
    def _replicas_ordered(self) -> DeploySettings:
        if self.min_replicas > self.max_replicas:
            raise ValueError("deploy.min_replicas must not exceed deploy.max_replicas")
        return self


class OidcSettings(_Section):
    """Optional single sign-on through an OpenID Connect provider (authorization code flow with PKCE)."""

    issuer: str | None = Field(
        None, description="Issuer URL; its /.well-known/openid-configuration is read. Unset disables SSO."
    )
    client_id: str | None = Field(None, description="Client id registered with the provider.")
    client_secret: SecretStr | None = Field(None, description="Client secret registered with the provider.")
    scopes: str = Field("openid profile email", description="Scopes requested, space separated (must hold openid).")
    username_claim: str = Field(
        "preferred_username", description="ID token claim that names the local user (falls back to email, then sub)."
    )
    role_claim: str = Field("groups", description="ID token claim (a string or a list) mapped to a platform role.")
    role_mapping: dict[str, Literal["viewer", "data-scientist", "approver", "admin"]] = Field(
        default_factory=dict,
        description='Claim value -> role, as JSON (e.g. {"ml-admins": "admin"}); the highest match wins.',
    )
    default_role: Literal["viewer", "data-scientist", "approver", "admin"] = Field(
        "viewer", description="Role of a user whose claim matches no mapping entry."
    )

    @property
    def enabled(self) -> bool:
        """SSO is on once an issuer is configured."""
        return self.issuer is not None

    @model_validator(mode="after")
    def _complete(self) -> OidcSettings:
        """A half-configured provider fails at startup, not at the first login."""
        if self.issuer is not None and not self.client_id:
            raise ValueError("api.oidc.client_id is required when api.oidc.issuer is set")
        if "openid" not in self.scopes.split():
            raise ValueError("api.oidc.scopes must include 'openid'")
        return self


class ApiSettings(_Section):
    """The platform API and web UI."""

    host: str = Field(LOOPBACK, description="Address the platform API/UI binds to.")
    port: int = Field(8400, ge=1, le=65535, description="Port of the platform API/UI.")
    public_url: str | None = Field(None, description="URL users reach the UI at. Unset: http://host:port.")
    admin_username: str = Field("admin", pattern=r"^[a-z][a-z0-9_.-]{1,63}$", description="Initial admin user.")
    admin_password: SecretStr | None = Field(
        None,
        description="Initial admin password. Unset: a one-time password is generated on first start, printed "
        "once and kept in state_dir/api/initial_admin_password (0600) only until it is changed.",
    )
    session_secret: SecretStr | None = Field(
        None, description="Key signing session cookies and CSRF tokens. Unset: generated once under state_dir (0600)."
    )
    secure_cookies: bool = Field(
        False, description="Mark cookies Secure (HTTPS only). Off for the embedded http://127.0.0.1 UI; on in Helm."
    )
    session_ttl_s: int = Field(8 * 3600, ge=60, description="Lifetime of a browser session, in seconds.")
    token_ttl_days: int = Field(90, ge=1, le=3650, description="Default lifetime of a new API token, in days.")
    login_attempts_per_minute: int = Field(
        5,
        ge=1,
        le=1000,
        description="Failed logins per user and client address in a minute, counted in the platform DB (shared by "
        "every API process).",
    )
    forwarded_allow_ips: list[str] = Field(
        default_factory=list,
        description="Addresses or CIDR ranges of the proxies (an ingress) whose X-Forwarded-For/-Proto headers "
        "name the client. Empty: no proxy is trusted, the client is the connection's peer.",
    )
    max_body_kb: int = Field(
        1024,
        ge=1,
        le=1024 * 1024,
        description="Largest request body of the API and UI, in KiB (uploads: max_upload_mb); a longer one is 413 "
        "before any route reads it or authentication runs.",
    )
    max_upload_mb: int = Field(
        200, ge=1, le=10_000, description="Largest upload (all files of a new model together), in MiB; more is 413."
    )
    access_log: Annotated[float, BeforeValidator(_access_log_rate)] = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="Share of successful API and UI requests that write an access line: 1 or `all`, 0 or `off`, "
        "or a sample rate. Probes and scrapes never do; refusals and errors always do.",
    )
    oidc: OidcSettings = Field(default_factory=OidcSettings)

    @field_validator("session_secret")
    @classmethod
    def _session_secret_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        """An empty key (``MLP_API__SESSION_SECRET=``, an empty mounted file) signs cookies anyone can forge."""
        if value is not None and len(value.get_secret_value().strip()) < MIN_SESSION_SECRET_CHARS:
            raise ValueError(
                f"api.session_secret must be at least {MIN_SESSION_SECRET_CHARS} characters "
                "(`python -c 'import secrets; print(secrets.token_urlsafe(48))'` makes one); unset it to generate one"
            )
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxy_networks(cls, value: list[str]) -> list[str]:
        """Only addresses or networks: ``*`` would let any client choose the address it is limited and audited as."""
        for entry in value:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(
                    f"api.forwarded_allow_ips: {entry!r} is not an IP address or CIDR range (e.g. 10.0.0.0/8); "
                    "list the proxies in front of the API, never '*'"
                ) from None
        return [entry.strip() for entry in value]

    def resolved_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


class AlertsSettings(_Section):
    """The Alertmanager webhook (``POST /api/v1/alerts/alertmanager``) and the retraining policy it applies."""

    webhook_token: SecretStr | None = Field(
        None,
        description="Bearer token Alertmanager must send to the webhook (it authorises that route only). Unset: "
        "generated once at state_dir/alerts/webhook_token (0600), which the embedded stack hands to Alertmanager.",
    )
    cooldown_s: int = Field(
        6 * 3600,
        ge=0,
        description="After a retrain is triggered for a model, drift alerts for it are skipped this long.",
    )
    retry_initial_s: float = Field(5.0, gt=0, description="First wait before retrying a trigger Airflow did not take.")
    retry_max_s: float = Field(300.0, gt=0, description="Longest wait between retries (the wait doubles each time).")
    retry_give_up_s: int = Field(
        24 * 3600, ge=60, description="A trigger still not taken by Airflow this long after the alert is marked failed."
    )
    worker_interval_s: float = Field(
        2.0, gt=0, description="How often the API's retry worker looks for pending triggers that are due."
    )
    trigger_timeout_s: float = Field(
        10.0, gt=0, description="HTTP timeout of one Airflow call made while answering the webhook."
    )

    @field_validator("webhook_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        """An empty or short token (``MLP_ALERTS__WEBHOOK_TOKEN=``) would open the webhook to guessing."""
        if value is not None and len(value.get_secret_value().strip()) < 16:
            raise ValueError("alerts.webhook_token must be at least 16 characters; unset it to generate one")
        return value


class PrometheusSettings(_Section):
    """Prometheus and Alertmanager in the embedded stack: started by `stack up` when their binaries are installed."""

    enabled: bool = Field(True, description="Start Prometheus and Alertmanager with the stack when installed.")
    host: str = Field(LOOPBACK, description="Address Prometheus and Alertmanager bind to.")
    port: int = Field(
        9490, ge=1, le=65535, description="Prometheus port (not 9090, where a distribution's own daemon may listen)."
    )
    alertmanager_port: int = Field(
        9493, ge=1, le=65535, description="Alertmanager port (not 9093, where a distribution's own daemon may listen)."
    )
    prometheus_binary: str = Field("prometheus", description="Prometheus executable (name on PATH or a path).")
    alertmanager_binary: str | None = Field(
        None, description="Alertmanager executable. Unset: `alertmanager`, else Debian's `prometheus-alertmanager`."
    )
    config_dir: Path = Field(
        Path("monitoring"), description="Folder with prometheus/rules/*.yaml and alertmanager/alertmanager.yml."
    )
    scrape_interval_s: int = Field(15, ge=1, le=3600, description="Scrape and rule evaluation interval, seconds.")
    evaluation_interval_s: int | None = Field(
        None,
        ge=1,
        le=3600,
        description="Rule evaluation interval, seconds. Unset: scrape_interval_s. A drift check's verdict fires its "
        "alert one scrape and one evaluation later: up to the sum of both.",
    )
    webhook_group_wait_s: int | None = Field(
        None,
        ge=0,
        le=3600,
        description="Alertmanager group_wait of the route to the platform webhook (drift alerts -> retrain), "
        "seconds: how long a new alert waits before it is sent. Unset: the committed routing's 10 s. The demo and "
        "benchmarks/loop.py shorten it.",
    )
    webhook_group_interval_s: int | None = Field(
        None,
        ge=1,
        le=86400,
        description="Alertmanager group_interval of the webhook route, seconds: changes to a notified group "
        "(another alert, a resolution) are sent at this interval. Unset: the committed routing's 5 min.",
    )
    model_server_targets: list[str] = Field(
        default_factory=list,
        description='Extra model server host:port targets to scrape, as JSON (e.g. ["10.0.0.5:8300"]), besides '
        "the local deployments (each on its own port), which the deployer lists in the state directory's "
        "prometheus/model_servers.json.",
    )


class LogSettings(_Section):
    """Log lines of every process the platform runs Python for (API/UI, model servers, CLI); see docs/security.md."""

    format: Literal["auto", "json", "text"] = Field(
        "auto",
        description="json: one JSON object per line (time, level, logger, message, request_id, model, version). "
        "text: plain lines for people. auto: text on a terminal, JSON otherwise (files, pipes, containers).",
    )
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Lowest level written.")


class MonitoringSettings(_Section):
    """Drift checks: how much of a window they hold in memory, and where their reports are kept; how often rollouts
    are looked at."""

    max_sample_rows: int = Field(
        50_000,
        ge=1_000,
        le=500_000,
        description="Most rows of a window a drift check reads: larger windows are sampled uniformly where the "
        "prediction log lives (parquet scan, or SQL in PostgreSQL), so memory stays bounded at any window size. "
        "A model's spec may ask for fewer (monitoring.max_rows), never more. At 50,000 a check of 20 inputs peaks "
        "under 512 MB (docs/performance.md).",
    )
    rollout_tick_s: float = Field(
        2.0,
        gt=0,
        le=3600,
        description="How often the API process looks for rollouts whose evaluation is due (each rollout is evaluated "
        "every rollout.evaluation_interval of its spec; of several API replicas one claims each evaluation).",
    )
    report_store: Literal["local", "mlflow"] = Field(
        "local",
        description="Where drift checks keep their HTML reports. local: under state_dir/monitoring/reports (one "
        "machine: the embedded profile). mlflow: artifacts of the champion's training run (drift-reports/<id>.html), "
        "readable by every API replica and Airflow worker (the chart's choice).",
    )


class DatabaseSettings(_Section):
    """The platform's own database: alias history and audit events (more tables come with the control plane)."""

    url: str | None = Field(
        None, description="SQLAlchemy URL. Unset: sqlite at state_dir/platform.db. Production: postgresql+psycopg://."
    )


class Settings(BaseSettings):
    """Everything the platform can be told. Build once with ``get_settings()`` and pass it down."""

    model_config = SettingsConfigDict(
        env_prefix="MLP_", env_nested_delimiter="__", extra="forbid", hide_input_in_errors=True
    )

    state_dir: Path = Field(Path(".mlplatform"), description="Root of all embedded-mode state (DBs, data, logs).")
    secrets_dir: Path | None = Field(
        None,
        description="Directory of files, each named like the variable it replaces (MLP_DB__URL, "
        "MLP_API__SESSION_SECRET) and holding its value: secrets mounted as files (the Helm chart mounts its Secrets "
        "here) instead of passed in the environment. A variable that is set wins over its file. Set it as "
        "MLP_SECRETS_DIR; a directory that does not exist is an error.",
    )
    api_url: str | None = Field(
        None,
        description="Platform API the CLI talks to (e.g. https://mlp.example.com). Unset: embedded mode, where the "
        "CLI runs the same API in-process against the local state directory.",
    )
    api_token: SecretStr | None = Field(
        None, description="API token the CLI sends to api_url (`mlplatform api tokens create`); never printed."
    )
    bundled_models_dir: Path = Field(
        Path("pipelines/models"),
        description="Models shipped with the platform: one folder per model (spec.yaml, features.yaml).",
    )
    models_dir: Path | None = Field(
        None,
        description="Where `models init` and the UI create models (one folder each). Unset: state_dir/models. "
        "In the chart, a volume shared by the API, Airflow and the feature server.",
    )
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)
    airflow: AirflowSettings = Field(default_factory=AirflowSettings)
    feast: FeastSettings = Field(default_factory=FeastSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    deploy: DeploySettings = Field(default_factory=DeploySettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    db: DatabaseSettings = Field(default_factory=DatabaseSettings)
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then the environment, then the secrets directory: files named like the variables, nested
        sections split on ``__`` as in the environment.

        The directory comes from ``Settings(_secrets_dir=...)`` or, at construction (never at import),
        from ``MLP_SECRETS_DIR``.  Secret files keep credentials out of the pod spec's environment, where
        ``kubectl describe``, crash reports and every child process would see them.
        """
        directory = getattr(file_secret_settings, "secrets_dir", None) or os.environ.get(SECRETS_DIR_VARIABLE) or None
        secrets = NestedSecretsSettingsSource(
            file_secret_settings,
            secrets_dir=directory,
            secrets_dir_missing="error",
            secrets_prefix="MLP_",
            secrets_nested_delimiter="__",
        )
        return init_settings, env_settings, secrets

    @field_validator("api_url", "api_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        """``MLP_API_URL=`` in a shell or CI file means "no API": embedded mode, not a URL of ''."""
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _absolute_paths(self) -> Settings:
        """Pin relative paths to the working directory now, so child processes (Airflow tasks) agree."""
        self.state_dir = self.state_dir.resolve()
        self.bundled_models_dir = self.bundled_models_dir.resolve()
        self.models_dir = self.models_dir.resolve() if self.models_dir else None
        self.airflow.dags_folder = self.airflow.dags_folder.resolve()
        self.feast.repo_path = self.feast.repo_path.resolve()
        self.prometheus.config_dir = self.prometheus.config_dir.resolve()
        return self

    # Derived locations: a setting where one is given, else the state directory's layout (``mlplatform.state``).
    @property
    def layout(self) -> StateLayout:
        """Every path under ``state_dir``."""
        return StateLayout(self.state_dir)

    @property
    def feast_registry_path(self) -> Path:
        return (self.feast.registry_path or self.layout.feast_registry).resolve()

    @property
    def feast_online_path(self) -> Path:
        return self.layout.feast_online

    @property
    def data_dir(self) -> Path:
        return (self.feast.data_dir or self.layout.data_dir).resolve()

    @property
    def user_models_dir(self) -> Path:
        """Where new models are created."""
        return self.models_dir or self.layout.models_dir

    @property
    def model_roots(self) -> list[Path]:
        """Every folder holding model folders: the bundled examples, then the models users created."""
        return [self.bundled_models_dir, self.user_models_dir]

    def model_data_dir(self, model: str) -> Path:
        """A model's own data (its feature and label tables): never shared with another model."""
        return self.data_dir / model

    @property
    def db_url(self) -> str:
        return self.db.url or f"sqlite:///{self.layout.platform_db}"

    @property
    def serving_dir(self) -> Path:
        """Model cache and prediction log of locally run servers."""
        return (self.serving.model_cache_dir or self.layout.serving_dir).resolve()

    def child_env(self, purpose: ChildPurpose) -> dict[str, str]:
        """Environment that makes a child process (a server, an Airflow task) build these settings, with only the
        secrets its ``purpose`` needs (``CHILD_SECRETS``): a model server or MLflow that is compromised must not
        hand over the session key, the webhook token or the platform DB's owner.

        Values go through the environment, which (unlike argv, which supervisors log) is private to the process.
        """
        env = _flatten_env(self, "MLP_")
        needed = CHILD_SECRETS[purpose](self)
        return {name: value for name, value in env.items() if name not in SECRET_ENV or name in needed}


ChildPurpose = Literal["api", "airflow", "model_server", "mlflow"]
"""What a child process is for: it decides which secret settings it receives."""

SECRET_ENV = frozenset(
    (
        "MLP_API__SESSION_SECRET",
        "MLP_API__ADMIN_PASSWORD",
        "MLP_ALERTS__WEBHOOK_TOKEN",
        "MLP_OIDC__CLIENT_SECRET",
        "MLP_API_TOKEN",
        "MLP_AIRFLOW__PASSWORD",
        "MLP_AIRFLOW__DATABASE_URL",
        "MLP_DB__URL",
        "MLP_SERVING__PREDICTION_LOG_URL",
        "MLP_FEAST__REDIS_CONNECTION_STRING",
    )
)
"""Settings that are, or may carry, a credential (database URLs and Redis connection strings hold passwords)."""


def _model_server_secrets(settings: Settings) -> frozenset[str]:
    """The online store, and the database the prediction log writes to (the platform DB only if no log URL)."""
    needed = {"MLP_FEAST__REDIS_CONNECTION_STRING", "MLP_SERVING__PREDICTION_LOG_URL"}
    if settings.serving.prediction_log == "postgres" and settings.serving.prediction_log_url is None:
        needed.add("MLP_DB__URL")
    return frozenset(needed)


CHILD_SECRETS: dict[ChildPurpose, Callable[[Settings], frozenset[str]]] = {
    "api": lambda _settings: SECRET_ENV,
    # Tasks train from the feature store, record alias moves in the platform DB; components need their own DB.
    "airflow": lambda _settings: frozenset(
        ("MLP_DB__URL", "MLP_AIRFLOW__DATABASE_URL", "MLP_FEAST__REDIS_CONNECTION_STRING")
    ),
    "model_server": _model_server_secrets,
    "mlflow": lambda _settings: frozenset(),
}


def _flatten_env(model: BaseModel, prefix: str) -> dict[str, str]:
    """Sections become ``__``-nested variables; mappings and lists become JSON, as pydantic-settings parses them."""
    env: dict[str, str] = {}
    for key in type(model).model_fields:
        value = getattr(model, key)
        name = f"{prefix}{key.upper()}"
        if isinstance(value, BaseModel):
            env.update(_flatten_env(value, f"{name}__"))
        elif isinstance(value, SecretStr):
            env[name] = value.get_secret_value()
        elif isinstance(value, bool):
            env[name] = str(value).lower()
        elif isinstance(value, dict | list | tuple):
            env[name] = json.dumps(value)
        elif value is not None:
            env[name] = str(value)
    return env


def get_settings(**overrides: Any) -> Settings:
    """Build the settings from the environment (and explicit overrides, used by tests and the CLI)."""
    return Settings(**overrides)
