"""Schemathesis over every OpenAPI operation, as every role, and over the model servers' own schemas.

``tests/unit/test_api_fuzz.py`` fuzzes the API as an admin with many examples; here every role (viewer, data
scientist, approver, admin) runs every operation with a few: the refusals a lower role gets (403, never a 5xx or a
201) must be documented answers too.  The model servers publish what their frameworks generate: KServe its FastAPI
document (``/openapi.json``: v1, v2 and the repository routes) and BentoML its service document (``/docs.json``);
their generated requests must never get a 5xx.  Generation is derandomized with few examples per operation, so the
module is repeatable and bounded in time.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.schemas import APIOperation

from mlplatform.api.reference import reference_document
from mlplatform.config import Settings
from mlplatform.store.auth import ROLES
from tests.support.api_world import World, make_world
from tests.support.fuzzing import fuzzing_config
from tests.support.serving import LimitedServers, ServerProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

API_EXAMPLES_PER_OPERATION = 6
SERVER_EXAMPLES_PER_OPERATION = 15
SCHEMA_PATHS = {"kserve": "/openapi.json", "bentoml": "/docs.json"}
Case: TypeAlias = schemathesis.Case[APIOperation[Any, Any, Any, Any]]
API_SCHEMA = schemathesis.openapi.from_dict(
    reference_document(), config=schemathesis.Config.from_dict(fuzzing_config(API_EXAMPLES_PER_OPERATION))
)


@pytest.fixture()
def fuzz_world(settings: Settings) -> World:
    return make_world(settings)


@pytest.mark.parametrize("role", ROLES)
@API_SCHEMA.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
def test_api_honours_its_schema_for_every_role(case: Case, role: str, fuzz_world: World) -> None:
    case.call_and_validate(app=fuzz_world.client.app, headers=fuzz_world.as_role(role))


@pytest.fixture(scope="module", params=sorted(SCHEMA_PATHS))
def model_server(request: pytest.FixtureRequest, limited_servers: LimitedServers) -> ServerProcess:
    """The bad-input suite's servers (small limits change no schema)."""
    return limited_servers.get(request.param)


def server_errors(schema: Any, base_url: str) -> list[str]:
    """Every generated request of every operation in ``schema`` that got a 5xx, as 'METHOD path: status body'."""
    found: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=SERVER_EXAMPLES_PER_OPERATION,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: Case) -> None:
            response = case.call(base_url=base_url, timeout=30)
            if response.status_code >= 500:
                found.append(f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}")

        call()
    return found


def test_model_servers_answer_their_own_schema_without_5xx(model_server: ServerProcess) -> None:
    document = httpx.get(model_server.url + SCHEMA_PATHS[model_server.kind], timeout=30)
    assert document.status_code == 200, document.text[:300]
    schema = schemathesis.openapi.from_dict(document.json())
    assert len(list(schema.get_all_operations())) > 3
    assert server_errors(schema, model_server.url) == []
    # Nothing generated unloaded the model or stopped the server.
    assert httpx.get(model_server.url + "/readyz", timeout=10).status_code == 200
