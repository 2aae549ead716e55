"""values.yaml and values.schema.json: every value has a schema entry (with a description), objects are closed,
and bad values are rejected by `helm template` with a message naming the value."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm.conftest import CHART, profile_file
from tests.support.tools import run_helm

SCHEMA: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
VALUES: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = SCHEMA["definitions"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _walk(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    """Paths of values.yaml with no schema entry, or an object schema that is not closed."""
    schema = _resolve(schema)
    problems = []
    if "description" not in schema and "properties" not in schema and "anyOf" not in schema:
        problems.append(f"{path}: no description")
    if isinstance(value, dict) and "properties" in schema:
        if schema.get("additionalProperties") is not False:
            problems.append(f"{path}: object schema is not closed")
        for key, item in value.items():
            if key not in schema["properties"]:
                problems.append(f"{path}.{key}: no schema entry")
            else:
                problems += _walk(item, schema["properties"][key], f"{path}.{key}")
        missing = set(schema["properties"]) - set(value)
        if missing and path != "":
            problems.append(f"{path}: schema properties absent from values.yaml: {sorted(missing)}")
    return problems


def test_every_value_has_a_schema_entry() -> None:
    assert SCHEMA["additionalProperties"] is False
    assert _walk(VALUES, SCHEMA, "") == []


def test_every_schema_property_is_in_values_yaml() -> None:
    assert set(SCHEMA["properties"]) == set(VALUES)


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["platform.replicas=-1"], "/platform/replicas': minimum: got -1, want 0"),
        (["feast.featureServer.replicas=-3"], "/feast/featureServer/replicas': minimum: got -3"),
        (["platform.replica=2"], "additional properties 'replica' not allowed"),
        (["surprise=1"], "additional properties 'surprise' not allowed"),
        (["postgresql.platform.secretName="], "/postgresql/platform/secretName': minLength: got 0, want 1"),
        (["settings.api.secretName="], "/settings/api/secretName': minLength: got 0, want 1"),
        (["serving.backend=triton"], "/serving/backend"),
        (["serving.models[0].name=Bad-Name"], "/serving/models/0/name"),
        (["platform.resources.limits=null"], "/platform/resources"),
    ],
)
def test_bad_values_are_rejected_with_the_values_path(helm: str, sets: list[str], message: str) -> None:
    result = run_helm(helm, "template", "mlp", str(CHART), values=[profile_file("minimal")], sets=sets)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_missing_secrets_are_named(helm: str) -> None:
    result = run_helm(helm, "template", "mlp", str(CHART))
    assert result.returncode != 0
    for path in ("/postgresql/platform/secretName", "/postgresql/mlflow/secretName", "/redis/secretName"):
        assert path in result.stderr, result.stderr


def test_canary_in_raw_deployment_mode_is_refused(helm: str) -> None:
    sets = ["serving.models[0].name=fraud_detector", "serving.models[0].canaryTrafficPercent=10"]
    result = run_helm(helm, "template", "mlp", str(CHART), values=[profile_file("minimal")], sets=sets)
    assert result.returncode != 0
    assert "canaryTrafficPercent needs serving.kserveMode: Serverless" in result.stderr


def test_oidc_issuer_needs_a_client_id(helm: str) -> None:
    sets = ["settings.api.oidc.issuer=https://login.example.com"]
    result = run_helm(helm, "template", "mlp", str(CHART), values=[profile_file("minimal")], sets=sets)
    assert result.returncode != 0
    assert "settings.api.oidc.clientId is required" in result.stderr


STAND_INS = {
    "MLP_DB__URL": "postgresql+psycopg://u:p@db:5432/mlp",
    "MLP_SERVING__PREDICTION_LOG_URL": "postgresql+psycopg://writer:p@db:5432/mlp",
    "MLP_ALERTS__WEBHOOK_TOKEN": "x" * 32,
}


def _secret_files(spec: dict[str, Any], container: dict[str, Any], secrets_dir: str) -> list[str]:
    """Names of the files the container finds in its secrets directory (the projected volume mounted there)."""
    (mount,) = [m for m in container.get("volumeMounts", []) if m["mountPath"] == secrets_dir]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    return [item["path"] for source in volume["projected"]["sources"] for item in source["secret"]["items"]]


def test_rendered_platform_settings_are_accepted_by_mlplatform_config(helm: str, tmp_path: Path) -> None:
    """Every MLP_* variable and secret file the chart gives platform code is a real setting with a valid value
    (secrets filled with stand-ins in a secrets directory laid out as the pod's)."""
    from mlplatform.config import Settings
    from tests.helm.conftest import pod_spec, render, workloads

    checked = 0
    for profile in ("minimal", "production", "bentoml"):
        for workload in workloads(render(helm, profile)):
            spec = pod_spec(workload)
            assert spec is not None
            for container in spec.get("initContainers", []) + spec["containers"]:
                env = {
                    item["name"]: item.get("value", "stand-in-secret-value-of-forty-characters")
                    for item in container.get("env", [])
                    if item["name"].startswith("MLP_")
                }
                if "MLP_SECRETS_DIR" not in env:
                    continue
                secrets = tmp_path / f"{profile}-{workload['metadata']['name']}-{container['name']}"
                secrets.mkdir()
                for name in _secret_files(spec, container, env.pop("MLP_SECRETS_DIR")):
                    (secrets / name).write_text(STAND_INS.get(name, "stand-in-secret-value-of-forty-characters"))
                with pytest.MonkeyPatch.context() as patch:
                    for key in list(os.environ):
                        if key.startswith("MLP_"):
                            patch.delenv(key)
                    for key, value in env.items():
                        patch.setenv(key, value)
                    patch.chdir(tmp_path)
                    settings = Settings(_secrets_dir=secrets)
                assert settings.mlflow.resolved_tracking_uri().startswith("http://mlp-mlplatform-mlflow")
                checked += 1
    assert checked >= 8, "the API, model servers, migrations and jobs all run platform code"
