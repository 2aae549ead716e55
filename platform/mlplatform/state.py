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
    alertmanager/alertmanager.yml, data/     rendered Alertmanager configuration, silences, notification log
    alertmanager/platform_webhook_token      the webhook token again, as the rendered config's credentials_file, 0600
    feast/registry.db, feast/online.db       Feast registry and sqlite online store
    data/                                    parquet feature sources
    serving/                                 model cache and prediction log of locally run servers
    monitoring/reports/<model>/<id>.html     drift reports

Some of these can be moved elsewhere by a setting (the Feast registry, data and serving directories, the databases);
``Settings`` applies those overrides and falls back to this layout.

Secrets are written by ``write_private``, readable by their owner only from the first byte on, and a secret that is
generated once and then kept comes from ``generated_secret``.  This module imports nothing from the platform: it is
the bottom layer, next to ``config``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

PRIVATE_FILE_MODE = 0o600


@dataclass(frozen=True)
class StateLayout:
    """Every path under one state directory; computing a path creates nothing."""

    root: Path

    # -- MLflow ----------------------------------------------------------------------------------------------

    @property
    def mlflow_dir(self) -> Path:
        return self.root / "mlflow"

    @property
    def mlflow_db(self) -> Path:
        return self.mlflow_dir / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.mlflow_dir / "artifacts"

    # -- Airflow ---------------------------------------------------------------------------------------------

    @property
    def airflow_home(self) -> Path:
        return self.root / "airflow"

    @property
    def airflow_config(self) -> Path:
        return self.airflow_home / "airflow.cfg"

    @property
    def airflow_passwords(self) -> Path:
        return self.airflow_home / "passwords.json"

    @property
    def airflow_db(self) -> Path:
        return self.airflow_home / "airflow.db"

    @property
    def airflow_logs(self) -> Path:
        return self.airflow_home / "logs"

    def airflow_migrated_marker(self, key: str) -> Path:
        """Present once ``airflow db migrate`` succeeded for the (database, Airflow version) ``key`` names."""
        return self.airflow_home / f".migrated-{key}"

    # -- platform API and its secrets ------------------------------------------------------------------------

    @property
    def platform_db(self) -> Path:
        return self.root / "platform.db"

    @property
    def session_secret(self) -> Path:
        return self.root / "api" / "session_secret"

    @property
    def initial_admin_password(self) -> Path:
        return self.root / "api" / "initial_admin_password"

    @property
    def cli_token(self) -> Path:
        return self.root / "api" / "cli_token"

    @property
    def webhook_token(self) -> Path:
        return self.root / "alerts" / "webhook_token"

    # -- supervised processes --------------------------------------------------------------------------------

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    def log_file(self, process: str) -> Path:
        """Where a supervised process's stdout and stderr are appended."""
        return self.logs_dir / f"{process}.log"

    def pid_file(self, process: str) -> Path:
        """Where a supervised process's pid record is kept while it runs."""
        return self.run_dir / f"{process}.pid"

    # -- Prometheus and Alertmanager -------------------------------------------------------------------------

    @property
    def prometheus_dir(self) -> Path:
        return self.root / "prometheus"

    @property
    def prometheus_config(self) -> Path:
        return self.prometheus_dir / "prometheus.yml"

    @property
    def prometheus_data(self) -> Path:
        return self.prometheus_dir / "data"

    @property
    def alertmanager_dir(self) -> Path:
        return self.root / "alertmanager"

    @property
    def alertmanager_config(self) -> Path:
        return self.alertmanager_dir / "alertmanager.yml"

    @property
    def alertmanager_data(self) -> Path:
        return self.alertmanager_dir / "data"

    @property
    def alertmanager_webhook_token(self) -> Path:
        """The name the committed ``monitoring/alertmanager/alertmanager.yml`` gives as its ``credentials_file``."""
        return self.alertmanager_dir / "platform_webhook_token"

    # -- features, models, monitoring ------------------------------------------------------------------------

    @property
    def feast_registry(self) -> Path:
        return self.root / "feast" / "registry.db"

    @property
    def feast_online(self) -> Path:
        return self.root / "feast" / "online.db"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def serving_dir(self) -> Path:
        return self.root / "serving"

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


def generated_secret(path: Path, *, nbytes: int = 32, prefix: str = "") -> str:
    """The secret kept at ``path``; the first call generates it (``prefix`` + ``nbytes`` random bytes, URL-safe).

    Every caller, concurrent first callers included, gets the same value: the first file written wins.
    """
    if not path.is_file():
        with contextlib.suppress(FileExistsError):
            write_private(path, prefix + secrets.token_urlsafe(nbytes) + "\n", exclusive=True)
    return path.read_text().strip()


__all__ = ["PRIVATE_FILE_MODE", "StateLayout", "generated_secret", "write_private"]
