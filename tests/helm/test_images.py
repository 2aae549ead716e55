"""The Dockerfiles and the chart agree: image names, ports, the user, the environment the servers read, and the
commands the chart runs exist in the image that runs them. Static checks (no Docker engine runs here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helm.conftest import CHART, of_kind, pod_spec, render, workloads
from tests.support.environment import REPO_ROOT

DOCKER = REPO_ROOT / "infrastructure" / "docker"
IMAGES = {"platform": "mlplatform-platform", "serving": "mlplatform-serving", "airflow": "mlplatform-airflow"}
# Executables the chart runs -> the extra that installs them.
EXECUTABLES = {"mlplatform": None, "python": None, "mlflow": "training", "feast": "features"}


def _dockerfile(image: str) -> str:
    return (DOCKER / f"{image}.Dockerfile").read_text()


def _final_stage(text: str) -> str:
    return text.rsplit("\nFROM ", 1)[1]


def _extras(text: str) -> set[str]:
    return set(re.findall(r"--extra (\w+)", text))


def _env(text: str) -> dict[str, str]:
    return dict(re.findall(r"\b(MLP_[A-Z_]+|BENTOML_HOME|HOME)=(\S+)", _final_stage(text)))


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_dockerfile_basics(image: str) -> None:
    text = _dockerfile(image)
    assert text.count("\nFROM ") >= 2, "multi-stage"
    for base in re.findall(r"^ARG \w+_IMAGE=(\S+)", text, flags=re.M):
        assert re.search(r":[\w.-]+(@sha256:[0-9a-f]{64})?$", base) and ":latest" not in base, f"unpinned {base}"
    assert f'org.opencontainers.image.title="{IMAGES[image]}"' in text
    user = re.findall(r"^USER (\S+)", _final_stage(text), flags=re.M)
    assert user and not user[-1].startswith(("0", "root")), "runs as non-root"
    assert (REPO_ROOT / ".dockerignore").is_file()


def test_chart_image_names_are_the_dockerfiles() -> None:
    import yaml

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["image"]["platform"] == IMAGES["platform"]
    assert values["image"]["serving"] == IMAGES["serving"]
    assert values["image"]["registry"] == "ghcr.io/mlplatform"
    airflow = yaml.safe_load((REPO_ROOT / "helm" / "airflow-values.yaml").read_text())
    assert airflow["images"]["airflow"]["repository"] == f"ghcr.io/mlplatform/{IMAGES['airflow']}"


def test_containers_run_what_their_image_holds(helm: str) -> None:
    texts = {name: _dockerfile(key) for key, name in IMAGES.items()}
    for profile in ("production", "bentoml"):
        for workload in workloads(render(helm, profile)):
            for container in pod_spec(workload)["containers"]:  # type: ignore[index]
                image = container["image"].rsplit("/", 1)[1].split(":")[0]
                text = texts[image]
                uid = re.search(r"useradd --uid (\d+)", text)
                assert uid and int(uid.group(1)) == container["securityContext"]["runAsUser"]
                argv = container.get("command", []) + container["args"]
                extra = EXECUTABLES[argv[0]]
                assert extra is None or extra in _extras(text), f"{argv[0]} not installed in {image}"
                if argv[0] == "python":  # a script the image copies, relative to WORKDIR /app
                    copies = [line for line in text.splitlines() if line.startswith("COPY ")]
                    assert any(argv[1] in line for line in copies), f"{argv[1]} not in {image}"
                if "--chdir" in argv:
                    folder = Path(argv[argv.index("--chdir") + 1]).name
                    assert f"COPY {folder} ./{folder}" in text
                assert "WORKDIR /app" in _final_stage(text)


def test_ports_and_serving_environment_agree(helm: str) -> None:
    objects = render(helm, "production")
    serving_env = _env(_dockerfile("serving"))
    platform_env = _env(_dockerfile("platform"))
    servers = [w for w in workloads(objects) if w["kind"] == "InferenceService"]
    assert servers
    for server in servers:
        (container,) = pod_spec(server)["containers"]  # type: ignore[index]
        env = {item["name"]: item.get("value") for item in container["env"]}
        assert env["MLP_SERVING__PORT"] == serving_env["MLP_SERVING__PORT"] == "8080"
        assert env["MLP_SERVING__HOST"] == serving_env["MLP_SERVING__HOST"] == "0.0.0.0"
        assert container["ports"][0]["containerPort"] == 8080
    assert "EXPOSE 8080" in _dockerfile("serving") and "EXPOSE 8400" in _dockerfile("platform")
    (platform,) = [d for d in of_kind(objects, "Deployment") if d["metadata"]["name"].endswith("-platform")]
    (api,) = platform["spec"]["template"]["spec"]["containers"]
    assert api["ports"][0]["containerPort"] == int(platform_env["MLP_API__PORT"]) == 8400
    assert api["args"] == ["mlplatform", "api", "serve"]
    assert 'CMD ["mlplatform", "api", "serve"]' in _dockerfile("platform")
    # The schema is migrated by the migration hook Job alone (tests/helm/test_chart_least_privilege.py): no
    # long-running pod migrates, the API only checks the revision.
    assert all("initContainers" not in (pod_spec(w) or {}) for w in workloads(objects) if w["kind"] != "Job")
    # The image's HOME and state dir are the writable mounts the chart provides.
    mounts = {m["mountPath"] for m in api["volumeMounts"]}
    assert {platform_env["HOME"], platform_env["MLP_STATE_DIR"]} <= mounts


def test_airflow_image_has_the_dags_and_pins_airflow() -> None:
    text = _dockerfile("airflow")
    assert re.search(r"^ARG AIRFLOW_IMAGE=apache/airflow:\d+\.\d+\.\d+-python3\.11$", text, flags=re.M)
    version = re.search(r"apache/airflow:(\d+\.\d+\.\d+)", text).group(1)  # type: ignore[union-attr]
    assert f"ARG AIRFLOW_VERSION={version}" in text
    assert "COPY --chown=airflow:root pipelines/dags /opt/airflow/dags" in text
