"""The local deployer's ports, records and Prometheus targets, with real supervised processes.

The processes are fake model servers (tests/support/fakes/model_server.py: they bind the port the deployer gives
them and answer HTTP, nothing more); the deployer, its supervisor, its records and its targets file are the real
ones.  Real model servers deployed side by side are in tests/integration/test_deploy_local.py.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlplatform.config import Settings
from mlplatform.deploy import local
from mlplatform.deploy.base import DeployError
from mlplatform.deploy.local import LocalProcessDeployer
from tests.support.environment import free_port
from tests.support.fakes.model_server import write_fake_servers


@pytest.fixture()
def deployer(settings: Settings, tmp_path: Path) -> Iterator[LocalProcessDeployer]:
    serving = settings.serving.model_copy(
        update={"servers_dir": write_fake_servers(tmp_path / "servers"), "port": free_port()}
    )
    deployer = LocalProcessDeployer(settings.model_copy(update={"serving": serving}))
    yield deployer
    for deployment in deployer.list():
        deployer.undeploy(deployment.model)


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _answer(url: str) -> dict[str, object]:
    body: dict[str, object] = httpx.post(f"{url}/predict", json={}, timeout=5).json()
    return body


def _targets(settings: Settings) -> list[dict[str, object]]:
    found: list[dict[str, object]] = json.loads(settings.layout.prometheus_targets.read_text())
    return found


def _listening(port: int) -> socket.socket:
    holder = socket.socket()
    holder.bind(("127.0.0.1", port))
    holder.listen()
    return holder


def test_two_models_are_served_at_once_each_on_its_own_port(deployer: LocalProcessDeployer) -> None:
    first = deployer.deploy("model_a", "kserve")
    second = deployer.deploy("model_b", "bentoml")
    base = deployer.settings.serving.port
    assert _port(first.url) >= base and _port(second.url) > _port(first.url)
    assert _answer(first.url) == {"model": "model_a", "port": _port(first.url)}
    assert _answer(second.url) == {"model": "model_b", "port": _port(second.url)}
    listed = {d.model: (d.url, d.running, d.ready) for d in deployer.list()}
    assert listed == {"model_a": (first.url, True, True), "model_b": (second.url, True, True)}
    assert _targets(deployer.settings) == [
        {"targets": [f"127.0.0.1:{_port(first.url)}"], "labels": {"model": "model_a", "backend": "kserve"}},
        {"targets": [f"127.0.0.1:{_port(second.url)}"], "labels": {"model": "model_b", "backend": "bentoml"}},
    ]
    assert deployer.undeploy("model_a")
    assert [group["labels"] for group in _targets(deployer.settings)] == [{"model": "model_b", "backend": "bentoml"}]
    assert _answer(second.url)["model"] == "model_b"


def test_deploying_a_running_model_again_keeps_its_server_and_port(deployer: LocalProcessDeployer) -> None:
    first = deployer.deploy("model_a", "kserve")
    assert deployer.deploy("model_a", "kserve").url == first.url
    assert deployer.deploy("model_a", "kserve", _port(first.url)).url == first.url
    other = free_port()
    with pytest.raises(DeployError, match=f"model_a is already served at {first.url}; .* to move it to port {other}"):
        deployer.deploy("model_a", "kserve", other)
    with pytest.raises(DeployError, match="model_a is already served by kserve"):
        deployer.deploy("model_a", "bentoml")


def test_a_stopped_deployment_holds_its_port_and_gets_it_back(deployer: LocalProcessDeployer) -> None:
    first = deployer.deploy("model_a", "kserve")
    deployer.supervisor.stop("serve-model_a")  # a crash, or `stack down`: the record stays
    [stopped] = deployer.list()
    assert (stopped.url, stopped.running, stopped.detail) == (first.url, False, "not running")
    second = deployer.deploy("model_b", "kserve")
    assert second.url != first.url, "a stopped deployment's port is not handed to another model"
    assert deployer.deploy("model_a", "kserve").url == first.url


def test_a_requested_port_is_used(deployer: LocalProcessDeployer) -> None:
    port = free_port()
    deployment = deployer.deploy("model_a", "bentoml", port)
    assert deployment.url == f"http://127.0.0.1:{port}"
    assert _answer(deployment.url)["port"] == port


def test_a_port_held_by_another_model_is_refused_by_name(deployer: LocalProcessDeployer) -> None:
    first = deployer.deploy("model_a", "kserve")
    port = _port(first.url)
    with pytest.raises(DeployError) as refused:
        deployer.deploy("model_b", "kserve", port)
    assert str(refused.value) == (
        f"port {port} is held by the deployment of model_a ({first.url}); choose another --port, or leave it out "
        "to take a free one"
    )
    assert [d.model for d in deployer.list()] == ["model_a"], "nothing recorded for the refused deploy"


def test_a_port_taken_by_another_program_is_refused(deployer: LocalProcessDeployer) -> None:
    port = free_port()
    with _listening(port), pytest.raises(DeployError) as refused:
        deployer.deploy("model_a", "kserve", port)
    assert str(refused.value) == (
        f"port {port} on 127.0.0.1 is taken by another program; choose another --port, or leave it out to take a "
        "free one"
    )
    assert deployer.list() == []


def test_the_search_steps_over_ports_other_programs_hold(deployer: LocalProcessDeployer) -> None:
    base = deployer.settings.serving.port
    with _listening(base):
        deployment = deployer.deploy("model_a", "kserve")
    assert _port(deployment.url) > base


def test_no_free_port_in_the_search_says_what_to_do(
    deployer: LocalProcessDeployer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "PORT_SEARCH_SPAN", 1)
    base = deployer.settings.serving.port
    with _listening(base), pytest.raises(DeployError) as refused:
        deployer.deploy("model_a", "kserve")
    assert str(refused.value) == (
        f"no free port in {base}-{base} on 127.0.0.1 (0 held by other deployments, the rest by other programs); "
        "pass --port, or set MLP_SERVING__PORT to search from elsewhere"
    )


def test_a_record_from_before_ports_were_recorded_reads_as_the_configured_port(
    deployer: LocalProcessDeployer,
) -> None:
    records = deployer.settings.serving_dir / "deployments"
    records.mkdir(parents=True)
    (records / "model_a.json").write_text(json.dumps({"backend": "kserve"}))
    [old] = deployer.list()
    assert (old.url, old.running) == (f"http://127.0.0.1:{deployer.settings.serving.port}", False)
