"""Mutating API requests are authenticated before their body is read.

FastAPI reads and parses a route's JSON body before it solves the route's dependencies, so without this a caller
with no or a wrong credential still had its body (up to ``api.max_body_kb``) received and parsed before the 401.
This middleware finds the route a mutating ``/api/`` request goes to and, when the route is guarded by ``permit``,
authenticates the caller for that route's action first (the same check, the same audited refusal); the route's
``permit`` then takes the caller from the request's scope instead of authenticating again.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match

from mlplatform.api.problems import problem_response
from mlplatform.operations.access import ACTION_ATTRIBUTE, PRINCIPAL_SCOPE_KEY, authenticate_to_act
from mlplatform.operations.problems import Problem

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class AuthenticateBeforeBody:
    """ASGI middleware; see the module docstring."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in READ_METHODS or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        found = _guarded_action(scope)
        if found is None:
            await self.app(scope, receive, send)
            return
        action, route_scope = found
        request = Request({**scope, **route_scope})  # no receive: nothing here may read the body
        try:
            scope[PRINCIPAL_SCOPE_KEY] = await run_in_threadpool(authenticate_to_act, request, action)
        except Problem as problem:
            response = problem_response(
                request,
                problem.status,
                problem.detail,
                type_=problem.type,
                title=problem.title,
                headers=problem.headers,
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _guarded_action(scope: Any) -> tuple[str, dict[str, Any]] | None:
    """The audited action of the route ``scope`` goes to, with the route's part of the scope (its path
    parameters), when a ``permit`` dependency guards that route; else None."""
    for route in scope["app"].router.routes:
        match, route_scope = route.matches(scope)
        if match is not Match.FULL:
            continue
        dependant = getattr(route, "dependant", None)
        for dependency in dependant.dependencies if dependant is not None else ():
            action = getattr(dependency.call, ACTION_ATTRIBUTE, None)
            if isinstance(action, str):
                return action, route_scope
        return None
    return None
