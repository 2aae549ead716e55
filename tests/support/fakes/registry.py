"""The model registry over dicts (a fake: MLflow runs as a real server in tests/integration)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mlplatform.operations.services import RegistryPort
from mlplatform.registry.mlflow_registry import VersionInfo
from mlplatform.registry.traffic import TrafficPlan
from mlplatform.store import AliasEvent, PlatformStore


def version_info(
    number: int, roc_auc: float, average_precision: float, tags: dict[str, str] | None = None
) -> VersionInfo:
    """A registered version as MLflow would describe it, with the metrics the gate and the UI read."""
    return VersionInfo(
        version=str(number),
        run_id=f"run{number}",
        status="READY",
        created_at_ms=number,
        aliases=[],
        tags={"mlplatform.spec_fingerprint": "abc", **(tags or {})},
        metrics={"roc_auc": roc_auc, "average_precision": average_precision},
    )


class FakeRegistry(RegistryPort):
    """The registry port over dicts; alias moves are recorded in the real platform store, as ModelRegistry does."""

    def __init__(self, store: PlatformStore, models: dict[str, list[VersionInfo]]) -> None:
        self.store = store
        self.models = models
        self.aliases: dict[str, dict[str, str]] = {name: {} for name in models}
        self.plans: dict[str, TrafficPlan] = {}
        """The traffic plans published, by model (what the model servers would follow)."""

    def versions(self, name: str) -> list[VersionInfo]:
        aliases = self.aliases.get(name, {})
        return [
            replace(info, aliases=sorted(a for a, v in aliases.items() if v == info.version))
            for info in reversed(self.models.get(name, []))
        ]

    def alias_holder(self, name: str, alias: str) -> VersionInfo | None:
        version = self.aliases.get(name, {}).get(alias)
        found = [info for info in self.versions(name) if info.version == version]
        return found[0] if found else None

    def move_alias(self, name: str, alias: str, version: str, *, actor: str, reason: str) -> AliasEvent | None:
        current = self.aliases[name].get(alias)
        if current == version:
            return None
        self.aliases[name][alias] = version
        return self.store.record_alias_move(
            model=name, alias=alias, from_version=current, to_version=version, actor=actor, reason=reason
        )

    def describe(self, name: str) -> dict[str, Any]:
        if name not in self.models:
            raise LookupError(name)
        return {"name": name, "aliases": self.aliases[name], "versions": [v.version for v in self.versions(name)]}

    def traffic_plan(self, name: str) -> TrafficPlan | None:
        return self.plans.get(name)

    def publish_traffic_plan(self, name: str, plan: TrafficPlan | None) -> None:
        if plan is None:
            self.plans.pop(name, None)
        else:
            self.plans[name] = TrafficPlan.from_tag(plan.to_tag())  # through the tag's JSON, as MLflow keeps it
