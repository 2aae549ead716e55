"""The process supervisor with trivial Python children: start, status, group stop, stale pid files, health waits."""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
import time
from pathlib import Path

import psutil
import pytest
from pydantic import SecretStr

from mlplatform.config import Settings
from mlplatform.orchestration import AirflowError
from mlplatform.stack import supervisor as supervisor_module
from mlplatform.stack.embedded import (
    EmbeddedStack,
    StackError,
    airflow_client,
    airflow_env,
    airflow_password,
    prepare_airflow_home,
)
from mlplatform.stack.supervisor import HealthTimeoutError, Supervisor, SupervisorError
from tests.support.environment import free_port
from tests.support.waiting import wait_for

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def _wait_for_file(path: Path, timeout: float = 20.0) -> str:
    wait_for(lambda: path.exists() and path.read_text().strip(), timeout, f"{path} to be written")
    return path.read_text().strip()


def _gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


@pytest.fixture()
def supervisor(tmp_path: Path) -> Supervisor:
    return Supervisor(tmp_path / "state")


def test_start_status_stop(supervisor: Supervisor, tmp_path: Path) -> None:
    started = supervisor.start("sleeper", SLEEPER, dict(os.environ), cwd=tmp_path / "work")
    assert started.running and started.pid

    state = supervisor.status("sleeper")
    assert state.running and state.pid == started.pid
    assert state.log_path == tmp_path / "state" / "logs" / "sleeper.log"
    assert "starting sleeper" in state.log_path.read_text()
    pidfile = supervisor.pid_path("sleeper")
    assert stat.S_IMODE(pidfile.stat().st_mode) == 0o600
    assert json.loads(pidfile.read_text())["pid"] == started.pid
    assert os.getpgid(started.pid) == started.pid  # its own process group

    with pytest.raises(SupervisorError, match="already running"):
        supervisor.start("sleeper", SLEEPER, dict(os.environ))

    assert supervisor.stop("sleeper", timeout=5) == []
    assert _gone(started.pid)
    assert not pidfile.exists()
    assert not supervisor.status("sleeper").running
    assert supervisor.stop("sleeper") == []  # stopping twice is harmless


def test_stop_kills_group_grandchild_and_escaped_descendant(supervisor: Supervisor, tmp_path: Path) -> None:
    pids_file = tmp_path / "pids.json"
    # The child starts a grandchild that ignores SIGTERM (needs SIGKILL) and one that left the group (setsid).
    script = f"""
import json, subprocess, sys, time
stubborn = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"])
escaped = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
open({str(pids_file)!r}, "w").write(json.dumps([stubborn.pid, escaped.pid]))
time.sleep(120)
"""
    started = supervisor.start("family", [sys.executable, "-c", script], dict(os.environ))
    stubborn, escaped = json.loads(_wait_for_file(pids_file))
    assert os.getpgid(stubborn) == started.pid
    assert os.getpgid(escaped) != started.pid

    survivors = supervisor.stop("family", timeout=2)

    assert survivors == []
    for pid in (started.pid, stubborn, escaped):
        assert _gone(pid), f"pid {pid} survived stop()"


def test_a_server_whose_parent_never_reaps_it_counts_as_stopped_once_it_exits(
    supervisor: Supervisor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process started the server (the API deploying a model) and the CLI stops it: after SIGTERM the server
    is a zombie until its parent reaps it.  A zombie runs nothing, so no further signal round is needed."""
    pid_file = tmp_path / "server.pid"
    parent_script = f"""
import sys, time
from pathlib import Path
from mlplatform.stack.supervisor import Supervisor
started = Supervisor(Path({str(supervisor.layout.root)!r})).start(
    "server", [sys.executable, "-c", "import time; time.sleep(120)"], {{}})
open({str(pid_file)!r}, "w").write(str(started.pid))
time.sleep(120)  # never waits for its child
"""
    parent = psutil.Popen([sys.executable, "-c", parent_script])
    try:
        server = int(_wait_for_file(pid_file))
        rounds: list[int] = []
        monkeypatch.setattr(supervisor_module, "_signal_all", lambda _pid, _alive, sig: rounds.append(sig))

        assert supervisor.stop("server", timeout=20) == []

        assert psutil.Process(server).status() == psutil.STATUS_ZOMBIE  # still unreaped by its parent
        assert rounds == [], "an exited server got further signal rounds"
    finally:
        parent.kill()
        parent.wait(timeout=10)


def test_orphans_of_a_dead_leader_are_stopped(supervisor: Supervisor, tmp_path: Path) -> None:
    pid_file = tmp_path / "orphan.pid"
    script = f"""
import subprocess, sys
orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
open({str(pid_file)!r}, "w").write(str(orphan.pid))
"""
    started = supervisor.start("leader", [sys.executable, "-c", script], dict(os.environ))
    orphan = int(_wait_for_file(pid_file))
    psutil.Process(started.pid).wait(timeout=20)  # the leader exits, leaving its child in the group

    state = supervisor.status("leader")
    assert not state.running and state.stale_pidfile
    supervisor.stop("leader", timeout=2)
    assert _gone(orphan)


def test_stale_pidfile_never_signals_a_reused_pid(supervisor: Supervisor) -> None:
    # A pid file from "before a reboot": the pid now belongs to this very test process, started at another time.
    supervisor.layout.run_dir.mkdir(parents=True)
    record = {"pid": os.getpid(), "create_time": psutil.Process().create_time() - 1000, "argv": ["old"]}
    supervisor.pid_path("old").write_text(json.dumps(record))

    state = supervisor.status("old")
    assert not state.running and state.stale_pidfile

    assert supervisor.stop("old") == []  # must not SIGTERM us: we are still here to assert
    assert not supervisor.pid_path("old").exists()


def test_corrupt_or_dead_pidfile_counts_as_stopped_and_start_replaces_it(supervisor: Supervisor) -> None:
    supervisor.layout.run_dir.mkdir(parents=True)
    supervisor.pid_path("junk").write_text("not json")
    assert not supervisor.status("junk").running

    started = supervisor.start("junk", SLEEPER, dict(os.environ))
    assert started.pid is not None
    try:
        assert supervisor.status("junk").running
    finally:
        supervisor.stop("junk", timeout=5)
    assert _gone(started.pid)


def test_health_wait_succeeds_against_a_real_server(supervisor: Supervisor, tmp_path: Path) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(tmp_path)]
    supervisor.start("web", argv, dict(os.environ))
    try:
        supervisor.wait_healthy("web", f"http://127.0.0.1:{port}/", timeout=30, interval=0.1)
    finally:
        supervisor.stop("web", timeout=5)


def test_health_timeout_error_carries_the_log_tail(supervisor: Supervisor) -> None:
    script = "import time\nfor i in range(40): print(f'line {i}', flush=True)\ntime.sleep(120)"
    supervisor.start("quiet", [sys.executable, "-u", "-c", script], dict(os.environ))
    try:
        _wait_for_file_containing(supervisor.log_path("quiet"), "line 39")
        with pytest.raises(HealthTimeoutError) as caught:
            supervisor.wait_healthy("quiet", f"http://127.0.0.1:{free_port()}/health", timeout=1, interval=0.2)
    finally:
        supervisor.stop("quiet", timeout=5)
    message = str(caught.value)
    assert "quiet did not become healthy" in message and "within 1s" in message
    assert "line 39" in message and "line 20" in message
    assert "line 19\n" not in message  # only the last 20 lines


def test_health_wait_fails_fast_when_the_process_exits(supervisor: Supervisor) -> None:
    script = "import sys; print('cannot bind: address in use', flush=True); sys.exit(3)"
    supervisor.start("crasher", [sys.executable, "-c", script], dict(os.environ))
    started = time.monotonic()
    with pytest.raises(HealthTimeoutError, match="the process exited") as caught:
        supervisor.wait_healthy("crasher", f"http://127.0.0.1:{free_port()}/", timeout=60, interval=0.1)
    assert time.monotonic() - started < 30
    assert "cannot bind: address in use" in str(caught.value)
    supervisor.stop("crasher")


def _wait_for_file_containing(path: Path, text: str, timeout: float = 20.0) -> None:
    wait_for(lambda: path.exists() and text in path.read_text(), timeout, f"{text!r} in {path}")


# -- the embedded stack's preparation (no servers started) --------------------------------------------------------


def test_airflow_home_secrets_are_generated_once_and_private(settings: Settings) -> None:
    prepare_airflow_home(settings)
    config, passwords = settings.layout.airflow_config, settings.layout.airflow_passwords
    first_config, first_password = config.read_text(), airflow_password(settings)
    assert "fernet_key = " in first_config and "jwt_secret = " in first_config and "secret_key = " in first_config
    assert len(first_password) >= 16

    prepare_airflow_home(settings)
    assert config.read_text() == first_config and airflow_password(settings) == first_password
    for path in (config, passwords):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    configured = settings.model_copy(
        update={"airflow": settings.airflow.model_copy(update={"password": SecretStr("from-settings")})}
    )
    prepare_airflow_home(configured)
    assert json.loads(passwords.read_text()) == {"admin": "from-settings"}
    assert airflow_password(configured) == "from-settings"


def test_airflow_password_without_stack_says_what_to_do(settings: Settings) -> None:
    with pytest.raises(StackError, match="mlplatform stack up"):
        airflow_password(settings)


def test_the_airflow_client_is_handed_the_stack_password_or_fails_as_airflow_does(settings: Settings) -> None:
    with pytest.raises(AirflowError, match="mlplatform stack up"):
        airflow_client(settings)
    prepare_airflow_home(settings)
    with airflow_client(settings, timeout=2) as client:
        assert client.username == settings.airflow.username
        assert client.base_url == settings.airflow.resolved_api_url().rstrip("/")
        assert airflow_password(settings) not in repr(client)


def test_airflow_env_follows_settings_and_ignores_the_callers_airflow_vars(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    env = airflow_env(settings)
    port = settings.airflow.port
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"http://127.0.0.1:{port}/execution/"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "False"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{settings.state_dir}/airflow/airflow.db"
    assert env["MLP_STATE_DIR"] == str(settings.state_dir)
    assert not any("secret" in key.lower() or "fernet" in key.lower() for key in env if key.startswith("AIRFLOW"))


def test_up_refuses_a_port_held_by_a_foreign_process(settings: Settings) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", settings.mlflow.port))
        holder.listen()
        with pytest.raises(StackError, match=f"127.0.0.1:{settings.mlflow.port} is already in use.*MLP_MLFLOW__PORT"):
            EmbeddedStack(settings).up()
    assert not any(state.running for state in EmbeddedStack(settings).status())


def test_stack_down_stops_every_models_server_and_leaves_no_process(settings: Settings) -> None:
    """Not only the demo's: a server for any model (and any other supervised process) goes with the stack."""
    supervisor = Supervisor(settings.state_dir)
    started = [supervisor.start(name, SLEEPER, dict(os.environ)) for name in ("serve-churn", "serve-prices")]
    messages: list[str] = []
    EmbeddedStack(settings).down(progress=messages.append)
    assert all(_gone(int(state.pid or 0)) for state in started)
    assert supervisor.names() == []
    assert [m.split(" (")[0] for m in messages] == ["Stopping serve-churn", "Stopping serve-prices"]
