"""infrastructure/kind cannot run here (no Docker engine); what can be checked offline is checked."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from tests.support.environment import REPO_ROOT, skip_missing
from tests.support.tools import helm_path, run_helm

KIND = REPO_ROOT / "infrastructure" / "kind"
UP = (KIND / "up.sh").read_text()
IMAGES = ("platform", "serving", "airflow")


@pytest.mark.parametrize("script", ["up.sh", "smoke.sh"])
def test_scripts_parse(script: str) -> None:
    result = subprocess.run(["bash", "-n", str(KIND / script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_every_version_is_pinned_in_the_block_at_the_top_of_up_sh() -> None:
    block = UP.split("# -- Pinned versions", 1)[1].split("# ----", 1)[0]
    pinned = dict(re.findall(r'^([A-Z_]+)="([^"]+)"$', block, flags=re.MULTILINE))
    used = set(re.findall(r'--version "\$([A-Z_]+)"', UP))
    used |= {name for name in re.findall(r"@([A-Z_]+)@", (KIND / "backing-services.yaml").read_text())}
    used.add("KIND_NODE_IMAGE")
    assert used <= pinned.keys(), f"not pinned at the top of up.sh: {sorted(used - pinned.keys())}"
    assert not [value for value in pinned.values() if value.endswith(":latest")]
    assert "RawDeployment" in UP and "deploymentMode=RawDeployment" in UP


def test_the_secrets_the_chart_values_name_are_created_by_up_sh() -> None:
    values = (KIND / "values.yaml").read_text()
    named = set(re.findall(r"secretName: (mlp-[a-z-]+)", values)) | set(re.findall(r"envSecretName: (\S+)", values))
    created = set(re.findall(r'^secret "\$NS" (\S+)', UP, flags=re.MULTILINE))
    assert named and named <= created, f"values name Secrets up.sh never creates: {sorted(named - created)}"


def test_the_kind_values_render_with_the_chart() -> None:
    helm = helm_path()
    if helm is None:
        skip_missing("helm, not installed", "`make tools` (infrastructure/tools/get-helm.sh) puts it in tools/bin")
    assert helm is not None
    result = run_helm(helm, "template", "mlp", "helm/mlplatform", "-n", "mlplatform", values=[KIND / "values.yaml"])
    assert result.returncode == 0, result.stderr
    kinds = {doc["kind"] for doc in yaml.safe_load_all(result.stdout) if doc}
    assert {"Deployment", "Role", "PodMonitor"} <= kinds


def test_up_sh_builds_the_images_with_what_their_dockerfiles_declare() -> None:
    """A --build-arg the Dockerfiles no longer declare (an old AIRFLOW_IMAGE or UV_IMAGE) is ignored by the builder
    with a mere warning, so up.sh would believe it chose a base it did not; a secret id they do not mount is never
    read; and their RUN --mount lines need BuildKit."""
    dockerfiles = [(REPO_ROOT / "infrastructure" / "docker" / f"{image}.Dockerfile").read_text() for image in IMAGES]
    builds = re.findall(r"^[^\n]*docker build\b.*?(?<!\\)\n", UP, flags=re.MULTILINE | re.DOTALL)
    assert len(builds) == 1 and "for image in platform serving airflow" in UP, "up.sh builds the three images"
    passed = set(re.findall(r'--build-arg "([A-Z_]+)=', UP))
    declared = [set(re.findall(r"^ARG ([A-Z_]+)", text, flags=re.MULTILINE)) for text in dockerfiles]
    undeclared = passed - set.intersection(*declared)
    assert passed and not undeclared, f"up.sh passes build args not every Dockerfile declares: {sorted(undeclared)}"
    secrets = set(re.findall(r'--secret "id=([\w-]+),', UP))
    assert secrets == {"ca-bundle"}, f"up.sh passes secret ids {secrets}; the Dockerfiles mount ca-bundle"
    assert all("--mount=type=secret,id=ca-bundle" in text for text in dockerfiles), "the Dockerfiles mount ca-bundle"
    assert "DOCKER_BUILDKIT=1 docker build" in builds[0], "the Dockerfiles' RUN --mount needs BuildKit"
