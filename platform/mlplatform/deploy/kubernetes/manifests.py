"""Kubernetes objects for one model server, as pure functions of (spec, settings, rollout) -> dict.

Pure so they can be checked offline against the InferenceService CRD schema and the Kubernetes OpenAPI models
(no API server runs in CI), and so what the deployer applies is exactly what a test inspected.

* KServe: one ``serving.kserve.io/v1beta1`` InferenceService whose predictor is a custom container running our
  serving image (``python <servers>/kserve/server.py --model <name>``); KServe makes the Deployment, Service and
  autoscaler.  The mode annotation comes from ``settings.deploy.kserve_mode`` (RawDeployment by default).
* BentoML: an ``apps/v1`` Deployment, a Service and an ``autoscaling/v2`` HorizontalPodAutoscaler running the
  BentoML entry point of the same image.

The servers get the platform's own service locations (MLflow URI, Feast project, stores and shared volume,
prediction log sink), but only those set explicitly (the chart sets them; an embedded default such as
``127.0.0.1:5500`` means nothing inside a pod) and never a credential's value: anyone who may read an
InferenceService could otherwise read it.  Credentials are Secrets mounted as files, as the chart mounts them into
the model servers it declares itself, and each server gets only its own:

* the prediction writer's URL (a role that may only insert into the prediction log; never the platform DB
  owner's URL) and Redis's connection string, projected into ``MLP_SECRETS_DIR`` as files named like their
  variables (``deploy.prediction_writer_secret``, ``deploy.redis_secret``);
* the bearer token clients must send, at ``MLP_SERVING__AUTH_TOKEN_FILE`` (``deploy.serving_auth_secret``);
* the read-only MLflow user's credentials at ``~/.mlflow/credentials``, where MLflow's client reads them
  (``deploy.mlflow_auth_secret``).

``deploy.serving_secret`` (``envFrom``) remains for extra variables and older installs that kept credentials there.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from typing import Any

from mlplatform.config import Settings
from mlplatform.deploy.base import Backend, DeployError
from mlplatform.deploy.local import ENTRY_POINTS
from mlplatform.specs import ModelSpec

Manifest = dict[str, Any]

KSERVE_GROUP = "serving.kserve.io"
KSERVE_VERSION = "v1beta1"
KSERVE_PLURAL = "inferenceservices"
KSERVE_CONTAINER = "kserve-container"  # the name KServe requires for a custom predictor container
PORT = 8080
STATE_DIR = "/var/lib/mlplatform"  # an emptyDir: model cache and parquet prediction log (the root fs is read-only)
HOME_DIR = "/tmp"  # noqa: S108 - an emptyDir, HOME of the image's user (BentoML's home, MLflow's credentials)
SECRETS_DIR = "/var/run/secrets/mlplatform"  # MLP_SECRETS_DIR: one file per secret setting, as in the chart
SERVING_AUTH_FILE = "/var/run/secrets/mlplatform-serving/token"  # MLP_SERVING__AUTH_TOKEN_FILE, as in the chart
MLFLOW_CREDENTIALS_DIR = f"{HOME_DIR}/.mlflow"  # MLflow's client reads ~/.mlflow/credentials
SERVING_UID = 10001  # the user and group of the serving image (infrastructure/docker/serving.Dockerfile)
SECRET_FILE_MODE = 0o440  # owned by the pod's fsGroup: readable by the server's user only

MANAGED_BY = "mlplatform"
MODEL_LABEL = "mlplatform.io/model"
BACKEND_LABEL = "mlplatform.io/backend"
ALIAS_ANNOTATION = "mlplatform.io/alias"
FINGERPRINT_ANNOTATION = "mlplatform.io/spec-fingerprint"
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"

HEALTH_PATHS: dict[Backend, tuple[str, str]] = {  # (readiness, liveness); ready only once a model is loaded
    "kserve": ("/v2/health/ready", "/livez"),
    "bentoml": ("/readyz", "/livez"),
}


@dataclass(frozen=True)
class Rollout:
    """What the pods serve: a registry alias, and the share of traffic a new revision gets (KServe canary)."""

    alias: str
    canary_percent: int | None = None


def resource_name(model: str) -> str:
    """Kubernetes names are DNS labels: ``my_model`` -> ``my-model`` (the model label keeps ``_``)."""
    return model.replace("_", "-")


def managed_selector(backend: Backend | None = None) -> str:
    """Label selector of every object this platform applies (for one backend, if given)."""
    selector = f"app.kubernetes.io/managed-by={MANAGED_BY}"
    return f"{selector},{BACKEND_LABEL}={backend}" if backend else selector


def image(settings: Settings) -> str:
    """``<registry>/mlplatform-serving:<tag>[@<digest>]``; the tag defaults to the platform's version so both move
    together, and a digest (``deploy.image_digest``) pins the exact image, since a tag can be moved."""
    deploy = settings.deploy
    tag = deploy.image_tag or importlib.metadata.version("mlplatform")
    reference = f"{deploy.image_registry.rstrip('/')}/{deploy.serving_image}:{tag}"
    return f"{reference}@{deploy.image_digest}" if deploy.image_digest else reference


@dataclass(frozen=True)
class SecretFile:
    """One secret setting as a file in ``MLP_SECRETS_DIR``: the file is named like the variable it replaces."""

    variable: str
    secret: str
    key: str


def secret_files(settings: Settings) -> list[SecretFile]:
    """The model servers' own credentials, from the Secrets the settings name (the chart's model servers get the
    same files): the prediction writer's URL and Redis's connection string, nothing else."""
    deploy = settings.deploy
    candidates = [
        ("MLP_SERVING__PREDICTION_LOG_URL", deploy.prediction_writer_secret, deploy.prediction_writer_url_key),
        ("MLP_FEAST__REDIS_CONNECTION_STRING", deploy.redis_secret, deploy.redis_secret_key),
    ]
    return [SecretFile(variable, secret, key) for variable, secret, key in candidates if secret]


def check_prediction_log(settings: Settings) -> None:
    """A server logging to PostgreSQL must get the writer's URL from somewhere, or it would have none in the pod.

    Refused before anything is applied: without ``deploy.prediction_writer_secret`` (or the older
    ``deploy.serving_secret``) the server would fail to start, or log with whichever database URL reached it.
    """
    deploy = settings.deploy
    if settings.serving.prediction_log == "postgres" and not (deploy.prediction_writer_secret or deploy.serving_secret):
        raise DeployError(
            "model servers log predictions to PostgreSQL (serving.prediction_log=postgres) but no Secret gives them "
            "the prediction writer's URL: set MLP_DEPLOY__PREDICTION_WRITER_SECRET (the chart sets it from "
            "postgresql.predictionWriter.secretName)"
        )


def labels(spec: ModelSpec, backend: Backend) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": resource_name(spec.name),
        "app.kubernetes.io/component": "model-server",
        "app.kubernetes.io/part-of": "mlplatform",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        MODEL_LABEL: spec.name,
        BACKEND_LABEL: backend,
    }


def _metadata(spec: ModelSpec, backend: Backend, namespace: str) -> Manifest:
    return {
        "name": resource_name(spec.name),
        "namespace": namespace,
        "labels": labels(spec, backend),
        "annotations": {FINGERPRINT_ANNOTATION: spec.fingerprint()},
    }


def _container(spec: ModelSpec, settings: Settings, backend: Backend, rollout: Rollout, name: str) -> Manifest:
    """The serving container, identical for both backends except the entry point and the health paths."""
    check_prediction_log(settings)
    deploy = settings.deploy
    ready_path, live_path = HEALTH_PATHS[backend]
    env_from: list[Manifest] = []
    if deploy.serving_secret:
        env_from.append({"secretRef": {"name": deploy.serving_secret, "optional": True}})
    entry = f"{deploy.image_servers_dir.rstrip('/')}/{ENTRY_POINTS[backend]}"
    return {
        "name": name,
        "image": image(settings),
        "imagePullPolicy": deploy.image_pull_policy,
        "command": ["python", entry, "--model", spec.name],
        "env": _server_env(settings, backend, rollout),
        "envFrom": env_from,
        "ports": [{"name": "http1" if backend == "kserve" else "http", "containerPort": PORT, "protocol": "TCP"}],
        "resources": {
            "requests": {"cpu": deploy.cpu_request, "memory": deploy.memory_request},
            "limits": {"cpu": deploy.cpu_limit, "memory": deploy.memory_limit},
        },
        "readinessProbe": {"httpGet": {"path": ready_path, "port": PORT}, "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {
            "httpGet": {"path": live_path, "port": PORT},
            "initialDelaySeconds": 30,
            "periodSeconds": 10,
            "failureThreshold": 6,
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": SERVING_UID,
            "runAsGroup": SERVING_UID,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "state", "mountPath": STATE_DIR},
            {"name": "tmp", "mountPath": HOME_DIR},
            {"name": "feast", "mountPath": deploy.feast_mount_path},
            *_secret_mounts(settings),
        ],
    }


def _secret_mounts(settings: Settings) -> list[Manifest]:
    """Read-only mounts of the volumes ``_secret_volumes`` declares (the same names, so either both or neither)."""
    deploy = settings.deploy
    mounts = []
    if secret_files(settings):
        mounts.append({"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True})
    if deploy.serving_auth_secret:
        mounts.append({"name": "serving-token", "mountPath": SERVING_AUTH_FILE.rsplit("/", 1)[0], "readOnly": True})
    if deploy.mlflow_auth_secret:
        mounts.append({"name": "mlflow-credentials", "mountPath": MLFLOW_CREDENTIALS_DIR, "readOnly": True})
    return mounts


def _secret_volumes(settings: Settings) -> list[Manifest]:
    """The servers' credentials as files: none of them optional, so a missing Secret stops the pod from starting
    (``kubectl describe`` names it) instead of starting a server that is open or logs nowhere."""
    deploy = settings.deploy
    volumes: list[Manifest] = []
    files = secret_files(settings)
    if files:
        sources = [{"secret": {"name": f.secret, "items": [{"key": f.key, "path": f.variable}]}} for f in files]
        volumes.append({"name": "secrets", "projected": {"defaultMode": SECRET_FILE_MODE, "sources": sources}})
    if deploy.serving_auth_secret:
        token_item = {"key": deploy.serving_auth_secret_key, "path": SERVING_AUTH_FILE.rsplit("/", 1)[1]}
        volumes.append(_secret_volume("serving-token", deploy.serving_auth_secret, token_item))
    if deploy.mlflow_auth_secret:
        credentials_item = {"key": deploy.mlflow_reader_credentials_key, "path": "credentials"}
        volumes.append(_secret_volume("mlflow-credentials", deploy.mlflow_auth_secret, credentials_item))
    return volumes


def _secret_volume(name: str, secret: str, item: Manifest) -> Manifest:
    return {"name": name, "secret": {"secretName": secret, "defaultMode": SECRET_FILE_MODE, "items": [item]}}


def _server_env(settings: Settings, backend: Backend, rollout: Rollout) -> list[Manifest]:
    """What makes this pod this deployment, plus the explicitly configured, non-secret service locations.

    ``env`` wins over ``envFrom``, so the serving keys here hold even if the Secret carries others.
    """
    env = {
        "HOME": HOME_DIR,
        "MLP_SERVING__HOST": "0.0.0.0",  # noqa: S104 - a pod serves its own network namespace
        "MLP_SERVING__PORT": str(PORT),
        "MLP_SERVING__BACKEND": backend,
        "MLP_SERVING__ALIAS": rollout.alias,
        "MLP_SERVING__PREDICTION_LOG": settings.serving.prediction_log,
        "MLP_SERVING__POLL_INTERVAL_S": f"{settings.serving.poll_interval_s:g}",
        "MLP_STATE_DIR": STATE_DIR,
        "MLP_FEAST__PROJECT": settings.feast.project,
        "MLP_FEAST__ONLINE_STORE": settings.feast.online_store,
        "MLP_FEAST__OFFLINE_STORE": settings.feast.offline_store,
    }
    explicit = {
        "MLP_MLFLOW__TRACKING_URI": settings.mlflow.tracking_uri,
        "MLP_FEAST__REGISTRY_PATH": settings.feast.registry_path,
        "MLP_FEAST__DATA_DIR": settings.feast.data_dir,
    }
    env |= {key: str(value) for key, value in explicit.items() if value is not None}
    if secret_files(settings):
        env["MLP_SECRETS_DIR"] = SECRETS_DIR
    if settings.deploy.serving_auth_secret:
        env["MLP_SERVING__AUTH_TOKEN_FILE"] = SERVING_AUTH_FILE
    return [{"name": key, "value": value} for key, value in env.items()]


def _pod_fields(settings: Settings) -> Manifest:
    """Pod-level fields shared by the InferenceService predictor and the BentoML pod template.

    No service-account token: a model server never talks to the Kubernetes API.  The Feast volume holds the
    registry file and offline sources the chart's ``feast.sharedVolume`` claim shares (an emptyDir without one).
    ``fsGroup`` owns the secret files, which are readable by that group only.
    """
    claim = settings.deploy.feast_volume_claim
    feast: Manifest = {"persistentVolumeClaim": {"claimName": claim, "readOnly": True}} if claim else {"emptyDir": {}}
    fields: Manifest = {
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": SERVING_UID,
            "runAsGroup": SERVING_UID,
            "fsGroup": SERVING_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumes": [
            {"name": "state", "emptyDir": {"sizeLimit": "2Gi"}},  # the same bounds as the chart's servers
            {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
            {"name": "feast", **feast},
            *_secret_volumes(settings),
        ],
    }
    if settings.deploy.service_account:
        fields["serviceAccountName"] = settings.deploy.service_account
    return fields


def inference_service(spec: ModelSpec, settings: Settings, rollout: Rollout, namespace: str) -> Manifest:
    """The InferenceService for ``spec``: custom predictor container, replicas, and the canary share if any.

    ``canaryTrafficPercent`` is KServe's own canary: the new revision gets that share, the last rolled-out revision
    the rest.  KServe routes it only in Serverless (Knative) mode; the deployer refuses a canary in RawDeployment
    mode instead of writing a field that would silently do nothing.
    """
    deploy = settings.deploy
    metadata = _metadata(spec, "kserve", namespace)
    metadata["annotations"] |= {MODE_ANNOTATION: deploy.kserve_mode, ALIAS_ANNOTATION: rollout.alias}
    predictor: Manifest = {
        "labels": labels(spec, "kserve"),
        "minReplicas": deploy.min_replicas,
        "maxReplicas": deploy.max_replicas,
        **_pod_fields(settings),
        "containers": [_container(spec, settings, "kserve", rollout, KSERVE_CONTAINER)],
    }
    if deploy.kserve_mode == "RawDeployment":
        metadata["annotations"]["serving.kserve.io/autoscalerClass"] = "hpa"
        predictor |= {"scaleMetric": "cpu", "scaleTarget": deploy.target_cpu_percent}
    if rollout.canary_percent is not None:
        predictor["canaryTrafficPercent"] = rollout.canary_percent
    return {
        "apiVersion": f"{KSERVE_GROUP}/{KSERVE_VERSION}",
        "kind": "InferenceService",
        "metadata": metadata,
        "spec": {"predictor": predictor},
    }


def bentoml_deployment(spec: ModelSpec, settings: Settings, rollout: Rollout, namespace: str) -> Manifest:
    """The BentoML server as a Deployment; ``replicas`` is left to the HorizontalPodAutoscaler (not applied)."""
    metadata = _metadata(spec, "bentoml", namespace)
    metadata["annotations"][ALIAS_ANNOTATION] = rollout.alias
    pod_labels = labels(spec, "bentoml")
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "selector": {"matchLabels": _selector(spec)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": {ALIAS_ANNOTATION: rollout.alias}},
                "spec": {
                    **_pod_fields(settings),
                    "containers": [_container(spec, settings, "bentoml", rollout, "bentoml")],
                },
            },
        },
    }


def bentoml_service(spec: ModelSpec, settings: Settings, namespace: str) -> Manifest:
    """ClusterIP Service on port 80 in front of the BentoML pods (the same port KServe's Services use)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(spec, "bentoml", namespace),
        "spec": {
            "type": "ClusterIP",
            "selector": _selector(spec),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def bentoml_autoscaler(spec: ModelSpec, settings: Settings, namespace: str) -> Manifest:
    """CPU-based HorizontalPodAutoscaler between ``deploy.min_replicas`` and ``deploy.max_replicas``."""
    deploy = settings.deploy
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(spec, "bentoml", namespace),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": resource_name(spec.name)},
            "minReplicas": deploy.min_replicas,
            "maxReplicas": deploy.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": deploy.target_cpu_percent},
                    },
                }
            ],
        },
    }


def bentoml_objects(spec: ModelSpec, settings: Settings, rollout: Rollout, namespace: str) -> list[Manifest]:
    """Deployment, Service and autoscaler, in the order they are applied."""
    return [
        bentoml_deployment(spec, settings, rollout, namespace),
        bentoml_service(spec, settings, namespace),
        bentoml_autoscaler(spec, settings, namespace),
    ]


def _selector(spec: ModelSpec) -> dict[str, str]:
    """Immutable once a Deployment exists, so it holds only what never changes: the model and the backend."""
    return {MODEL_LABEL: spec.name, BACKEND_LABEL: "bentoml"}
