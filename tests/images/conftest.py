"""The image smoke test (`make images-smoke`, after `make images`): the chart's pods, rendered by `helm template` for
a minimal profile, played by podman from the images, against this machine's PostgreSQL and Redis and an S3 endpoint
(moto's server). Not part of `make test` (pyproject's addopts ignore this folder); `.ci/run` runs it.

One module-scoped fixture brings the release up in the order a cluster would (the migration hook Job, then MLflow
and the platform), the tests check what each part answers, and everything is removed at the end.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support import kube_play
from tests.support.containers import Podman
from tests.support.environment import REPO_ROOT, free_port, scratch_postgres
from tests.support.tools import helm_path, run_helm
from tests.support.waiting import wait_for

CHART = REPO_ROOT / "helm" / "mlplatform"
SMOKE_VALUES = Path(__file__).with_name("smoke-values.yaml")
NAMESPACE = "mlplatform"
REGISTRY = "localhost/mlplatform"
TAG = str(yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"])
IMAGES = {name: f"{REGISTRY}/mlplatform-{name}:{TAG}" for name in ("platform", "serving", "airflow")}
ARTIFACT_BUCKET = "mlflow-artifacts"
ADMIN = "admin"
Manifest = dict[str, Any]
UNFINISHED = frozenset({"created", "configured", "initialized", "running"})  # podman's states before an exit


@dataclass
class Release:
    """The played release: how to reach its parts, and what to remove afterwards."""

    podman: Podman
    folder: Path
    objects: list[Manifest]
    context: kube_play.PlayContext
    ports: dict[str, int]
    admin_password: str
    serving_token: str
    artifacts_url: str  # the S3 bucket MLflow stores artifacts in
    played: list[Path] = field(default_factory=list)

    def workload(self, kind: str, component: str) -> Manifest:
        (found,) = [
            obj
            for obj in self.objects
            if obj["kind"] == kind and obj["metadata"]["labels"].get("app.kubernetes.io/component") == component
        ]
        return found

    def play(self, obj: Manifest) -> kube_play.Played:
        """Play one rendered object (changed as kube_play allows, nothing else: asserted) and return it."""
        played = kube_play.playable(obj, self.context)
        assert kube_play.unexplained_differences(obj, played, self.context) == []
        for path, content in played.files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            os.chown(path, 10001, 10001)
            path.chmod(0o440)
        path = self.podman.kube_file([played.manifest], self.folder, obj["metadata"]["name"])
        self.played.append(path)  # before playing: a pod whose start fails is still taken down
        self.podman.play(path)
        return played

    def container(self, obj: Manifest, name: str) -> str:
        """The podman name of container ``name`` of the pod played for ``obj``."""
        pod = obj["metadata"]["name"]
        containers = self.podman.containers_of(pod)
        matches = [c for c in containers if c.endswith(f"-{name}")]
        assert matches, f"no container {name} in pod {pod}: {containers}"
        return matches[0]

    def exec(self, obj: Manifest, container: str, *argv: str, timeout: float = 600) -> str:
        """Run a command in a running container, as `kubectl exec` would; its output, or a failure with it."""
        result = self.podman.run("exec", self.container(obj, container), *argv, check=False, timeout=timeout)
        assert result.returncode == 0, f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
        return result.stdout

    def wait_ready(self, obj: Manifest, timeout: float = 240) -> None:
        """Wait until every container's readiness probe (an httpGet on the host network) answers 200-399."""
        spec = kube_play.pod_template(obj)["spec"]
        for container in spec["containers"]:
            probe = container["readinessProbe"]["httpGet"]
            port = {p["name"]: p["containerPort"] for p in container["ports"]}.get(probe["port"], probe["port"])
            url = f"http://127.0.0.1:{port}{probe['path']}"
            name = self.container(obj, container["name"])
            try:
                wait_for(
                    functools.partial(self._answers, url, name), timeout, f"readiness of {name} at {url}", interval=1
                )
            except AssertionError as error:
                raise AssertionError(f"{error}; its log ends:\n{self.podman.logs(name)}") from None

    def _answers(self, url: str, container: str) -> bool:
        state = self.podman.inspect(container)["State"]
        if not state["Running"]:
            raise AssertionError(f"{container} stopped ({state['ExitCode']}):\n{self.podman.logs(container)}")
        try:
            return 200 <= httpx.get(url, timeout=5).status_code < 400
        except httpx.HTTPError:
            return False

    def run_to_completion(self, obj: Manifest, timeout: float = 600) -> None:
        """Play a Job or CronJob as a Pod and wait for its containers to exit 0."""
        self.play(obj)
        spec = kube_play.pod_template(obj)["spec"]
        last = spec["containers"][-1]["name"]
        name = self.container(obj, last)
        deadline = time.monotonic() + timeout
        while self.podman.inspect(name)["State"]["Status"] in UNFINISHED:
            assert time.monotonic() < deadline, f"{name} still runs after {timeout} s:\n{self.podman.logs(name)}"
            time.sleep(1)
        for container in self.podman.containers_of(obj["metadata"]["name"]):
            code = self.podman.inspect(container)["State"]["ExitCode"]
            assert code == 0, f"{container} exited {code}:\n{self.podman.logs(container)}"


@pytest.fixture(scope="module")
def podman() -> Podman:
    engine = Podman(IMAGES["platform"])
    missing = [image for image in IMAGES.values() if engine.run("image", "exists", image, check=False).returncode]
    assert not missing, f"build the images first (make images): missing {missing}"
    return engine


@contextlib.contextmanager
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free local port, with the artifact bucket MLflow writes to."""
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _http_up(url), 60, "moto's S3 server", interval=0.2)
        # moto takes an unsigned request: creating the bucket needs no S3 client.
        httpx.put(f"{url}/{ARTIFACT_BUCKET}", timeout=10).raise_for_status()
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def _http_up(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
    except httpx.HTTPError:
        return False
    return True


def _secrets(
    platform_db: str, mlflow_db: str, writer: str, writer_url: str, redis: str, admin: str
) -> dict[str, dict[str, str]]:
    """The Secrets a user creates before `helm install` (the names the minimal profile gives)."""
    mlflow_admin = secrets.token_urlsafe(16)
    credentials = f"[mlflow]\nmlflow_tracking_username = {ADMIN}\nmlflow_tracking_password = {mlflow_admin}\n"
    return {
        "mlp-platform-db": {"url": platform_db.replace("postgresql://", "postgresql+psycopg://")},
        "mlp-mlflow-db": {"url": mlflow_db},
        "mlp-prediction-writer": {"password": writer, "url": writer_url},
        "mlp-redis": {"connection-string": redis},
        "mlp-platform": {
            "session-secret": secrets.token_urlsafe(32),
            "admin-password": admin,
            "alertmanager-webhook-token": secrets.token_urlsafe(20),
            "airflow-password": secrets.token_urlsafe(12),
        },
        # MLflow's basic auth: its users in a file on the pod's own /tmp (one replica); the platform and the model
        # server sign in as its admin, since creating the writer and reader users is a step the docs leave to you.
        "mlp-mlflow-auth": {
            "basic_auth.ini": (
                "[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:////tmp/basic_auth.db\n"
                f"admin_username = {ADMIN}\nadmin_password = {mlflow_admin}\n"
            ),
            "writer-credentials": credentials,
            "reader-credentials": credentials,
            "flask-secret-key": secrets.token_urlsafe(32),
        },
        "mlp-object-storage": {"access-key-id": "smoke", "secret-access-key": "smoke"},
    }


def _render(release: str, sets: list[str]) -> list[Manifest]:
    helm = helm_path()
    assert helm, "helm is missing: `make tools` puts it in tools/bin"
    result = run_helm(
        helm,
        "template",
        release,
        str(CHART),
        "--namespace",
        NAMESPACE,
        values=[CHART / "ci" / "minimal-values.yaml", SMOKE_VALUES],
        sets=sets,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _chart_secret(objects: list[Manifest], name: str) -> dict[str, str]:
    import base64

    (secret,) = [o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"] == name]
    if "stringData" in secret:
        return dict(secret["stringData"])
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


@pytest.fixture(scope="module")
def release(
    podman: Podman, postgres_server_url: str, redis_address: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    folder = tmp_path_factory.mktemp("smoke")
    suffix = uuid.uuid4().hex[:8]
    # Names of their own (pods, volume, Feast project, role): a run never meets another's leftovers.
    name, project, writer_role = f"smoke{suffix}", f"smoke_{suffix}", f"mlp_smoke_writer_{suffix}"
    claim = f"{name}-feast"
    ports = {"mlflow": free_port(), "platform": free_port(), "serving": free_port()}
    admin_password, writer_password = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    with contextlib.ExitStack() as stack:
        # Removed last: the role holds grants in the platform database until that is dropped.
        stack.callback(_remove_writer_role, postgres_server_url, writer_role)
        stack.callback(_remove_feature_rows, redis_address, project)
        platform_db = stack.enter_context(scratch_postgres(postgres_server_url, "mlp_smoke"))
        mlflow_db = stack.enter_context(scratch_postgres(postgres_server_url, "mlp_smoke_mlflow"))
        s3 = stack.enter_context(s3_endpoint())
        server = postgres_server_url.split("@")[-1].split("/")[0]
        writer_url = f"postgresql+psycopg://{writer_role}:{writer_password}@{server}/{platform_db.rsplit('/', 1)[1]}"
        user_secrets = _secrets(platform_db, mlflow_db, writer_password, writer_url, redis_address, admin_password)
        objects = _render(
            name,
            [
                f"mlflow.port={ports['mlflow']}",
                f"platform.port={ports['platform']}",
                f"serving.port={ports['serving']}",
                f"objectStorage.endpointUrl={s3}",
                f"feast.project={project}",
                f"postgresql.predictionWriter.role={writer_role}",
                f"feast.sharedVolume.existingClaim={claim}",
            ],
        )
        token = _chart_secret(objects, f"{name}-mlplatform-serving-token")
        context = kube_play.PlayContext(
            {**user_secrets, f"{name}-mlplatform-serving-token": token},
            kube_play.rendered_services(objects),
            NAMESPACE,
            folder / "secrets",
        )
        podman.run("volume", "create", claim)
        release = Release(
            podman, folder, objects, context, ports, admin_password, token["token"], f"{s3}/{ARTIFACT_BUCKET}"
        )
        stack.callback(podman.run, "volume", "rm", "--force", claim, check=False)
        stack.callback(_down_all, release)
        # In a cluster's order: the migration hook Job, then MLflow and the platform.
        release.run_to_completion(release.workload("Job", "migrations"))
        for component in ("mlflow", "platform"):
            release.play(release.workload("Deployment", component))
        for component in ("mlflow", "platform"):
            release.wait_ready(release.workload("Deployment", component))
        yield release


def _down_all(release: Release) -> None:
    for played in reversed(release.played):
        release.podman.down(played)


def _remove_feature_rows(address: str, project: str) -> None:
    """Delete the Redis keys of the smoke test's Feast project (each key ends with the project's name)."""
    import redis

    host, _, port = address.partition(":")
    client = redis.Redis(host=host, port=int(port or 6379))
    for key in client.scan_iter(match=f"*{project}*", count=1000):
        client.delete(key)
    client.close()


def _remove_writer_role(server_url: str, role: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(f"{server_url}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
    engine.dispose()
