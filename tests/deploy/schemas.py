"""Offline schema validation of the deployer's manifests: no API server runs here, so schemas stand in for it.

* InferenceService: the KServe CRD's ``openAPIV3Schema`` (tests/deploy/crds/, see PROVENANCE.md), closed so an
  unknown field fails (the API server prunes or rejects unknown fields; a JSON Schema would let them through).
* Core kinds: ``kubernetes-validate --strict`` when installed; otherwise the ``kubernetes`` client's generated
  models (Kubernetes 1.37 OpenAPI, pydantic with unknown fields forbidden and required fields enforced).
* Any other kind fails: a manifest with no schema is not validated, so it must not pass.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CRD_DIR = Path(__file__).parent / "crds"
KUBERNETES_VERSION = "1.33.0"  # kubernetes-validate's schema version, when it is installed
CORE_MODELS = {
    ("apps/v1", "Deployment"): "V1Deployment",
    ("v1", "Service"): "V1Service",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "V2HorizontalPodAutoscaler",
}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def validate(obj: dict[str, Any]) -> None:
    """Raise ``AssertionError`` naming the kind, the field and the problem; return quietly when valid."""
    kind, api_version = obj.get("kind"), obj.get("apiVersion")
    name = obj.get("metadata", {}).get("name", "")
    assert DNS_LABEL.match(name) and len(name) <= 63, f"{kind} name {name!r} is not a DNS label"
    if (api_version, kind) == ("serving.kserve.io/v1beta1", "InferenceService"):
        _validate_crd(obj)
    elif (api_version, kind) in CORE_MODELS:
        _validate_core(obj)
    else:
        raise AssertionError(f"no schema for {api_version} {kind}: add one before emitting this kind")


def _validate_crd(obj: dict[str, Any]) -> None:
    errors = sorted(_inference_service_validator().iter_errors(obj), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors[:10]]
        raise AssertionError("InferenceService does not match the KServe CRD:\n  " + "\n  ".join(lines))


def _validate_core(obj: dict[str, Any]) -> None:
    if importlib.util.find_spec("kubernetes_validate") is not None:
        import kubernetes_validate

        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            raise AssertionError(f"{obj['kind']}: {error.message} at {list(error.path)}") from None
        return
    import kubernetes.client
    import pydantic

    model = getattr(kubernetes.client, CORE_MODELS[(obj["apiVersion"], obj["kind"])])
    try:
        model.model_validate(obj)
    except pydantic.ValidationError as error:
        raise AssertionError(f"{obj['kind']} does not match the Kubernetes OpenAPI model:\n{error}") from None


@functools.cache
def _inference_service_validator() -> jsonschema.protocols.Validator:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load((CRD_DIR / "serving.kserve.io_inferenceservices.yaml").read_text(), Loader=loader)
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta1")
    schema = _closed(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
    validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    return validator_class(schema)


def _closed(schema: Any) -> Any:
    """Objects that list properties get ``additionalProperties: false``; Go ``^(?i)`` regexes become Python's."""
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: _closed(value) for key, value in schema.items() if key not in ("properties", "pattern")}
    if "properties" in schema:
        result["properties"] = {key: _closed(value) for key, value in schema["properties"].items()}
        preserve = schema.get("x-kubernetes-preserve-unknown-fields")
        if not preserve and "additionalProperties" not in schema:
            result["additionalProperties"] = False
    if "pattern" in schema:
        pattern = schema["pattern"]
        result["pattern"] = "(?i)" + pattern.replace("^(?i)", "^", 1) if pattern.startswith("^(?i)") else pattern
    return result
