"""Each component holds only its own credentials and is reachable only by the peers that need it: the migration
hook Job, the insert-only prediction writer, the model servers' bearer token and read-only MLflow user, MLflow's
basic auth, and the NetworkPolicies of the model servers and the Feast feature server."""

from __future__ import annotations

from typing import Any

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
from tests.support.tools import run_helm

SECRETS_DIR = "/var/run/secrets/mlplatform"


def _component(objects: list[Manifest], kind: str, component: str) -> Manifest:
    (found,) = [
        o for o in of_kind(objects, kind) if o["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    return found


def _secret_files(spec: Manifest) -> set[str]:
    volumes = [v for v in spec["volumes"] if v["name"] == "secrets"]
    return {item["path"] for v in volumes for s in v["projected"]["sources"] for item in s["secret"]["items"]}


def _env(container: Manifest) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container.get("env", [])}


def _policy_for(objects: list[Manifest], labels: dict[str, str]) -> Manifest:
    (policy,) = [
        p
        for p in of_kind(objects, "NetworkPolicy")
        if "ingress" in p["spec"] and selects(p["spec"]["podSelector"]["matchLabels"], labels)
    ]
    return policy


def test_every_namespaced_object_names_the_release_namespace(helm: str) -> None:
    for profile in PROFILES:
        for obj in render(helm, profile):
            assert obj["metadata"].get("namespace") == "mlplatform", (
                f"{profile}: {obj['kind']}/{obj['metadata']['name']}"
            )


def test_model_servers_hold_the_writer_url_the_token_and_the_reader_never_the_platform_db(helm: str) -> None:
    for profile in ("production", "bentoml", "kserve-canary"):
        servers = [
            w
            for w in workloads(render(helm, profile))
            if pod_labels(w)["app.kubernetes.io/component"] == "model-server"
        ]
        assert servers
        for server in servers:
            spec = pod_spec(server)
            assert spec is not None
            (container,) = spec["containers"]
            assert _secret_files(spec) == {"MLP_SERVING__PREDICTION_LOG_URL", "MLP_FEAST__REDIS_CONNECTION_STRING"}
            (files,) = [v for v in spec["volumes"] if v["name"] == "secrets"]
            writer = [
                s["secret"] for s in files["projected"]["sources"] if s["secret"]["name"] == "mlp-prediction-writer"
            ]
            assert writer and writer[0]["items"][0]["key"] == "url"
            assert "MLP_DB__URL" not in _env(container)
            assert _env(container)["MLP_SERVING__AUTH_TOKEN_FILE"] == "/var/run/secrets/mlplatform-serving/token"
            (mlflow,) = [v for v in spec["volumes"] if v["name"] == "mlflow-credentials"]
            assert mlflow["secret"]["items"] == [{"key": "reader-credentials", "path": "credentials"}]
            assert {"name": "mlflow-credentials", "mountPath": "/tmp/.mlflow", "readOnly": True} in container[
                "volumeMounts"
            ]


def test_the_token_secret_is_generated_unless_one_is_named(helm: str) -> None:
    generated = of_kind(render(helm, "minimal"), "Secret")
    assert [s["metadata"]["name"] for s in generated] == ["mlp-mlplatform-serving-token"]
    assert len(generated[0]["data"]["token"]) >= 64  # 48 characters, base64
    assert generated[0]["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert not of_kind(render(helm, "production"), "Secret")
    sets = ["serving.auth.enabled=false", "serving.models[0].name=fraud_detector"]
    result = run_helm(helm, "template", "mlp", str(CHART), values=[profile_file("minimal")], sets=sets)
    assert result.returncode == 0, result.stderr
    assert "MLP_SERVING__AUTH_TOKEN_FILE" not in result.stdout and "kind: Secret" not in result.stdout


def test_the_platform_holds_its_secrets_as_files_and_a_kubernetes_token_only_to_deploy(helm: str) -> None:
    for profile, managed in (("production", True), ("monitoring-off", False)):
        platform = _component(render(helm, profile), "Deployment", "platform")
        spec = pod_spec(platform)
        assert spec is not None and spec["automountServiceAccountToken"] is False
        (api,) = spec["containers"]
        assert not [e for e in api["env"] if "valueFrom" in e], "no secret in the environment"
        assert {"MLP_DB__URL", "MLP_API__SESSION_SECRET", "MLP_AIRFLOW__PASSWORD"} <= _secret_files(spec)
        mounts = {m["mountPath"] for m in api["volumeMounts"]}
        assert ("/var/run/secrets/kubernetes.io/serviceaccount" in mounts) is managed, profile
        assert "MLP_SERVING__AUTH_TOKEN_FILE" not in _env(api), "the platform sends no predictions"
    production = pod_spec(_component(render(helm, "production"), "Deployment", "platform"))
    assert production is not None and "MLP_API__OIDC__CLIENT_SECRET" in _secret_files(production)
    (token,) = [v for v in production["volumes"] if v["name"] == "kube-api-token"]
    assert token["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"] == 3607


def test_migrations_run_once_from_a_hook_job(helm: str) -> None:
    objects = render(helm, "production")
    job = _component(objects, "Job", "migrations")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "hook-succeeded" in job["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
    spec = pod_spec(job)
    assert spec is not None
    (upgrade,) = spec["initContainers"]
    (grant,) = spec["containers"]
    assert upgrade["args"] == ["mlplatform", "db", "upgrade"]
    assert grant["args"] == [
        "mlplatform",
        "db",
        "grant-prediction-writer",
        "--role",
        "mlp_prediction_writer",
        "--password-file",
        "/var/run/secrets/mlplatform-writer/password",
    ]
    assert _secret_files(spec) == {"MLP_DB__URL"}
    (password,) = [v for v in spec["volumes"] if v["name"] == "writer-password"]
    assert password["secret"] == {
        "secretName": "mlp-prediction-writer",
        "defaultMode": 0o440,
        "items": [{"key": "password", "path": "password"}],
    }
    # Hooks run before the release's objects exist: its ServiceAccount and NetworkPolicy are earlier hooks.
    for kind in ("ServiceAccount", "NetworkPolicy"):
        hook = _component(objects, kind, "migrations")
        assert int(hook["metadata"]["annotations"]["helm.sh/hook-weight"]) < 0
    policy = _component(objects, "NetworkPolicy", "migrations")
    assert policy["spec"]["ingress"] == [] and {"port": 5432, "protocol": "TCP"} in policy["spec"]["egress"][1]["ports"]


def test_mlflow_runs_basic_auth_and_only_the_writers_hold_the_writer(helm: str) -> None:
    objects = render(helm, "production")
    mlflow = pod_spec(_component(objects, "Deployment", "mlflow"))
    assert mlflow is not None
    (server,) = mlflow["containers"]
    assert server["args"][:4] == ["mlflow", "server", "--app-name", "basic-auth"]
    assert _env(server)["MLFLOW_AUTH_CONFIG_PATH"] == "/etc/mlflow-auth/basic_auth.ini"
    holders = {}
    for workload in workloads(objects):
        spec = pod_spec(workload)
        assert spec is not None
        for volume in spec.get("volumes", []):
            if volume["name"] == "mlflow-credentials":
                holders[pod_labels(workload)["app.kubernetes.io/component"]] = volume["secret"]["items"][0]["key"]
    assert holders == {"platform": "writer-credentials", "model-server": "reader-credentials"}
    result = run_helm(
        helm, "template", "mlp", str(CHART), values=[profile_file("minimal")], sets=["mlflow.auth.secretName="]
    )
    assert result.returncode != 0 and "/mlflow/auth/secretName" in result.stderr


def test_model_servers_admit_only_named_clients_the_platform_and_prometheus(helm: str) -> None:
    objects = render(helm, "minimal")
    policy = _policy_for(
        objects, {"app.kubernetes.io/part-of": "mlplatform", "app.kubernetes.io/component": "model-server"}
    )
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [
        {
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "mlplatform",
                    "app.kubernetes.io/instance": "mlp",
                    "app.kubernetes.io/component": "platform",
                }
            }
        },
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
    ]
    production = _policy_for(
        render(helm, "production"),
        {"app.kubernetes.io/part-of": "mlplatform", "app.kubernetes.io/component": "model-server"},
    )
    peers = production["spec"]["ingress"][0]["from"]
    assert peers[0] == {"namespaceSelector": {"matchLabels": {"mlplatform.io/prediction-client": "true"}}}
    assert len(peers) == 3


def test_the_feast_server_is_off_by_default_and_admits_platform_components_only(helm: str) -> None:
    assert not [
        d for d in of_kind(render(helm, "minimal"), "Deployment") if d["metadata"]["name"].endswith("feature-server")
    ]
    objects = render(helm, "production")
    server = _component(objects, "Deployment", "feature-server")
    (rule,) = _policy_for(objects, pod_labels(server))["spec"]["ingress"]
    components = {p["podSelector"]["matchLabels"].get("app.kubernetes.io/component") for p in rule["from"]}
    assert components == {"platform", "model-server", None}  # None: Airflow's workers, by their own labels
    airflow = [p for p in rule["from"] if "namespaceSelector" in p]
    assert airflow == [
        {
            "podSelector": {"matchLabels": {"tier": "airflow"}},
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "airflow"}},
        }
    ]


def test_trusted_proxies_reach_the_api_only_when_named(helm: str) -> None:
    api = _component(render(helm, "minimal"), "Deployment", "platform")
    assert "MLP_API__FORWARDED_ALLOW_IPS" not in _env(pod_spec(api)["containers"][0])  # type: ignore[index]
    sets = ["settings.api.forwardedAllowIps={10.0.0.0/8,192.168.1.5}"]
    result = run_helm(helm, "template", "mlp", str(CHART), values=[profile_file("minimal")], sets=sets)
    assert result.returncode == 0, result.stderr
    assert (
        'value: \'["10.0.0.0/8","192.168.1.5"]\'' in result.stdout
        or '"[\\"10.0.0.0/8\\",\\"192.168.1.5\\"]"' in result.stdout
    )
    bad = run_helm(
        helm,
        "template",
        "mlp",
        str(CHART),
        values=[profile_file("minimal")],
        sets=["settings.api.forwardedAllowIps={*}"],
    )
    assert bad.returncode != 0 and "forwardedAllowIps" in bad.stderr


def test_image_digests_pin_images_and_set_the_pull_policy(helm: str) -> None:
    for workload in workloads(render(helm, "production")):
        for container in pod_spec(workload)["containers"]:  # type: ignore[index]
            assert "@sha256:" in container["image"] and container["imagePullPolicy"] == "IfNotPresent"
    for workload in workloads(render(helm, "minimal")):
        for container in pod_spec(workload)["containers"]:  # type: ignore[index]
            assert "@" not in container["image"] and container["imagePullPolicy"] == "Always"
    bad = run_helm(
        helm, "template", "mlp", str(CHART), values=[profile_file("minimal")], sets=["image.digests.platform=latest"]
    )
    assert bad.returncode != 0 and "/image/digests/platform" in bad.stderr
