"""The CLI mirrors the API: ``--json`` prints exactly what the API answers, over HTTP with a token or in embedded mode.

The remote tests run a real uvicorn server on 127.0.0.1 serving ``create_app(settings)`` over a real sqlite platform
DB, and the CLI talks to it over HTTP with real API tokens.  MLflow, Airflow and the deployer behind that app are the
fakes of ``tests/unit/test_api_app.py``: they are external systems, and what is under test here is the CLI and the
API between them.  The embedded tests use no server and no fakes: the CLI runs the API in-process over a state
directory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from mlplatform.cli.main import app
from mlplatform.config import Settings
from mlplatform.store import PlatformStore
from mlplatform.store.auth import AuthRepository
from tests.support.api_world import MODEL, World, make_world
from tests.support.environment import REPO_ROOT, free_port
from tests.support.waiting import serving_in_thread

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
runner = CliRunner()


@dataclass
class Served:
    url: str
    world: World

    def env(self, role: str) -> dict[str, str]:
        return {"MLP_API_URL": self.url, "MLP_API_TOKEN": self.world.tokens[role]}

    def get(self, path: str, role: str = "admin") -> Any:
        response = httpx.get(f"{self.url}{path}", headers=self.world.as_role(role), timeout=10)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture()
def served(settings: Settings) -> Iterator[Served]:
    world = make_world(settings)
    with serving_in_thread(world.client.app) as url:
        yield Served(url, world)


def cli(args: list[str], env: dict[str, str]) -> Any:
    """Run the CLI; on success return its stdout parsed as JSON."""
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    ("args", "path"),
    [
        (["models", "list", "--json"], "/api/v1/models"),
        (["models", "show", MODEL, "--json"], f"/api/v1/models/{MODEL}"),
        (["models", "version", MODEL, "2", "--json"], f"/api/v1/models/{MODEL}/versions/2"),
        (["models", "compare", MODEL, "1", "2", "--json"], f"/api/v1/models/{MODEL}/compare?a=1&b=2"),
        (["training", "runs", MODEL, "--json"], f"/api/v1/models/{MODEL}/training-runs"),
        (["deployments", "--json"], "/api/v1/deployments"),
        (["audit", "--limit", "5", "--json"], "/api/v1/audit?limit=5"),
    ],
)
def test_json_output_is_the_apis_answer(served: Served, args: list[str], path: str) -> None:
    assert cli(args, served.env("data-scientist")) == served.get(path)


def test_versions_json_is_the_models_version_list(served: Served) -> None:
    printed = cli(["models", "versions", MODEL, "--json"], served.env("viewer"))
    assert printed == served.get(f"/api/v1/models/{MODEL}")["versions"]


def test_mutations_go_through_the_api_as_the_tokens_user(served: Served) -> None:
    env = served.env("approver")
    promoted = cli(["models", "promote", MODEL, "4", "--reason", "beats v2", "--json"], env)
    assert (promoted["promoted"], promoted["previous_champion"], promoted["gate"]["passed"]) == (True, "2", True)
    rolled = cli(["models", "rollback", MODEL, "--reason", "latency", "--json"], env)
    assert (rolled["from_version"], rolled["to_version"]) == ("4", "2")

    run = cli(["train", MODEL, "-p", "max_depth=4", "--window-days", "30", "--reason", "tune", "--json"], env)
    assert run["state"] == "queued" and run["conf"]["requested_by"] == "approver"
    assert served.world.orchestrator.triggered[-1][2]["estimator_params"] == {"max_depth": 4}
    assert [r["run_id"] for r in cli(["training", "runs", MODEL, "--json"], env)] == [run["run_id"]]

    deployed = cli(["deploy", MODEL, "--backend", "kserve", "--reason", "go live", "--json"], env)
    assert (deployed["backend"], deployed["deployed_by"]) == ("kserve", "approver")
    undeployed = runner.invoke(app, ["undeploy", MODEL], env=env)
    assert undeployed.exit_code == 0 and f"{MODEL}: stopped" in undeployed.output

    events = cli(["audit", "--actor", "approver", "--json"], env)
    assert [(e["action"], e["result"], e["client"]) for e in events] == [
        ("deployment.delete", "ok", "127.0.0.1"),
        ("deployment.create", "ok", "127.0.0.1"),
        ("training.trigger", "ok", "127.0.0.1"),
        ("model.rollback", "ok", "127.0.0.1"),
        ("model.promote", "ok", "127.0.0.1"),
    ]


def test_refusals_are_reported_without_the_token(served: Served) -> None:
    viewer = served.env("viewer")
    refused = runner.invoke(app, ["models", "promote", MODEL, "4"], env=viewer)
    assert refused.exit_code == 1
    assert "Forbidden" in refused.output and "approver" in refused.output
    assert viewer["MLP_API_TOKEN"] not in refused.output

    bad_token = "mlp_not-a-real-token-at-all"
    unknown = runner.invoke(app, ["models", "list"], env={"MLP_API_URL": served.url, "MLP_API_TOKEN": bad_token})
    assert unknown.exit_code == 1 and "unknown, expired or revoked" in unknown.output
    assert bad_token not in unknown.output

    gate = runner.invoke(app, ["models", "promote", MODEL, "3"], env=served.env("approver"))
    assert gate.exit_code == 1 and "Refused by the promotion gate" in gate.output


def test_api_url_option_and_an_unreachable_api(served: Served) -> None:
    token_only = {"MLP_API_TOKEN": served.world.tokens["viewer"]}
    listed = cli(["--api-url", served.url, "models", "list", "--json"], token_only)
    assert [model["name"] for model in listed] == [MODEL]
    nowhere = f"http://127.0.0.1:{free_port()}"
    failed = runner.invoke(app, ["--api-url", nowhere, "models", "list"], env=token_only)
    assert failed.exit_code == 1 and "platform API unreachable" in failed.output and nowhere in failed.output


# -- embedded mode ------------------------------------------------------------------------------------------------


@pytest.fixture()
def embedded_env(settings: Settings) -> dict[str, str]:
    """No API URL: the CLI runs the API in-process over this test's state directory."""
    return {
        "MLP_STATE_DIR": str(settings.state_dir),
        "MLP_BUNDLED_MODELS_DIR": str(REPO_ROOT / "pipelines" / "models"),
        "MLP_MLFLOW__PORT": str(free_port()),
        "MLP_AIRFLOW__PORT": str(free_port()),
        "MLP_API_URL": "",
        "MLP_API_TOKEN": "",
    }


def test_embedded_mode_runs_the_same_api_in_process(settings: Settings, embedded_env: dict[str, str]) -> None:
    first = runner.invoke(app, ["models", "list", "--json"], env=embedded_env)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) == [
        {
            "name": MODEL,
            "description": "Probability that a card transaction is fraudulent, scored at authorisation time.",
            "owner": "risk-ml",
            "primary_metric": "roc_auc",
            "training_dag_id": f"train_{MODEL}",
            "schedule": "@weekly",
        }
    ]
    assert "created the platform admin" in first.stderr and "initial_admin_password" in first.stderr

    stopped = runner.invoke(app, ["undeploy", MODEL, "--reason", "tidy up"], env=embedded_env)
    assert stopped.exit_code == 0 and "was not deployed" in stopped.output
    [event] = cli(["audit", "--action", "deployment.delete", "--json"], embedded_env)
    assert (event["actor"], event["client"], event["reason"]) == ("admin", "local-cli", "tidy up")

    token_file = settings.layout.cli_token
    assert token_file.stat().st_mode & 0o777 == 0o600
    tokens = AuthRepository(PlatformStore.connect(settings.db_url)).list_tokens("admin")
    assert [token.name for token in tokens] == ["embedded-cli"]  # issued once, then reused


def test_embedded_mode_explains_an_unreachable_registry(embedded_env: dict[str, str]) -> None:
    result = runner.invoke(app, ["models", "show", MODEL, "--json"], env=embedded_env)
    assert result.exit_code == 1
    assert "Model registry unavailable" in result.output and "mlplatform stack up" in result.output
    assert result.stdout == ""


def test_embedded_token_file_is_replaced_when_revoked(settings: Settings, embedded_env: dict[str, str]) -> None:
    cli(["deployments", "--json"], embedded_env)
    auth = AuthRepository(PlatformStore.connect(settings.db_url))
    [token] = auth.list_tokens("admin")
    auth.revoke_token(token.id)
    assert cli(["deployments", "--json"], embedded_env) == []
    assert [t.revoked_at is None for t in auth.list_tokens("admin")] == [False, True]
    assert settings.layout.cli_token.read_text().strip() != ""


def test_the_token_is_never_shown_by_settings_show(served: Served) -> None:
    env = served.env("viewer")
    shown = runner.invoke(app, ["settings", "show"], env=env)
    assert shown.exit_code == 0 and env["MLP_API_TOKEN"] not in shown.output
    assert json.loads(shown.stdout)["api_url"] == served.url
