"""The platform API and UI in-process (TestClient over the real app and a sqlite platform DB) with the fakes
for MLflow, Airflow and the deployer: the world the unit, OIDC, CLI and monitoring tests drive."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi.testclient import TestClient
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from mlplatform.config import Settings
from mlplatform.onboarding.validate import ValidationReport
from mlplatform.operations.services import ApiServices
from mlplatform.store import PlatformStore
from mlplatform.store.auth import ROLES
from mlplatform.webapp import create_app
from tests.support.fakes.deployer import FakeDeployer
from tests.support.fakes.orchestrator import FakeOrchestrator
from tests.support.fakes.registry import FakeRegistry, version_info


def cheap_hash() -> PasswordHash:
    """Argon2id with test-sized cost: the same algorithm and code path, milliseconds instead of 200 ms."""
    return PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))


MODEL = "fraud_detector"
PASSWORD = "a long test password"


@dataclass
class World:
    client: TestClient
    services: ApiServices
    registry: FakeRegistry
    orchestrator: FakeOrchestrator
    deployer: FakeDeployer
    tokens: dict[str, str]

    def as_role(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def audit(self, **filters: Any) -> list[Any]:
        return self.services.audit.query(**filters)


def passing_validation(name: str) -> ValidationReport:
    """A stand-in for model validation, which needs Feast and the model's data (tested in the integration tests)."""
    report = ValidationReport(name)
    report.add("spec", True, "stand-in: validation is not run in this world")
    return report


def user_for(role: str) -> str:
    return role.replace("-", "_")


def make_world(settings: Settings) -> World:
    store = PlatformStore.migrated(settings.db_url)  # as `stack up` leaves it
    versions = [
        version_info(1, 0.90, 0.5),
        version_info(2, 0.95, 0.6),
        version_info(3, 0.80, 0.2),
        version_info(4, 0.97, 0.7),
    ]
    registry, orchestrator, deployer = FakeRegistry(store, {MODEL: versions}), FakeOrchestrator(), FakeDeployer()
    services = ApiServices.from_settings(
        settings,
        store=store,
        password_hash=cheap_hash(),
        registry_factory=lambda: registry,
        orchestrator_factory=lambda: orchestrator,
        deployer_factory=lambda: deployer,
        model_validator=passing_validation,
    )
    tokens = {}
    for role in ROLES:
        services.auth.create_user(user_for(role), role, PASSWORD)
        tokens[role] = services.auth.create_token(user_for(role), "test", ttl_days=1).secret
    # Champion history: v1, then v2 (so a rollback has somewhere to go).
    registry.move_alias(MODEL, "champion", "1", actor="pipeline", reason="first")
    registry.move_alias(MODEL, "champion", "2", actor="pipeline", reason="better")
    client = TestClient(create_app(settings, services), client=("203.0.113.7", 50000))
    return World(client, services, registry, orchestrator, deployer, tokens)


CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]*)"')


def form_token(html: str) -> str:
    found = CSRF_INPUT.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def ui_login(world: World, role: str, password: str = PASSWORD, next: str = "/") -> httpx.Response:
    token = form_token(world.client.get("/login").text)
    # TestClient type-checks as Any (starlette types it over httpx2, not installed here): the annotation types it.
    response: httpx.Response = world.client.post(
        "/login",
        data={"username": user_for(role), "password": password, "csrf_token": token, "next": next},
        follow_redirects=False,
    )
    return response


def logged_in(world: World, role: str) -> str:
    """Log in through the form; returns the session's CSRF token (as the pages embed it)."""
    assert ui_login(world, role).status_code == 303
    return form_token(world.client.get(f"/models/{MODEL}").text)
