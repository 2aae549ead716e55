"""Chart tests: `helm` (infrastructure/tools/get-helm.sh puts a hash-verified binary in tools/bin) renders the
chart for every value profile in helm/mlplatform/ci/; the tests assert on the rendered objects.

Without helm (or kubernetes-validate) the tests are skipped with the reason; under CI every skip fails, so a green
CI means the chart was rendered and validated.
"""

from __future__ import annotations

import functools
import operator
import os
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml

from mlplatform.config import Settings
from mlplatform.deploy.kubernetes import manifests
from mlplatform.deploy.kubernetes.deployer import default_namespace
from mlplatform.specs import find_spec
from tests.support.environment import REPO_ROOT, skip_missing
from tests.support.tools import helm_path, run_helm

CHART = REPO_ROOT / "helm" / "mlplatform"
PROFILES_DIR = CHART / "ci"
PROFILES = sorted(path.name.removesuffix("-values.yaml") for path in PROFILES_DIR.glob("*-values.yaml"))
RELEASE = "mlp"
NAMESPACE = "mlplatform"
DEPLOYED_MODEL = "platform_deployed"  # a model no profile serves itself, so its objects' names never collide
Manifest = dict[str, Any]


@pytest.fixture(scope="session")
def helm() -> str:
    path = helm_path()
    if path is None:
        skip_missing("helm, not installed", "`make tools` (infrastructure/tools/get-helm.sh) puts it in tools/bin")
    assert path is not None
    return path


@pytest.fixture(scope="session", autouse=True)
def _kubernetes_validate() -> None:
    try:
        import kubernetes_validate  # noqa: F401
    except ImportError:
        skip_missing("kubernetes-validate, not installed", "`make install` (the dev dependency group of uv.lock)")


def profile_file(profile: str) -> Path:
    return PROFILES_DIR / f"{profile}-values.yaml"


@functools.cache
def _render_cached(helm: str, profile: str) -> tuple[Manifest, ...]:
    result = run_helm(helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, values=[profile_file(profile)])
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def render(helm: str, profile: str) -> list[Manifest]:
    """The objects `helm template` renders for one profile (cached per session; callers must not mutate)."""
    return list(_render_cached(helm, profile))


def of_kind(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [obj for obj in objects if obj["kind"] == kind]


def pod_spec(obj: Manifest) -> Manifest | None:
    """The pod spec of a workload (Deployment, CronJob, InferenceService predictor), else None."""
    kind = obj["kind"]
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        return _at(obj, "spec", "template", "spec")
    if kind == "CronJob":
        return _at(obj, "spec", "jobTemplate", "spec", "template", "spec")
    if kind == "InferenceService":
        return _at(obj, "spec", "predictor")
    return None


def pod_labels(obj: Manifest) -> dict[str, str]:
    kind = obj["kind"]
    if kind == "CronJob":
        return _at(obj, "spec", "jobTemplate", "spec", "template", "metadata", "labels")
    if kind == "InferenceService":
        return _at(obj, "spec", "predictor", "labels")
    return _at(obj, "spec", "template", "metadata", "labels")


def _at(obj: Manifest, *path: str) -> Manifest:
    """The mapping at ``path`` under ``obj`` (rendered YAML is untyped: this is where it gets its type)."""
    found: Manifest = functools.reduce(operator.getitem, path, obj)
    return found


def workloads(objects: list[Manifest]) -> list[Manifest]:
    return [obj for obj in objects if pod_spec(obj) is not None]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def platform_settings(objects: list[Manifest]) -> Settings | None:
    """The settings the chart's platform pod runs with (its MLP_* values), or None when it deploys no servers.

    Built from the environment exactly as the pod builds them, without MLP_SECRETS_DIR: its files exist in the pod
    only, and the deployer passes on Secret names, never a secret's value.
    """
    (platform,) = [
        o for o in of_kind(objects, "Deployment") if o["metadata"]["name"] == f"{RELEASE}-mlplatform-platform"
    ]
    (container,) = [c for c in pod_spec(platform)["containers"] if c["name"] == "api"]  # type: ignore[index]
    env = {item["name"]: item["value"] for item in container["env"] if item["name"].startswith("MLP_")}
    if env.get("MLP_DEPLOY__TARGET") != "kubernetes":
        return None
    env.pop("MLP_SECRETS_DIR")
    with mock.patch.dict(os.environ, env, clear=True):
        return Settings()


def platform_deployed_objects(objects: list[Manifest]) -> list[Manifest]:
    """What the platform of this rendered release applies when a model is deployed from the UI or CLI, on both
    backends (an InferenceService; a Deployment, Service and autoscaler), or nothing when it manages no servers."""
    settings = platform_settings(objects)
    if settings is None:
        return []
    bundled = find_spec([REPO_ROOT / "pipelines" / "models"], "fraud_detector")
    spec = bundled.model_copy(update={"name": DEPLOYED_MODEL})
    rollout = manifests.Rollout(settings.serving.alias)
    namespace = default_namespace(settings)
    return [
        manifests.inference_service(spec, settings, rollout, namespace),
        *manifests.bentoml_objects(spec, settings, rollout, namespace),
    ]
