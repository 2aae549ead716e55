"""The web UI: server-rendered pages over the same services, dependencies and operations as the REST API.

``install_ui(app, services)`` mounts it at ``/`` next to the API (``/api/v1``).  Pages are Jinja2 templates with
a small stylesheet and one small script of our own; charts are plotly figures drawn by the plotly.js bundle of the
installed plotly package, served from ``/static``.  None of it appears in the OpenAPI document.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi import Path as PathParam

from mlplatform.operations.security import session_secret
from mlplatform.ui import charts, forms, pages
from mlplatform.ui.render import Renderer, UiRoute

if TYPE_CHECKING:
    from mlplatform.operations.services import ApiServices

STATIC_DIR = Path(__file__).parent / "static"
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
# Versioned URLs never change content, so browsers may keep them for a year; our own files carry a content hash.
IMMUTABLE = "public, max-age=31536000, immutable"


def _static_files() -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in STATIC_DIR.iterdir() if path.suffix in STATIC_TYPES}


def asset_urls(files: dict[str, bytes]) -> dict[str, str]:
    urls = {name: f"/static/{name}?v={hashlib.sha256(body).hexdigest()[:12]}" for name, body in files.items()}
    urls["plotly"] = f"/static/plotly-{charts.plotly_version()}.min.js"
    return urls


def static_router(files: dict[str, bytes]) -> APIRouter:
    router = APIRouter(route_class=UiRoute, include_in_schema=False)

    @router.get("/static/plotly-{version}.min.js")
    def plotly_js(version: Annotated[str, PathParam(max_length=32)], request: Request) -> Response:
        """plotly.js from the installed plotly package, gzipped when the browser accepts it."""
        if version != charts.plotly_version():
            return Response(status_code=404)
        headers = {"Cache-Control": IMMUTABLE, "Vary": "Accept-Encoding"}
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
            return Response(charts.plotly_js_gzip(), media_type=STATIC_TYPES[".js"], headers=headers)
        return Response(charts.plotly_js(), media_type=STATIC_TYPES[".js"], headers=headers)

    @router.get("/static/{name}")
    def static_file(name: Annotated[str, PathParam(max_length=64)]) -> Response:
        """Only the UI's own files, looked up by name in a fixed table: no path ever reaches the file system."""
        if name not in files:
            return Response(status_code=404)
        media_type = STATIC_TYPES[Path(name).suffix]
        return Response(files[name], media_type=media_type, headers={"Cache-Control": IMMUTABLE})

    return router


def install_ui(app: FastAPI, services: ApiServices) -> None:
    """Mount the UI on ``app``: pages, forms and static files, rendered with the app's session secret."""
    files = _static_files()
    app.state.ui = Renderer(session_secret(services.settings), services.settings.api.secure_cookies, asset_urls(files))
    for router in (pages.router, forms.router, static_router(files)):
        app.include_router(router)
