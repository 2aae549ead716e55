"""The few Kubernetes API calls the deployer makes, through the official client, with plain dicts in and out.

Four verbs on four kinds, nothing else, so the platform's Role can be exactly ``RBAC_RULES``:

* apply: server-side apply (``PATCH`` with ``application/apply-patch+yaml``, field manager ``mlplatform``).  The API
  server merges and records field ownership, so a re-apply is idempotent, fields the platform stops setting are
  removed, and fields another manager owns (an HPA's replica count, a GitOps tool's labels) are left alone or
  reported as a conflict instead of overwritten.  Applying an object that does not exist creates it, which RBAC
  checks as ``create``.
* get, list (by label selector), delete.

Responses are read as JSON (``_preload_content=False``) rather than as the client's typed models: InferenceServices
have no typed model, and one representation keeps the deployer's status logic uniform.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlplatform.deploy.base import DeployError

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

Manifest = dict[str, Any]
FIELD_MANAGER = "mlplatform"
APPLY_PATCH = "application/apply-patch+yaml"


@dataclass(frozen=True)
class Kind:
    """A resource kind and how the typed client names it."""

    kind: str
    group: str
    version: str
    plural: str
    api: str  # attribute of ``kubernetes.client`` (typed kinds) or "CustomObjectsApi"
    snake: str = ""  # typed method suffix: patch_namespaced_<snake>

    @property
    def custom(self) -> bool:
        return self.api == "CustomObjectsApi"


INFERENCE_SERVICE = Kind("InferenceService", "serving.kserve.io", "v1beta1", "inferenceservices", "CustomObjectsApi")
DEPLOYMENT = Kind("Deployment", "apps", "v1", "deployments", "AppsV1Api", "deployment")
SERVICE = Kind("Service", "", "v1", "services", "CoreV1Api", "service")
AUTOSCALER = Kind(
    "HorizontalPodAutoscaler", "autoscaling", "v2", "horizontalpodautoscalers", "AutoscalingV2Api",
    "horizontal_pod_autoscaler",
)  # fmt: skip
KINDS = {kind.kind: kind for kind in (INFERENCE_SERVICE, DEPLOYMENT, SERVICE, AUTOSCALER)}

VERBS = ("get", "list", "create", "patch", "delete")
RBAC_RULES: tuple[dict[str, list[str]], ...] = (
    {"apiGroups": ["serving.kserve.io"], "resources": ["inferenceservices"], "verbs": list(VERBS)},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": list(VERBS)},
    {"apiGroups": [""], "resources": ["services"], "verbs": list(VERBS)},
    {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": list(VERBS)},
)
"""Everything the deployer may do, namespaced (a Role, never a ClusterRole). No ``watch``: readiness is polled."""


class KubernetesApi:
    """Apply, get, list and delete in one namespace; API errors become ``DeployError`` with the server's message."""

    def __init__(self, api_client: ApiClient, namespace: str, *, force_conflicts: bool = False) -> None:
        self.api_client = api_client
        self.namespace = namespace
        self.force_conflicts = force_conflicts

    def apply(self, manifest: Manifest) -> Manifest:
        """Server-side apply ``manifest``; returns the object as stored."""
        kind = KINDS[manifest["kind"]]
        name = manifest["metadata"]["name"]
        options = {"field_manager": FIELD_MANAGER, "force": self.force_conflicts, "_content_type": APPLY_PATCH}
        stored: Manifest = self._call(kind, name, "patch", manifest, **options)
        return stored

    def get(self, kind: Kind, name: str) -> Manifest | None:
        try:
            found: Manifest = self._call(kind, name, "get")
        except _NotFoundError:
            return None
        return found

    def list(self, kind: Kind, selector: str) -> list[Manifest]:
        items: list[Manifest] = self._call(kind, None, "list", label_selector=selector)["items"]
        return items

    def delete(self, kind: Kind, name: str) -> bool:
        """``False`` when there was nothing to delete."""
        try:
            self._call(kind, name, "delete")
        except _NotFoundError:
            return False
        return True

    def _call(self, kind: Kind, name: str | None, verb: str, body: Manifest | None = None, **options: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        method, args = self._method(kind, name, verb, body)
        try:
            response = method(*args, _preload_content=False, **options)
        except ApiException as error:
            if error.status == 404 and verb != "patch":
                raise _NotFoundError from None
            raise DeployError(_explain(kind, name, verb, error)) from None
        return json.loads(response.data)

    def _method(self, kind: Kind, name: str | None, verb: str, body: Manifest | None) -> tuple[Any, Sequence[Any]]:
        """The typed client method for (kind, verb) and its positional arguments."""
        import kubernetes.client

        api = getattr(kubernetes.client, kind.api)(self.api_client)
        target = [name] if name is not None else []
        payload = [body] if body is not None else []
        if kind.custom:
            action = {"get": "get", "list": "list", "patch": "patch", "delete": "delete"}[verb]
            scope = [kind.group, kind.version, self.namespace, kind.plural]
            return getattr(api, f"{action}_namespaced_custom_object"), [*scope, *target, *payload]
        action = {"get": "read", "list": "list", "patch": "patch", "delete": "delete"}[verb]
        return getattr(api, f"{action}_namespaced_{kind.snake}"), [*target, self.namespace, *payload]


class _NotFoundError(Exception):
    """404 on get/delete: the object does not exist (not an error for those verbs)."""


def _explain(kind: Kind, name: str | None, verb: str, error: Any) -> str:
    """The server's own message (a Status object), plus what to check for the errors people actually hit."""
    try:
        message = json.loads(error.body or "{}").get("message") or error.reason
    except ValueError:
        message = error.reason
    target = f"{kind.kind} {name}" if name else f"{kind.kind} objects"
    hint = ""
    if error.status == 404 and kind.custom:
        hint = " (is KServe installed? its InferenceService CRD was not found)"
    elif error.status == 403:
        hint = " (the platform's ServiceAccount lacks this permission; see docs/serving.md, Kubernetes RBAC)"
    elif error.status == 409 and verb == "patch":
        hint = " (another field manager owns these fields; set deploy.force_conflicts to take them over)"
    return f"Kubernetes API: {verb} {target} failed: HTTP {error.status}: {message}{hint}"
