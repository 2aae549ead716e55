"""The embedded stack: an MLflow server, Airflow 3 (api-server, scheduler, dag-processor) and the platform API/UI
on 127.0.0.1.

Everything lives under ``settings.state_dir``, laid out by ``mlplatform.state.StateLayout`` (its docstring shows
the tree): MLflow's store and artifacts, AIRFLOW_HOME with its secrets, the platform DB, supervisor logs and pid
records, and Prometheus and Alertmanager when installed (see ``stack.prometheus``).

``airflow standalone`` is deliberately not used: it leaves its children behind on SIGTERM.  Each Airflow component
runs as its own supervised process group instead, all sharing one environment built by ``airflow_env``; secrets
are kept out of that environment (and out of ``ps``) by putting them in ``airflow.cfg``, which every component
reads from ``AIRFLOW_HOME``.  The triggerer is not started: the platform's DAGs use no deferrable operators.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from mlplatform.config import Settings
from mlplatform.stack import prometheus as monitoring
from mlplatform.stack.supervisor import ManagedStatus, Supervisor, SupervisorError, port_in_use
from mlplatform.state import PRIVATE_FILE_MODE, write_private

if TYPE_CHECKING:
    from mlplatform.orchestration.airflow_client import AirflowClient

Progress = Callable[[str], None]

MLFLOW = "mlflow"
AIRFLOW_API = "airflow-api-server"
AIRFLOW_SCHEDULER = "airflow-scheduler"
AIRFLOW_DAG_PROCESSOR = "airflow-dag-processor"
AIRFLOW_PROCESSES = (AIRFLOW_API, AIRFLOW_SCHEDULER, AIRFLOW_DAG_PROCESSOR)
PLATFORM_API = "mlplatform-api"
PROMETHEUS = monitoring.PROMETHEUS
ALERTMANAGER = monitoring.ALERTMANAGER
CORE_PROCESSES = (MLFLOW, *AIRFLOW_PROCESSES, PLATFORM_API)
START_ORDER = (*CORE_PROCESSES, ALERTMANAGER, PROMETHEUS)

SCHEDULER_MODULE = "mlplatform.stack.airflow_scheduler"
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
# New DAG files (generated from model specs) should show up in seconds, not after Airflow's default 5 minutes.
DAG_FOLDER_REFRESH_S = 10
# A model created while the stack runs changes no DAG file, only what model_dags.py reads when parsed: re-parse it
# often enough that a new model's DAGs appear within about 15 s (Airflow's default is 30 s).
DAG_FILE_REPARSE_S = 10
MLFLOW_HEALTH_TIMEOUT_S = 90.0
AIRFLOW_HEALTH_TIMEOUT_S = 150.0
MIGRATE_TIMEOUT_S = 300.0
API_HEALTH_TIMEOUT_S = 90.0
MONITORING_HEALTH_TIMEOUT_S = 30.0


class StackError(RuntimeError):
    """The embedded stack could not be brought up, inspected or torn down."""


@dataclass(frozen=True)
class ProcessStatus:
    """One process of the embedded stack as ``mlplatform stack status`` shows it."""

    name: str
    running: bool
    pid: int | None
    url: str | None
    healthy: bool
    log_path: Path


def _no_progress(_: str) -> None:
    """Default progress sink: silent."""


class EmbeddedStack:
    """Brings the embedded MLflow, Airflow and platform API processes up and down; safe to call ``up`` repeatedly."""

    def __init__(self, settings: Settings, supervisor: Supervisor | None = None) -> None:
        self.settings = settings
        self.supervisor = supervisor or Supervisor(settings.state_dir)

    # -- URLs ------------------------------------------------------------------------------------------------

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.settings.mlflow.host}:{self.settings.mlflow.port}"

    @property
    def airflow_url(self) -> str:
        return f"http://{self.settings.airflow.host}:{self.settings.airflow.port}"

    @property
    def api_url(self) -> str:
        """Where the platform API answers locally (health checks); users may reach it at ``api.public_url``."""
        return f"http://{self.settings.api.host}:{self.settings.api.port}"

    # -- up --------------------------------------------------------------------------------------------------

    def up(self, progress: Progress | None = None) -> list[ProcessStatus]:
        """Start whatever is not running yet and wait until MLflow, Airflow and the platform API answer healthy.

        Airflow and the API are prepared and started while MLflow is still importing (all take seconds of CPU,
        mostly imports), then the health checks are awaited; nothing needs MLflow until a task or request does.
        """
        say = progress or _no_progress
        started = time.monotonic()
        upgrade_platform_db(self.settings)  # before anything that opens it: they check, never migrate
        self._start_mlflow(say)
        self._start_airflow(say)
        self._start_api(say)
        self.supervisor.wait_healthy(MLFLOW, f"{self.mlflow_url}/health", timeout=MLFLOW_HEALTH_TIMEOUT_S)
        say(f"MLflow healthy at {self.mlflow_url} ({time.monotonic() - started:.1f}s)")
        self.supervisor.wait_healthy(
            AIRFLOW_API,
            f"{self.airflow_url}/api/v2/monitor/health",
            timeout=AIRFLOW_HEALTH_TIMEOUT_S,
            accept=_airflow_components_healthy,
        )
        say(f"Airflow healthy at {self.airflow_url} ({time.monotonic() - started:.1f}s)")
        warm_execution_api(self.airflow_url)
        self.supervisor.wait_healthy(PLATFORM_API, f"{self.api_url}/readyz", timeout=API_HEALTH_TIMEOUT_S)
        say(f"Platform API and UI healthy at {self.api_url} ({time.monotonic() - started:.1f}s)")
        self.start_monitoring(say)
        return self.status()

    def start_monitoring(self, say: Progress) -> None:
        """Alertmanager, then Prometheus (which sends it alerts), when installed; a clear note when not."""
        binaries = monitoring.find_binaries(self.settings)
        if binaries.alertmanager is None or binaries.prometheus is None:
            say(f"Skipping Prometheus and Alertmanager: {monitoring.why_skipped(self.settings, binaries)}")
            return
        conf = self.settings.prometheus
        starts = (
            (ALERTMANAGER, binaries.alertmanager, conf.alertmanager_port, "MLP_PROMETHEUS__ALERTMANAGER_PORT"),
            (PROMETHEUS, binaries.prometheus, conf.port, "MLP_PROMETHEUS__PORT"),
        )
        for name, binary, port, variable in starts:
            if self.supervisor.status(name).running:
                say(f"{name} already running at http://{conf.host}:{port}")
                continue
            self._ensure_port_free(name, conf.host, port, variable)
            say(f"Starting {name} at http://{conf.host}:{port}")
            self.supervisor.start(name, self._monitoring_argv(name, binary), monitoring.monitoring_env())
        for name, _, port, _ in starts:
            url = f"http://{conf.host}:{port}"
            self.supervisor.wait_healthy(name, f"{url}/-/ready", timeout=MONITORING_HEALTH_TIMEOUT_S)
            say(f"{name} healthy at {url}")

    def _monitoring_argv(self, name: str, binary: str) -> list[str]:
        """The rendered configuration (rewritten at each start, so it follows the settings) and the command."""
        if name == ALERTMANAGER:
            from mlplatform.retraining.alertmanager import webhook_token

            config = monitoring.write_alertmanager_config(self.settings, webhook_token(self.settings))
            return monitoring.alertmanager_argv(binary, self.settings, config)
        return monitoring.prometheus_argv(binary, self.settings, monitoring.write_prometheus_config(self.settings))

    def monitoring_installed(self) -> bool:
        binaries = monitoring.find_binaries(self.settings)
        return binaries.prometheus is not None and binaries.alertmanager is not None

    def _start_mlflow(self, say: Progress) -> None:
        if self.supervisor.status(MLFLOW).running:
            say(f"MLflow already running at {self.mlflow_url}")
            return
        self._ensure_port_free(MLFLOW, self.settings.mlflow.host, self.settings.mlflow.port, "MLP_MLFLOW__PORT")
        say(f"Starting MLflow at {self.mlflow_url}")
        self.supervisor.start(
            MLFLOW, mlflow_argv(self.settings), mlflow_env(self.settings), cwd=self.settings.layout.mlflow_dir
        )

    def _start_airflow(self, say: Progress) -> None:
        missing = [name for name in AIRFLOW_PROCESSES if not self.supervisor.status(name).running]
        if not missing:
            say(f"Airflow already running at {self.airflow_url}")
            return
        if AIRFLOW_API in missing:
            self._ensure_port_free(
                AIRFLOW_API, self.settings.airflow.host, self.settings.airflow.port, "MLP_AIRFLOW__PORT"
            )
        prepare_airflow_home(self.settings)
        env = airflow_env(self.settings)
        self._migrate(env, say)
        for name in missing:
            say(f"Starting {name}")
            self.supervisor.start(name, airflow_argv(self.settings, name), env, cwd=self.settings.layout.airflow_home)

    def _start_api(self, say: Progress) -> None:
        """The platform API/UI (``mlplatform api serve``); the first admin is created here, before it starts.

        Creating the admin in this process, not the server, keeps the choice of where its password goes (a 0600
        file, never the server's log) in one place whatever starts the server.
        """
        if self.supervisor.status(PLATFORM_API).running:
            say(f"Platform API already running at {self.api_url}")
            return
        self._ensure_port_free(PLATFORM_API, self.settings.api.host, self.settings.api.port, "MLP_API__PORT")
        password_file = bootstrap_platform_admin(self.settings)
        if password_file is not None:
            say(admin_created_message(self.settings.api.admin_username, password_file))
        say(f"Starting the platform API and UI at {self.api_url}")
        self.supervisor.start(PLATFORM_API, api_argv(), api_env(self.settings), cwd=self.settings.state_dir)

    def _ensure_port_free(self, name: str, host: str, port: int, variable: str) -> None:
        if port_in_use(host, port):
            raise StackError(
                f"cannot start {name}: {host}:{port} is already in use by a process this stack did not start. "
                f"Stop it or choose another port with {variable}=<port>."
            )

    def _migrate(self, env: dict[str, str], say: Progress) -> None:
        """Run ``airflow db migrate`` once per metadata DB and Airflow version (it takes ~10 s even when idle)."""
        marker = self.settings.layout.airflow_migrated_marker(_migration_key(self.settings))
        sqlite_file = _sqlite_path(airflow_database_url(self.settings))
        if marker.exists() and (sqlite_file is None or sqlite_file.exists()):
            return
        say("Migrating the Airflow metadata DB (first run only)")
        log_path = self.supervisor.log_path("airflow-db-migrate")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            try:
                result = subprocess.run(
                    [airflow_executable(), "db", "migrate"],
                    env=env,
                    cwd=self.settings.layout.airflow_home,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=MIGRATE_TIMEOUT_S,
                    check=False,
                )
            except subprocess.TimeoutExpired as error:
                raise StackError(
                    f"airflow db migrate took longer than {MIGRATE_TIMEOUT_S:.0f}s; see {log_path}"
                ) from error
        if result.returncode != 0:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
            raise StackError(f"airflow db migrate failed (exit {result.returncode}); last lines of {log_path}:\n{tail}")
        marker.touch()

    # -- down ------------------------------------------------------------------------------------------------

    def down(self, progress: Progress | None = None) -> None:
        """Stop every process the supervisor started under this state directory, each with its whole process group:
        first whatever is not part of the stack itself (every model's server, whichever deployed it), then the
        stack in reverse start order, so no server outlives the services it reads from."""
        say = progress or _no_progress
        survivors: dict[str, list[int]] = {}
        others = sorted(set(self.supervisor.names()) - set(START_ORDER))
        for name in (*others, *reversed(START_ORDER)):
            state = self.supervisor.status(name)
            if not state.running and not state.stale_pidfile:
                continue
            say(f"Stopping {name}" + (f" (pid {state.pid})" if state.running else " (cleaning up a stale pid file)"))
            left = self.supervisor.stop(name)
            if left:
                survivors[name] = left
        if survivors:
            detail = "; ".join(f"{name}: {pids}" for name, pids in survivors.items())
            raise StackError(f"some processes survived SIGKILL (check permissions): {detail}")

    # -- status ----------------------------------------------------------------------------------------------

    def status(self) -> list[ProcessStatus]:
        """Every stack process: running per its pid record, healthy per MLflow's /health, Airflow's health JSON
        and the platform API's /readyz.

        The scheduler and dag-processor have no URL of their own; Airflow's health endpoint reports their
        heartbeats, so one request answers for all three Airflow components.
        """
        names = START_ORDER if self._monitoring_listed() else CORE_PROCESSES
        states = {name: self.supervisor.status(name) for name in names}
        healthy = {MLFLOW: states[MLFLOW].running and _get_json(f"{self.mlflow_url}/health") is not None}
        for name, url in self._monitoring_urls().items():
            if name in states:
                healthy[name] = states[name].running and _get_json(f"{url}/-/ready") is not None
        healthy[PLATFORM_API] = states[PLATFORM_API].running and _get_json(f"{self.api_url}/readyz") is not None
        airflow_health = _get_json(f"{self.airflow_url}/api/v2/monitor/health") if states[AIRFLOW_API].running else None
        healthy[AIRFLOW_API] = airflow_health is not None
        for name, part in ((AIRFLOW_SCHEDULER, "scheduler"), (AIRFLOW_DAG_PROCESSOR, "dag_processor")):
            healthy[name] = states[name].running and _component_healthy(airflow_health, part)
        return [self._process_status(states[name], healthy[name]) for name in names]

    def _monitoring_listed(self) -> bool:
        """Prometheus and Alertmanager are listed when installed, or when running anyway (to show and stop them)."""
        return self.monitoring_installed() or any(
            self.supervisor.status(name).running for name in (PROMETHEUS, ALERTMANAGER)
        )

    def _monitoring_urls(self) -> dict[str, str]:
        return {
            PROMETHEUS: monitoring.prometheus_url(self.settings),
            ALERTMANAGER: monitoring.alertmanager_url(self.settings),
        }

    def _process_status(self, state: ManagedStatus, healthy: bool) -> ProcessStatus:
        public_url = {
            MLFLOW: self.mlflow_url,
            AIRFLOW_API: self.airflow_url,
            PLATFORM_API: self.settings.api.resolved_public_url(),
            **self._monitoring_urls(),
        }.get(state.name)
        return ProcessStatus(
            name=state.name,
            running=state.running,
            pid=state.pid if state.running else None,
            url=public_url,
            healthy=healthy,
            log_path=state.log_path,
        )


# -- MLflow --------------------------------------------------------------------------------------------------


def mlflow_argv(settings: Settings) -> list[str]:
    """``mlflow server`` with one uvicorn worker, sqlite backend and proxied local artifacts."""
    backend = settings.mlflow.backend_store_uri or f"sqlite:///{settings.layout.mlflow_db}"
    artifacts = settings.mlflow.artifacts_destination or str(settings.layout.mlflow_artifacts)
    # Host-header and CORS checks: MLflow's defaults already allow localhost/127.0.0.1/[::1] on any port, which
    # is exactly who talks to the embedded server, so --allowed-hosts / --cors-allowed-origins stay unset.
    return [
        _venv_executable("mlflow"),
        "server",
        "--backend-store-uri",
        backend,
        "--serve-artifacts",
        "--artifacts-destination",
        artifacts,
        "--host",
        settings.mlflow.host,
        "--port",
        str(settings.mlflow.port),
        "--workers",
        "1",
    ]


def mlflow_env(settings: Settings) -> dict[str, str]:
    """The server's environment: the caller's, plus the platform's child env, minus MLflow's job runner.

    MLflow 3 starts a huey job-consumer process (LLM judges, trace rollups) by default; the platform uses none of
    that, so it is switched off to save memory and a process.
    """
    env = _base_env()
    env.update(settings.child_env("mlflow"))
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return env


# -- platform API ------------------------------------------------------------------------------------------


def api_argv() -> list[str]:
    """``mlplatform api serve``: host, port and everything else come from the settings in its environment."""
    return [_venv_executable("mlplatform"), "api", "serve"]


def api_env(settings: Settings) -> dict[str, str]:
    env = _base_env()
    env.update(settings.child_env("api"))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def upgrade_platform_db(settings: Settings) -> None:
    """``mlplatform db upgrade`` for the embedded profile: the one place its platform DB is migrated."""
    from mlplatform.store import PlatformStore
    from mlplatform.store.db import SchemaVersionError

    try:
        PlatformStore.migrated(settings.db_url).dispose()
    except SchemaVersionError as error:
        raise StackError(str(error)) from None


def bootstrap_platform_admin(settings: Settings) -> Path | None:
    """Create the first admin if the platform DB has no users; returns the 0600 file of a generated password."""
    from mlplatform.store import PlatformStore
    from mlplatform.store.auth import AuthRepository
    from mlplatform.store.bootstrap import ensure_admin

    store = PlatformStore.connect(settings.db_url)
    try:
        return ensure_admin(settings, AuthRepository(store))
    finally:
        store.dispose()


def admin_created_message(username: str, password_file: Path) -> str:
    """The one-time password is shown once, on a terminal only: piped output ends up in CI logs, so it then
    names the 0600 file instead (which ``login_hint`` removes once the admin has changed the password)."""
    if sys.stdout.isatty():
        password = password_file.read_text().strip()
        return (
            f"Created the platform admin user {username!r} with the one-time password {password} "
            f"(shown once; change it after logging in; until then it is also in {password_file})"
        )
    return f"Created the platform admin user {username!r}; its one-time password is in {password_file}"


# -- Airflow -------------------------------------------------------------------------------------------------


def airflow_database_url(settings: Settings) -> str:
    return settings.airflow.database_url or f"sqlite:///{settings.layout.airflow_db}"


def airflow_password(settings: Settings) -> str:
    """The password the platform uses for Airflow's REST API: configured, else the one generated by ``up``."""
    if settings.airflow.password is not None:
        return settings.airflow.password.get_secret_value()
    path = settings.layout.airflow_passwords
    try:
        stored = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise StackError(
            f"no Airflow password configured and none generated yet at {path}; "
            "run `mlplatform stack up` or set MLP_AIRFLOW__PASSWORD"
        ) from error
    username = settings.airflow.username
    if username not in stored:
        raise StackError(f"{path} has no password for Airflow user {username!r}; run `mlplatform stack up`")
    return str(stored[username])


def airflow_client(settings: Settings, timeout: float = 30.0) -> AirflowClient:
    """A REST client for the configured Airflow, logging in with ``airflow_password``.

    The client receives its password rather than looking for it: only this module knows where ``up`` keeps it.
    A missing password is an ``AirflowError`` like any other reason Airflow cannot be used, so callers handle one.
    """
    from mlplatform.orchestration.airflow_client import AirflowClient, AirflowError

    try:
        password = airflow_password(settings)
    except StackError as error:
        raise AirflowError(str(error)) from error
    return AirflowClient.from_settings(settings, password, timeout=timeout)


def prepare_airflow_home(settings: Settings) -> None:
    """Create AIRFLOW_HOME with its secrets and the user's password, generating each only once."""
    layout = settings.layout
    layout.airflow_logs.mkdir(parents=True, exist_ok=True)
    _ensure_secrets_config(layout.airflow_config)
    _ensure_password(settings)


def _ensure_secrets_config(path: Path) -> None:
    """Write airflow.cfg holding only the keys all components must share; never rewrite an existing one.

    The fernet key encrypts connections and variables in the DB, and the JWT secret signs both the REST API's and
    the execution API's tokens: regenerating either would break existing data or running tasks.
    """
    if path.exists():
        path.chmod(PRIVATE_FILE_MODE)
        return
    fernet_key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    text = (
        "# Generated once by `mlplatform stack up`; everything else comes from AIRFLOW__* environment variables.\n"
        f"[core]\nfernet_key = {fernet_key}\n\n"
        f"[api]\nsecret_key = {secrets.token_urlsafe(32)}\n\n"
        f"[api_auth]\njwt_secret = {secrets.token_urlsafe(48)}\n"
    )
    write_private(path, text)


def _ensure_password(settings: Settings) -> None:
    """Keep the simple auth manager's password file in step with settings, generating a password if unset."""
    path = settings.layout.airflow_passwords
    username = settings.airflow.username
    stored: dict[str, str] = {}
    if path.exists():
        try:
            stored = json.loads(path.read_text() or "{}")
        except json.JSONDecodeError as error:
            raise StackError(f"{path} is not valid JSON; delete it to generate a new Airflow password") from error
    if settings.airflow.password is not None:
        wanted = settings.airflow.password.get_secret_value()
    else:
        wanted = stored.get(username) or secrets.token_urlsafe(18)
    if stored != {username: wanted}:
        write_private(path, json.dumps({username: wanted}) + "\n")
    else:
        path.chmod(PRIVATE_FILE_MODE)


def airflow_env(settings: Settings) -> dict[str, str]:
    """The environment shared by every Airflow component and, through them, every task.

    Inherited ``AIRFLOW__*`` variables are dropped so the stack behaves the same whatever the caller's shell has
    set; the platform's ``child_env`` is added so tasks build the same ``Settings`` as the CLI that started them.
    """
    air = settings.airflow
    layout = settings.layout
    api_url = f"http://{air.host}:{air.port}"
    env = {k: v for k, v in _base_env().items() if not k.startswith("AIRFLOW")}
    env.update(settings.child_env("airflow"))
    env.update(
        {
            "AIRFLOW_HOME": str(layout.airflow_home),
            "AIRFLOW_CONFIG": str(layout.airflow_config),
            "AIRFLOW__CORE__DAGS_FOLDER": str(air.dags_folder),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(air.parallelism),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{air.username}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(layout.airflow_passwords),
            # Tasks reach the api-server through this URL; it must follow the port or every task fails.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_database_url(settings),
            "AIRFLOW__API__HOST": air.host,
            "AIRFLOW__API__PORT": str(air.port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__BASE_URL": api_url,
            "AIRFLOW__API__EXPOSE_CONFIG": "False",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(layout.airflow_logs),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": str(DAG_FOLDER_REFRESH_S),
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": str(DAG_FILE_REPARSE_S),
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def airflow_argv(settings: Settings, name: str) -> list[str]:
    """The command line of one Airflow component."""
    airflow = airflow_executable()
    if name == AIRFLOW_API:
        host, port = settings.airflow.host, str(settings.airflow.port)
        return [airflow, "api-server", "--host", host, "--port", port, "--workers", "1"]
    if name == AIRFLOW_SCHEDULER:
        # Task logs are files under AIRFLOW_HOME that the api-server reads directly; the log-serving sidecar
        # would only add a process listening on 0.0.0.0:8793 (and clash between two stacks on one machine).
        scheduler = ["scheduler", "--skip-serve-logs"]
        if not settings.airflow.preload_modules:
            return [airflow, *scheduler]
        # The same Airflow, with the training tasks' libraries imported first: LocalExecutor forks every task from
        # the scheduler, so each task finds them loaded (stack.airflow_scheduler).
        preload = ",".join(settings.airflow.preload_modules)
        return [sys.executable, "-m", SCHEDULER_MODULE, "--preload", preload, "--", *scheduler]
    if name == AIRFLOW_DAG_PROCESSOR:
        return [airflow, "dag-processor"]
    raise ValueError(f"unknown Airflow component {name!r}")


def airflow_executable() -> str:
    return _venv_executable("airflow")


# -- helpers -------------------------------------------------------------------------------------------------


def _venv_executable(name: str) -> str:
    """The console script installed next to this interpreter (the project's venv), else the one on PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise StackError(f"`{name}` is not installed in {Path(sys.executable).parent} nor on PATH")
    return found


def _base_env() -> dict[str, str]:
    """The caller's environment with the venv's bin directory first, so child tools resolve to the same venv."""
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    return env


def _sqlite_path(url: str) -> Path | None:
    """The file behind a ``sqlite:///`` URL, or None for other databases."""
    prefix = "sqlite:///"
    return Path(url[len(prefix) :].split("?")[0]) if url.startswith(prefix) else None


def _migration_key(settings: Settings) -> str:
    """Identifies (DB URL, Airflow version), so a new DB or an Airflow upgrade re-runs the migration."""
    from importlib.metadata import version

    digest = hashlib.sha256(f"{airflow_database_url(settings)}|{version('apache-airflow')}".encode())
    return digest.hexdigest()[:16]


def _get_json(url: str) -> object | None:
    """The body of a 200 answer from ``url`` (parsed if JSON, else the text), or None if unhealthy/unreachable."""
    try:
        response = httpx.get(url, timeout=3.0)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    try:
        parsed: object = response.json()
    except ValueError:
        return response.text
    return parsed


def _component_healthy(health: object, part: str) -> bool:
    """Whether Airflow's health JSON reports ``part`` (scheduler, dag_processor, metadatabase) as healthy."""
    if not isinstance(health, dict):
        return False
    component = health.get(part)
    return isinstance(component, dict) and component.get("status") == "healthy"


def warm_execution_api(airflow_url: str) -> bool:
    """One request to the api-server's execution API (the one tasks report to), so it builds its versioned routes
    now: Airflow builds them at the first request, on the server's event loop, which held the first task of a fresh
    stack about 3 s at its start (and every other request meanwhile).  False when the server did not answer."""
    try:
        return httpx.get(f"{airflow_url}/execution/health", timeout=60.0).status_code == 200
    except httpx.HTTPError:
        return False


def _airflow_components_healthy(response: httpx.Response) -> bool:
    """Airflow's health endpoint answers 200 early; a run can only start once the scheduler heartbeats too."""
    try:
        body = response.json()
    except ValueError:
        return False
    return all(_component_healthy(body, part) for part in ("metadatabase", "scheduler"))


__all__ = [
    "AIRFLOW_API",
    "AIRFLOW_DAG_PROCESSOR",
    "AIRFLOW_SCHEDULER",
    "ALERTMANAGER",
    "MLFLOW",
    "PLATFORM_API",
    "PROMETHEUS",
    "EmbeddedStack",
    "ProcessStatus",
    "StackError",
    "SupervisorError",
    "airflow_client",
    "airflow_env",
    "airflow_password",
]
