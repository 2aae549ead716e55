"""The deployer's manifest builders: every object validates against its schema, and the fields that matter agree."""

from __future__ import annotations

import importlib.metadata
import json
from typing import Any

import pytest
from pydantic import SecretStr

from mlplatform.config import Settings, get_settings
from mlplatform.deploy.base import DeployError
from mlplatform.deploy.kubernetes import manifests
from mlplatform.deploy.kubernetes.manifests import Rollout
from mlplatform.specs import ModelSpec, find_spec
from tests.support.kubernetes_schemas import SchemaMissingError, validate

NAMESPACE = "models"
DIGEST = "sha256:" + "ab" * 32
OWNER_URL = "postgresql+psycopg://mlplatform:owner-pa55word@db:5432/mlplatform"
# What the chart's platform Deployment sets (helm/mlplatform/templates/platform/deployment.yaml).
HARDENED = {
    "image_digest": DIGEST,
    "image_pull_policy": "IfNotPresent",
    "prediction_writer_secret": "mlp-prediction-writer",
    "redis_secret": "mlp-redis",
    "serving_auth_secret": "mlp-serving-token",
    "mlflow_auth_secret": "mlp-mlflow-auth",
}


@pytest.fixture()
def spec(settings: Settings) -> ModelSpec:
    return find_spec(settings.model_roots, "fraud_detector")


def _with(settings: Settings, **deploy: Any) -> Settings:
    return settings.model_copy(update={"deploy": settings.deploy.model_copy(update=deploy)})


def _hardened(settings: Settings) -> Settings:
    """A cluster's settings: the prediction log on PostgreSQL, the platform's own DB URL set, every secret named."""
    return settings.model_copy(
        update={
            "serving": settings.serving.model_copy(update={"prediction_log": "postgres"}),
            "db": settings.db.model_copy(update={"url": OWNER_URL}),
            "deploy": settings.deploy.model_copy(update=HARDENED),
        }
    )


def _all_objects(spec: ModelSpec, settings: Settings) -> list[dict[str, Any]]:
    """Every variant the deployer can emit: both modes, canary shares, both backends, with and without secrets."""
    serverless = _with(
        settings, kserve_mode="Serverless", service_account="models", serving_secret="env", feast_volume_claim="f"
    )
    hardened = _hardened(settings)
    return [
        manifests.inference_service(spec, settings, Rollout("champion"), NAMESPACE),
        manifests.inference_service(spec, serverless, Rollout("challenger", 25), NAMESPACE),
        manifests.inference_service(spec, serverless, Rollout("champion", 0), NAMESPACE),
        manifests.inference_service(spec, hardened, Rollout("champion"), NAMESPACE),
        *manifests.bentoml_objects(spec, settings, Rollout("champion"), NAMESPACE),
        *manifests.bentoml_objects(spec, serverless, Rollout("champion"), NAMESPACE),
        *manifests.bentoml_objects(spec, hardened, Rollout("champion"), NAMESPACE),
    ]


def _pod(obj: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = (
        obj["spec"]["predictor"] if obj["kind"] == "InferenceService" else obj["spec"]["template"]["spec"]
    )
    return pod


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container["env"]}


def test_every_manifest_validates_against_its_schema(spec: ModelSpec, settings: Settings) -> None:
    for obj in _all_objects(spec, settings):
        validate(obj)


def test_the_schemas_reject_what_the_api_server_would(spec: ModelSpec, settings: Settings) -> None:
    """The checks above are only worth something if a wrong object fails them."""
    isvc = manifests.inference_service(spec, settings, Rollout("champion"), NAMESPACE)
    isvc["spec"]["predictor"]["containers"][0]["ports"][0]["containerPort"] = "8080"
    with pytest.raises(AssertionError, match=r"containers\.0\.ports\.0\.containerPort: '8080' is not of type"):
        validate(isvc)
    isvc = manifests.inference_service(spec, settings, Rollout("champion"), NAMESPACE)
    isvc["spec"]["predictor"]["minReplica"] = 1
    with pytest.raises(AssertionError, match="minReplica"):
        validate(isvc)
    deployment = manifests.bentoml_deployment(spec, settings, Rollout("champion"), NAMESPACE)
    deployment["spec"]["template"]["spec"]["containers"][0]["portz"] = []
    with pytest.raises(AssertionError, match="portz"):
        validate(deployment)
    with pytest.raises(SchemaMissingError, match=r"no schema for example\.com/v1 Gadget"):
        validate({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "x"}})


def test_inference_service_runs_our_serving_image_as_a_custom_predictor(spec: ModelSpec, settings: Settings) -> None:
    isvc = manifests.inference_service(spec, settings, Rollout("champion"), NAMESPACE)

    assert isvc["metadata"]["name"] == "fraud-detector" and isvc["metadata"]["namespace"] == NAMESPACE
    assert isvc["metadata"]["labels"]["mlplatform.io/model"] == "fraud_detector"
    annotations = isvc["metadata"]["annotations"]
    assert annotations["serving.kserve.io/deploymentMode"] == "RawDeployment"
    assert annotations["serving.kserve.io/autoscalerClass"] == "hpa"
    assert annotations["mlplatform.io/spec-fingerprint"] == spec.fingerprint()
    predictor = isvc["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (1, 3)
    assert (predictor["scaleMetric"], predictor["scaleTarget"]) == ("cpu", 70)
    assert "canaryTrafficPercent" not in predictor
    (container,) = predictor["containers"]
    assert container["name"] == "kserve-container"
    version = importlib.metadata.version("mlplatform")
    assert container["image"] == f"ghcr.io/mlplatform/mlplatform-serving:{version}"
    assert container["command"] == ["python", "/app/serving/kserve/server.py", "--model", "fraud_detector"]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env == {
        "HOME": "/tmp",
        "MLP_SERVING__HOST": "0.0.0.0",
        "MLP_SERVING__PORT": "8080",
        "MLP_SERVING__BACKEND": "kserve",
        "MLP_SERVING__ALIAS": "champion",
        "MLP_SERVING__PREDICTION_LOG": "parquet",
        "MLP_SERVING__POLL_INTERVAL_S": "10",
        "MLP_STATE_DIR": "/var/lib/mlplatform",
        "MLP_FEAST__PROJECT": "mlp_test",
        "MLP_FEAST__ONLINE_STORE": "sqlite",
        "MLP_FEAST__OFFLINE_STORE": "duckdb",
    }  # no MLflow URI or Feast paths: the embedded defaults (127.0.0.1, the state dir) mean nothing in a pod
    assert container["ports"] == [{"name": "http1", "containerPort": 8080, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }
    assert container["envFrom"] == []
    assert predictor["labels"] == isvc["metadata"]["labels"]  # KServe puts predictor labels on the pods
    assert predictor["automountServiceAccountToken"] is False
    assert {"name": "feast", "emptyDir": {}} in predictor["volumes"]


def test_the_chart_configured_services_reach_the_servers(spec: ModelSpec, settings: Settings) -> None:
    """In a cluster the chart sets MLflow, Feast paths and the Secret; the servers get the same locations."""
    configured = settings.model_copy(
        update={
            "mlflow": settings.mlflow.model_copy(update={"tracking_uri": "http://mlp-mlflow:5000"}),
            "feast": settings.feast.model_copy(
                update={"registry_path": "/var/lib/mlplatform-feast/registry.db", "online_store": "redis"}
            ),
            "deploy": settings.deploy.model_copy(
                update={"serving_secret": "mlp-serving-env", "feast_volume_claim": "feast-shared"}
            ),
        }
    )
    obj = manifests.bentoml_deployment(spec, configured, Rollout("champion"), NAMESPACE)
    pod = obj["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["MLP_MLFLOW__TRACKING_URI"] == "http://mlp-mlflow:5000"
    assert env["MLP_FEAST__REGISTRY_PATH"] == "/var/lib/mlplatform-feast/registry.db"
    assert env["MLP_FEAST__ONLINE_STORE"] == "redis"
    assert container["envFrom"] == [{"secretRef": {"name": "mlp-serving-env", "optional": True}}]
    feast = {"name": "feast", "persistentVolumeClaim": {"claimName": "feast-shared", "readOnly": True}}
    assert feast in pod["volumes"]
    assert {"name": "feast", "mountPath": "/var/lib/mlplatform-feast"} in container["volumeMounts"]


def test_canary_share_and_alias_reach_the_predictor(spec: ModelSpec, settings: Settings) -> None:
    serverless = _with(settings, kserve_mode="Serverless")
    isvc = manifests.inference_service(spec, serverless, Rollout("challenger", 25), NAMESPACE)
    predictor = isvc["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 25
    assert "scaleMetric" not in predictor  # Knative autoscales by concurrency in Serverless mode
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"
    assert isvc["metadata"]["annotations"]["mlplatform.io/alias"] == "challenger"
    assert {"name": "MLP_SERVING__ALIAS", "value": "challenger"} in predictor["containers"][0]["env"]


def test_every_container_is_locked_down(spec: ModelSpec, settings: Settings) -> None:
    for obj in _all_objects(spec, settings):
        if obj["kind"] not in ("InferenceService", "Deployment"):
            continue
        pod = _pod(obj)
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"] == {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,  # owns the secret files (mode 0440)
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] and context["runAsNonRoot"] and context["runAsUser"] == 10001
            assert context["privileged"] is False
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert container["resources"]["limits"] and container["resources"]["requests"]
            assert container["readinessProbe"] and container["livenessProbe"]
            mounts = {mount["name"] for mount in container["volumeMounts"]}
            assert mounts <= {volume["name"] for volume in pod["volumes"]}


def test_bentoml_objects_agree_on_names_labels_and_ports(spec: ModelSpec, settings: Settings) -> None:
    deployment, service, autoscaler = manifests.bentoml_objects(spec, settings, Rollout("champion"), NAMESPACE)

    pod = deployment["spec"]["template"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["selector"] == selector
    assert "replicas" not in deployment["spec"]  # the autoscaler owns the replica count
    (container,) = pod["spec"]["containers"]
    assert container["command"] == ["python", "/app/serving/bentoml/service.py", "--model", "fraud_detector"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == container["ports"][0]["name"] and container["ports"][0]["containerPort"] == 8080
    assert autoscaler["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert (autoscaler["spec"]["minReplicas"], autoscaler["spec"]["maxReplicas"]) == (1, 3)
    assert {obj["metadata"]["name"] for obj in (deployment, service, autoscaler)} == {"fraud-detector"}


def test_no_secret_setting_reaches_a_manifest(spec: ModelSpec, settings: Settings) -> None:
    """Credentials come from the chart's Secret through envFrom, never from the platform's own settings."""
    secret = "s3cr3t-pa55word-value"
    leaky = settings.model_copy(
        update={
            "db": settings.db.model_copy(update={"url": f"postgresql://u:{secret}@db/platform"}),
            "api_token": SecretStr(secret),
            "serving": settings.serving.model_copy(update={"prediction_log_url": f"postgresql://u:{secret}@db/p"}),
            "feast": settings.feast.model_copy(update={"redis_connection_string": f"redis:6379,password={secret}"}),
        }
    )
    for obj in _all_objects(spec, leaky):
        assert secret not in json.dumps(obj)


def test_builders_are_pure(spec: ModelSpec, settings: Settings) -> None:
    assert _all_objects(spec, settings) == _all_objects(spec, settings)
    custom = _with(settings, image_registry="registry.example.com/ml/", image_tag="1.2.3")
    isvc = manifests.inference_service(spec, custom, Rollout("champion"), NAMESPACE)
    assert isvc["spec"]["predictor"]["containers"][0]["image"] == "registry.example.com/ml/mlplatform-serving:1.2.3"


@pytest.mark.parametrize("backend", ["kserve", "bentoml"])
def test_secrets_reach_the_servers_as_files_like_the_chart_s_model_servers(
    spec: ModelSpec, settings: Settings, backend: str
) -> None:
    """The writer's URL and Redis in MLP_SECRETS_DIR, the token file, the MLflow reader's credentials file."""
    hardened = _hardened(settings)
    if backend == "kserve":
        obj = manifests.inference_service(spec, hardened, Rollout("champion"), NAMESPACE)
    else:
        obj = manifests.bentoml_deployment(spec, hardened, Rollout("champion"), NAMESPACE)
    pod = _pod(obj)
    (container,) = pod["containers"]
    env = _env(container)
    assert env["MLP_SECRETS_DIR"] == "/var/run/secrets/mlplatform"
    assert env["MLP_SERVING__AUTH_TOKEN_FILE"] == "/var/run/secrets/mlplatform-serving/token"
    assert env["HOME"] == "/tmp" and env["MLP_SERVING__PREDICTION_LOG"] == "postgres"
    assert container["envFrom"] == []
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["secrets"]["projected"] == {
        "defaultMode": 0o440,
        "sources": [
            {
                "secret": {
                    "name": "mlp-prediction-writer",
                    "items": [{"key": "url", "path": "MLP_SERVING__PREDICTION_LOG_URL"}],
                }
            },
            {
                "secret": {
                    "name": "mlp-redis",
                    "items": [{"key": "connection-string", "path": "MLP_FEAST__REDIS_CONNECTION_STRING"}],
                }
            },
        ],
    }
    assert volumes["serving-token"]["secret"] == {
        "secretName": "mlp-serving-token",
        "defaultMode": 0o440,
        "items": [{"key": "token", "path": "token"}],
    }
    assert volumes["mlflow-credentials"]["secret"] == {
        "secretName": "mlp-mlflow-auth",
        "defaultMode": 0o440,
        "items": [{"key": "reader-credentials", "path": "credentials"}],  # the reader: no writer's key mounted
    }
    mounts = {mount["name"]: mount for mount in container["volumeMounts"]}
    assert mounts["secrets"] == {"name": "secrets", "mountPath": "/var/run/secrets/mlplatform", "readOnly": True}
    assert (
        mounts["serving-token"]["mountPath"] == "/var/run/secrets/mlplatform-serving"
        and mounts["serving-token"]["readOnly"]
    )
    assert mounts["mlflow-credentials"]["mountPath"] == "/tmp/.mlflow" and mounts["mlflow-credentials"]["readOnly"]
    assert container["image"].endswith(f"@{DIGEST}") and container["imagePullPolicy"] == "IfNotPresent"
    assert pod["automountServiceAccountToken"] is False
    labels = pod["labels"] if backend == "kserve" else obj["spec"]["template"]["metadata"]["labels"]
    # What the chart's NetworkPolicy and PodMonitor for model servers select (mlp.modelServerSelector).
    assert {
        "app.kubernetes.io/part-of": "mlplatform",
        "app.kubernetes.io/component": "model-server",
    }.items() <= labels.items()
    validate(obj)


def test_the_platform_db_owner_s_url_never_reaches_a_server(spec: ModelSpec, settings: Settings) -> None:
    """Neither as a value nor as a file: the servers hold the writer's Secret, the platform DB URL stays behind."""
    for obj in _all_objects(spec, settings):
        text = json.dumps(obj)
        assert "owner-pa55word" not in text and "MLP_DB__URL" not in text


def test_an_unchanged_install_without_secrets_keeps_no_secret_volume(spec: ModelSpec, settings: Settings) -> None:
    """No Secret named: no secrets directory (a missing MLP_SECRETS_DIR would stop the server), no token file."""
    pod = _pod(manifests.inference_service(spec, settings, Rollout("champion"), NAMESPACE))
    (container,) = pod["containers"]
    assert {volume["name"] for volume in pod["volumes"]} == {"state", "tmp", "feast"}
    assert not {"MLP_SECRETS_DIR", "MLP_SERVING__AUTH_TOKEN_FILE"} & _env(container).keys()
    assert "@" not in container["image"]


def test_a_postgres_prediction_log_without_the_writer_s_secret_is_refused(spec: ModelSpec, settings: Settings) -> None:
    to_postgres = settings.model_copy(
        update={"serving": settings.serving.model_copy(update={"prediction_log": "postgres"})}
    )
    with pytest.raises(DeployError, match="MLP_DEPLOY__PREDICTION_WRITER_SECRET"):
        manifests.inference_service(spec, to_postgres, Rollout("champion"), NAMESPACE)
    with pytest.raises(DeployError, match="no Secret gives them the prediction writer's URL"):
        manifests.bentoml_objects(spec, to_postgres, Rollout("champion"), NAMESPACE)
    older_install = _with(to_postgres, serving_secret="mlp-serving-env")  # kept its URL in the envFrom Secret
    isvc = manifests.inference_service(spec, older_install, Rollout("champion"), NAMESPACE)
    assert isvc["spec"]["predictor"]["containers"][0]["envFrom"] == [
        {"secretRef": {"name": "mlp-serving-env", "optional": True}}
    ]


def test_secret_names_and_digests_are_checked_when_the_settings_load() -> None:
    with pytest.raises(ValueError, match="image_digest"):
        get_settings(deploy={"image_digest": "sha256:short"})
    with pytest.raises(ValueError, match="serving_auth_secret"):
        get_settings(deploy={"serving_auth_secret": "Not_A_Name"})
