"""Offline validation of rendered manifests: core kinds with kubernetes-validate (strict, pinned Kubernetes
version), custom resources against their CRDs' openAPIV3Schema, and a failure for any kind with neither."""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO_ROOT

KUBERNETES_VERSION = "1.31.0"
CRD_DIRS = (REPO_ROOT / "tests" / "helm" / "crds", REPO_ROOT / "tests" / "deploy" / "crds")
Manifest = dict[str, Any]


class SchemaMissingError(AssertionError):
    """A rendered kind that nothing can validate: a test failure, never a pass."""


def _close(schema: Any) -> Any:
    """Objects that list properties reject unknown ones (as the API server prunes/rejects), regexes made Python's."""
    if isinstance(schema, dict):
        schema = {key: _close(value) for key, value in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        pattern = schema.get("pattern")
        if isinstance(pattern, str) and pattern.startswith("^(?i)"):
            schema["pattern"] = "(?i)^" + pattern[len("^(?i)") :]
        return schema
    if isinstance(schema, list):
        return [_close(item) for item in schema]
    return schema


@functools.cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> closed JSON schema, for every served version of every CRD file."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for folder in CRD_DIRS:
        for path in sorted(folder.glob("*.yaml")):
            crd = yaml.safe_load(path.read_text())
            spec = crd["spec"]
            for version in spec["versions"]:
                if version.get("served", True):
                    schema = _close(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
                    # Metadata is the API server's to check (kubernetes-validate covers ObjectMeta for core kinds).
                    schema.setdefault("properties", {})["metadata"] = {"type": "object"}
                    found[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = schema
    return found


def validate_manifest(manifest: Manifest) -> str:
    """Validate one object; returns what validated it. Raises on an invalid object or an unknown kind."""
    import jsonschema
    import kubernetes_validate

    key = (manifest["apiVersion"], manifest["kind"])
    if key in crd_schemas():
        validator = jsonschema.Draft202012Validator(crd_schemas()[key])
        errors = sorted(validator.iter_errors(manifest), key=lambda error: list(error.absolute_path))
        if errors:
            detail = "; ".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in errors[:5])
            raise AssertionError(f"{key[1]} {manifest['metadata'].get('name')}: {detail}")
        return "crd"
    try:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError as error:
        raise SchemaMissingError(f"no schema for {key[0]} {key[1]}: add its CRD to tests/helm/crds/") from error
    except kubernetes_validate.ValidationError as error:
        raise AssertionError(f"{key[1]} {manifest['metadata'].get('name')}: {error}") from error
    return "kubernetes"


def pattern_ok(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


def load_yaml_file(path: Path) -> Any:
    return yaml.safe_load(path.read_text())
