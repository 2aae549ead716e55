"""Logs an operator can use: one configuration for every process the platform runs Python for.

``configure(settings.log)`` gives the process one handler on the root logger: JSON lines (python-json-logger) or,
on a terminal, plain text (``log.format``: ``auto``, ``json``, ``text``).  The servers' own loggers (uvicorn, KServe,
BentoML) are routed to it, so a model server's file holds one format.  Every line passes two stages:

* the context: the request id, and the model and version where there is one, from a context variable that
  ``RequestLog`` (ASGI middleware in front of the API and both model servers) sets per request and the model
  servers' Predictor completes (``bound``);
* redaction: whatever looks like a credential (a bearer or basic Authorization value, an ``mlp_`` API token, a
  session or CSRF cookie, a password in a URL or after ``password=``) is replaced by ``[redacted]`` in the rendered
  line, message, exception and extra fields alike.

A request id comes from the ``X-Request-ID`` header when it is short and plain (at most 64 of ``[A-Za-z0-9._-]``,
what the prediction log's column holds), else it is generated; it is returned in the response's ``X-Request-ID``.

Airflow tasks keep Airflow's own task-log format (JSON lines already); ``airflow_task_context`` adds the model and
DAG run to each of their lines and the redaction to the task's handlers.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import re
import secrets
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from mlplatform import bodies
from mlplatform.config import LogSettings

REQUEST_ID_HEADER = "x-request-id"
MAX_REQUEST_ID_CHARS = 64
"""The prediction log's request_id column (String(64)): a longer id could not be logged (model servers refuse a
longer one in a body; here a longer header is replaced)."""
_PLAIN_REQUEST_ID = re.compile(rf"[A-Za-z0-9._-]{{1,{MAX_REQUEST_ID_CHARS}}}")
REDACTED = "[redacted]"

SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "kserve", "kserve.trace", "bentoml", "circus", "fastapi")
"""Loggers the servers configure with handlers of their own: emptied and propagating to the root handler."""
QUIET_LOGGERS = {"httpx": logging.WARNING, "httpcore": logging.WARNING, "alembic.runtime.plugins": logging.WARNING}
"""One INFO line per outbound call (every registry poll), per Alembic plugin: only their warnings are kept."""
MLFLOW_PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
PROBE_PATHS = frozenset({"/metrics", "/livez", "/readyz", "/healthz", "/status", "/v2/health/ready", "/v2/health/live"})
"""Scraped or probed every few seconds: a successful answer is never an access line, whatever the sample rate;
the model servers' bearer token never guards them (the kubelet and Prometheus carry none)."""

_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Patterns run over rendered lines, JSON included: a value stops at a quote or a backslash (an escaped quote),
    # so a redacted line stays valid JSON.
    # Authorization: Bearer <token> / Basic <base64>, also as "authorization": "Bearer ..." in a dumped dict.
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{8,}"), rf"\1\2{REDACTED}"),
    # The platform's API tokens (mlp_ + 43 URL-safe characters), wherever they appear.
    (re.compile(r"\bmlp_[A-Za-z0-9_-]{20,}"), f"mlp_{REDACTED}"),
    # Session and CSRF cookies (mlp_session=..., mlp_login_csrf=...) and any other *session*/*csrf* value.
    (re.compile(r"(?i)\b([A-Za-z_]*(?:session|csrf)[A-Za-z_]*=)[^;,\s\"'&\\]+"), rf"\1{REDACTED}"),
    # scheme://user:password@host
    (re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s\"'\\]*:)[^@\s\"'\\]+@"), rf"\1{REDACTED}@"),
    # password=..., "password": "...", secret and token keys in query strings and dumped mappings.
    (
        re.compile(
            r"(?i)\b((?:password|passwd|secret|api_token|access_token|token)(?:\\?[\"'])?\s*[:=]\s*(?:\\?[\"'])?)"
            r"[^\s\"',&;}\\]+"
        ),
        rf"\1{REDACTED}",
    ),
)

# -- the request context ----------------------------------------------------------------------------------------


@dataclass
class LogContext:
    """What every line logged while one request is handled carries.  Mutable and shared by reference: the Predictor
    completes it (the body's request id, the model version) deep inside the request, and the middleware reads it
    back when the answer starts and when it writes the access line."""

    request_id: str
    model: str | None = None
    version: str | None = None
    error: str | None = None
    """Why the request was refused or failed, for its access line."""


_context: ContextVar[LogContext | None] = ContextVar("mlplatform_log_context", default=None)


def accepted_request_id(candidate: str | None) -> str:
    """``candidate`` when it is a plain id of at most 64 characters, else a new one (32 hex digits).

    Why refuse rather than cut: a header is client text headed for every log line and the prediction log; an id
    with spaces, quotes or newlines could forge lines, and a longer one would not fit the prediction log's column.
    """
    if candidate is not None and _PLAIN_REQUEST_ID.fullmatch(candidate):
        return candidate
    return new_request_id()


def new_request_id() -> str:
    """A new request id, unique across processes and restarts: this process's random 64-bit prefix and its count of
    ids so far, 32 hex digits as ``uuid4().hex`` gave.

    Why not ``uuid4``: it asks the kernel for random bytes on every call (about 2 us, a system call, on each
    prediction a model server answers), where uniqueness needs randomness only once per process.  A forked child
    draws a prefix of its own (``os.register_at_fork``), so worker processes never share one."""
    return f"{_id_prefix}{next(_id_count):016x}"


def _draw_id_prefix() -> None:
    global _id_prefix, _id_count
    _id_prefix, _id_count = secrets.token_hex(8), itertools.count()


_id_prefix: str
_id_count: itertools.count[int]
_draw_id_prefix()
os.register_at_fork(after_in_child=_draw_id_prefix)


def current_request_id() -> str | None:
    """The request id of the request being handled, if any."""
    context = _context.get()
    return context.request_id if context is not None else None


class bound:  # noqa: N801 - used as a function: ``with logs.bound(...)``
    """The request id (and the model and version) of the request being handled, for the lines logged meanwhile.

    Inside ``RequestLog`` the request's context is completed in place, so its access line and answer header carry
    the id too; elsewhere (gRPC, a direct call) a context lives for the block only, so no id outlives its request.
    A class rather than a generator context manager: it is entered on every prediction, and the generator's
    machinery cost about a microsecond more there.
    """

    __slots__ = ("_model", "_request_id", "_token", "_version")

    def __init__(self, request_id: str, model: str | None = None, version: str | None = None) -> None:
        self._request_id, self._model, self._version = request_id, model, version
        self._token: Token[LogContext | None] | None = None

    def __enter__(self) -> None:
        context = _context.get()
        if context is None:
            self._token = _context.set(LogContext(self._request_id, self._model, self._version))
            return
        context.request_id = self._request_id
        context.model = self._model or context.model
        context.version = self._version or context.version

    def __exit__(self, *_: object) -> None:
        if self._token is not None:
            _context.reset(self._token)


def note_error(message: str) -> None:
    """Record why the request being handled is refused; its access line says so."""
    context = _context.get()
    if context is not None:
        context.error = message


# -- formatting and filtering ----------------------------------------------------------------------------------


def redact(text: str) -> str:
    """``text`` with every known credential pattern replaced by ``[redacted]``."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class ContextFilter(logging.Filter):
    """Adds the request context and the process's fixed fields (a model server's model) to each record.

    A handler's filter, not a logger's: records propagated from any logger (uvicorn, KServe, a library) pass it."""

    def __init__(self, fields: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.fields = dict(fields or {})

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in self.fields.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        context = _context.get()
        if context is not None:
            record.request_id = context.request_id
            for key in ("model", "version"):
                value = getattr(context, key)
                if value is not None:
                    setattr(record, key, value)
        return True


CONTEXT_KEYS = ("request_id", "model", "version")


class RedactingJsonFormatter(JsonFormatter):
    """python-json-logger's formatter; the rendered line is redacted as a whole (message, extras, traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class RedactingTextFormatter(logging.Formatter):
    """Plain text for a terminal: ``time level logger [request_id model version]: message``, redacted."""

    def format(self, record: logging.LogRecord) -> str:
        context = " ".join(f"{key}={getattr(record, key)}" for key in CONTEXT_KEYS if hasattr(record, key))
        record.context = f" [{context}]" if context else ""
        return redact(super().format(record))


def json_formatter() -> RedactingJsonFormatter:
    """Fields: time (ISO 8601, UTC), level, logger, message, then request_id/model/version and any extras."""
    return RedactingJsonFormatter(
        "{levelname}{name}{message}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],  # uvicorn's copy of the message with terminal colours
    )


def text_formatter() -> RedactingTextFormatter:
    return RedactingTextFormatter("%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s")


def wants_json(log_format: str, stream: IO[str]) -> bool:
    """``auto``: text on a terminal (someone reads it), JSON anywhere else (a file, a pipe, a collector)."""
    if log_format == "auto":
        return not (hasattr(stream, "isatty") and stream.isatty())
    return log_format == "json"


def configure(settings: LogSettings, fields: Mapping[str, str] | None = None, stream: IO[str] | None = None) -> None:
    """Make this process log through one redacting handler in the configured format, at the configured level.

    ``fields`` are added to every line (a model server passes its model's name).  Call it once the servers'
    libraries have set up their own logging (or before they would): their loggers are emptied and propagate here.
    """
    target = stream if stream is not None else sys.stderr
    as_json = wants_json(settings.format, target)
    handler = logging.StreamHandler(target)
    handler.setFormatter(json_formatter() if as_json else text_formatter())
    if as_json:  # progress bars are for terminals: MLflow's would put carriage-return text between the lines
        os.environ.setdefault(MLFLOW_PROGRESS_BAR, "false")
    handler.addFilter(ContextFilter(fields))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level)
    adopt_server_loggers()
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught


def adopt_server_loggers() -> None:
    """Route the servers' loggers to the root handler (their own handlers write another format) and keep the
    uvicorn access logger silent: ``RequestLog`` writes access lines, with the request id and without the query."""
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    access = logging.getLogger("uvicorn.access")  # uvicorn checks hasHandlers() per connection: none must exist
    access.handlers.clear()
    access.propagate = False


def _log_uncaught(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
    """A crash is one (redacted) line in the process's format, not a bare traceback on stderr."""
    logging.getLogger("mlplatform").critical("uncaught %s", kind.__name__, exc_info=(kind, error, trace))


# -- access lines ---------------------------------------------------------------------------------------------

access_log = logging.getLogger("mlplatform.access")


class RequestLog:
    """ASGI middleware: the request id in (``X-Request-ID``) and out, the request's log context, and access lines.

    Every refusal (4xx) and error (5xx) writes a line; a success writes one for the share ``sample()`` returns
    (0: none, 1: all), never for probes and scrapes.  The path is logged without its query string, which may hold
    one-time codes (the OIDC callback).
    """

    def __init__(self, app: Any, sample: Callable[[], float]) -> None:
        self.app = app
        self.sample = sample

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        context = begin_request(scope)
        began = time.perf_counter()
        status = 500
        accepted = context.request_id

        async def send_with_id(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [item for item in message.get("headers", []) if item[0].lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, answered_request_id(context, accepted)]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            write_access_line(scope, status, began, context, self.sample())


def begin_request(scope: Any) -> LogContext:
    """The log context of the HTTP request ``scope``: its accepted ``X-Request-ID`` (or a new id), set for the lines
    logged while it is handled.  Not reset afterwards: each request runs in its own task with its own copy of the
    context, and the server's own error line for a failed request should still carry the id."""
    context = LogContext(accepted_request_id(bodies.header(scope, REQUEST_ID_HEADER.encode())))
    _context.set(context)
    return context


def answered_request_id(context: LogContext, accepted: str) -> tuple[bytes, bytes]:
    """The answer's ``X-Request-ID`` header: the id the app settled on (a model server's body may name one) when it
    is fit for a header, else the one accepted from the request."""
    answered = context.request_id if _PLAIN_REQUEST_ID.fullmatch(context.request_id) else accepted
    return (b"x-request-id", answered.encode())


def write_access_line(scope: Any, status: int, began: float, context: LogContext, sample: float) -> None:
    """The request's access line: always for a refusal (4xx) or an error (5xx), for the share ``sample`` of the
    other answers (never for probes and scrapes); the path without its query string."""
    path = scope.get("path", "")
    if status < 400 and (path in PROBE_PATHS or not _sampled(sample)):
        return
    level = logging.ERROR if status >= 500 else logging.WARNING if status >= 400 else logging.INFO
    milliseconds = round((time.perf_counter() - began) * 1000, 1)
    method = scope.get("method", "")
    extra: dict[str, Any] = {"method": method, "path": path, "status": status, "duration_ms": milliseconds}
    if context.error is not None:
        extra["error"] = context.error
    access_log.log(level, "%s %s %d %.1f ms", method, path, status, milliseconds, extra=extra)


def _sampled(rate: float) -> bool:
    return rate >= 1.0 or (rate > 0.0 and random.random() < rate)  # noqa: S311 - sampling, not security


# -- Airflow tasks --------------------------------------------------------------------------------------------


class RedactionFilter(logging.Filter):
    """Redacts a record's message before a handler this module does not own (Airflow's) renders it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


@contextmanager
def airflow_task_context(model: str, dag_run: str) -> Iterator[None]:
    """Inside an Airflow task: every line carries the model and the DAG run (``<dag_id>/<run_id>``), and the
    task's handlers redact what the platform's code logs.

    Airflow renders task logs itself (JSON lines through structlog, which merges structlog's context variables
    into standard-library records too); replacing its handlers would lose the task log the Airflow UI shows.
    """
    import structlog

    for handler in logging.getLogger().handlers:
        if not any(isinstance(existing, RedactionFilter) for existing in handler.filters):
            handler.addFilter(RedactionFilter())
    with structlog.contextvars.bound_contextvars(model=model, dag_run=dag_run):
        yield
