"""The state directory: where every file the platform keeps lives, and how its secrets are written.

``StateLayout`` is the one place that names paths under ``state_dir`` (``.mlplatform/`` by default)::

    mlflow/mlflow.db, mlflow/artifacts/      embedded MLflow: backend store and proxied artifacts
    airflow/airflow.cfg                      Airflow's secrets only (fernet key, API secret key, JWT secret), 0600
    airflow/passwords.json                   the simple auth manager's user password, 0600
    airflow/airflow.db, airflow/logs/        Airflow metadata DB and task logs
    airflow/.migrated-<key>                  marks a metadata DB already migrated for one Airflow version
    api/session_secret                       key signing the platform UI's session cookies, 0600
    api/initial_admin_password               the first admin's generated password until it is changed, 0600
    api/cli_token                            the embedded CLI's own API token, 0600
    alerts/webhook_token                     the Alertmanager webhook's bearer token, 0600
    platform.db                              the platform DB (users, tokens, audit log, alias history, ...)
    logs/<process>.log, run/<process>.pid    supervisor output and pid records (pid records 0600)
    prometheus/prometheus.yml, data/         rendered Prometheus configuration and its TSDB
    prometheus/model_servers.json            the local model servers Prometheus scrapes (file_sd targets)
    alertmanager/alertmanager.yml, data/     rendered Alertmanager configuration, silences, notification log
    alertmanager/platform_webhook_token      the webhook token again, as the rendered config's credentials_file, 0600
    feast/registry.db, feast/online.db       Feast registry and sqlite online store
    data/                                    parquet feature sources
    serving/                                 model cache and prediction log of locally run servers
    monitoring/reports/<model>/<id>.html     drift reports (monitoring.report_store=local)

Some of these can be moved elsewhere by a setting (the Feast registry, data and serving directories, the databases);
``Settings`` applies those overrides and falls back to this layout.

Secrets are written by ``write_private``, readable by their owner only from the first byte on, and a secret that is
generated once and then kept comes from ``generated_secret``.  This module imports nothing from the platform: it is
the bottom layer, next to ``config``.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import overload

PRIVATE_FILE_MODE = 0o600


class _Under:
    """A fixed path under the layout's root, declared in one line: ``platform_db = _Under("platform.db")``."""

    def __init__(self, *parts: str) -> None:
        self.parts = parts

    @overload
    def __get__(self, layout: None, owner: type[StateLayout]) -> _Under: ...
    @overload
    def __get__(self, layout: StateLayout, owner: type[StateLayout]) -> Path: ...
    def __get__(self, layout: StateLayout | None, owner: type[StateLayout]) -> Path | _Under:
        return self if layout is None else layout.root.joinpath(*self.parts)


@dataclass(frozen=True)
class StateLayout:
    """Every path under one state directory (the module docstring draws the tree); computing one creates nothing."""

    root: Path

    mlflow_dir = _Under("mlflow")
    mlflow_db = _Under("mlflow", "mlflow.db")
    mlflow_artifacts = _Under("mlflow", "artifacts")

    airflow_home = _Under("airflow")
    airflow_config = _Under("airflow", "airflow.cfg")
    airflow_passwords = _Under("airflow", "passwords.json")
    airflow_db = _Under("airflow", "airflow.db")
    airflow_logs = _Under("airflow", "logs")

    platform_db = _Under("platform.db")
    session_secret = _Under("api", "session_secret")
    initial_admin_password = _Under("api", "initial_admin_password")
    cli_token = _Under("api", "cli_token")
    webhook_token = _Under("alerts", "webhook_token")

    logs_dir = _Under("logs")
    run_dir = _Under("run")

    prometheus_dir = _Under("prometheus")
    prometheus_config = _Under("prometheus", "prometheus.yml")
    prometheus_data = _Under("prometheus", "data")
    prometheus_targets = _Under("prometheus", "model_servers.json")
    alertmanager_dir = _Under("alertmanager")
    alertmanager_config = _Under("alertmanager", "alertmanager.yml")
    alertmanager_data = _Under("alertmanager", "data")
    # The name the committed monitoring/alertmanager/alertmanager.yml gives as its credentials_file.
    alertmanager_webhook_token = _Under("alertmanager", "platform_webhook_token")

    feast_registry = _Under("feast", "registry.db")
    feast_online = _Under("feast", "online.db")
    data_dir = _Under("data")
    models_dir = _Under("models")
    serving_dir = _Under("serving")

    def airflow_migrated_marker(self, key: str) -> Path:
        """Present once ``airflow db migrate`` succeeded for the (database, Airflow version) ``key`` names."""
        return self.airflow_home / f".migrated-{key}"

    def log_file(self, process: str) -> Path:
        """Where a supervised process's stdout and stderr are appended."""
        return self.logs_dir / f"{process}.log"

    def pid_file(self, process: str) -> Path:
        """Where a supervised process's pid record is kept while it runs."""
        return self.run_dir / f"{process}.pid"

    def drift_report(self, model: str, check_id: int) -> Path:
        """The HTML report of one drift check, named by its DB id so no request ever supplies a path."""
        return self.root / "monitoring" / "reports" / model / f"{int(check_id)}.html"


def write_private(path: Path, text: str, *, exclusive: bool = False) -> None:
    """Write ``text`` to ``path``, readable by its owner only from the first byte on; missing parents are created.

    ``exclusive``: create a new file or raise ``FileExistsError``.  The text is written whole to a private draft
    beside it and linked into place, so a concurrent reader finds no file or the complete text, never a part, and
    of two concurrent writers the first wins.  Otherwise the file is replaced in place; its mode is narrowed before
    the text is written, since ``O_CREAT``'s mode only applies to a file it creates.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if exclusive:
        _create_exclusive(path, text)
        return
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    os.fchmod(descriptor, PRIVATE_FILE_MODE)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


def _create_exclusive(path: Path, text: str) -> None:
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        os.link(draft, path)
    finally:
        draft.unlink()


class WeakSecretError(ValueError):
    """A kept secret file holds too short a key (emptied or edited by hand): using it would make it guessable."""


def generated_secret(path: Path, *, nbytes: int = 32, prefix: str = "") -> str:
    """The secret kept at ``path``; the first call generates it (``prefix`` + ``nbytes`` random bytes, URL-safe).

    Every caller, concurrent first callers included, gets the same value: the first file written wins.  A file
    that holds less than a generated secret's random part (an empty file signs with an empty key) is refused,
    never used.
    """
    if not path.is_file():
        with contextlib.suppress(FileExistsError):
            write_private(path, prefix + secrets.token_urlsafe(nbytes) + "\n", exclusive=True)
    value = path.read_text().strip()
    shortest = len(prefix) + math.ceil(nbytes * 4 / 3)  # the length token_urlsafe(nbytes) gives
    if len(value) < shortest:
        raise WeakSecretError(
            f"{path} holds a key of {len(value)} characters, fewer than the {shortest} of a generated one; "
            "delete the file and a new key is generated at the next start (sessions signed with it end)"
        )
    return value


__all__ = ["PRIVATE_FILE_MODE", "StateLayout", "WeakSecretError", "generated_secret", "write_private"]
