"""A fake Kubernetes API: just the endpoints the platform's deployer calls, served over real HTTP on 127.0.0.1.

No kube-apiserver runs here, so the deployer is tested against this fake through the real ``kubernetes`` client.
It is a fake, not an emulator: objects live in a dict, server-side apply is "the applied object replaces the
previous one, server fields kept" (the platform is the only field manager unless a test says otherwise), and
controllers are callbacks a test installs (``controller``) that edit an object's status when it is read.

What it does check, because the deployer's correctness depends on it:
* PATCH must be an apply (``application/apply-patch+yaml``) with a ``fieldManager``, and the body's kind and name
  must match the URL, as the real API server requires;
* ``metadata.generation`` moves only when ``spec`` changes, so re-applying the same object is visibly idempotent;
* a field owned by another manager is a 409 conflict unless ``force=true``.
Every request is recorded with the RBAC verb it needs (``create`` for an apply that creates).
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.environment import free_port
from tests.support.waiting import wait_started

Manifest = dict[str, Any]
Controller = Callable[[Manifest], None]
RESOURCES = {  # (group, version, plural) -> kind
    ("serving.kserve.io", "v1beta1", "inferenceservices"): "InferenceService",
    ("apps", "v1", "deployments"): "Deployment",
    ("", "v1", "services"): "Service",
    ("autoscaling", "v2", "horizontalpodautoscalers"): "HorizontalPodAutoscaler",
}


@dataclass(frozen=True)
class Call:
    """One request as the fake saw it, with the RBAC verb the real API server would have checked."""

    method: str
    verb: str
    group: str
    plural: str
    name: str | None
    content_type: str
    query: dict[str, str]
    body: Manifest | None


@dataclass
class FakeKubernetesApi:
    """State and behaviour of the fake; ``url`` is set while it is served."""

    installed: set[tuple[str, str, str]] = field(default_factory=lambda: set(RESOURCES))
    objects: dict[tuple[str, str, str], Manifest] = field(default_factory=dict)  # (plural, namespace, name)
    calls: list[Call] = field(default_factory=list)
    controllers: dict[str, Controller] = field(default_factory=dict)  # plural -> callback run on each GET
    foreign_owner: str | None = None  # a manager that owns the applied fields: applies conflict unless forced
    url: str = ""

    def applies(self, plural: str) -> list[Manifest]:
        """Bodies of the apply requests for ``plural``, in order."""
        return [c.body for c in self.calls if c.plural == plural and c.method == "PATCH" and c.body is not None]

    def get(self, plural: str, name: str, namespace: str = "models") -> Manifest | None:
        return self.objects.get((plural, namespace, name))

    # ---------------------------------------------------------------------------------------------- handlers
    async def collection(self, request: Request) -> JSONResponse:
        group, version, plural, namespace = _route(request)
        if (group, version, plural) not in self.installed:
            return _status(404, "NotFound", "the server could not find the requested resource")
        self._record(request, "list", group, plural, None, None)
        selector = _parse_selector(request.query_params.get("labelSelector", ""))
        items = [
            copy.deepcopy(obj)
            for (p, ns, _), obj in sorted(self.objects.items())
            if p == plural and ns == namespace and _matches(obj, selector)
        ]
        return JSONResponse({"kind": f"{RESOURCES[(group, version, plural)]}List", "items": items})

    async def item(self, request: Request) -> JSONResponse:
        group, version, plural, namespace = _route(request)
        name = request.path_params["name"]
        if (group, version, plural) not in self.installed:
            return _status(404, "NotFound", "the server could not find the requested resource")
        key = (plural, namespace, name)
        if request.method == "GET":
            self._record(request, "get", group, plural, name, None)
            if key not in self.objects:
                return _status(404, "NotFound", f'{plural} "{name}" not found')
            if plural in self.controllers:
                self.controllers[plural](self.objects[key])
            return JSONResponse(copy.deepcopy(self.objects[key]))
        if request.method == "DELETE":
            self._record(request, "delete", group, plural, name, None)
            if self.objects.pop(key, None) is None:
                return _status(404, "NotFound", f'{plural} "{name}" not found')
            return JSONResponse({"kind": "Status", "apiVersion": "v1", "status": "Success"})
        return await self._apply(request, group, version, plural, namespace, name)

    async def _apply(
        self, request: Request, group: str, version: str, plural: str, namespace: str, name: str
    ) -> JSONResponse:
        content_type = request.headers.get("content-type", "")
        if content_type != "application/apply-patch+yaml":
            return _status(415, "UnsupportedMediaType", f"the fake only accepts apply patches, got {content_type!r}")
        manager = request.query_params.get("fieldManager")
        if not manager:
            return _status(400, "BadRequest", "fieldManager is required for apply patch")
        body = yaml.safe_load(await request.body())
        key = (plural, namespace, name)
        verb = "patch" if key in self.objects else "create"
        self._record(request, verb, group, plural, name, body)
        expected_version = f"{group}/{version}" if group else version
        if body.get("kind") != RESOURCES[(group, version, plural)] or body.get("apiVersion") != expected_version:
            return _status(400, "BadRequest", f"body is {body.get('apiVersion')}/{body.get('kind')}, not {plural}")
        if body["metadata"].get("name") != name:
            return _status(400, "BadRequest", "the name in the body does not match the name in the URL")
        force = request.query_params.get("force") == "true"
        if self.foreign_owner and verb == "patch" and not force:
            message = f'Apply failed with 1 conflict: conflict with "{self.foreign_owner}": .spec'
            return _status(409, "Conflict", message)
        self.objects[key] = _merge(self.objects.get(key), body, manager)
        return JSONResponse(copy.deepcopy(self.objects[key]), status_code=201 if verb == "create" else 200)

    def _record(
        self, request: Request, verb: str, group: str, plural: str, name: str | None, body: Manifest | None
    ) -> None:
        self.calls.append(
            Call(
                method=request.method,
                verb=verb,
                group=group,
                plural=plural,
                name=name,
                content_type=request.headers.get("content-type", ""),
                query=dict(request.query_params),
                body=body,
            )
        )

    def app(self) -> Starlette:
        item_methods = ["GET", "PATCH", "DELETE"]
        routes = []
        for prefix in ("/api/{version}", "/apis/{group}/{version}"):  # core, then named API groups
            collection = f"{prefix}/namespaces/{{namespace}}/{{plural}}"
            routes += [
                Route(collection, self.collection, methods=["GET"]),
                Route(f"{collection}/{{name}}", self.item, methods=item_methods),
            ]
        return Starlette(routes=routes)


@contextmanager
def serve_fake_kubernetes_api(fake: FakeKubernetesApi) -> Iterator[FakeKubernetesApi]:
    """Serve ``fake`` with uvicorn on 127.0.0.1 in a thread for the duration of the block."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(fake.app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="fake-kubernetes-api", daemon=True)
    thread.start()
    wait_started(server, thread, 10, "the fake Kubernetes API")
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# ------------------------------------------------------------------------------------------------ controllers
def kserve_ready(obj: Manifest) -> None:
    """What the KServe controller reports for a healthy InferenceService (RawDeployment addresses)."""
    name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
    obj["status"] = {
        "observedGeneration": obj["metadata"]["generation"],
        "url": f"http://{name}-{namespace}.example.com",
        "address": {"url": f"http://{name}-predictor.{namespace}.svc.cluster.local"},
        "conditions": [
            {"type": "PredictorReady", "status": "True"},
            {"type": "Ready", "status": "True"},
        ],
    }


def kserve_ready_after(polls: int) -> Controller:
    """Not ready (a new revision still starting) for the first ``polls`` reads of each generation, then ready."""
    seen: dict[int, int] = {}

    def controller(obj: Manifest) -> None:
        generation = obj["metadata"]["generation"]
        seen[generation] = seen.get(generation, 0) + 1
        if seen[generation] > polls:
            kserve_ready(obj)
        else:
            obj["status"] = {
                "observedGeneration": generation,
                "conditions": [{"type": "Ready", "status": "False", "reason": "RevisionMissing"}],
            }

    return controller


def kserve_failing(reason: str, message: str) -> Controller:
    def controller(obj: Manifest) -> None:
        obj["status"] = {
            "observedGeneration": obj["metadata"]["generation"],
            "conditions": [{"type": "Ready", "status": "False", "reason": reason, "message": message}],
        }

    return controller


def deployment_available(obj: Manifest) -> None:
    """The Deployment controller's status once every replica of the current generation is available."""
    replicas = obj["spec"].get("replicas", 1)
    obj["status"] = {
        "observedGeneration": obj["metadata"]["generation"],
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
        "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}],
    }


# ---------------------------------------------------------------------------------------------------- helpers
def _route(request: Request) -> tuple[str, str, str, str]:
    params = request.path_params
    return params.get("group", ""), params["version"], params["plural"], params["namespace"]


def _merge(previous: Manifest | None, applied: Manifest, manager: str) -> Manifest:
    """The applied object with the server's fields (uid, generation, status) carried over."""
    obj = copy.deepcopy(applied)
    metadata = obj["metadata"]
    if previous is None:
        metadata |= {"uid": str(uuid.uuid4()), "generation": 1, "creationTimestamp": "2026-01-01T00:00:00Z"}
        obj["status"] = {}
    else:
        spec_changed = previous.get("spec") != applied.get("spec")
        old = previous["metadata"]
        metadata |= {
            "uid": old["uid"],
            "generation": old["generation"] + (1 if spec_changed else 0),
            "creationTimestamp": old["creationTimestamp"],
        }
        obj["status"] = copy.deepcopy(previous.get("status", {}))
    metadata["resourceVersion"] = str(time.monotonic_ns())
    metadata["managedFields"] = [{"manager": manager, "operation": "Apply"}]
    return obj


def _parse_selector(selector: str) -> dict[str, str]:
    pairs = (term.split("=", 1) for term in selector.split(",") if term)
    return dict(pairs)


def _matches(obj: Manifest, selector: dict[str, str]) -> bool:
    labels = obj["metadata"].get("labels") or {}
    return all(labels.get(key) == value for key, value in selector.items())


def _status(code: int, reason: str, message: str) -> JSONResponse:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason}
    return JSONResponse(body | {"code": code}, status_code=code)
