"""The chart's rendered objects made playable by `podman kube play` on one machine, and the proof that nothing else
changed on the way.

Kubernetes cannot run here, but podman starts a Deployment's or Pod's own spec: its images, commands, environment,
user, read-only root filesystem, dropped capabilities and volumes. A few things the chart relies on have no podman
counterpart, so the played objects differ from the rendered ones in exactly the ways `ALLOWED_CHANGES` names, all made
by `playable`; `unexplained_differences` reports any other difference, and the smoke test (tests/images) asserts
there is none in what it plays.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Manifest = dict[str, Any]

ALLOWED_CHANGES: dict[str, str] = {
    "job-as-pod": "a Job's or CronJob's pod template is played once as a bare Pod (podman plays no Job or CronJob)",
    "host-network": "every pod joins the host network (hostNetwork: true), each rendered Service's host name "
    "becomes 127.0.0.1 in args and env values (no cluster DNS and no Services here), and containers declare no "
    "ports (podman 4.3 refuses port mappings on the host network; each server binds its port on the host itself)",
    "secret-values": "the Secrets a user creates are given as values: an env valueFrom.secretKeyRef becomes the "
    "key's value, and a secret volume or a projected volume of secrets becomes a hostPath directory holding the "
    "same keys as files (podman 4.3 plays no Secret and no projected volume)",
}
# What `podman kube play` starts; every other rendered kind needs a cluster (tests/helm checks those offline).
PLAYED_KINDS = frozenset({"Deployment", "Job", "CronJob"})
CLUSTER_ONLY_KINDS = frozenset(
    {
        "ConfigMap",  # only the Feast feature server and the Kubernetes API token mount one, neither played
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "PodMonitor",
        "PrometheusRule",
        "Role",
        "RoleBinding",
        "Secret",  # the chart's own (the model servers' token) is given as values like the user's
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
        "InferenceService",
    }
)
LOCAL_HOST = "127.0.0.1"


@dataclass(frozen=True)
class PlayContext:
    """What the played objects stand on: the Secrets' values, the rendered Services and where secret files go."""

    secrets: Mapping[str, Mapping[str, str]]  # Secret name -> key -> value
    services: frozenset[str]
    namespace: str
    files_dir: Path

    def secret(self, name: str, key: str) -> str:
        try:
            return self.secrets[name][key]
        except KeyError:
            raise KeyError(
                f"the played objects read Secret {name!r} key {key!r}, which the smoke test does not give"
            ) from None

    def localized(self, text: str) -> str:
        """``text`` with every rendered Service's host name (short or qualified) replaced by 127.0.0.1."""
        for service in sorted(self.services, key=len, reverse=True):
            suffixes = rf"(?:\.{re.escape(self.namespace)}(?:\.svc(?:\.cluster\.local)?)?)?"
            text = re.sub(rf"(?<![\w.-]){re.escape(service)}{suffixes}(?![\w-])", LOCAL_HOST, text)
        return text


@dataclass
class Played:
    """One object as played, and the files its secret volumes read (path -> content)."""

    manifest: Manifest
    files: dict[Path, str] = field(default_factory=dict)


def rendered_services(objects: list[Manifest]) -> frozenset[str]:
    return frozenset(o["metadata"]["name"] for o in objects if o["kind"] == "Service")


def pod_template(obj: Manifest) -> Manifest:
    """The pod template (metadata and spec) of a played kind."""
    if obj["kind"] == "CronJob":
        template: Manifest = obj["spec"]["jobTemplate"]["spec"]["template"]
        return template
    if obj["kind"] in {"Deployment", "Job"}:
        template = obj["spec"]["template"]
        return template
    raise ValueError(f"{obj['kind']} {obj['metadata']['name']} is not played (PLAYED_KINDS)")


def playable(obj: Manifest, ctx: PlayContext) -> Played:
    """``obj`` changed in the ways of `ALLOWED_CHANGES` only, so that `podman kube play` can start it."""
    played = copy.deepcopy(obj)
    if obj["kind"] in {"Job", "CronJob"}:
        template = pod_template(played)
        played = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {**template.get("metadata", {}), "name": obj["metadata"]["name"]},
            "spec": template["spec"],
        }
        spec = played["spec"]
    else:
        spec = pod_template(played)["spec"]
    result = Played(played)
    spec["hostNetwork"] = True
    for container in _containers(spec):
        for key in ("command", "args"):
            if key in container:
                container[key] = [ctx.localized(str(arg)) for arg in container[key]]
        container["env"] = [_played_env(item, ctx) for item in container.get("env", [])]
        container.pop("ports", None)
    owner = obj["metadata"]["name"]
    spec["volumes"] = [_played_volume(volume, ctx, owner, result.files) for volume in spec.get("volumes", [])]
    return result


def _containers(spec: Manifest) -> Iterator[Manifest]:
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def _played_env(item: Manifest, ctx: PlayContext) -> Manifest:
    ref = item.get("valueFrom", {}).get("secretKeyRef")
    if ref is not None:
        return {"name": item["name"], "value": ctx.secret(ref["name"], ref["key"])}
    if "value" in item:
        return {**item, "value": ctx.localized(str(item["value"]))}
    return item


def _secret_items(volume: Manifest) -> list[tuple[str, str, str]] | None:
    """(secret, key, file) of a secret volume or a projected volume of secrets only; None for any other volume."""
    if "secret" in volume:
        secret = volume["secret"]
        return [(secret["secretName"], item["key"], item["path"]) for item in secret["items"]]
    sources = volume.get("projected", {}).get("sources")
    if not sources or any(set(source) != {"secret"} for source in sources):
        return None
    return [(s["secret"]["name"], item["key"], item["path"]) for s in sources for item in s["secret"]["items"]]


def _played_volume(volume: Manifest, ctx: PlayContext, owner: str, files: dict[Path, str]) -> Manifest:
    items = _secret_items(volume)
    if items is None:
        return volume
    folder = ctx.files_dir / owner / volume["name"]
    for secret, key, file in items:
        files[folder / file] = ctx.secret(secret, key)
    return {"name": volume["name"], "hostPath": {"path": str(folder), "type": "Directory"}}


# ------------------------------------------------------------------------------------------- the comparison


def unexplained_differences(rendered: Manifest, played: Played, ctx: PlayContext) -> list[str]:
    """Every difference between a rendered object and its played form that no `ALLOWED_CHANGES` entry explains,
    as 'path: rendered -> played' lines (empty when the played object is the rendered one, changed as allowed)."""
    name = rendered["metadata"]["name"]
    if rendered["kind"] in {"Job", "CronJob"}:
        manifest = played.manifest
        problems = [] if manifest["kind"] == "Pod" else [f"{name}: kind {rendered['kind']} -> {manifest['kind']}"]
        template = pod_template(rendered)
        before = {"metadata": {**template.get("metadata", {}), "name": name}, "spec": template["spec"]}
        after = {"metadata": manifest["metadata"], "spec": manifest["spec"]}
        return problems + list(_differences(before, after, name, ctx, played.files))
    return list(_differences(rendered, played.manifest, name, ctx, played.files))


def _differences(before: Any, after: Any, path: str, ctx: PlayContext, files: dict[Path, str]) -> Iterator[str]:
    if before == after or _explained(before, after, ctx, files):
        return
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            if key not in after:
                if not (key == "ports" and "image" in before):
                    yield f"{path}.{key}: {before[key]!r} -> (removed)"
            elif key not in before:
                if not (key == "hostNetwork" and after[key] is True and "containers" in after):
                    yield f"{path}.{key}: (absent) -> {after[key]!r}"
            else:
                yield from _differences(before[key], after[key], f"{path}.{key}", ctx, files)
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for index, (old, new) in enumerate(zip(before, after, strict=True)):
            yield from _differences(old, new, f"{path}[{index}]", ctx, files)
    else:
        yield f"{path}: {before!r} -> {after!r}"


def _explained(before: Any, after: Any, ctx: PlayContext, files: dict[Path, str]) -> bool:
    """Whether one `ALLOWED_CHANGES` entry turns ``before`` into ``after`` (a string, an env item or a volume)."""
    if isinstance(before, str) and isinstance(after, str):
        return ctx.localized(before) == after
    if not (isinstance(before, dict) and isinstance(after, dict)):
        return False
    ref = before.get("valueFrom", {}).get("secretKeyRef")
    if ref is not None and set(before) == {"name", "valueFrom"}:
        return after == {"name": before["name"], "value": ctx.secrets.get(ref["name"], {}).get(ref["key"])}
    items = _secret_items(before) if "name" in before else None
    if items is None or set(after) != {"name", "hostPath"} or after["name"] != before["name"]:
        return False
    folder = Path(after["hostPath"]["path"])
    expected = {folder / file: ctx.secrets.get(secret, {}).get(key) for secret, key, file in items}
    return {path: content for path, content in files.items() if path.parent == folder} == expected
