"""mlplatform.logs: the formats, the request context, redaction, the request-id middleware and its access lines.

The real processes' logs (the API, both model servers) are checked by tests/integration/test_logs_processes.py and
tests/integration/test_serving_servers.py; here the same pieces run in-process against real loggers and streams.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from mlplatform import logs
from mlplatform.config import LogSettings, get_settings
from tests.support.environment import REPO_ROOT

TOKEN = "mlp_" + "Q" * 43
SECRETS_IN_TEXT = {
    "bearer header": (f"Authorization: Bearer {TOKEN[4:]}", TOKEN[4:]),
    "basic header": ("authorization: Basic dXNlcjpodW50ZXIyaHVudGVyMg==", "dXNlcjpodW50ZXIyaHVudGVyMg=="),
    "api token": (f"token {TOKEN} refused", TOKEN),
    "session cookie": ("cookie: mlp_session=eyJ1IjoxfQ.axMxZg.7FdCdTuqz_4Fpf61d9zSxQrS5gg; other=1", "eyJ1IjoxfQ"),
    "csrf cookie": ("mlp_login_csrf=Zm9vYmFyYmF6cXV4", "Zm9vYmFyYmF6cXV4"),
    "url password": ("connecting to postgresql+psycopg://mlp:s3cr3t-Pa55@db:5432/mlp", "s3cr3t-Pa55"),
    "password field": ('{"username": "ada", "password": "hunter2hunter2"}', "hunter2hunter2"),
    "query token": ("GET /callback?access_token=abcdefabcdef123&x=1", "abcdefabcdef123"),
}


@pytest.fixture()
def restored_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``configure`` rewires the root logger and the excepthook (and turns MLflow's progress bars off for JSON):
    put everything back afterwards."""
    monkeypatch.delenv(logs.MLFLOW_PROGRESS_BAR, raising=False)
    root = logging.getLogger()
    handlers, level, hook = list(root.handlers), root.level, sys.excepthook
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    sys.excepthook = hook
    logging.captureWarnings(False)


def configured(log_format: Literal["json", "text"] = "json", fields: dict[str, str] | None = None) -> io.StringIO:
    stream = io.StringIO()
    logs.configure(LogSettings(format=log_format), fields=fields, stream=stream)
    return stream


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_json_line_has_time_level_logger_message_and_the_request_context(restored_logging: None) -> None:
    stream = configured(fields={"model": "fraud"})

    with logs.bound("req-7", "fraud", "3"):
        logging.getLogger("mlplatform.serving").warning("scored %d rows", 2, extra={"rows": 2})
    logging.getLogger("kserve").info("outside any request")
    inside, outside = lines(stream)
    assert inside["level"] == "WARNING" and inside["logger"] == "mlplatform.serving"
    assert inside["message"] == "scored 2 rows" and inside["rows"] == 2
    assert (inside["request_id"], inside["model"], inside["version"]) == ("req-7", "fraud", "3")
    assert inside["time"].endswith("+00:00")
    assert outside["logger"] == "kserve" and outside["model"] == "fraud" and "request_id" not in outside


@pytest.mark.parametrize("name", sorted(SECRETS_IN_TEXT))
def test_known_secrets_are_redacted_from_messages_extras_and_tracebacks(restored_logging: None, name: str) -> None:
    text, secret = SECRETS_IN_TEXT[name]
    stream = configured()
    log = logging.getLogger("mlplatform.test")
    log.info("message: %s", text)
    log.info("an extra field", extra={"detail": text})
    try:
        raise RuntimeError(text)
    except RuntimeError:
        log.exception("a traceback")
    output = stream.getvalue()
    assert secret not in output
    assert output.count(logs.REDACTED) >= 3
    assert all(isinstance(line, dict) for line in lines(stream))  # redaction keeps every line valid JSON


def test_redaction_leaves_ordinary_text_alone() -> None:
    text = "loaded fraud_detector version 3 from models:/fraud_detector@champion in 0.4 s (session ttl 8 h)"
    assert logs.redact(text) == text


def test_auto_is_text_on_a_terminal_and_json_in_a_file(restored_logging: None, tmp_path: Path) -> None:
    leader, follower = os.openpty()
    with os.fdopen(follower, "w") as terminal:
        logs.configure(LogSettings(format="auto"), stream=terminal)
        logging.getLogger("mlplatform.test").info("for a person to read, token %s", TOKEN)
        terminal.flush()
        shown = os.read(leader, 4096).decode()
    os.close(leader)
    assert "INFO mlplatform.test: for a person to read" in shown and TOKEN not in shown
    with (tmp_path / "process.log").open("w") as file:
        logs.configure(LogSettings(format="auto"), stream=file)
        logging.getLogger("mlplatform.test").info("for a collector")
    assert json.loads((tmp_path / "process.log").read_text())["message"] == "for a collector"
    assert os.environ[logs.MLFLOW_PROGRESS_BAR] == "false"  # no progress bars between the JSON lines


def test_text_lines_show_the_request_context(restored_logging: None) -> None:
    stream = configured("text")
    with logs.bound("r-1", "fraud", "2"):
        logging.getLogger("m").info("hello")
    assert logs.current_request_id() is None  # nothing outlives the block
    assert "INFO m [request_id=r-1 model=fraud version=2]: hello" in stream.getvalue()


def test_an_uncaught_exception_is_one_redacted_line(restored_logging: None) -> None:
    stream = configured()
    try:
        raise RuntimeError(f"crashed holding {TOKEN}")
    except RuntimeError as error:
        sys.excepthook(RuntimeError, error, error.__traceback__)
    (line,) = lines(stream)
    assert line["level"] == "CRITICAL" and "RuntimeError" in line["exc_info"] and TOKEN not in json.dumps(line)


def test_server_loggers_are_routed_to_the_one_handler(restored_logging: None) -> None:
    """KServe and BentoML give uvicorn and themselves text handlers of their own; ``configure`` takes them over."""
    stray = logging.StreamHandler(io.StringIO())
    for name in ("uvicorn.error", "kserve", "bentoml"):
        logging.getLogger(name).addHandler(stray)
        logging.getLogger(name).propagate = False
    stream = configured()
    for name in ("uvicorn.error", "kserve", "bentoml"):
        logging.getLogger(name).warning("from %s", name)
    assert [line["logger"] for line in lines(stream)] == ["uvicorn.error", "kserve", "bentoml"]
    assert not logging.getLogger("uvicorn.access").hasHandlers()  # RequestLog writes the access lines


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("abc-123_X.y", True),
        ("r" * 64, True),
        ("r" * 65, False),
        ("two words", False),
        ("line\nbreak", False),
        ('quote"', False),
        ("", False),
        (None, False),
    ],
)
def test_a_request_id_header_is_kept_only_when_plain_and_short(sent: str | None, kept: bool) -> None:
    seen: list[str | None] = []

    async def echo(_: Request) -> PlainTextResponse:
        seen.append(logs.current_request_id())
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", echo)], middleware=[Middleware(logs.RequestLog, sample=lambda: 0.0)])
    response = _raw_get(app, [] if sent is None else [(b"x-request-id", sent.encode())])
    answered = response.headers["x-request-id"]
    assert seen == [answered]
    if kept:
        assert answered == sent
    else:
        assert answered != sent and len(answered) == 32 and int(answered, 16) >= 0


@pytest.mark.parametrize(("settled", "answered"), [("body-id-9", "body-id-9"), ("a\r\nSet-Cookie: x=1", "sent-1")])
def test_the_answer_carries_the_id_the_app_settled_on_when_it_fits_a_header(settled: str, answered: str) -> None:
    """A model server's body may name the request id; one that could split the header is not echoed."""

    async def settle(_: Request) -> PlainTextResponse:
        with logs.bound(settled, "fraud", "1"):
            return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", settle)], middleware=[Middleware(logs.RequestLog, sample=lambda: 0.0)])
    assert _raw_get(app, [(b"x-request-id", b"sent-1")]).headers["x-request-id"] == answered


def _raw_get(app: Any, headers: list[tuple[bytes, bytes]]) -> Any:
    """A GET straight through ASGI: an HTTP client would refuse to send some of these headers (a newline)."""
    import asyncio

    from httpx import Headers

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": headers, "query_string": b""}
    asyncio.run(app(scope, receive, send))

    class Answer:
        def __init__(self) -> None:
            start = next(message for message in sent if message["type"] == "http.response.start")
            self.headers = Headers([(key.decode(), value.decode()) for key, value in start["headers"]])

    return Answer()


def _access_app(rate: float) -> Starlette:
    async def ok(_: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def refused(_: Request) -> JSONResponse:
        logs.note_error("entities[0].customer_id: must be an integer")
        return JSONResponse({"error": "..."}, status_code=422)

    async def broken(_: Request) -> JSONResponse:
        raise RuntimeError("a bug")

    routes = [Route("/predict", ok), Route("/refused", refused), Route("/broken", broken), Route("/metrics", ok)]
    return Starlette(routes=routes, middleware=[Middleware(logs.RequestLog, sample=lambda: rate)])


def test_refusals_and_errors_always_write_an_access_line_successes_only_when_sampled(
    restored_logging: None,
) -> None:
    stream = configured()
    with TestClient(_access_app(0.0), raise_server_exceptions=False) as client:
        for _ in range(20):
            assert client.get("/predict").status_code == 200
        refused = client.get("/refused?token=abcdefabcdef", headers={"x-request-id": "bad-1"})
        assert client.get("/broken").status_code == 500
    warning, error = lines(stream)[-2:]
    assert (warning["level"], warning["status"], warning["path"]) == ("WARNING", 422, "/refused")
    assert warning["request_id"] == "bad-1" == refused.headers["x-request-id"]
    assert warning["error"] == "entities[0].customer_id: must be an integer"
    assert "abcdefabcdef" not in stream.getvalue()  # the query string is never logged
    assert (error["level"], error["status"]) == ("ERROR", 500)
    assert not [line for line in lines(stream) if line.get("status") == 200]


def test_sampled_successes_write_lines_but_probes_never_do(restored_logging: None) -> None:
    stream = configured()
    with TestClient(_access_app(1.0)) as client:
        for _ in range(3):
            client.get("/predict", headers={"x-request-id": "ok-1"})
            client.get("/metrics")
    access = [line for line in lines(stream) if line["logger"] == "mlplatform.access"]
    assert [(line["path"], line["status"], line["request_id"]) for line in access] == [("/predict", 200, "ok-1")] * 3
    assert all(isinstance(line["duration_ms"], float) for line in access)


@pytest.mark.parametrize(("given", "rate"), [("off", 0.0), ("all", 1.0), ("ALL", 1.0), ("0.05", 0.05), (0.5, 0.5)])
def test_access_log_settings_take_names_and_rates(given: object, rate: float) -> None:
    settings = get_settings(serving={"access_log": given}, api={"access_log": given})
    assert settings.serving.access_log == rate == settings.api.access_log
    assert get_settings().serving.access_log == 0.0 and get_settings().api.access_log == 1.0


@pytest.mark.parametrize("given", ["sometimes", 2, -0.1])
def test_an_access_log_setting_out_of_range_is_refused(given: object) -> None:
    with pytest.raises(ValidationError, match=r"serving\.access_log"):
        get_settings(serving={"access_log": given})


def test_airflow_task_lines_carry_the_model_and_run_and_are_redacted(tmp_path: Path) -> None:
    """In a process whose logging Airflow's task runner configured (JSON lines through structlog), not ours."""
    script = textwrap.dedent(
        f"""
        import logging, sys
        from airflow.sdk.log import configure_logging
        from mlplatform import logs

        configure_logging(json_output=True, output=sys.stdout.buffer, cache_logger_on_first_use=False)
        with logs.airflow_task_context("fraud_detector", "train_fraud_detector/manual__1"):
            logging.getLogger("mlplatform.training").info("registry at %s", "http://u:{TOKEN}@mlflow:5000")
        logging.getLogger("mlplatform.training").info("after the task")
        """
    )
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "PYTHONPATH": str(REPO_ROOT / "platform")}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    inside, after = (next(r for r in records if text in r["event"]) for text in ("registry at", "after the task"))
    assert inside["model"] == "fraud_detector" and inside["dag_run"] == "train_fraud_detector/manual__1"
    assert TOKEN not in result.stdout and logs.REDACTED in inside["event"]
    assert "model" not in after


def test_new_request_ids_are_distinct_and_a_forked_child_draws_its_own_prefix() -> None:
    """Ids are a per-process random prefix and a count: a forked worker (BentoML's) must not repeat its parent's."""
    ids = [logs.new_request_id() for _ in range(1000)]
    assert len(set(ids)) == 1000 and all(len(value) == 32 and int(value, 16) >= 0 for value in ids)
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe and exits at once
        os.write(writer, logs.new_request_id().encode())
        os._exit(0)
    os.waitpid(child, 0)
    from_child = os.read(reader, 64).decode()
    os.close(reader)
    os.close(writer)
    assert len(from_child) == 32 and from_child[:16] != ids[0][:16] and from_child not in ids
