"""The error every operation raises: an RFC 9457 problem.

The REST API answers it as a problem document (``mlplatform.api.problems`` holds that HTTP side: the body schema
and the exception handlers); the UI shows it as a message.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

TYPE_BASE = "/problems/"


class Problem(Exception):  # noqa: N818 - it is the problem, as RFC 9457 names it
    """Raise from anywhere in a request to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.type = f"{TYPE_BASE}{slug}" if slug else "about:blank"
        self.title = title or HTTPStatus(status).phrase
        self.headers = headers or {}
        self.extensions = extensions
