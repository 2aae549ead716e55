"""A typed client for the parts of Airflow 3's REST API (``/api/v2``) the platform uses.

Authentication: Airflow 3 issues JWTs at ``POST /auth/token`` (simple auth manager: username + password); every
API call carries ``Authorization: Bearer <token>``.  Tokens expire (24 h by default) and are invalidated when the
stack restarts with a new secret, so a 401 triggers exactly one re-login before the error is surfaced.

Triggering: Airflow 3 requires ``logical_date`` in the body of ``POST /dags/{id}/dagRuns``; ``null`` means
"no logical date", which lets any number of manual runs coexist.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field

from mlplatform.waiting import WaitTimeoutError, wait_until

if TYPE_CHECKING:
    from mlplatform.config import Settings

TERMINAL_RUN_STATES = frozenset({"success", "failed"})
ProgressCallback = Callable[[dict[str, str | None]], None]


class AirflowError(RuntimeError):
    """Airflow answered with an error (``status_code``) or could not be reached (``status_code`` is None)."""

    def __init__(self, message: str, status_code: int | None = None, airflow_message: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.airflow_message = airflow_message


class AirflowUnreachableError(AirflowError):
    """No HTTP answer at all: the stack is down or the URL is wrong."""


class DagPausedError(AirflowError):
    """The DAG is paused in Airflow: an operator stopped it on purpose, so the platform does not start it."""


class AirflowTimeoutError(AirflowError):
    """Something we waited for (a DAG to be parsed, a run to finish) did not happen in time."""


class _Model(BaseModel):
    """Response models ignore fields they do not name, so newer Airflow versions keep working."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class DagRun(_Model):
    """One DAG run as ``GET /api/v2/dags/{dag_id}/dagRuns/{run_id}`` returns it."""

    dag_id: str
    run_id: str = Field(alias="dag_run_id")
    state: str
    run_type: str | None = None
    logical_date: datetime | None = None
    queued_at: datetime | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    conf: dict[str, Any] | None = None
    note: str | None = None
    failure_reason: str | None = None
    """Not Airflow's: filled in by the platform for failed runs (``AirflowClient.failure_reason``)."""

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_RUN_STATES


class TaskInstance(_Model):
    """One task instance of a run; ``state`` is None until the scheduler has looked at it."""

    task_id: str
    dag_id: str
    run_id: str = Field(alias="dag_run_id")
    state: str | None = None
    try_number: int = 0
    map_index: int = -1
    start_date: datetime | None = None
    end_date: datetime | None = None

    @property
    def key(self) -> str:
        """``task_id`` or ``task_id[i]`` for mapped tasks; the key of the progress mapping."""
        return self.task_id if self.map_index < 0 else f"{self.task_id}[{self.map_index}]"


class ImportErrorInfo(_Model):
    """A DAG file the dag-processor could not import."""

    filename: str
    stack_trace: str
    timestamp: datetime | None = None


class AirflowClient:
    """Triggers and follows DAG runs over Airflow's REST API v2."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password
        self._token: str | None = None
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    @classmethod
    def from_settings(cls, settings: Settings, password: str, timeout: float = 30.0) -> AirflowClient:
        """A client for the configured Airflow and user; the caller supplies the password (it knows where it is)."""
        return cls(settings.airflow.resolved_api_url(), settings.airflow.username, password, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AirflowClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:  # never show the password or token
        return f"AirflowClient(base_url={self.base_url!r}, username={self.username!r})"

    # -- DAGs ------------------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Airflow's own view of its components (no authentication needed)."""
        body: dict[str, Any] = self._send("GET", "/api/v2/monitor/health").json()
        return body

    def dag_exists(self, dag_id: str) -> bool:
        """Whether the dag-processor has registered ``dag_id`` (it may still be paused)."""
        try:
            self._request("GET", f"/api/v2/dags/{_q(dag_id)}")
        except AirflowError as error:
            if error.status_code == 404:
                return False
            raise
        return True

    def import_errors(self) -> list[ImportErrorInfo]:
        """Current DAG import errors, newest first as Airflow lists them."""
        body = self._request("GET", "/api/v2/importErrors", params={"limit": 100}).json()
        return [ImportErrorInfo.model_validate(item) for item in body.get("import_errors", [])]

    def wait_for_dag(self, dag_id: str, timeout: float = 120.0, poll_interval: float = 2.0) -> None:
        """Wait until the dag-processor has parsed and registered ``dag_id``.

        On timeout the error lists the current import errors, since a DAG that never appears has nearly always
        failed to import.
        """
        try:
            wait_until(lambda: self.dag_exists(dag_id), timeout=timeout, interval=poll_interval, what=f"DAG {dag_id!r}")
        except WaitTimeoutError:
            raise AirflowTimeoutError(self._missing_dag_message(dag_id, timeout), status_code=404) from None

    def _missing_dag_message(self, dag_id: str, timeout: float) -> str:
        errors = self.import_errors()
        if not errors:
            return (
                f"DAG {dag_id!r} did not appear in Airflow at {self.base_url} within {timeout:.0f}s and there are "
                "no import errors: check that its file is in the dags folder and defines that dag_id."
            )
        listed = "\n".join(f"- {error.filename}:\n{_last_lines(error.stack_trace, 8)}" for error in errors)
        return f"DAG {dag_id!r} did not appear in Airflow within {timeout:.0f}s. Import errors:\n{listed}"

    def is_paused(self, dag_id: str) -> bool:
        """Whether ``dag_id`` is paused.  The platform's DAGs are created unpaused (``is_paused_upon_creation``),
        so a paused one was paused by an operator, and stays paused until they unpause it."""
        body: dict[str, Any] = self._request("GET", f"/api/v2/dags/{_q(dag_id)}").json()
        return bool(body.get("is_paused"))

    # -- runs ------------------------------------------------------------------------------------------------

    def trigger(self, dag_id: str, conf: Mapping[str, Any], run_id: str | None = None) -> DagRun:
        """Start a manual run of ``dag_id`` with ``conf``; ``run_id`` makes the trigger idempotent-checkable."""
        body: dict[str, Any] = {"logical_date": None, "conf": dict(conf)}
        if run_id is not None:
            body["dag_run_id"] = run_id
        response = self._request("POST", f"/api/v2/dags/{_q(dag_id)}/dagRuns", json=body)
        return DagRun.model_validate(response.json())

    def get_run(self, dag_id: str, run_id: str) -> DagRun:
        response = self._request("GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}")
        return DagRun.model_validate(response.json())

    def list_runs(self, dag_id: str, limit: int = 25) -> list[DagRun]:
        """The DAG's most recent runs, newest first."""
        response = self._request(
            "GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns", params={"limit": limit, "order_by": "-start_date"}
        )
        return [DagRun.model_validate(item) for item in response.json().get("dag_runs", [])]

    def task_instances(self, dag_id: str, run_id: str) -> list[TaskInstance]:
        """All task instances of a run (every page)."""
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances"
        found: list[TaskInstance] = []
        while True:
            body = self._request("GET", path, params={"limit": 100, "offset": len(found)}).json()
            page = [TaskInstance.model_validate(item) for item in body.get("task_instances", [])]
            found.extend(page)
            if not page or len(found) >= int(body.get("total_entries", 0)):
                return found

    def wait(
        self,
        dag_id: str,
        run_id: str,
        poll_interval: float = 3.0,
        timeout: float = 3600.0,
        on_progress: ProgressCallback | None = None,
    ) -> DagRun:
        """Poll until the run is ``success`` or ``failed`` and return it; ``on_progress`` gets task states on change.

        A failed run is returned, not raised: the caller decides how to report it (see ``task_log``).
        """
        last_states: dict[str, str | None] | None = None
        state: str | None = None

        def finished() -> DagRun | None:
            nonlocal last_states, state
            run = self.get_run(dag_id, run_id)
            state = run.state
            if on_progress is not None:
                states = {ti.key: ti.state for ti in self.task_instances(dag_id, run_id)}
                if states != last_states:
                    on_progress(states)
                    last_states = states
            return run if run.finished else None

        try:
            return wait_until(finished, timeout=timeout, interval=poll_interval, what=f"run {run_id!r}")
        except WaitTimeoutError:
            raise AirflowTimeoutError(
                f"run {run_id!r} of DAG {dag_id!r} is still {state!r} after {timeout:.0f}s "
                f"(see {self.base_url}/dags/{dag_id}/runs/{run_id})"
            ) from None

    def failure_reason(self, dag_id: str, run_id: str) -> str | None:
        """Why a run failed: the reason its failed task pushed to XCom (``dags.FAILURE_REASON_KEY``), prefixed with
        the task; ``failed at <task>`` when the task left none (killed, or failed before the step ran)."""
        from mlplatform.orchestration.dags import FAILURE_REASON_KEY

        failed = [ti for ti in self.task_instances(dag_id, run_id) if ti.state == "failed"]
        if not failed:
            return None
        task = failed[0]
        path = (
            f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task.task_id)}"
            f"/xcomEntries/{_q(FAILURE_REASON_KEY)}"
        )
        try:
            value = self._request("GET", path, params={"deserialize": "true"}).json().get("value")
        except AirflowError as error:
            if error.status_code != 404:
                raise
            value = None
        return f"{task.task_id}: {value}" if value else f"failed at {task.task_id}"

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1) -> str:
        """The full log of one task try as plain text lines (``timestamp level event``)."""
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}/logs/{try_number}"
        response = self._request(
            "GET",
            path,
            params={"full_content": "true", "map_index": map_index},
            headers={"Accept": "application/json"},
        )
        content = response.json().get("content", [])
        return "\n".join(_log_line(entry) for entry in content)

    # -- transport -------------------------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """An authenticated call; logs in on first use and once more if the token was rejected."""
        if self._token is None:
            self._token = self._login()
        response = self._send(method, path, token=self._token, check=False, **kwargs)
        if response.status_code == 401:
            self._token = self._login()
            response = self._send(method, path, token=self._token, check=False, **kwargs)
        _raise_for_status(response, method, path)
        return response

    def _login(self) -> str:
        response = self._send(
            "POST", "/auth/token", check=False, json={"username": self.username, "password": self._password}
        )
        if response.status_code in (401, 403):
            message = _airflow_message(response)
            raise AirflowError(
                f"Airflow at {self.base_url} rejected the credentials of user {self.username!r} ({message}); "
                "check MLP_AIRFLOW__USERNAME / MLP_AIRFLOW__PASSWORD",
                status_code=response.status_code,
                airflow_message=message,
            )
        _raise_for_status(response, "POST", "/auth/token")
        token = response.json().get("access_token")
        if not isinstance(token, str) or not token:
            raise AirflowError(f"Airflow at {self.base_url} returned no access_token from /auth/token")
        return token

    def _send(
        self, method: str, path: str, token: str | None = None, check: bool = True, **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        url = f"{self.base_url}{path}"
        try:
            response = self._http.request(method, path, headers=headers, **kwargs)
        except httpx.TransportError as error:
            raise AirflowUnreachableError(
                f"Airflow is unreachable at {url} ({type(error).__name__}: {error}). "
                "Is the stack running? Start it with `mlplatform stack up`."
            ) from error
        if check:
            _raise_for_status(response, method, path)
        return response


def _q(segment: str) -> str:
    """Quote one path segment (run ids contain ':' and '+')."""
    return quote(segment, safe="")


def _airflow_message(response: httpx.Response) -> str:
    """Airflow's explanation from an error body: ``detail`` as text, or each validation error's ``msg``."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                location = ".".join(str(part) for part in item.get("loc", []))
                parts.append(f"{location}: {item.get('msg', item)}" if location else str(item.get("msg", item)))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    if isinstance(detail, dict):
        return str(detail.get("reason") or detail.get("message") or detail)
    return str(detail)


def _raise_for_status(response: httpx.Response, method: str, path: str) -> None:
    if response.is_success:
        return
    message = _airflow_message(response)
    raise AirflowError(
        f"Airflow {method} {path} failed with HTTP {response.status_code}: {message}",
        status_code=response.status_code,
        airflow_message=message,
    )


def _log_line(entry: object) -> str:
    if not isinstance(entry, Mapping):
        return str(entry)
    parts = [str(entry[key]) for key in ("timestamp", "level") if entry.get(key)]
    parts.append(str(entry.get("event", "")))
    line = " ".join(parts)
    detail = entry.get("error_detail")
    return f"{line}\n{_format_error_detail(detail)}" if detail else line


def _format_error_detail(detail: object) -> str:
    """Airflow 3 logs exceptions as structured ``error_detail``: render it like a Python traceback."""
    if not isinstance(detail, list):
        return str(detail)
    lines = []
    for exc in detail:
        if not isinstance(exc, Mapping):
            lines.append(str(exc))
            continue
        for frame in exc.get("frames", []) or []:
            if isinstance(frame, Mapping):
                lines.append(f'  File "{frame.get("filename")}", line {frame.get("lineno")}, in {frame.get("name")}')
        lines.append(f"{exc.get('exc_type')}: {exc.get('exc_value')}")
    return "\n".join(lines)


def _last_lines(text: str, count: int) -> str:
    return "\n".join("    " + line for line in text.strip().splitlines()[-count:])
