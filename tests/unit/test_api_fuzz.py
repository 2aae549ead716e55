"""Property-based fuzzing of the API's own OpenAPI schema with schemathesis.

Schemathesis generates requests for every operation from the schema (valid ones, and invalid ones that must be
refused) and checks each answer: never a 5xx, a documented status code and content type, a body that matches the
documented schema, and invalid input refused.  Requests are authenticated as an admin with an API token, so every
route runs its real code instead of stopping at 401.

The app is the real ``create_app(settings)`` over a real sqlite platform DB; only MLflow, Airflow and the deployer
are replaced, by the same fakes ``test_api_app.py`` uses, because they are external systems (servers this unit test
does not start).  Generation is derandomized with a fixed number of examples per operation, so a run is repeatable
and takes well under two minutes.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.schemas import APIOperation

from mlplatform.api.reference import reference_document
from mlplatform.config import Settings
from tests.support.api_world import World, make_world
from tests.support.fuzzing import fuzzing_config

EXAMPLES_PER_OPERATION = 40
# An OpenAPI operation's case.  An alias, so the test function's source (which seeds derandomized generation) stays
# as it was: another seed generates other examples.
Case: TypeAlias = schemathesis.Case[APIOperation[Any, Any, Any, Any]]
# The schema is the published document; each test sends its requests to a fresh app (``app=`` below).  Loading it
# eagerly (not through schemathesis' ``from_fixture``) also sidesteps that helper's use of a pytest internal.
API_SCHEMA = schemathesis.openapi.from_dict(
    reference_document(), config=schemathesis.Config.from_dict(fuzzing_config(EXAMPLES_PER_OPERATION))
)


@pytest.fixture()
def fuzz_world(settings: Settings) -> World:
    return make_world(settings)


@API_SCHEMA.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)  # one world per operation
def test_api_honours_its_schema(case: Case, fuzz_world: World) -> None:
    case.call_and_validate(app=fuzz_world.client.app, headers=fuzz_world.as_role("admin"))


def test_method_not_allowed_lists_every_method_the_path_serves(fuzz_world: World) -> None:
    """Found by the fuzzer: Starlette named only the first matching route's method in ``Allow``."""
    response = fuzz_world.client.request("PUT", "/api/v1/session")
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, POST"
    assert response.headers["content-type"] == "application/problem+json"
