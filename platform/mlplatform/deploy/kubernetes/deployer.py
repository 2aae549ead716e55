"""Model servers as Kubernetes objects: the production profile's deployer.

``deploy`` server-side applies the objects ``manifests`` builds and waits until the status says ready: the
InferenceService's ``Ready`` condition for the current generation, or a Deployment whose updated replicas are all
available.  A timeout names the condition's reason and message, which is what a person then looks up.

Canary (KServe in Serverless mode only, where ``canaryTrafficPercent`` routes traffic): the predictor's new revision
serves the ``challenger`` alias and gets the requested share; the last rolled-out revision keeps serving
``champion``.  ``set_canary(model, 100)`` promotes and ``set_canary(model, 0)`` rolls back, so the API's one canary
call covers the whole life cycle.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlplatform.config import Settings
from mlplatform.deploy.base import BACKENDS, Backend, Deployer, DeployError, Deployment
from mlplatform.deploy.kubernetes import manifests
from mlplatform.deploy.kubernetes.kube_api import (
    AUTOSCALER,
    DEPLOYMENT,
    INFERENCE_SERVICE,
    SERVICE,
    KubernetesApi,
    Manifest,
)
from mlplatform.deploy.kubernetes.manifests import Rollout
from mlplatform.specs import NAME_PATTERN, ModelSpec, SpecError, find_spec
from mlplatform.waiting import WaitTimeoutError, wait_until

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
BENTOML_KINDS = (DEPLOYMENT, SERVICE, AUTOSCALER)


def in_cluster() -> bool:
    """A service-account token is mounted: this process runs in a pod (how ``deploy.target=auto`` decides)."""
    return (SERVICE_ACCOUNT_DIR / "token").is_file()


def default_namespace(settings: Settings) -> str:
    """``deploy.namespace``, else the pod's own namespace (the platform manages its own namespace only)."""
    if settings.deploy.namespace:
        return settings.deploy.namespace
    pod_namespace = SERVICE_ACCOUNT_DIR / "namespace"
    return pod_namespace.read_text().strip() if pod_namespace.is_file() else "default"


def load_api_client() -> ApiClient:
    """In a pod: the mounted service account; elsewhere: the current kubeconfig context."""
    from kubernetes import client, config

    if in_cluster():
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    else:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


class KubernetesDeployer(Deployer):
    """KServe InferenceServices and BentoML Deployments in one namespace, applied with server-side apply."""

    def __init__(
        self,
        settings: Settings,
        api_client: ApiClient | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.namespace = default_namespace(settings)
        self.api = KubernetesApi(
            api_client or load_api_client(), self.namespace, force_conflicts=settings.deploy.force_conflicts
        )
        self._sleep = sleep
        self._clock = clock

    # ------------------------------------------------------------------------------------------------ the port
    def deploy(self, model: str, backend: Backend, port: int | None = None) -> Deployment:
        if port is not None:
            raise NotImplementedError(
                f"{type(self).__name__} serves every model in its own pods on container port {manifests.PORT}; "
                "a port can be chosen for local deploys only"
            )
        if backend not in BACKENDS:
            raise DeployError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        spec = self._spec(model)
        other = "bentoml" if backend == "kserve" else "kserve"
        if self._deployed_on(model) == other:
            raise DeployError(f"{model} is already served by {other}; run `mlplatform undeploy {model}`")
        stable = Rollout(alias=self.settings.serving.alias)
        if backend == "kserve":
            self.api.apply(manifests.inference_service(spec, self.settings, stable, self.namespace))
        else:
            for manifest in manifests.bentoml_objects(spec, self.settings, stable, self.namespace):
                self.api.apply(manifest)
        return self._wait_ready(model, backend)

    def undeploy(self, model: str) -> bool:
        """Deletes whatever either backend left, so a model whose spec is gone can still be removed."""
        if not re.fullmatch(NAME_PATTERN, model):
            raise DeployError(f"invalid model name {model!r}")
        name = manifests.resource_name(model)
        deleted = [self.api.delete(kind, name) for kind in (INFERENCE_SERVICE, *BENTOML_KINDS)]
        return any(deleted)

    def list(self) -> list[Deployment]:
        services = self.api.list(INFERENCE_SERVICE, manifests.managed_selector("kserve"))
        deployments = self.api.list(DEPLOYMENT, manifests.managed_selector("bentoml"))
        found = [self._isvc_deployment(obj) for obj in services] + [self._bento_deployment(obj) for obj in deployments]
        return sorted(found, key=lambda deployment: deployment.model)

    def set_canary(self, model: str, percent: int) -> Deployment:
        """``percent`` of traffic to a revision serving the canary alias; 100 promotes, 0 rolls back."""
        if not 0 <= percent <= 100:
            raise DeployError(f"canary percent must be between 0 and 100, got {percent}")
        if percent == 100:
            return self.promote_canary(model)
        if percent == 0:
            return self.rollback_canary(model)
        spec = self._canary_spec(model)
        canary = Rollout(alias=self.settings.deploy.canary_alias, canary_percent=percent)
        self.api.apply(manifests.inference_service(spec, self.settings, canary, self.namespace))
        return self._wait_ready(model, "kserve")

    # ------------------------------------------------------------------------------------------------- canary
    def promote_canary(self, model: str) -> Deployment:
        """All traffic to the canary, the previous revision retired; the service then serves ``champion`` again.

        Promote the challenger in the registry first (``mlplatform promote``): dropping ``canaryTrafficPercent``
        sends all traffic to the latest ready revision (the canary) and retires the last rolled-out one; the
        applied template serves ``champion`` (now the canary's version), so the revision that replaces the canary
        serves the same model, and the next training run's challenger never reaches production unreviewed.
        """
        spec = self._canary_spec(model)
        stable = Rollout(alias=self.settings.serving.alias)
        self.api.apply(manifests.inference_service(spec, self.settings, stable, self.namespace))
        return self._wait_ready(model, "kserve")

    def rollback_canary(self, model: str) -> Deployment:
        """Canary traffic to 0 at once, then the previous spec (``champion``, no canary) once it is ready.

        Two applies because KServe routes an unsplit service to the latest *ready* revision: applying the stable
        template straight away would send all traffic to the canary until the new revision is ready.  With
        ``canaryTrafficPercent: 0`` the last rolled-out (champion) revision keeps everything meanwhile.
        """
        spec = self._canary_spec(model)
        stable = Rollout(alias=self.settings.serving.alias)
        pinned = Rollout(alias=stable.alias, canary_percent=0)
        self.api.apply(manifests.inference_service(spec, self.settings, pinned, self.namespace))
        self._wait_ready(model, "kserve")
        self.api.apply(manifests.inference_service(spec, self.settings, stable, self.namespace))
        return self._wait_ready(model, "kserve")

    def _canary_spec(self, model: str) -> ModelSpec:
        """The spec of a model KServe can split traffic for; says why not otherwise."""
        spec = self._spec(model)
        backend = self._deployed_on(model)
        if backend is None:
            raise DeployError(f"{model} is not deployed; deploy it before changing its canary")
        if backend == "bentoml":
            raise NotImplementedError(
                f"{type(self).__name__} does not split traffic for BentoML Deployments; deploy {model} on kserve"
            )
        if self.settings.deploy.kserve_mode != "Serverless":
            raise NotImplementedError(
                f"{type(self).__name__} does not split traffic in KServe RawDeployment mode: KServe routes "
                "canaryTrafficPercent only in Serverless (Knative) mode; set MLP_DEPLOY__KSERVE_MODE=Serverless"
            )
        return spec

    # ------------------------------------------------------------------------------------------------ status
    def _wait_ready(self, model: str, backend: Backend) -> Deployment:
        """Poll the object's status until it is ready for its current generation, or fail naming the reason."""
        timeout = self.settings.deploy.ready_timeout_s
        kind = "InferenceService" if backend == "kserve" else "Deployment"
        name = f"{self.namespace}/{manifests.resource_name(model)}"
        detail = ""

        def ready() -> Deployment | None:
            nonlocal detail
            deployment = self._current(model, backend)
            detail = deployment.detail
            return deployment if deployment.ready else None

        try:
            return wait_until(
                ready,
                timeout=timeout,
                interval=self.settings.deploy.poll_interval_s,
                what=f"{kind} {name}",
                clock=self._clock,
                sleep=self._sleep,
            )
        except WaitTimeoutError:
            raise DeployError(f"{model} ({kind} {name}) not ready after {timeout:g} s: {detail}") from None

    def _current(self, model: str, backend: Backend) -> Deployment:
        name = manifests.resource_name(model)
        if backend == "kserve":
            obj = self.api.get(INFERENCE_SERVICE, name)
            if obj is None:
                raise DeployError(f"InferenceService {self.namespace}/{name} disappeared while waiting for it")
            return self._isvc_deployment(obj)
        obj = self.api.get(DEPLOYMENT, name)
        if obj is None:
            raise DeployError(f"Deployment {self.namespace}/{name} disappeared while waiting for it")
        return self._bento_deployment(obj)

    def _isvc_deployment(self, obj: Manifest) -> Deployment:
        status = obj.get("status") or {}
        ready_condition = _condition(status, "Ready")
        fresh = status.get("observedGeneration", 0) >= obj["metadata"].get("generation", 0)
        ready = fresh and ready_condition is not None and ready_condition.get("status") == "True"
        if ready:
            detail = _serving_detail(obj)
        elif ready_condition is None:
            detail = "no Ready condition yet (is the KServe controller running?)"
        elif not fresh:
            detail = "the KServe controller has not yet observed the latest spec"
        else:
            detail = _describe(ready_condition)
        url = (status.get("address") or {}).get("url") or status.get("url") or self._service_url(obj, "-predictor")
        return Deployment(model=_model_of(obj), backend="kserve", url=url, running=True, ready=ready, detail=detail)

    def _bento_deployment(self, obj: Manifest) -> Deployment:
        ready, detail = _rollout_status(obj)
        running = (obj.get("status") or {}).get("replicas", 0) > 0
        url = self._service_url(obj, "")
        return Deployment(model=_model_of(obj), backend="bentoml", url=url, running=running, ready=ready, detail=detail)

    def _service_url(self, obj: Manifest, suffix: str) -> str:
        return f"http://{obj['metadata']['name']}{suffix}.{self.namespace}.svc.cluster.local"

    def _deployed_on(self, model: str) -> Backend | None:
        name = manifests.resource_name(model)
        if self.api.get(INFERENCE_SERVICE, name) is not None:
            return "kserve"
        if self.api.get(DEPLOYMENT, name) is not None:
            return "bentoml"
        return None

    def _spec(self, model: str) -> ModelSpec:
        try:
            return find_spec(self.settings.model_roots, model)
        except SpecError as error:
            raise DeployError(str(error)) from None


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), None)


def _describe(condition: dict[str, Any]) -> str:
    """``Ready=False, reason RevisionFailed: <message>``: the words to search the operator's docs for."""
    text = f"{condition.get('type')}={condition.get('status')}"
    if condition.get("reason"):
        text += f", reason {condition['reason']}"
    return f"{text}: {condition['message']}" if condition.get("message") else text


def _serving_detail(obj: Manifest) -> str:
    predictor = obj["spec"]["predictor"]
    alias = obj["metadata"].get("annotations", {}).get(manifests.ALIAS_ANNOTATION, "?")
    percent = predictor.get("canaryTrafficPercent")
    return f"latest revision serves @{alias}" + (f" with {percent}% of traffic" if percent is not None else "")


def _rollout_status(obj: Manifest) -> tuple[bool, str]:
    """``kubectl rollout status`` for a Deployment: every replica updated and available, for this generation."""
    status = obj.get("status") or {}
    if status.get("observedGeneration", 0) < obj["metadata"].get("generation", 0):
        return False, "the Deployment controller has not yet observed the latest spec"
    progressing = _condition(status, "Progressing")
    if progressing is not None and progressing.get("reason") == "ProgressDeadlineExceeded":
        return False, _describe(progressing)
    wanted = obj["spec"].get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    available = status.get("availableReplicas", 0)
    if updated < wanted or status.get("replicas", 0) > updated or available < updated:
        detail = f"{available} of {wanted} replicas available, {updated} updated"
        available_condition = _condition(status, "Available")
        if available_condition is not None and available_condition.get("status") != "True":
            detail += f"; {_describe(available_condition)}"
        return False, detail
    return True, f"{available} replicas available"


def _model_of(obj: Manifest) -> str:
    labels = obj["metadata"].get("labels") or {}
    model: str = labels.get(manifests.MODEL_LABEL) or obj["metadata"]["name"]
    return model
