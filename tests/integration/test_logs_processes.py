"""The platform API as a real process (`mlplatform api serve`, as `stack up` starts it) with credentials generated for
this run: every log file it leaves holds JSON lines with request ids, and none of those credentials.

The run logs in with the admin password, mints an API token and uses it, sends the webhook its bearer token and
sends wrong credentials of each kind; the platform DB is a private PostgreSQL database reached through a URL that
carries a password (ignored by the server's trust authentication, but a secret of the run all the same).  The model
servers' side is checked in tests/integration/test_serving_servers.py against both real servers.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from mlplatform.config import Settings
from mlplatform.stack.embedded import PLATFORM_API
from tests.support.alerts import alert, payload
from tests.support.environment import free_port, with_migrated_db
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@dataclass
class ApiRun:
    url: str
    state_dir: Path
    secrets: dict[str, str]
    """What each credential of the run is, by name; ``created`` ones are added while the run goes on."""
    process: subprocess.Popen[bytes]
    output: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _with_password(server_url: str, database_url: str, password: str) -> str:
    """The database URL with ``password`` in it, unless the server's URL already brings one."""
    url = make_url(database_url)
    if url.password is not None or make_url(server_url).password is not None:
        return database_url
    return url.set(drivername="postgresql+psycopg", password=password).render_as_string(hide_password=False)


@pytest.fixture()
def api_run(settings: Settings, postgres_server_url: str, postgres_database: str) -> Iterator[ApiRun]:
    generated = {
        "session secret": secrets.token_urlsafe(48),
        "admin password": secrets.token_urlsafe(18),
        "webhook token": secrets.token_urlsafe(32),
        "airflow password": secrets.token_urlsafe(18),
        "database password": secrets.token_urlsafe(18),
    }
    db_url = _with_password(postgres_server_url, postgres_database, generated["database password"])
    port = free_port()
    run_settings = settings.model_copy(
        update={
            "api": settings.api.model_copy(update={"port": port}),
            "db": settings.db.model_copy(update={"url": db_url}),
        }
    )
    with_migrated_db(run_settings)  # as `mlplatform db upgrade` leaves it: the API only checks the revision
    env = {
        **os.environ,
        **run_settings.child_env("api"),
        "MLP_API__SESSION_SECRET": generated["session secret"],
        "MLP_API__ADMIN_PASSWORD": generated["admin password"],
        "MLP_ALERTS__WEBHOOK_TOKEN": generated["webhook token"],
        "MLP_AIRFLOW__PASSWORD": generated["airflow password"],
        "MLP_LOG__FORMAT": "auto",  # the file below is no terminal: JSON
        "PYTHONUNBUFFERED": "1",
    }
    state_dir = run_settings.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    output = run_settings.layout.log_file(PLATFORM_API)  # where `stack up` puts it
    output.parent.mkdir(parents=True, exist_ok=True)
    executable = str(Path(sys.executable).parent / "mlplatform")
    with output.open("wb") as sink:
        process = subprocess.Popen([executable, "api", "serve"], env=env, stdout=sink, stderr=sink, cwd=state_dir)
    run = ApiRun(f"http://127.0.0.1:{port}", state_dir, generated, process, output)

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the API exited with {process.returncode}:\n{output.read_text()[-3000:]}")
        try:
            return httpx.get(f"{run.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(ready, 90, "the API's /readyz", interval=0.3)
        yield run
    finally:
        run.stop()


def _drive(run: ApiRun) -> list[str]:
    """Requests carrying every credential, right and wrong; returns the request ids sent in X-Request-ID."""
    sent = [f"run-{index}" for index in range(7)]
    with httpx.Client(base_url=run.url, timeout=30) as client:
        wrong = client.post(
            "/api/v1/session",
            json={"username": "admin", "password": run.secrets["admin password"][::-1]},
            headers={"x-request-id": sent[0]},
        )
        assert wrong.status_code == 401, wrong.text
        login = client.post(
            "/api/v1/session",
            json={"username": "admin", "password": run.secrets["admin password"]},
            headers={"x-request-id": sent[1]},
        )
        assert login.status_code == 200, login.text
        run.secrets["session cookie"] = client.cookies["mlp_session"]
        run.secrets["csrf token"] = login.json()["csrf_token"]
        minted = client.post(
            "/api/v1/tokens",
            json={"name": "logs-test"},
            headers={"x-csrf-token": run.secrets["csrf token"], "x-request-id": sent[2]},
        )
        assert minted.status_code == 201, minted.text
        run.secrets["api token"] = minted.json()["token"]
        client.cookies.clear()
        bearer = {"authorization": f"Bearer {run.secrets['api token']}"}
        me = client.get("/api/v1/session", headers={**bearer, "x-request-id": sent[3]})
        assert me.status_code == 200 and me.headers["x-request-id"] == sent[3]
        forged = client.get(
            "/api/v1/models",
            headers={"authorization": f"Bearer {run.secrets['api token'][:-4]}AAAA", "x-request-id": sent[4]},
        )
        assert forged.status_code == 401
        webhook = client.post(
            "/api/v1/alerts/alertmanager",
            json=payload(alert(model="fraud_detector")),
            headers={"authorization": f"Bearer {run.secrets['webhook token']}", "x-request-id": sent[5]},
        )
        assert webhook.status_code < 500, webhook.text
        refused = client.post(
            "/api/v1/alerts/alertmanager",
            json=payload(alert()),
            headers={"authorization": f"Bearer {run.secrets['webhook token'][:-3]}xyz", "x-request-id": sent[6]},
        )
        assert refused.status_code == 401
    return sent


def _log_files(run: ApiRun) -> list[Path]:
    files = sorted(run.state_dir.rglob("*.log"))
    assert run.output in files
    return files


def test_the_api_logs_json_lines_with_request_ids_and_none_of_the_runs_secrets(api_run: ApiRun) -> None:
    sent = _drive(api_run)
    wait_for(lambda: sent[-1] in api_run.output.read_text(), 10, "the last request's access line")
    api_run.stop()

    lines = api_run.output.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object: no stray text, no traceback
    assert all({"time", "level", "logger", "message"} <= set(record) for record in records)
    access = {record["request_id"]: record for record in records if record["logger"] == "mlplatform.access"}
    assert set(sent) <= set(access)
    assert access[sent[0]]["status"] == 401 and access[sent[0]]["level"] == "WARNING"
    assert "password" in access[sent[0]]["error"]
    assert access[sent[3]]["status"] == 200 and access[sent[3]]["path"] == "/api/v1/session"
    assert not [record for record in records if record.get("path") == "/readyz"]  # probes are not access lines

    for path in _log_files(api_run):
        text = path.read_text(errors="replace")
        for name, secret in api_run.secrets.items():
            assert secret not in text, f"the {name} is in {path}"
