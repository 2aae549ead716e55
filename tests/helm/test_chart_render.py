"""`helm lint --strict` and `helm template` for every value profile; every rendered object schema-validated; the
invariants a secure install needs (selectors, ports, probes, security context, RBAC, NetworkPolicies, PDBs)."""

from __future__ import annotations

from typing import Any

import pytest

from mlplatform.deploy.kubernetes.kube_api import RBAC_RULES
from tests.helm.conftest import (
    CHART,
    PROFILES,
    Manifest,
    of_kind,
    pod_labels,
    pod_spec,
    profile_file,
    render,
    selects,
    workloads,
)
from tests.support.kubernetes_schemas import SchemaMissingError, validate
from tests.support.tools import run_helm

EXPECTED_PROFILES = {"minimal", "production", "bentoml", "kserve-canary", "monitoring-off"}
# Everything the platform's Role may do: exactly what the Kubernetes deployer uses (its RBAC_RULES), in its own
# namespace, nothing more.
RBAC_ALLOWED = {
    (group, resource): set(rule["verbs"])
    for rule in RBAC_RULES
    for group in rule["apiGroups"]
    for resource in rule["resources"]
}
BENTOML_RESOURCES = {("apps", "deployments"), ("", "services"), ("autoscaling", "horizontalpodautoscalers")}
# Knative's queue-proxy sidecar, in front of the server in KServe's Serverless mode.
KNATIVE_QUEUE_PROXY_PORT = 8012
# Batch pods have nothing to probe (they end; activeDeadlineSeconds bounds a hang).
UNPROBED_KINDS = {"CronJob", "Job"}


def _name(obj: Manifest) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def test_the_issues_profiles_exist() -> None:
    assert set(PROFILES) >= EXPECTED_PROFILES


@pytest.mark.parametrize("profile", PROFILES)
def test_helm_lint_strict(helm: str, profile: str) -> None:
    result = run_helm(helm, "lint", "--strict", str(CHART), values=[profile_file(profile)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("profile", PROFILES)
def test_every_rendered_object_validates(helm: str, profile: str) -> None:
    objects = render(helm, profile)
    assert objects
    checked = {_name(obj): validate(obj) for obj in objects}
    assert len(checked) == len(objects), "two objects share a kind and name"


def test_a_kind_without_schema_fails() -> None:
    unknown = {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "x"}, "spec": {}}
    with pytest.raises(SchemaMissingError):
        validate(unknown)


def test_a_misspelt_custom_resource_field_fails() -> None:
    isvc: dict[str, Any] = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "x"},
        "spec": {"predictor": {"minReplica": 1, "containers": [{"name": "c", "image": "i"}]}},
    }
    with pytest.raises(AssertionError, match="minReplica"):
        validate(isvc)


@pytest.mark.parametrize("profile", PROFILES)
def test_selectors_match_pod_labels(helm: str, profile: str) -> None:
    objects = render(helm, profile)
    pods = [pod_labels(obj) for obj in workloads(objects)]
    for obj in objects:
        if obj["kind"] == "Deployment":
            assert selects(obj["spec"]["selector"]["matchLabels"], pod_labels(obj)), _name(obj)
        if obj["kind"] in {"Service", "PodDisruptionBudget"}:
            selector = obj["spec"]["selector"]
            selector = selector.get("matchLabels", selector)
            assert any(selects(selector, labels) for labels in pods), f"{_name(obj)} selects no pod"
        if obj["kind"] in {"ServiceMonitor"}:
            services = of_kind(objects, "Service")
            assert any(
                selects(obj["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"]) for svc in services
            ), _name(obj)
        if obj["kind"] == "HorizontalPodAutoscaler":
            target = obj["spec"]["scaleTargetRef"]
            assert any(o["kind"] == target["kind"] and o["metadata"]["name"] == target["name"] for o in objects)


@pytest.mark.parametrize("profile", PROFILES)
def test_service_ports_and_probes_agree_with_containers(helm: str, profile: str) -> None:
    objects = render(helm, profile)
    for workload in workloads(objects):
        spec = pod_spec(workload)
        assert spec is not None
        for container in spec["containers"]:
            names = {port["name"] for port in container.get("ports", [])}
            if workload["kind"] in UNPROBED_KINDS:
                continue
            for probe in ("livenessProbe", "readinessProbe"):
                assert probe in container, f"{_name(workload)}/{container['name']} lacks {probe}"
                port = container[probe]["httpGet"]["port"]
                assert port in names, f"{_name(workload)}/{container['name']} {probe} port {port} not declared"
    for service in of_kind(objects, "Service"):
        backing = [w for w in workloads(objects) if selects(service["spec"]["selector"], pod_labels(w))]
        declared = {p["name"] for w in backing for c in pod_spec(w)["containers"] for p in c.get("ports", [])}  # type: ignore[index]
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in declared, f"{_name(service)} targets undeclared port {port['targetPort']}"
    for monitor in of_kind(objects, "PodMonitor"):
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            assert endpoint["portNumber"] == 8080, "model servers listen on 8080 (MLP_SERVING__PORT)"
            servers = [
                w for w in workloads(objects) if selects(monitor["spec"]["selector"]["matchLabels"], pod_labels(w))
            ]
            for server in servers:
                ports = {p["containerPort"] for c in pod_spec(server)["containers"] for p in c.get("ports", [])}  # type: ignore[index]
                assert endpoint["portNumber"] in ports


@pytest.mark.parametrize("profile", PROFILES)
def test_every_container_is_secure_and_bounded(helm: str, profile: str) -> None:
    for workload in workloads(render(helm, profile)):
        spec = pod_spec(workload)
        assert spec is not None
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["seccompProfile"]["type"] == "RuntimeDefault", _name(workload)
        assert spec.get("automountServiceAccountToken", True) is False or workload["metadata"]["name"].endswith(
            "-platform"
        ), f"{_name(workload)} mounts a token it does not need"
        mounts_tmp = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        for container in spec.get("initContainers", []) + spec["containers"]:
            where = f"{_name(workload)}/{container['name']}"
            ctx = container["securityContext"]
            assert ctx["runAsNonRoot"] is True, where
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert ctx.get("privileged", False) is False, where
            assert ctx["capabilities"] == {"drop": ["ALL"]}, where
            assert ctx["seccompProfile"]["type"] == "RuntimeDefault", where
            assert ctx["runAsUser"] != 0, where
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), f"{where} lacks {bound}"
            tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            assert tmp and tmp[0]["name"] in mounts_tmp, f"{where} has no writable /tmp"


@pytest.mark.parametrize("profile", PROFILES)
def test_rbac_is_least_privilege(helm: str, profile: str) -> None:
    objects = render(helm, profile)
    assert not of_kind(objects, "ClusterRole") and not of_kind(objects, "ClusterRoleBinding")
    values = profile_values(profile)
    bentoml = values.get("serving", {}).get("backend") == "bentoml"
    for role in of_kind(objects, "Role"):
        granted: set[tuple[str, str]] = set()
        for rule in role["rules"]:
            assert "resourceNames" not in rule or rule["resourceNames"]
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    allowed = RBAC_ALLOWED.get((group, resource))
                    assert allowed is not None, f"{_name(role)} grants {group}/{resource}"
                    assert set(rule["verbs"]) == allowed, f"{_name(role)} grants {rule['verbs']} on {resource}"
                    granted.add((group, resource))
        assert bool(granted & BENTOML_RESOURCES) == bentoml, "Deployments/Services/HPAs only for the BentoML backend"
    for binding in of_kind(objects, "RoleBinding"):
        assert binding["roleRef"]["kind"] == "Role"
        for subject in binding["subjects"]:
            assert subject["kind"] == "ServiceAccount" and subject["namespace"] == "mlplatform"
    accounts = {sa["metadata"]["name"] for sa in of_kind(objects, "ServiceAccount")}
    used = {pod_spec(w)["serviceAccountName"] for w in workloads(objects)}  # type: ignore[index]
    assert used <= accounts
    components = {pod_labels(w)["app.kubernetes.io/component"] for w in workloads(objects)}
    assert len(used) == len(components), "one ServiceAccount per component"


@pytest.mark.parametrize("profile", PROFILES)
def test_every_workload_has_network_policies(helm: str, profile: str) -> None:
    objects = render(helm, profile)
    policies = of_kind(objects, "NetworkPolicy")
    deny = [p for p in policies if "ingress" not in p["spec"] and "egress" not in p["spec"]]
    assert deny and set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    for workload in workloads(objects):
        labels = pod_labels(workload)
        assert any(selects(d["spec"]["podSelector"]["matchLabels"], labels) for d in deny), _name(workload)
        own = [p for p in policies if p not in deny and selects(p["spec"]["podSelector"]["matchLabels"], labels)]
        assert own, f"{_name(workload)} has no NetworkPolicy of its own"
        exposed = {p["containerPort"] for c in pod_spec(workload)["containers"] for p in c.get("ports", [])}  # type: ignore[index]
        allowed = {port["port"] for p in own for rule in p["spec"].get("ingress", []) for port in rule["ports"]}
        if workload["kind"] == "InferenceService" and "Serverless" in str(workload["metadata"]["annotations"]):
            exposed.add(KNATIVE_QUEUE_PROXY_PORT)
        assert allowed <= exposed, f"{_name(workload)} admits traffic to ports it does not serve"


@pytest.mark.parametrize("profile", PROFILES)
def test_stateless_services_have_disruption_budgets(helm: str, profile: str) -> None:
    objects = render(helm, profile)
    budgets = of_kind(objects, "PodDisruptionBudget")
    for deployment in of_kind(objects, "Deployment"):
        assert any(selects(b["spec"]["selector"]["matchLabels"], pod_labels(deployment)) for b in budgets), (
            f"{_name(deployment)} has no PodDisruptionBudget"
        )


def test_profiles_render_what_they_promise(helm: str) -> None:
    canary = of_kind(render(helm, "kserve-canary"), "InferenceService")
    assert {i["metadata"]["name"] for i in canary} == {"fraud-detector", "churn-predictor"}
    for isvc in canary:  # KServe routes a canary share through Knative only
        assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"
    for isvc in of_kind(render(helm, "production"), "InferenceService"):
        assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    assert [i["spec"]["predictor"].get("canaryTrafficPercent") for i in canary] == [10, None] or [
        i["spec"]["predictor"].get("canaryTrafficPercent") for i in canary
    ] == [None, 10]
    bento = render(helm, "bentoml")
    assert not of_kind(bento, "InferenceService")
    assert len(of_kind(bento, "HorizontalPodAutoscaler")) == 1
    off = render(helm, "monitoring-off")
    assert not [o for o in off if o["apiVersion"].startswith("monitoring.coreos.com")]
    assert not of_kind(off, "Role") and not of_kind(off, "CronJob")
    minimal = render(helm, "minimal")
    assert len(of_kind(minimal, "ConfigMap")) >= 2 and of_kind(minimal, "PrometheusRule")


def test_credentials_only_come_from_secrets(helm: str) -> None:
    """No env value looks like a credential; every secret-bearing setting is a secretKeyRef."""
    secret_vars = {
        "MLP_DB__URL",
        "MLP_FEAST__REDIS_CONNECTION_STRING",
        "MLP_API__ADMIN_PASSWORD",
        "MLP_API__SESSION_SECRET",
        "MLP_ALERTS__WEBHOOK_TOKEN",
        "MLP_AIRFLOW__PASSWORD",
        "MLP_API__OIDC__CLIENT_SECRET",
        "MLFLOW_BACKEND_STORE_URI",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    }
    assert not of_kind(render(helm, "production"), "Secret")
    for profile in PROFILES:
        for workload in workloads(render(helm, profile)):
            for container in pod_spec(workload)["containers"]:  # type: ignore[index]
                for env in container.get("env", []):
                    if env["name"] in secret_vars:
                        assert "secretKeyRef" in env.get("valueFrom", {}), f"{env['name']} in {_name(workload)}"
                    assert "password" not in str(env.get("value", "")).lower()


def profile_values(profile: str) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(profile_file(profile).read_text()) or {}
