"""Rendering for the web UI: the Jinja2 environment, flash messages, security headers and HTML error pages.

Templates are autoescaped and undefined names are errors, so a typo fails a test instead of rendering blank and
nothing a user typed can become markup.  Messages after a redirect travel in a short-lived signed cookie (never in
the URL, where anyone could write one into a link).  ``UiRoute`` turns the API's ``Problem`` refusals, raised by
the shared dependencies and operations, into pages: a missing session goes to the login page, anything else is an
HTML page with the same status code and the same words the REST API would use.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import jinja2
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from itsdangerous import BadSignature, URLSafeTimedSerializer

from mlplatform.operations.access import Principal
from mlplatform.operations.problems import Problem
from mlplatform.operations.security import CSRF_FIELD
from mlplatform.store.auth import role_allows

TEMPLATES_DIR = Path(__file__).parent / "templates"
FLASH_COOKIE = "mlp_flash"
FLASH_TTL_S = 120
MAX_FLASH_DETAILS = 12  # with MAX_FLASH_TEXT, keeps the signed cookie well under the browsers' 4 KB
MAX_FLASH_TEXT = 240
FlashKind = Literal["ok", "error", "info"]

# What the UI's own pages may load: our own scripts and styles only (plotly injects inline styles), no frames.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


@dataclass(frozen=True)
class Flash:
    """One message shown once on the next page: what happened, and the gate's or validator's reasons."""

    kind: FlashKind
    text: str
    details: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def from_problem(cls, problem: Problem) -> Flash:
        """A refusal in the API's own words (the gate's reasons included)."""
        reasons = problem.extensions.get("reasons")
        if reasons:  # the gate's detail is its reasons joined up: list them once, as bullets
            return cls("error", f"{problem.title}.", tuple(str(reason) for reason in reasons))
        errors = [
            f"{'.'.join(str(part) for part in error.get('loc', [])[1:])}: {error.get('msg', '')}"
            for error in problem.extensions.get("errors", [])
        ]
        return cls("error", f"{problem.title}: {problem.detail}", tuple(errors))


def when(value: datetime | int | None) -> str:
    """A timestamp (or epoch milliseconds) as UTC text; the platform stores UTC and shows it so."""
    if value is None:
        return "—"
    if isinstance(value, int):
        value = datetime.fromtimestamp(value / 1000, tz=UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def number(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "—"
    seconds = int((end - start).total_seconds())
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def build_environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(when=when, number=number, duration=duration, pretty_json=_pretty_json)
    environment.globals.update(csrf_field=CSRF_FIELD)
    return environment


def _pretty_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, indent=2, default=str)


class Renderer:
    """Renders pages and carries flash messages; one per app, keyed by the session secret."""

    def __init__(self, secret: str, secure_cookies: bool, asset_urls: Mapping[str, str]) -> None:
        self.environment = build_environment()
        self.secure_cookies = secure_cookies
        self.asset_urls = dict(asset_urls)
        self._flashes = URLSafeTimedSerializer(secret, salt="mlplatform.flash")

    def page(
        self,
        request: Request,
        template: str,
        principal: Principal | None,
        status_code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        """A full page; the flash message waiting for this browser (if any) is shown and cleared."""
        flashes = self.take_flashes(request)
        html = self.environment.get_template(template).render(
            request_path=request.url.path,
            user=principal,
            csrf=principal.csrf if principal else None,
            can=permissions(principal),
            flashes=flashes,
            assets=self.asset_urls,
            **context,
        )
        response = HTMLResponse(html, status_code=status_code)
        if request.cookies.get(FLASH_COOKIE):
            self._clear_flash(response)
        return response

    def redirect(self, url: str, *flashes: Flash) -> RedirectResponse:
        """303 to a page of ours (Post/Redirect/Get), with messages for it."""
        response = RedirectResponse(url, status_code=303)
        if flashes:
            payload = [
                {
                    "kind": item.kind,
                    "text": item.text[:MAX_FLASH_TEXT],
                    "details": [detail[:MAX_FLASH_TEXT] for detail in item.details[:MAX_FLASH_DETAILS]],
                }
                for item in flashes
            ]
            response.set_cookie(
                FLASH_COOKIE,
                self._flashes.dumps(payload),
                max_age=FLASH_TTL_S,
                path="/",
                secure=self.secure_cookies,
                httponly=True,
                samesite="lax",
            )
        return response

    def take_flashes(self, request: Request) -> list[Flash]:
        cookie = request.cookies.get(FLASH_COOKIE)
        if not cookie:
            return []
        try:
            payload = self._flashes.loads(cookie, max_age=FLASH_TTL_S)
        except BadSignature:
            return []
        return [
            Flash(item["kind"], str(item["text"]), tuple(str(detail) for detail in item.get("details", [])))
            for item in payload
            if isinstance(item, dict) and item.get("kind") in ("ok", "error", "info")
        ]

    def _clear_flash(self, response: Response) -> None:
        response.delete_cookie(FLASH_COOKIE, path="/", secure=self.secure_cookies, httponly=True, samesite="lax")


def permissions(principal: Principal | None) -> dict[str, bool]:
    """Which controls to show: a viewer sees no button it could not use (the server checks again on POST)."""
    role = principal.role if principal else None

    def allows(need: str) -> bool:
        return role is not None and role_allows(role, need)

    return {
        "create_model": allows("data-scientist"),
        "train": allows("data-scientist"),
        "compare": allows("data-scientist"),
        "drift_check": allows("data-scientist"),
        "promote": allows("approver"),
        "rollback": allows("approver"),
        "deploy": allows("approver"),
        "rollout": allows("data-scientist"),
        "decide_rollout": allows("approver"),
        "override": allows("admin"),
    }


def safe_next(target: str | None) -> str:
    """Where to go after login: a path on this site only, so the login page cannot be used to send users away."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(char) < 32 for char in target):
        return "/"
    return target


def login_url(request: Request) -> str:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/login?next={quote(safe_next(here), safe='')}"


def renderer(request: Request) -> Renderer:
    found: Renderer = request.app.state.ui
    return found


def error_page(request: Request, status: int, title: str, detail: str, details: list[str] | None = None) -> Response:
    """An HTML page for a refusal or an error, with the status code the REST API would answer."""
    return renderer(request).page(
        request,
        "error.html",
        None,
        status_code=status,
        title=title,
        detail=detail,
        details=details or [],
    )


def problem_page(request: Request, problem: Problem) -> Response:
    if problem.status == 401:
        if request.method == "GET":
            return RedirectResponse(login_url(request), status_code=303)
        return renderer(request).redirect("/login", Flash("error", "Your session has ended; please log in again."))
    reasons = [str(reason) for reason in problem.extensions.get("reasons", [])]
    response = error_page(request, problem.status, problem.title, problem.detail, reasons)
    for name, value in problem.headers.items():
        if name.lower() == "retry-after":
            response.headers[name] = value
    return response


def validation_page(request: Request, error: RequestValidationError) -> Response:
    """Invalid query or form input: which field and which rule, never the value."""
    details = [
        f"{'.'.join(str(part) for part in item.get('loc', ()))}: {item.get('msg', '')}" for item in error.errors()
    ]
    return error_page(request, 422, "Invalid request", "the request is invalid", details[:MAX_FLASH_DETAILS])


class UiRoute(APIRoute):
    """A route that answers in HTML: refusals become pages or a login redirect, and every answer is hardened."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def ui_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except Problem as problem:
                response = problem_page(request, problem)
            except RequestValidationError as error:
                response = validation_page(request, error)
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return ui_handler
