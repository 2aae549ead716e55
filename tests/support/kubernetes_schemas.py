"""Offline schema validation of Kubernetes objects: no API server runs here, so schemas stand in for it.

* Core kinds: ``kubernetes-validate --strict`` at one pinned Kubernetes version (unknown fields fail).
* Custom resources: their CRDs' ``openAPIV3Schema`` (tests/support/crds/, see PROVENANCE.md), closed so an unknown
  field fails (the API server prunes or rejects unknown fields; a JSON Schema would let them through).
* Any other kind fails: a manifest with no schema is not validated, so it must not pass.

Used for the deployer's manifests (tests/deploy) and the chart's rendered objects (tests/helm).
"""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

# The newest version the installed kubernetes-validate ships schemas for (its package's kubernetes-json-schema/).
KUBERNETES_VERSION = "1.37.0"
CRD_DIR = Path(__file__).parent / "crds"
Manifest = dict[str, Any]
# Object names the API server accepts: DNS-1123 subdomains; Services (and KServe's InferenceServices, which name
# Services after themselves) need DNS-1035 labels.
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_NAMED_KINDS = {"Service", "InferenceService"}


class SchemaMissingError(AssertionError):
    """A kind that nothing can validate: a test failure, never a pass."""


def validate(manifest: Manifest) -> str:
    """Validate one object; return what validated it (``"crd"`` or ``"kubernetes"``).

    Raises ``AssertionError`` naming the kind, the field and the problem, and ``SchemaMissingError`` for a kind
    with neither a Kubernetes schema nor a CRD.
    """
    key = (manifest.get("apiVersion", ""), manifest.get("kind", ""))
    _check_name(key[1], manifest.get("metadata", {}).get("name", ""))
    if key in crd_schemas():
        _validate_custom(manifest, crd_schemas()[key])
        return "crd"
    try:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError as error:
        raise SchemaMissingError(
            f"no schema for {key[0]} {key[1]}: add its CRD to tests/support/crds/ before emitting this kind"
        ) from error
    except kubernetes_validate.ValidationError as error:
        where = ".".join(map(str, error.path))
        raise AssertionError(f"{key[1]} {manifest['metadata'].get('name')}: {where}: {error.message}") from None
    return "kubernetes"


def _check_name(kind: str, name: str) -> None:
    if kind in LABEL_NAMED_KINDS:
        assert DNS_LABEL.match(name) and len(name) <= 63, f"{kind} name {name!r} is not a DNS-1035 label"
    else:
        assert DNS_SUBDOMAIN.match(name) and len(name) <= 253, f"{kind} name {name!r} is not a DNS subdomain"


def _validate_custom(manifest: Manifest, schema: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(manifest), key=lambda error: list(error.absolute_path))
    if errors:
        lines = [f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}" for e in errors[:10]]
        kind, name = manifest["kind"], manifest["metadata"].get("name")
        raise AssertionError(f"{kind} {name} does not match its CRD:\n  " + "\n  ".join(lines))


@functools.cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> closed JSON schema, for every served version of every CRD file."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        spec = crd["spec"]
        for version in spec["versions"]:
            if version.get("served", True):
                schema = _closed(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
                # Metadata is the API server's to check (the name rule above covers what the tests rely on).
                schema.setdefault("properties", {})["metadata"] = {"type": "object"}
                found[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = schema
    return found


def _closed(schema: Any) -> Any:
    """Objects that list properties reject unknown ones (as the API server prunes/rejects); Go's ``^(?i)`` regex
    prefix becomes Python's ``(?i)^``."""
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: _closed(value) for key, value in schema.items() if key != "properties"}
    if "properties" in schema:  # a map of field name -> schema: close each schema, never the map itself
        result["properties"] = {key: _closed(value) for key, value in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            result["additionalProperties"] = False
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and pattern.startswith("^(?i)"):
        result["pattern"] = "(?i)^" + pattern[len("^(?i)") :]
    return result
