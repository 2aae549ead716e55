"""A second opinion on the chart: Checkov, a third-party scanner of Kubernetes manifests, over every rendered
profile. A failed check is fixed in the chart or waived in helm/checkov-waivers.yaml with its reason; a waiver that
no longer covers a failure fails the test too, so waivers cannot outlive their cause.

Each profile's folder also holds what its platform applies when a model is deployed from the UI or CLI (both
backends, built from the platform pod's settings): those model servers are held to the same checks and waivers.

Checkov runs offline: no platform API key, no policy download, no resource mapping, and every HTTP request it tries
(its update check) goes through a proxy on a closed loopback port.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm.conftest import DEPLOYED_MODEL, PROFILES, Manifest, platform_deployed_objects, render
from tests.support.environment import REPO_ROOT, skip_missing

WAIVERS_FILE = REPO_ROOT / "helm" / "checkov-waivers.yaml"
# Fields of a KServe predictor that are not pod fields (what is left is the model server's pod spec).
PREDICTOR_ONLY = {"minReplicas", "maxReplicas", "scaleMetric", "scaleTarget", "canaryTrafficPercent", "labels"}
CLOSED_PORT_PROXY = "http://127.0.0.1:9"


@dataclass(frozen=True)
class Failure:
    profile: str
    check: str
    resource: str
    name: str

    def __str__(self) -> str:
        return f"{self.profile}: {self.check} {self.resource} ({self.name})"


@dataclass(frozen=True)
class Waiver:
    check: str
    resource: str
    profiles: tuple[str, ...]
    reason: str

    def covers(self, failure: Failure) -> bool:
        return (
            failure.check == self.check
            and failure.profile in self.profiles
            and re.fullmatch(self.resource, failure.resource) is not None
        )


@dataclass(frozen=True)
class Scan:
    passed: dict[str, int]
    failures: list[Failure]
    written: set[str]  # <profile>/<file> of every object handed to Checkov
    checked: set[str]  # ... of those Checkov reported on


def load_waivers(path: Path = WAIVERS_FILE) -> list[Waiver]:
    entries = yaml.safe_load(path.read_text())["waivers"]
    waivers = [
        Waiver(entry["check"], entry["resource"], tuple(entry["profiles"]), entry["reason"].strip())
        for entry in entries
    ]
    for waiver in waivers:
        assert len(waiver.reason) >= 40, f"{waiver.check} {waiver.resource}: say why the chart keeps it"
        assert set(waiver.profiles) <= set(PROFILES), f"{waiver.check}: unknown profiles {waiver.profiles}"
        re.compile(waiver.resource)
    return waivers


def unwaived(failures: list[Failure], waivers: list[Waiver]) -> list[Failure]:
    return [failure for failure in failures if not any(w.covers(failure) for w in waivers)]


def stale(failures: list[Failure], waivers: list[Waiver]) -> list[str]:
    """Each waiver must cover a failure in every profile it names."""
    return [
        f"{waiver.check} {waiver.resource} covers no failure in profile {profile}"
        for waiver in waivers
        for profile in waiver.profiles
        if not any(waiver.covers(f) for f in failures if f.profile == profile)
    ]


def as_scanned(obj: Manifest) -> Manifest:
    """Checkov knows core kinds only: an InferenceService is scanned as the pod its predictor describes."""
    if obj["kind"] != "InferenceService":
        return obj
    predictor = {key: value for key, value in obj["spec"]["predictor"].items() if key not in PREDICTOR_ONLY}
    metadata = {key: obj["metadata"][key] for key in ("name", "namespace", "labels")}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": predictor}


def checkov_command() -> list[str]:
    executable = Path(sys.executable).parent / "checkov"
    if not executable.is_file():
        skip_missing("checkov, not installed", "`make install` (the dev dependency group of uv.lock)")
    return [str(executable), "--framework", "kubernetes", "--output", "json", "--skip-download"]


def offline_environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("BC_", "PRISMA_"))}
    proxies = {"HTTPS_PROXY": CLOSED_PORT_PROXY, "HTTP_PROXY": CLOSED_PORT_PROXY, "NO_PROXY": ""}
    return env | proxies | {"BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}


def _reports(output: str) -> list[dict[str, Any]]:
    """Checkov prints one report, or a list of them; an empty run prints a bare summary."""
    data = json.loads(output)
    reports = data if isinstance(data, list) else [data]
    return [report for report in reports if "results" in report]


@pytest.fixture(scope="module")
def scan(helm: str, tmp_path_factory: pytest.TempPathFactory) -> Scan:
    """Every profile rendered into its own folder, one file per object, scanned by one Checkov run."""
    root = tmp_path_factory.mktemp("checkov")
    written = set()
    for profile in PROFILES:
        folder = root / profile
        folder.mkdir()
        rendered = render(helm, profile)
        for index, obj in enumerate([*rendered, *platform_deployed_objects(rendered)]):
            scanned = as_scanned(obj)
            name = f"{index:03d}-{scanned['kind']}-{scanned['metadata']['name']}.yaml"
            (folder / name).write_text(yaml.safe_dump(scanned))
            written.add(f"{profile}/{name}")
    result = subprocess.run(
        [*checkov_command(), "--directory", str(root)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=offline_environment(),
        cwd=root,
    )
    assert result.returncode in (0, 1), result.stderr[-2000:]
    passed = dict.fromkeys(PROFILES, 0)
    failures = []
    checked = set()
    for report in _reports(result.stdout):
        for check in report["results"]["passed_checks"] + report["results"]["failed_checks"]:
            checked.add(check["file_path"].strip("/"))
        for check in report["results"]["passed_checks"]:
            passed[Path(check["file_path"]).parts[1]] += 1
        for check in report["results"]["failed_checks"]:
            profile = Path(check["file_path"]).parts[1]
            failures.append(Failure(profile, check["check_id"], check["resource"], check["check_name"]))
    return Scan(passed, failures, written, checked)


def test_checkov_scans_every_profile(scan: Scan) -> None:
    for profile in PROFILES:
        failed = sum(1 for failure in scan.failures if failure.profile == profile)
        print(f"checkov {profile}: {scan.passed[profile]} passed, {failed} failed (all waived or the test fails)")
    workloads = {path for path in scan.written if re.search(r"/\d+-(Deployment|CronJob|Job|Pod)-", path)}
    assert workloads and workloads <= scan.checked, f"Checkov did not check {sorted(workloads - scan.checked)}"
    core = {path for path in scan.written if re.search(r"/\d+-(Service|ServiceAccount|Role|RoleBinding)-", path)}
    assert core <= scan.checked, f"Checkov did not check {sorted(core - scan.checked)}"


def test_model_servers_are_scanned(scan: Scan) -> None:
    """The InferenceServices' pods are checked too (as Pods), so model servers are held to the same checks."""
    assert not [f for f in scan.failures if f.resource.startswith("Pod.") and f.check != "CKV_K8S_43"]
    assert any(f.resource.startswith("Pod.") for f in scan.failures if f.profile == "kserve-canary")


def test_platform_deployed_servers_are_scanned_and_pass_like_the_chart_s(scan: Scan) -> None:
    """The servers the platform deploys fail nothing the chart's own servers pass: digests aside (waived where the
    values give none), Checkov finds nothing, and in production (digests given) nothing at all."""
    name = DEPLOYED_MODEL.replace("_", "-")
    deployed = {path for path in scan.written if path.endswith(f"-{name}.yaml")}
    kinds = {re.sub(r"^\d+-", "", Path(path).name).split("-")[0] for path in deployed}
    assert kinds == {"Pod", "Deployment", "Service", "HorizontalPodAutoscaler"}, kinds
    assert {path for path in deployed if "-Pod-" in path or "-Deployment-" in path} <= scan.checked
    failed = [f for f in scan.failures if f.resource.endswith(f".{name}")]
    assert not [f for f in failed if f.check != "CKV_K8S_43"], failed
    assert not [f for f in failed if f.profile == "production"]
    assert {f.profile for f in failed} == {"minimal", "bentoml", "kserve-canary"}, "no digests in these profiles"


def test_every_failed_check_is_fixed_or_waived(scan: Scan) -> None:
    left = unwaived(scan.failures, load_waivers())
    assert not left, "Checkov failures without a waiver in helm/checkov-waivers.yaml:\n" + "\n".join(map(str, left))


def test_no_waiver_outlives_its_failure(scan: Scan) -> None:
    problems = stale(scan.failures, load_waivers())
    assert not problems, "stale waivers in helm/checkov-waivers.yaml:\n" + "\n".join(problems)


def test_production_images_are_pinned_and_never_waived(scan: Scan) -> None:
    """The production profile sets digests: no unpinned image and no pull-policy failure there."""
    checks = {f.check for f in scan.failures if f.profile == "production"}
    assert not checks & {"CKV_K8S_43", "CKV_K8S_15", "CKV_K8S_21", "CKV_K8S_38"}, checks


def test_an_unwaived_failure_and_a_stale_waiver_are_reported() -> None:
    failure = Failure("minimal", "CKV_K8S_21", "Service.default.mlp-mlplatform-platform", "default namespace")
    waiver = Waiver("CKV_K8S_35", r"Deployment\..*", ("minimal",), "a reason long enough to say why it is kept")
    assert unwaived([failure], [waiver]) == [failure]
    assert stale([failure], [waiver]) == [r"CKV_K8S_35 Deployment\..* covers no failure in profile minimal"]
    matching = Waiver("CKV_K8S_21", r"Service\..*", ("minimal",), "a reason long enough to say why it is kept")
    assert unwaived([failure], [matching]) == [] and stale([failure], [matching]) == []
