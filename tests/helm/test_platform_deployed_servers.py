"""Model servers the platform deploys at runtime (UI, CLI: mlplatform.deploy.kubernetes) get what the chart gives
the model servers of ``serving.models``: the settings come from the chart's platform Deployment, exactly as the pod
reads them, and the objects the deployer would apply are compared with the chart's own servers.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.helm.conftest import (
    PROFILES,
    Manifest,
    of_kind,
    platform_deployed_objects,
    platform_settings,
    pod_labels,
    pod_spec,
    render,
    selects,
    workloads,
)

MANAGED = [profile for profile in PROFILES if profile != "monitoring-off"]  # it sets serving.platformManaged: false
SERVING_PROFILES = ("production", "bentoml", "kserve-canary")  # those that also declare serving.models
SECRET_VOLUMES = ("secrets", "serving-token", "mlflow-credentials")
SECRET_ENV = ("MLP_SECRETS_DIR", "MLP_SERVING__AUTH_TOKEN_FILE")


def _servers(objects: list[Manifest]) -> list[Manifest]:
    return [w for w in workloads(objects) if pod_labels(w).get("app.kubernetes.io/component") == "model-server"]


def _pod(obj: Manifest) -> Manifest:
    spec = pod_spec(obj)
    assert spec is not None
    return spec


def _container(obj: Manifest) -> Manifest:
    container: Manifest
    (container,) = _pod(obj)["containers"]
    return container


def _env(container: Manifest) -> dict[str, Any]:
    return {item["name"]: item.get("value") for item in container["env"]}


def _volumes(obj: Manifest) -> dict[str, Manifest]:
    """The credential volumes, as the API server compares them (a Secret volume's fields, not their order)."""
    return {
        v["name"]: {k: val for k, val in v.items() if k != "name"}
        for v in _pod(obj)["volumes"]
        if v["name"] in SECRET_VOLUMES
    }


def _mounts(obj: Manifest) -> dict[str, str]:
    return {m["name"]: m["mountPath"] for m in _container(obj)["volumeMounts"] if m["name"] in SECRET_VOLUMES}


@pytest.mark.parametrize("profile", SERVING_PROFILES)
def test_platform_deployed_servers_hold_the_same_credentials_as_the_chart_s(helm: str, profile: str) -> None:
    objects = render(helm, profile)
    chart_servers = _servers(objects)
    deployed = _servers(platform_deployed_objects(objects))
    assert chart_servers and len(deployed) == 2, "an InferenceService and a BentoML Deployment"
    reference = chart_servers[0]
    assert set(_volumes(reference)) == set(SECRET_VOLUMES)
    for server in deployed:
        where = f"{profile}: {server['kind']}"
        assert _volumes(server) == _volumes(reference), where
        assert _mounts(server) == _mounts(reference), where
        for name in SECRET_ENV:
            assert _env(_container(server))[name] == _env(_container(reference))[name], (where, name)
        assert _container(server)["image"] == _container(reference)["image"], where
        assert _container(server)["imagePullPolicy"] == _container(reference)["imagePullPolicy"], where
        assert _pod(server)["automountServiceAccountToken"] is False
        assert _pod(server)["serviceAccountName"] == _pod(reference)["serviceAccountName"]
        assert _pod(server)["securityContext"]["fsGroup"] == _pod(reference)["securityContext"]["fsGroup"]


@pytest.mark.parametrize("profile", MANAGED)
def test_platform_deployed_servers_never_get_the_platform_db_owner(helm: str, profile: str) -> None:
    objects = render(helm, profile)
    deployed = platform_deployed_objects(objects)
    assert deployed
    owner_secret = "mlp-platform-db"  # postgresql.platform.secretName in every profile
    for obj in deployed:
        text = repr(obj)
        assert owner_secret not in text and "MLP_DB__URL" not in text, f"{profile}: {obj['kind']}"
    for server in _servers(deployed):
        assert "envFrom" not in _container(server) or _container(server)["envFrom"] == []
        files = {
            item["path"]: source["secret"]["name"]
            for volume in _pod(server)["volumes"]
            if volume["name"] == "secrets"
            for source in volume["projected"]["sources"]
            for item in source["secret"]["items"]
        }
        assert files == {
            "MLP_SERVING__PREDICTION_LOG_URL": "mlp-prediction-writer",
            "MLP_FEAST__REDIS_CONNECTION_STRING": "mlp-redis",
        }


def test_the_generated_token_and_digests_reach_platform_deployed_servers(helm: str) -> None:
    """minimal: the chart generates the token Secret, no digest; production: a named Secret and a digest."""
    (minimal,) = [s for s in _servers(platform_deployed_objects(render(helm, "minimal"))) if s["kind"] == "Deployment"]
    assert _volumes(minimal)["serving-token"]["secret"]["secretName"] == "mlp-mlplatform-serving-token"
    assert "@" not in _container(minimal)["image"] and _container(minimal)["imagePullPolicy"] == "Always"
    generated = [s["metadata"]["name"] for s in of_kind(render(helm, "minimal"), "Secret")]
    assert generated == ["mlp-mlplatform-serving-token"]
    (production,) = [
        s for s in _servers(platform_deployed_objects(render(helm, "production"))) if s["kind"] == "Deployment"
    ]
    assert _volumes(production)["serving-token"]["secret"]["secretName"] == "mlp-serving-token"
    assert _container(production)["image"].endswith("@sha256:" + "2" * 64)


@pytest.mark.parametrize("profile", MANAGED)
def test_the_chart_s_network_policies_and_monitor_select_platform_deployed_servers(helm: str, profile: str) -> None:
    objects = render(helm, profile)
    for server in _servers(platform_deployed_objects(objects)):
        labels = pod_labels(server)
        governing = [
            p
            for p in of_kind(objects, "NetworkPolicy")
            if selects(p["spec"]["podSelector"].get("matchLabels", {}), labels)
        ]
        assert [p["metadata"]["name"] for p in governing] == ["mlp-mlplatform-model-server"], profile
        mlflow = next(p for p in of_kind(objects, "NetworkPolicy") if p["metadata"]["name"] == "mlp-mlplatform-mlflow")
        peers = [
            peer["podSelector"]["matchLabels"] for peer in mlflow["spec"]["ingress"][0]["from"] if "podSelector" in peer
        ]
        assert any(selects(peer, labels) for peer in peers), f"{profile}: MLflow does not admit {labels}"
        for monitor in of_kind(objects, "PodMonitor"):
            assert selects(monitor["spec"]["selector"]["matchLabels"], labels), profile


def test_a_release_that_manages_no_servers_passes_on_no_deploy_settings(helm: str) -> None:
    assert platform_settings(render(helm, "monitoring-off")) is None
    managed = platform_settings(render(helm, "minimal"))
    assert managed is not None and managed.deploy.target == "kubernetes"
    assert managed.deploy.prediction_writer_secret == "mlp-prediction-writer"
    assert managed.deploy.mlflow_auth_secret == "mlp-mlflow-auth"
    assert managed.deploy.serving_secret is None
