"""KubernetesDeployer against a fake Kubernetes API (tests/support/fakes/kubernetes_api.py) through the real client.

No kube-apiserver runs here; the fake serves the endpoints the deployer calls over HTTP on 127.0.0.1, so what is
tested is the real ``kubernetes`` client's requests: server-side apply patches, status reads, deletes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client import ApiClient, Configuration

from mlplatform.config import Settings
from mlplatform.deploy.base import Backend, DeployError
from mlplatform.deploy.kubernetes import deployer as deployer_module
from mlplatform.deploy.kubernetes.deployer import KubernetesDeployer
from mlplatform.deploy.kubernetes.kube_api import RBAC_RULES
from mlplatform.deploy.local import LocalProcessDeployer
from mlplatform.operations.services import _default_deployer
from tests.support.fakes.kubernetes_api import (
    FakeKubernetesApi,
    deployment_available,
    kserve_failing,
    kserve_ready,
    kserve_ready_after,
    serve_fake_kubernetes_api,
)

MODEL = "fraud_detector"
NAME = "fraud-detector"
ISVC = "inferenceservices"


@pytest.fixture()
def fake_api() -> Iterator[FakeKubernetesApi]:
    with serve_fake_kubernetes_api(FakeKubernetesApi()) as fake:
        yield fake


def _settings(settings: Settings, **deploy: Any) -> Settings:
    options = {"namespace": "models", "ready_timeout_s": 5.0, "poll_interval_s": 0.02} | deploy
    return settings.model_copy(update={"deploy": settings.deploy.model_copy(update=options)})


def _client(fake: FakeKubernetesApi) -> ApiClient:
    configuration = Configuration()
    configuration.host = fake.url
    return ApiClient(configuration)


def _deployer(fake: FakeKubernetesApi, settings: Settings, **deploy: Any) -> KubernetesDeployer:
    return KubernetesDeployer(_settings(settings, **deploy), _client(fake))


def _alias(isvc: dict[str, Any]) -> str:
    env = isvc["spec"]["predictor"]["containers"][0]["env"]
    alias: str = next(item["value"] for item in env if item["name"] == "MLP_SERVING__ALIAS")
    return alias


def test_apply_creates_then_updates_idempotently_on_the_fake_kubernetes_api(
    fake_api: FakeKubernetesApi, settings: Settings
) -> None:
    fake_api.controllers[ISVC] = kserve_ready
    deployer = _deployer(fake_api, settings)

    first = deployer.deploy(MODEL, "kserve")
    again = deployer.deploy(MODEL, "kserve")

    patches = [call for call in fake_api.calls if call.method == "PATCH"]
    assert [call.verb for call in patches] == ["create", "patch"]
    for call in patches:
        assert call.content_type == "application/apply-patch+yaml"
        assert call.query == {"fieldManager": "mlplatform", "force": "false"}
    stored = fake_api.get(ISVC, NAME)
    assert stored is not None and stored["metadata"]["generation"] == 1  # the same spec twice: nothing changed
    assert first == again
    assert first.ready and first.running and first.backend == "kserve" and first.model == MODEL
    assert first.url == f"http://{NAME}-predictor.models.svc.cluster.local"

    _deployer(fake_api, settings, max_replicas=5).deploy(MODEL, "kserve")
    updated = fake_api.get(ISVC, NAME)
    assert updated is not None and updated["metadata"]["generation"] == 2
    assert updated["spec"]["predictor"]["maxReplicas"] == 5


def test_wait_succeeds_when_the_fake_kubernetes_api_flips_ready(
    fake_api: FakeKubernetesApi, settings: Settings
) -> None:
    fake_api.controllers[ISVC] = kserve_ready_after(polls=3)

    deployment = _deployer(fake_api, settings).deploy(MODEL, "kserve")

    assert deployment.ready
    reads = [call for call in fake_api.calls if call.verb == "get" and call.name == NAME]
    assert len(reads) >= 4  # three "not ready" answers were polled through


def test_wait_ignores_a_ready_status_of_an_older_generation_on_the_fake_kubernetes_api(
    fake_api: FakeKubernetesApi, settings: Settings
) -> None:
    def stale(obj: dict[str, Any]) -> None:
        kserve_ready(obj)
        obj["status"]["observedGeneration"] = obj["metadata"]["generation"] - 1

    fake_api.controllers[ISVC] = stale
    with pytest.raises(DeployError, match="has not yet observed the latest spec"):
        _deployer(fake_api, settings, ready_timeout_s=0.2).deploy(MODEL, "kserve")


def test_wait_times_out_naming_the_condition_reason_on_the_fake_kubernetes_api(
    fake_api: FakeKubernetesApi, settings: Settings
) -> None:
    fake_api.controllers[ISVC] = kserve_failing("RevisionFailed", 'Revision "fraud-detector-predictor-00001" failed')

    with pytest.raises(DeployError) as raised:
        _deployer(fake_api, settings, ready_timeout_s=0.2).deploy(MODEL, "kserve")

    message = str(raised.value)
    assert f"{MODEL} (InferenceService models/{NAME}) not ready after 0.2 s" in message
    assert "Ready=False, reason RevisionFailed: Revision" in message


def test_canary_set_promote_and_rollback_produce_the_right_patches_on_the_fake_kubernetes_api(
    fake_api: FakeKubernetesApi, settings: Settings
) -> None:
    fake_api.controllers[ISVC] = kserve_ready
    deployer = _deployer(fake_api, settings, kserve_mode="Serverless")
    deployer.deploy(MODEL, "kserve")

    canary = deployer.set_canary(MODEL, 20)
    deployer.set_canary(MODEL, 100)
    deployer.set_canary(MODEL, 20)
    deployer.set_canary(MODEL, 0)

    applied = fake_api.applies(ISVC)
    traffic = [(_alias(body), body["spec"]["predictor"].get("canaryTrafficPercent")) for body in applied]
    assert traffic == [
        ("champion", None),  # deploy
        ("challenger", 20),  # canary: the new revision serves the challenger with 20%
        ("champion", None),  # promote: split removed (all to the latest revision), template back on @champion
        ("challenger", 20),
        ("champion", 0),  # rollback, first: no traffic to the canary, the last rolled-out revision keeps it all
        ("champion", None),  # rollback, then: the previous spec
    ]
    assert all(body["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless" for body in applied)
    assert canary.ready and canary.detail == "latest revision serves @challenger with 20% of traffic"


def test_canary_is_refused_in_raw_deployment_mode_without_a_patch_on_the_fake_kubernetes_api(
    fake_api: FakeKubernetesApi, settings: Settings
) -> None:
    fake_api.controllers[ISVC] = kserve_ready
    deployer = _deployer(fake_api, settings)
    deployer.deploy(MODEL, "kserve")

    with pytest.raises(NotImplementedError, match=r"KubernetesDeployer does not split traffic in KServe RawDeploy"):
        deployer.set_canary(MODEL, 10)
    assert len(fake_api.applies(ISVC)) == 1


def test_canary_needs_a_deployment_on_the_fake_kubernetes_api(fake_api: FakeKubernetesApi, settings: Settings) -> None:
    with pytest.raises(DeployError, match="fraud_detector is not deployed"):
        _deployer(fake_api, settings, kserve_mode="Serverless").set_canary(MODEL, 10)


def test_bentoml_deploy_list_and_undeploy_on_the_fake_kubernetes_api(
    fake_api: FakeKubernetesApi, settings: Settings
) -> None:
    fake_api.controllers["deployments"] = deployment_available
    deployer = _deployer(fake_api, settings)

    deployment = deployer.deploy(MODEL, "bentoml")

    assert deployment.ready and deployment.backend == "bentoml"
    assert deployment.url == f"http://{NAME}.models.svc.cluster.local"
    kinds = [call.plural for call in fake_api.calls if call.method == "PATCH"]
    assert kinds == ["deployments", "services", "horizontalpodautoscalers"]
    assert [d.model for d in deployer.list()] == [MODEL]
    with pytest.raises(DeployError, match="already served by bentoml"):
        deployer.deploy(MODEL, "kserve")

    assert deployer.undeploy(MODEL) is True
    assert not fake_api.objects
    assert deployer.undeploy(MODEL) is False
    assert deployer.list() == []


def test_bentoml_wait_times_out_with_replica_counts_on_the_fake_kubernetes_api(
    fake_api: FakeKubernetesApi, settings: Settings
) -> None:
    def starting(obj: dict[str, Any]) -> None:
        obj["status"] = {
            "observedGeneration": obj["metadata"]["generation"],
            "replicas": 1,
            "updatedReplicas": 1,
            "availableReplicas": 0,
            "conditions": [
                {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "no pod"}
            ],
        }

    fake_api.controllers["deployments"] = starting
    with pytest.raises(DeployError) as raised:
        _deployer(fake_api, settings, ready_timeout_s=0.2).deploy(MODEL, "bentoml")
    assert "0 of 1 replicas available, 1 updated; Available=False, reason MinimumReplicasUnavailable" in str(
        raised.value
    )


def test_kserve_undeploy_deletes_the_inference_service_on_the_fake_kubernetes_api(
    fake_api: FakeKubernetesApi, settings: Settings
) -> None:
    fake_api.controllers[ISVC] = kserve_ready
    deployer = _deployer(fake_api, settings)
    deployer.deploy(MODEL, "kserve")

    assert [(d.model, d.backend, d.ready) for d in deployer.list()] == [(MODEL, "kserve", True)]
    assert deployer.undeploy(MODEL) is True
    assert fake_api.get(ISVC, NAME) is None
    assert ("DELETE", ISVC, NAME) in [(call.method, call.plural, call.name) for call in fake_api.calls]


def test_only_the_verbs_in_the_rbac_rules_are_used_on_the_fake_kubernetes_api(
    fake_api: FakeKubernetesApi, settings: Settings
) -> None:
    fake_api.controllers[ISVC] = kserve_ready
    fake_api.controllers["deployments"] = deployment_available
    deployer = _deployer(fake_api, settings, kserve_mode="Serverless")
    deployer.deploy(MODEL, "kserve")
    deployer.set_canary(MODEL, 10)
    deployer.set_canary(MODEL, 0)
    deployer.list()
    deployer.undeploy(MODEL)
    deployer.deploy(MODEL, "bentoml")
    deployer.undeploy(MODEL)

    allowed = {
        (group, resource, verb)
        for rule in RBAC_RULES
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    used = {(call.group, call.plural, call.verb) for call in fake_api.calls}
    assert used <= allowed
    assert {verb for _, _, verb in used} == {"get", "list", "create", "patch", "delete"}  # no rule goes unused


def test_a_field_manager_conflict_names_the_owner_and_force_takes_over_on_the_fake_kubernetes_api(
    fake_api: FakeKubernetesApi, settings: Settings
) -> None:
    fake_api.controllers[ISVC] = kserve_ready
    _deployer(fake_api, settings).deploy(MODEL, "kserve")
    fake_api.foreign_owner = "argocd-controller"

    with pytest.raises(DeployError, match=r'HTTP 409: Apply failed .*"argocd-controller".*deploy.force_conflicts'):
        _deployer(fake_api, settings, max_replicas=4).deploy(MODEL, "kserve")

    _deployer(fake_api, settings, max_replicas=4, force_conflicts=True).deploy(MODEL, "kserve")
    assert fake_api.calls[-2].query["force"] == "true"


def test_missing_kserve_is_explained_on_the_fake_kubernetes_api(
    fake_api: FakeKubernetesApi, settings: Settings
) -> None:
    fake_api.installed.discard(("serving.kserve.io", "v1beta1", ISVC))
    with pytest.raises(DeployError, match=r"HTTP 404: .* \(is KServe installed\?"):
        _deployer(fake_api, settings).deploy(MODEL, "kserve")


def test_unknown_models_are_refused_before_any_call_on_the_fake_kubernetes_api(
    fake_api: FakeKubernetesApi, settings: Settings
) -> None:
    deployer = _deployer(fake_api, settings)
    with pytest.raises(DeployError, match="no model 'no_such_model'"):
        deployer.deploy("no_such_model", "kserve")
    with pytest.raises(DeployError, match="invalid model name"):
        deployer.undeploy("../etc")
    assert fake_api.calls == []


def test_the_api_picks_the_deployer_from_settings(
    fake_api: FakeKubernetesApi, settings: Settings, in_cluster_flag: list[bool]
) -> None:
    assert isinstance(_default_deployer(_settings(settings)), LocalProcessDeployer)
    assert isinstance(_default_deployer(_settings(settings, target="kubernetes")), KubernetesDeployer)
    assert isinstance(_default_deployer(_settings(settings, target="auto")), LocalProcessDeployer)
    in_cluster_flag[0] = True
    assert isinstance(_default_deployer(_settings(settings, target="auto")), KubernetesDeployer)


@pytest.fixture()
def in_cluster_flag(monkeypatch: pytest.MonkeyPatch, fake_api: FakeKubernetesApi) -> list[bool]:
    """``in_cluster()`` answers from a flag the test sets; the client points at the fake Kubernetes API."""
    flag = [False]
    monkeypatch.setattr(deployer_module, "in_cluster", lambda: flag[0])
    monkeypatch.setattr(deployer_module, "load_api_client", lambda: _client(fake_api))
    return flag


def test_a_requested_port_is_refused_naming_the_deployer(fake_api: FakeKubernetesApi, settings: Settings) -> None:
    with pytest.raises(NotImplementedError, match=r"KubernetesDeployer serves every model .* on container port 8080"):
        _deployer(fake_api, settings).deploy(MODEL, "kserve", 9000)
    assert fake_api.calls == [], "nothing applied"


SERVER_SECRETS = {
    "prediction_writer_secret": "mlp-prediction-writer",
    "redis_secret": "mlp-redis",
    "serving_auth_secret": "mlp-serving-token",
    "mlflow_auth_secret": "mlp-mlflow-auth",
}


def _logging_to_postgres(settings: Settings) -> Settings:
    owner = "postgresql+psycopg://mlplatform:owner-pa55word@db:5432/mlplatform"
    return settings.model_copy(
        update={
            "serving": settings.serving.model_copy(update={"prediction_log": "postgres"}),
            "db": settings.db.model_copy(update={"url": owner}),
        }
    )


@pytest.mark.parametrize(("backend", "plural"), [("kserve", ISVC), ("bentoml", "deployments")])
def test_applied_servers_hold_their_own_secrets_as_files_on_the_fake_kubernetes_api(
    fake_api: FakeKubernetesApi, settings: Settings, backend: Backend, plural: str
) -> None:
    """What reaches the (fake) API server: token file, secrets dir, no service-account token, no DB owner URL."""
    fake_api.controllers[ISVC] = kserve_ready
    fake_api.controllers["deployments"] = deployment_available
    deployer = _deployer(fake_api, _logging_to_postgres(settings), **SERVER_SECRETS)

    deployer.deploy(MODEL, backend)

    stored = fake_api.get(plural, NAME)
    assert stored is not None
    pod = stored["spec"]["predictor"] if backend == "kserve" else stored["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["MLP_SECRETS_DIR"] == "/var/run/secrets/mlplatform"
    assert env["MLP_SERVING__AUTH_TOKEN_FILE"] == "/var/run/secrets/mlplatform-serving/token"
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    files = [item for source in volumes["secrets"]["projected"]["sources"] for item in source["secret"]["items"]]
    assert [item["path"] for item in files] == ["MLP_SERVING__PREDICTION_LOG_URL", "MLP_FEAST__REDIS_CONNECTION_STRING"]
    assert volumes["serving-token"]["secret"]["secretName"] == "mlp-serving-token"
    assert volumes["mlflow-credentials"]["secret"]["items"] == [{"key": "reader-credentials", "path": "credentials"}]
    assert pod["automountServiceAccountToken"] is False
    assert "owner-pa55word" not in repr(stored) and "MLP_DB__URL" not in repr(stored)


def test_a_server_without_the_writer_s_url_is_refused_before_any_apply_on_the_fake_kubernetes_api(
    fake_api: FakeKubernetesApi, settings: Settings
) -> None:
    deployer = _deployer(fake_api, _logging_to_postgres(settings))
    with pytest.raises(DeployError, match="no Secret gives them the prediction writer's URL"):
        deployer.deploy(MODEL, "kserve")
    assert [call for call in fake_api.calls if call.method == "PATCH"] == []
