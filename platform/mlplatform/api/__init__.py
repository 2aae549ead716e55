"""The platform's REST API (and, later, its server-rendered UI): ``create_app(settings) -> FastAPI``."""

from mlplatform.api.app import create_app

__all__ = ["create_app"]
