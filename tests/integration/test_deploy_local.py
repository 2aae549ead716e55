"""`mlplatform deploy / predict / traffic / undeploy` against real model servers started by the local deployer."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlplatform.config import DatabaseSettings
from mlplatform.deploy.base import Backend, DeployError
from mlplatform.deploy.local import LocalProcessDeployer
from mlplatform.serving.client import predict
from tests.support.environment import free_port, with_migrated_db
from tests.support.serving import KINDS, MODEL, ServedWorld, labels_in_model_dir, serving_settings, spec_dir

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("backend", KINDS)
def test_deploy_predict_and_undeploy(served_world: ServedWorld, tmp_path: Path, backend: Backend) -> None:
    settings = serving_settings(served_world.settings, tmp_path)
    deployer = LocalProcessDeployer(settings)
    deployment = deployer.deploy(MODEL, backend)
    try:
        assert deployment.ready
        assert deployer.deploy(MODEL, backend).ready  # deploying again keeps the running server
        with pytest.raises(DeployError, match=f"already served by {backend}"):
            deployer.deploy(MODEL, "bentoml" if backend == "kserve" else "kserve")
        answer = predict(deployment, [{"customer_id": served_world.customers[0], "amount": 25.0}])
        assert answer["version"] == served_world.versions[0]
        assert 0.0 <= answer["predictions"][0]["probability"] <= 1.0
        listed = deployer.list()
        assert [(d.model, d.backend, d.running, d.ready) for d in listed] == [(MODEL, backend, True, True)]
    finally:
        assert deployer.undeploy(MODEL)
    assert deployer.list() == []
    assert not deployer.undeploy(MODEL)


def test_deploy_refuses_a_port_taken_by_another_program(served_world: ServedWorld, tmp_path: Path) -> None:
    import socket

    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        settings = serving_settings(served_world.settings, tmp_path)
        with pytest.raises(DeployError, match=f"port {port} on 127.0.0.1 is taken by another program"):
            LocalProcessDeployer(settings).deploy(MODEL, "kserve", port)


def test_two_models_are_served_side_by_side(served_world: ServedWorld, tmp_path: Path) -> None:
    """A second model deploys beside the first on its own port; both answer, each with its own version."""
    from mlplatform.training.pipeline import TrainingRequest, run_all

    second = "fraud_second"
    settings = serving_settings(served_world.settings, tmp_path, model_cache_dir=tmp_path / "serving")
    settings = settings.model_copy(
        update={"models_dir": spec_dir(tmp_path, served_world.settings.data_dir, MODEL, second)}
    )
    trained = run_all(
        settings,
        TrainingRequest(
            model=second, run_key="side/v1", actor="pytest", reason="two models", estimator_params={"max_iter": 30}
        ),
    )
    deployer = LocalProcessDeployer(settings)
    try:
        first = deployer.deploy(MODEL, "kserve")
        beside = deployer.deploy(second, "kserve")
        assert first.url != beside.url
        entity = {"customer_id": served_world.customers[0], "amount": 25.0}
        assert predict(first, [entity])["version"] == served_world.versions[0]
        answer = predict(beside, [entity])
        assert (answer["model"], answer["version"]) == (second, trained.version)
        listed = {d.model: (d.url, d.ready) for d in deployer.list()}
        assert listed == {MODEL: (first.url, True), second: (beside.url, True)}
    finally:
        deployer.undeploy(second)
        deployer.undeploy(MODEL)


def test_cli_predict_and_traffic(served_world: ServedWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlplatform.cli.main import app

    settings = serving_settings(served_world.settings, tmp_path, backend="kserve")
    # Its own platform DB: the embedded CLI acts as the bootstrap admin, which the shared world's DB may not have.
    settings = settings.model_copy(update={"db": DatabaseSettings(url=f"sqlite:///{tmp_path / 'platform.db'}")})
    with_migrated_db(settings)
    for key, value in settings.child_env("api").items():
        monkeypatch.setenv(key, value)
    labels_in_model_dir(settings, MODEL)
    runner = CliRunner()
    not_deployed = runner.invoke(app, ["predict", MODEL, "-e", "customer_id=1"])
    assert not_deployed.exit_code == 1 and f"mlplatform deploy {MODEL}" in not_deployed.output
    deployed = runner.invoke(app, ["deploy", MODEL])
    assert deployed.exit_code == 0, deployed.output
    try:
        customer = served_world.customers[1]
        answered = runner.invoke(app, ["predict", MODEL, "-e", f"customer_id={customer},amount=12.5"])
        assert answered.exit_code == 0, answered.output
        assert f'"customer_id": {customer}' in answered.output
        refused = runner.invoke(app, ["predict", MODEL, "-e", "customer_id=abc,amount=1"])
        assert refused.exit_code == 1 and "422" in refused.output and "customer_id" in refused.output
        burst = runner.invoke(app, ["traffic", MODEL, "--requests", "40", "--rate", "40"])
        assert burst.exit_code == 0, burst.output
        assert "40/40 ok" in burst.output and "p99" in burst.output
        port = free_port()
        held = runner.invoke(app, ["deploy", "fraud_unregistered", "--port", str(_port_of(runner, MODEL))])
        assert held.exit_code == 1 and f"is held by the deployment of {MODEL}" in held.output
        assert runner.invoke(app, ["deploy", MODEL, "--port", str(port)]).exit_code == 1, "moving needs an undeploy"
    finally:
        assert runner.invoke(app, ["undeploy", MODEL]).exit_code == 0


def _port_of(runner: CliRunner, model: str) -> int:
    """The port `mlplatform deployments --json` shows for the model."""
    import json

    from mlplatform.cli.main import app

    listed = runner.invoke(app, ["deployments", "--json"])
    [url] = [item["url"] for item in json.loads(listed.output) if item["model"] == model]
    return int(url.rsplit(":", 1)[1])
