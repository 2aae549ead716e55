"""The platform API as the CLI (and scripts) see it: one client, two transports.

With ``api_url`` set, requests go over HTTP with ``Authorization: Bearer <api_token>``.  Without it (embedded mode)
the very same FastAPI app runs in this process against the local state directory, so a promotion from the CLI
passes the same validation, role checks, gate and audit log as one from the UI or ``curl``: there is one code path,
the API's, never a second copy of its logic.

In embedded mode the CLI acts as the platform admin (``api.admin_username``) unless ``api_token`` names someone
else: whoever can run it can already read and write the platform DB, the session secret and the MLflow store.  It
uses a token it issued for itself, kept in ``state_dir/api/cli_token`` (0600) and replaced when expired or revoked;
audit events show the admin as actor and ``local-cli`` as client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from mlplatform.state import write_private

if TYPE_CHECKING:
    from fastapi import FastAPI

    from mlplatform.config import Settings
    from mlplatform.store.auth import AuthRepository

EMBEDDED_BASE_URL = "http://embedded"
EMBEDDED_CLIENT = ("local-cli", 0)
CLI_TOKEN_NAME = "embedded-cli"  # noqa: S105 - the token's label, not a secret
# A deploy answers once the model server is ready, which can take minutes on a busy machine.
TIMEOUT_S = 600.0
Notify = Callable[[str], None]


class PlatformError(Exception):
    """The API refused or failed (a problem document), or could not be reached."""

    def __init__(self, status: int, title: str, detail: str, problem_type: str = "about:blank") -> None:
        super().__init__(f"{title}: {detail}" if detail else title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = problem_type


@dataclass
class PlatformClient:
    """Typed calls for each API operation the CLI uses; answers are the API's JSON, unchanged."""

    http: httpx.Client
    where: str

    # -- reads ---------------------------------------------------------------------------------------------

    def whoami(self) -> dict[str, Any]:
        return self._object("GET", "/api/v1/session")

    def models(self) -> list[dict[str, Any]]:
        return self._list("GET", "/api/v1/models")

    def model(self, name: str) -> dict[str, Any]:
        return self._object("GET", f"/api/v1/models/{name}")

    def version(self, name: str, version: int) -> dict[str, Any]:
        return self._object("GET", f"/api/v1/models/{name}/versions/{version}")

    def compare(self, name: str, a: int, b: int) -> dict[str, Any]:
        return self._object("GET", f"/api/v1/models/{name}/compare", params={"a": a, "b": b})

    def training_runs(self, name: str, limit: int) -> list[dict[str, Any]]:
        return self._list("GET", f"/api/v1/models/{name}/training-runs", params={"limit": limit})

    def training_run(self, name: str, run_id: str) -> dict[str, Any]:
        return self._object("GET", f"/api/v1/models/{name}/training-runs/{run_id}")

    def deployments(self) -> list[dict[str, Any]]:
        return self._list("GET", "/api/v1/deployments")

    def audit(self, **filters: Any) -> list[dict[str, Any]]:
        params = {key: value for key, value in filters.items() if value is not None}
        return self._list("GET", "/api/v1/audit", params=params)

    # -- changes -------------------------------------------------------------------------------------------

    def promote(self, name: str, version: int, reason: str | None, override: bool) -> dict[str, Any]:
        body = {"version": version, "reason": reason, "override": override}
        return self._object("POST", f"/api/v1/models/{name}/promote", json=body)

    def create_model(self, fields: dict[str, str], features: list[Path], labels: Path) -> dict[str, Any]:
        """Upload the tables of a new model with its fields (multipart; files are streamed, not read whole)."""
        with ExitStack() as files:
            parts = [("features", (path.name, files.enter_context(path.open("rb")))) for path in features]
            parts.append(("labels", (labels.name, files.enter_context(labels.open("rb")))))
            return self._object("POST", "/api/v1/models", data=fields, files=parts)

    def validate_model(self, name: str) -> dict[str, Any]:
        return self._object("POST", f"/api/v1/models/{name}/validate")

    def rollback(self, name: str, reason: str) -> dict[str, Any]:
        return self._object("POST", f"/api/v1/models/{name}/rollback", json={"reason": reason})

    def train(
        self, name: str, estimator_params: dict[str, Any], window_days: int | None, reason: str, promote: bool = True
    ) -> dict[str, Any]:
        body = {"estimator_params": estimator_params, "window_days": window_days, "reason": reason, "promote": promote}
        return self._object("POST", f"/api/v1/models/{name}/training-runs", json=body)

    def deploy(self, model: str, backend: str | None, reason: str | None, port: int | None = None) -> dict[str, Any]:
        body = {"model": model, "backend": backend, "port": port, "reason": reason}
        return self._object("POST", "/api/v1/deployments", json=body)

    def undeploy(self, model: str, reason: str | None) -> dict[str, Any]:
        return self._object("DELETE", f"/api/v1/deployments/{model}", json={"reason": reason})

    def start_rollout(
        self, name: str, candidate: str, mode: str | None, share: float | None, reason: str | None
    ) -> dict[str, Any]:
        body = {"candidate": candidate, "mode": mode, "share": share, "reason": reason}
        return self._object("POST", f"/api/v1/models/{name}/rollouts", json=body)

    def rollouts(self, name: str, limit: int = 20) -> list[dict[str, Any]]:
        return self._list("GET", f"/api/v1/models/{name}/rollouts", params={"limit": limit})

    def rollout(self, rollout_id: int) -> dict[str, Any]:
        return self._object("GET", f"/api/v1/rollouts/{rollout_id}")

    def rollout_action(self, rollout_id: int, action: str, reason: str | None) -> dict[str, Any]:
        """pause, resume, stop or evaluate."""
        body = None if action == "evaluate" else {"reason": reason}
        return self._object("POST", f"/api/v1/rollouts/{rollout_id}/{action}", json=body)

    def decide_rollout(self, rollout_id: int, decision: str, reason: str) -> dict[str, Any]:
        body = {"decision": decision, "reason": reason}
        return self._object("POST", f"/api/v1/rollouts/{rollout_id}/decide", json=body)

    def ingest_labels(self, name: str, rows: list[dict[str, Any]], source: str, measure: bool = True) -> dict[str, Any]:
        body = {"labels": rows, "source": source, "measure_quality": measure}
        return self._object("POST", f"/api/v1/models/{name}/labels", json=body)

    def quality(self, name: str) -> list[dict[str, Any]]:
        return self._list("GET", f"/api/v1/models/{name}/quality")

    # -- transport -----------------------------------------------------------------------------------------

    def _object(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        answer = self._call(method, path, **kwargs)
        if not isinstance(answer, dict):
            raise PlatformError(502, "unexpected answer", f"{method} {path} did not return a JSON object")
        return answer

    def _list(self, method: str, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        answer = self._call(method, path, **kwargs)
        if not isinstance(answer, list) or not all(isinstance(item, dict) for item in answer):
            raise PlatformError(502, "unexpected answer", f"{method} {path} did not return a list of objects")
        return answer

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise PlatformError(0, "platform API unreachable", f"{self.where}: {error}") from None
        if response.status_code >= 400:
            raise _problem(response)
        return response.json() if response.content else None


def _problem(response: httpx.Response) -> PlatformError:
    """The problem document as an error; a non-problem body (a proxy's error page) still gives status and reason."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "title" in body:
        return PlatformError(
            response.status_code, str(body["title"]), str(body.get("detail", "")), str(body.get("type", ""))
        )
    return PlatformError(response.status_code, response.reason_phrase, response.text[:200])


@contextmanager
def platform_client(settings: Settings, notify: Notify | None = None) -> Iterator[PlatformClient]:
    """A client for ``settings``: remote when ``api_url`` is set, else the embedded app (closed afterwards)."""
    if settings.api_url:
        with _remote(settings) as client:
            yield client
        return
    with _embedded(settings, notify or (lambda _: None)) as client:
        yield client


@contextmanager
def _remote(settings: Settings) -> Iterator[PlatformClient]:
    headers = {"Accept": "application/json"}
    if settings.api_token is not None:
        headers["Authorization"] = f"Bearer {settings.api_token.get_secret_value()}"
    base_url = (settings.api_url or "").rstrip("/")
    with httpx.Client(base_url=base_url, headers=headers, timeout=TIMEOUT_S) as http:
        yield PlatformClient(http, where=base_url)


@contextmanager
def _embedded(settings: Settings, notify: Notify) -> Iterator[PlatformClient]:
    from mlplatform.operations.services import ApiServices
    from mlplatform.store import PlatformStore
    from mlplatform.store.db import SchemaVersionError
    from mlplatform.webapp import create_app

    try:
        store = PlatformStore.connect(settings.db_url)
    except SchemaVersionError as error:
        raise PlatformError(503, "platform database not ready", str(error)) from None
    services = ApiServices.from_settings(settings, store=store)
    try:
        token = (
            settings.api_token.get_secret_value()
            if settings.api_token is not None
            else embedded_token(settings, services.auth, notify)
        )
        transport = InProcessTransport(create_app(settings, services))
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        with httpx.Client(transport=transport, base_url=EMBEDDED_BASE_URL, headers=headers, timeout=TIMEOUT_S) as http:
            yield PlatformClient(http, where=f"embedded API over {settings.state_dir}")
    finally:
        services.close()


class InProcessTransport(httpx.BaseTransport):
    """A synchronous httpx transport into an ASGI app in this process (httpx ships only an async one)."""

    def __init__(self, app: FastAPI) -> None:
        self._asgi = httpx.ASGITransport(app=app, client=EMBEDDED_CLIENT)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def send() -> httpx.Response:
            response = await self._asgi.handle_async_request(request)
            body = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=body, request=request)

        return asyncio.run(send())


def embedded_token(settings: Settings, auth: AuthRepository, notify: Notify) -> str:
    """The embedded CLI's token for the admin: the stored one while it works, else a newly issued one."""
    from mlplatform.store.bootstrap import ensure_admin, login_hint

    path = settings.layout.cli_token
    if path.is_file():
        stored = path.read_text().strip()
        if auth.authenticate_token(stored) is not None:
            return stored
    if ensure_admin(settings, auth) is not None:
        notify(f"created the platform admin: {login_hint(settings, auth)}")
    try:
        issued = auth.create_token(settings.api.admin_username, CLI_TOKEN_NAME, settings.api.token_ttl_days)
    except LookupError:
        raise PlatformError(
            401,
            "no identity for the embedded CLI",
            f"it acts as the admin user {settings.api.admin_username!r}, which does not exist; "
            "set MLP_API_TOKEN to a token of another user",
        ) from None
    write_private(path, issued.secret + "\n")
    return issued.secret
