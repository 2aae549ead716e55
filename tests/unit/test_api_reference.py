"""The API reference: the OpenAPI document names the role each route checks, and docs/api.md is kept in step."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from mlplatform.api.reference import reference_document, render_markdown
from mlplatform.cli.main import app
from tests.support.environment import REPO_ROOT


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return reference_document()


def test_api_reference_document_matches_the_code(document: dict[str, Any]) -> None:
    documented = (REPO_ROOT / "docs" / "api.md").read_text()
    assert documented == render_markdown(document), "docs/api.md is stale: run `make api-docs`"


@pytest.mark.parametrize(
    ("method", "path", "role"),
    [
        ("get", "/healthz", "none"),
        ("post", "/api/v1/session", "none"),
        ("get", "/api/v1/models", "viewer"),
        ("get", "/api/v1/models/{name}/compare", "data-scientist"),
        ("post", "/api/v1/models/{name}/promote", "approver"),
        ("post", "/api/v1/users", "admin"),
    ],
)
def test_each_operation_names_the_role_its_route_checks(
    document: dict[str, Any], method: str, path: str, role: str
) -> None:
    assert document["paths"][path][method]["x-required-role"] == role


def test_every_state_change_but_logging_in_needs_a_role(document: dict[str, Any]) -> None:
    public = [
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in {"post", "put", "patch", "delete"} and operation["x-required-role"] == "none"
    ]
    assert public == ["POST /api/v1/session"]


def test_problem_responses_declare_their_schema_under_their_media_type(document: dict[str, Any]) -> None:
    responses = document["paths"]["/api/v1/models/{name}"]["get"]["responses"]
    schema = responses["404"]["content"]["application/problem+json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/ProblemDetails"}


def test_the_cli_prints_the_document_and_the_markdown(document: dict[str, Any]) -> None:
    runner = CliRunner()
    printed = runner.invoke(app, ["api", "openapi"])
    assert printed.exit_code == 0
    assert json.loads(printed.output)["paths"].keys() == document["paths"].keys()
    markdown = runner.invoke(app, ["api", "docs"])
    assert markdown.exit_code == 0 and markdown.output == render_markdown(document)
