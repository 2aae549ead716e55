"""The smoke test's changes between the chart's rendered objects and what podman plays (tests/support/kube_play.py):
exactly the allowed ones are made, and any other difference is reported. Offline: no image, no podman."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from tests.helm.conftest import CHART, NAMESPACE, RELEASE, Manifest, pod_spec
from tests.support import kube_play
from tests.support.environment import REPO_ROOT
from tests.support.tools import run_helm

SMOKE_VALUES = REPO_ROOT / "tests" / "images" / "smoke-values.yaml"
SECRETS = {
    "mlp-platform-db": {"url": "postgresql+psycopg://p:pw@127.0.0.1:5432/platform"},
    "mlp-mlflow-db": {"url": "postgresql://m:pw@127.0.0.1:5432/mlflow"},
    "mlp-prediction-writer": {"password": "writer-pw", "url": "postgresql+psycopg://w:writer-pw@127.0.0.1/platform"},
    "mlp-redis": {"connection-string": "127.0.0.1:6379,db=3"},
    "mlp-platform": {
        "session-secret": "s" * 40,
        "admin-password": "admin-password-1",
        "alertmanager-webhook-token": "t" * 20,
        "airflow-password": "airflow-pw",
    },
    "mlp-mlflow-auth": {
        "basic_auth.ini": "[mlflow]\n",
        "writer-credentials": "w",
        "reader-credentials": "r",
        "flask-secret-key": "f" * 40,
    },
    "mlp-object-storage": {"access-key-id": "key", "secret-access-key": "secret"},
    "mlp-mlplatform-serving-token": {"token": "x" * 32},
}


@pytest.fixture(scope="module")
def rendered(helm: str) -> list[Manifest]:
    result = run_helm(
        helm,
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        values=[CHART / "ci" / "minimal-values.yaml", SMOKE_VALUES],
        sets=["objectStorage.endpointUrl=http://127.0.0.1:9000"],
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture()
def context(rendered: list[Manifest], tmp_path: Path) -> kube_play.PlayContext:
    return kube_play.PlayContext(SECRETS, kube_play.rendered_services(rendered), NAMESPACE, tmp_path)


def _played_objects(rendered: list[Manifest]) -> list[Manifest]:
    return [obj for obj in rendered if obj["kind"] in kube_play.PLAYED_KINDS]


def _platform(rendered: list[Manifest]) -> Manifest:
    (platform,) = [
        o for o in rendered if o["kind"] == "Deployment" and o["metadata"]["name"] == f"{RELEASE}-mlplatform-platform"
    ]
    return platform


def test_every_rendered_kind_is_played_or_named_as_needing_a_cluster(rendered: list[Manifest]) -> None:
    kinds = {obj["kind"] for obj in rendered}
    unclassified = kinds - kube_play.PLAYED_KINDS - kube_play.CLUSTER_ONLY_KINDS
    assert not unclassified, f"decide whether the smoke test plays these kinds: {sorted(unclassified)}"
    assert {"Deployment", "Job", "CronJob"} <= kinds


def test_the_played_objects_differ_only_as_allowed(rendered: list[Manifest], context: kube_play.PlayContext) -> None:
    for obj in _played_objects(rendered):
        played = kube_play.playable(obj, context)
        assert kube_play.unexplained_differences(obj, played, context) == []
        spec = pod_spec(obj) or {}
        played_spec = played.manifest["spec"] if played.manifest["kind"] == "Pod" else pod_spec(played.manifest)
        assert played_spec is not None and played_spec["hostNetwork"] is True
        for before, after in zip(spec["containers"], played_spec["containers"], strict=True):
            assert after["securityContext"] == before["securityContext"]
            assert after["image"] == before["image"]
            assert after.get("readinessProbe") == before.get("readinessProbe")


def test_jobs_become_pods_and_service_hosts_become_local(
    rendered: list[Manifest], context: kube_play.PlayContext
) -> None:
    (job,) = [obj for obj in rendered if obj["kind"] == "Job"]
    played = kube_play.playable(job, context).manifest
    assert played["kind"] == "Pod" and played["metadata"]["name"] == job["metadata"]["name"]
    assert [c["name"] for c in played["spec"]["initContainers"]] == ["upgrade"]
    platform = _platform(rendered)
    (api,) = pod_spec(kube_play.playable(platform, context).manifest)["containers"]  # type: ignore[index]
    env = {item["name"]: item.get("value") for item in api["env"]}
    assert env["MLP_MLFLOW__TRACKING_URI"].startswith("http://127.0.0.1:")


def test_secret_volumes_become_files_with_the_secret_values(
    rendered: list[Manifest], context: kube_play.PlayContext
) -> None:
    platform = _platform(rendered)
    played = kube_play.playable(platform, context)
    by_name = {path.name: content for path, content in played.files.items()}
    assert by_name["MLP_DB__URL"] == SECRETS["mlp-platform-db"]["url"]
    assert by_name["MLP_API__ADMIN_PASSWORD"] == SECRETS["mlp-platform"]["admin-password"]
    assert by_name["credentials"] == SECRETS["mlp-mlflow-auth"]["writer-credentials"]
    volumes = pod_spec(played.manifest)["volumes"]  # type: ignore[index]
    assert all("secret" not in volume and "projected" not in volume for volume in volumes)


def test_a_missing_secret_is_named() -> None:
    context = kube_play.PlayContext({}, frozenset(), NAMESPACE, Path("/nowhere"))
    with pytest.raises(KeyError, match="mlp-redis"):
        context.secret("mlp-redis", "connection-string")


def _tamper_security(played: Manifest) -> None:
    pod_spec(played)["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False  # type: ignore[index]


def _tamper_user(played: Manifest) -> None:
    pod_spec(played)["securityContext"]["runAsUser"] = 0  # type: ignore[index]


def _tamper_env(played: Manifest) -> None:
    pod_spec(played)["containers"][0]["env"].append({"name": "EXTRA", "value": "1"})  # type: ignore[index]


def _tamper_host(played: Manifest) -> None:
    container = pod_spec(played)["containers"][0]  # type: ignore[index]
    for item in container["env"]:
        if item["name"] == "MLP_MLFLOW__TRACKING_URI":
            item["value"] = "http://10.0.0.1:5000"


def _tamper_volume(played: Manifest) -> None:
    pod_spec(played)["volumes"][0] = {"name": "tmp", "hostPath": {"path": "/", "type": "Directory"}}  # type: ignore[index]


def _tamper_command(played: Manifest) -> None:
    pod_spec(played)["containers"][0]["args"] = ["sleep", "infinity"]  # type: ignore[index]


@pytest.mark.parametrize(
    "tamper", [_tamper_security, _tamper_user, _tamper_env, _tamper_host, _tamper_volume, _tamper_command]
)
def test_any_other_difference_is_reported(
    rendered: list[Manifest], context: kube_play.PlayContext, tamper: object
) -> None:
    platform = _platform(rendered)
    played = kube_play.playable(platform, context)
    tampered = kube_play.Played(copy.deepcopy(played.manifest), dict(played.files))
    tamper(tampered.manifest)  # type: ignore[operator]
    assert kube_play.unexplained_differences(platform, tampered, context), tamper


def test_a_secret_file_with_other_content_is_reported(rendered: list[Manifest], context: kube_play.PlayContext) -> None:
    platform = _platform(rendered)
    played = kube_play.playable(platform, context)
    path = next(path for path in played.files if path.name == "MLP_DB__URL")
    tampered = kube_play.Played(played.manifest, {**played.files, path: "sqlite:///elsewhere.db"})
    assert kube_play.unexplained_differences(platform, tampered, context)
