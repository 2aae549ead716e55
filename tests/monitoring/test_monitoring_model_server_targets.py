"""Prometheus scrapes every locally deployed model server: the deployer's file_sd targets file, the rendered
configuration that reads it, and a real Prometheus picking up a deploy and an undeploy without a restart.

The servers are fake model servers (tests/support/fakes/model_server.py) started by the real local deployer; they
export one metric without a ``model`` label, so the label Prometheus stores comes from the targets file.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from mlplatform.config import Settings
from mlplatform.deploy.local import LocalProcessDeployer
from mlplatform.stack import prometheus as monitoring
from tests.support.environment import free_port
from tests.support.fakes.model_server import write_fake_servers
from tests.support.tools import require_tool, run_tool
from tests.support.waiting import wait_for

SERVING_JOB = "mlplatform-serving"


@pytest.fixture()
def deployer(settings: Settings, tmp_path: Path) -> Iterator[LocalProcessDeployer]:
    configured = settings.model_copy(
        update={
            "serving": settings.serving.model_copy(
                update={"servers_dir": write_fake_servers(tmp_path / "servers"), "port": free_port()}
            ),
            "prometheus": settings.prometheus.model_copy(update={"scrape_interval_s": 1}),
        }
    )
    deployer = LocalProcessDeployer(configured)
    yield deployer
    for deployment in deployer.list():
        deployer.undeploy(deployment.model)


def _serving_job(config: dict[str, Any]) -> dict[str, Any]:
    job: dict[str, Any] = next(job for job in config["scrape_configs"] if job["job_name"] == SERVING_JOB)
    return job


def test_the_targets_document_labels_each_server_with_its_model() -> None:
    servers = [
        monitoring.ServerTarget("zeta", "kserve", "127.0.0.1:8301"),
        monitoring.ServerTarget("alpha", "bentoml", "127.0.0.1:8300"),
    ]
    assert monitoring.model_server_targets(servers) == [
        {"targets": ["127.0.0.1:8300"], "labels": {"model": "alpha", "backend": "bentoml"}},
        {"targets": ["127.0.0.1:8301"], "labels": {"model": "zeta", "backend": "kserve"}},
    ]


def test_the_serving_job_reads_the_targets_file_and_keeps_the_servers_own_model_label(settings: Settings) -> None:
    job = _serving_job(monitoring.prometheus_config(settings))
    assert job["file_sd_configs"] == [{"files": [str(settings.layout.prometheus_targets)]}]
    assert job["honor_labels"] is True
    assert "static_configs" not in job, "no port is assumed: the deployer lists the servers"


def test_extra_targets_set_by_hand_are_scraped_too(settings: Settings) -> None:
    settings.prometheus.model_server_targets = ["10.0.0.5:8300"]
    job = _serving_job(monitoring.prometheus_config(settings))
    assert job["static_configs"] == [{"targets": ["10.0.0.5:8300"]}]
    assert job["file_sd_configs"] == [{"files": [str(settings.layout.prometheus_targets)]}]


def test_rendering_the_configuration_leaves_a_deployers_targets_alone(settings: Settings) -> None:
    monitoring.write_prometheus_config(settings)
    assert json.loads(settings.layout.prometheus_targets.read_text()) == []
    monitoring.write_model_server_targets(settings, [monitoring.ServerTarget("m", "kserve", "127.0.0.1:8300")])
    monitoring.write_prometheus_config(settings)
    assert [group["labels"]["model"] for group in json.loads(settings.layout.prometheus_targets.read_text())] == ["m"]


def test_promtool_accepts_the_configuration_with_deployed_servers(deployer: LocalProcessDeployer) -> None:
    promtool = require_tool("promtool", "prometheus")
    deployer.deploy("model_a", "kserve")
    deployer.deploy("model_b", "bentoml")
    config = monitoring.write_prometheus_config(deployer.settings)
    result = run_tool([promtool, "check", "config", str(config)])
    assert result.returncode == 0, result.stdout + result.stderr
    deployer.settings.layout.prometheus_targets.write_text('[{"targets": ["x:1"], "labels": {"0model": "m"}}]')
    broken = run_tool([promtool, "check", "config", str(config)])
    assert broken.returncode == 1 and "checking SD file" in broken.stdout + broken.stderr, "the targets are checked"


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_prometheus_scrapes_each_deployed_server_and_follows_deploys_without_a_restart(
    deployer: LocalProcessDeployer,
) -> None:
    binary = require_tool("prometheus", "prometheus")
    settings = deployer.settings
    first = deployer.deploy("model_a", "kserve")
    config = monitoring.write_prometheus_config(settings, rule_files=[])
    log = settings.layout.log_file("prometheus")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as sink:
        process = subprocess.Popen(
            monitoring.prometheus_argv(binary, settings, config),
            stdout=sink,
            stderr=sink,
            env=monitoring.monitoring_env(),
        )
    try:
        base = monitoring.prometheus_url(settings)

        def scraped() -> dict[str, str]:
            """model label -> scraped address, of the serving job's healthy targets."""
            try:
                targets = httpx.get(f"{base}/api/v1/targets", timeout=2).json()["data"]["activeTargets"]
            except (httpx.HTTPError, ValueError):
                return {}
            return {
                target["labels"]["model"]: target["labels"]["instance"]
                for target in targets
                if target["labels"]["job"] == SERVING_JOB and target["health"] == "up"
            }

        def diagnose() -> str:
            return f"scraped {scraped()}; prometheus log:\n{log.read_text(errors='replace')[-2000:]}"

        address = first.url.removeprefix("http://")
        wait_for(lambda: scraped() == {"model_a": address}, 40, f"model_a scraped ({diagnose()})", interval=0.5)
        second = deployer.deploy("model_b", "bentoml")
        both = {"model_a": address, "model_b": second.url.removeprefix("http://")}
        wait_for(lambda: scraped() == both, 40, "model_b scraped after its deploy, without a restart", interval=0.5)

        def labelled() -> set[str]:
            answer = httpx.get(f"{base}/api/v1/query", params={"query": "fake_server_up"}, timeout=2).json()
            return {sample["metric"].get("model", "") for sample in answer["data"]["result"]}

        wait_for(lambda: labelled() == {"model_a", "model_b"}, 20, "samples labelled with their model", interval=0.5)
        deployer.undeploy("model_a")
        wait_for(lambda: "model_a" not in scraped(), 40, "model_a dropped after its undeploy", interval=0.5)
    finally:
        process.terminate()
        process.wait(20)
    assert yaml.safe_load(config.read_text())["scrape_configs"][1]["job_name"] == SERVING_JOB
