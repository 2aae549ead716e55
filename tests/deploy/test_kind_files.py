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
