"""MLflow as the model registry: versions, aliases, lineage tags, and the durable record of every alias move.

MLflow keeps only the current holder of an alias.  Every move therefore goes through ``move_alias``, which
records who moved it, from which version to which, and why, in the platform database: rollback and the audit log
are built on that history.
"""

from __future__ import annotations

import functools
import ssl
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import httpx

from mlplatform.config import Settings
from mlplatform.registry.lineage import Lineage
from mlplatform.store import AliasEvent, PlatformStore

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from mlplatform.registry.traffic import TrafficPlan

CHAMPION = "champion"
CHALLENGER = "challenger"


class RegistryUnavailableError(RuntimeError):
    """MLflow cannot be reached; nothing was registered."""


@dataclass(frozen=True)
class VersionInfo:
    """What the platform shows of one model version."""

    version: str
    run_id: str | None
    status: str
    created_at_ms: int
    aliases: list[str]
    tags: dict[str, str]
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def lineage(self) -> dict[str, str]:
        return Lineage.of_version(self.tags)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every check: building one loads the CA bundle (about 17 ms of CPU, holding the GIL),
    which a model server's alias poller would otherwise pay on every poll, stalling requests in flight."""
    return httpx.create_ssl_context()


def check_reachable(tracking_uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast with a clear message instead of MLflow's long retry loop against a dead server."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    try:
        url = f"{tracking_uri.rstrip('/')}/health"
        httpx.get(url, timeout=timeout_s, verify=_tls_context()).raise_for_status()
    except httpx.HTTPError as error:
        raise RegistryUnavailableError(
            f"MLflow at {tracking_uri} is unreachable ({error}); start it with `mlplatform stack up` "
            "or set MLP_MLFLOW__TRACKING_URI"
        ) from None


# Client-side MLflow behaviour the platform relies on: bounded retries so an outage surfaces in seconds, no usage
# telemetry (clusters and CI often have no internet; each attempt costs time), and no copy of the platform's own
# uv.lock next to every model (models carry explicit pip requirements instead).
MLFLOW_CLIENT_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_LOG_UV_FILES": "false",
}


def mlflow_client(settings: Settings) -> MlflowClient:
    """A client for the configured tracking server, after checking it answers."""
    import os

    from mlflow import MlflowClient

    for key, value in {
        **MLFLOW_CLIENT_ENV,
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(settings.mlflow.request_timeout_s),
    }.items():
        os.environ.setdefault(key, value)
    uri = settings.mlflow.resolved_tracking_uri()
    check_reachable(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


class ModelRegistry:
    """The platform's view of MLflow's registry."""

    def __init__(self, settings: Settings, store: PlatformStore | None = None) -> None:
        self.settings = settings
        self.tracking_uri = settings.mlflow.resolved_tracking_uri()
        self.store = store or PlatformStore.connect(settings.db_url)
        self._client: MlflowClient | None = None

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = mlflow_client(self.settings)
        return self._client

    def ensure_model(self, name: str, description: str = "") -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException:
            self.client.create_registered_model(name, description=description)

    def version_for_run(self, name: str, run_id: str) -> VersionInfo | None:
        """The version registered from a run, if any: what makes registration idempotent under retries."""
        found = self.client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
        return self._info(found[0]) if found else None

    def register(self, name: str, run_id: str, model_id: str, tags: dict[str, str]) -> tuple[VersionInfo, bool]:
        """Register the run's model once; a repeated call returns the existing version (and ``False``)."""
        existing = self.version_for_run(name, run_id)
        if existing is not None:
            return existing, False
        self.ensure_model(name)
        created = self.client.create_model_version(
            name, source=f"models:/{model_id}", run_id=run_id, tags=tags, model_id=model_id
        )
        return self._info(self.client.get_model_version(name, created.version)), True

    def set_version_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(name, version, key, value)

    def alias_holder(self, name: str, alias: str) -> VersionInfo | None:
        from mlflow.exceptions import MlflowException

        try:
            return self._info(self.client.get_model_version_by_alias(name, alias))
        except MlflowException:
            return None

    def move_alias(self, name: str, alias: str, version: str, *, actor: str, reason: str) -> AliasEvent | None:
        """Point ``alias`` at ``version`` and record the move; a no-op move is not recorded."""
        current = self.alias_holder(name, alias)
        if current is not None and current.version == version:
            return None
        self.client.set_registered_model_alias(name, alias, version)
        return self.store.record_alias_move(
            model=name,
            alias=alias,
            from_version=current.version if current else None,
            to_version=version,
            actor=actor,
            reason=reason,
        )

    def traffic_plan(self, name: str) -> TrafficPlan | None:
        """The rollout routing servers of ``name`` follow now (``None``: the champion answers everything)."""
        from mlplatform.registry.traffic import TrafficPlan

        raw = (self.client.get_registered_model(name).tags or {}).get(TrafficPlan.TAG)
        return TrafficPlan.from_tag(raw) if raw else None

    def publish_traffic_plan(self, name: str, plan: TrafficPlan | None) -> None:
        """Point every server of ``name`` at ``plan`` (``None``: back to the champion alone) at their next poll."""
        from mlplatform.registry.traffic import TrafficPlan

        if plan is None:
            if self.traffic_plan(name) is not None:
                self.client.delete_registered_model_tag(name, TrafficPlan.TAG)
            return
        self.client.set_registered_model_tag(name, TrafficPlan.TAG, plan.to_tag())

    def versions(self, name: str) -> list[VersionInfo]:
        """All versions, newest first, with their run metrics."""
        found = self.client.search_model_versions(f"name = '{name}'")
        holders = self._alias_map(name) if found else {}
        infos = [self._info(version, with_metrics=True) for version in found]
        # Version search results carry no aliases; the registered model's map is the truth.
        infos = [replace(info, aliases=sorted(a for a, v in holders.items() if v == info.version)) for info in infos]
        return sorted(infos, key=lambda info: int(info.version), reverse=True)

    def _alias_map(self, name: str) -> dict[str, str]:
        """Alias -> version of a registered model (empty when it is not registered)."""
        from mlflow.exceptions import MlflowException

        try:
            model = self.client.get_registered_model(name)
        except MlflowException:
            return {}
        return {alias: str(version) for alias, version in (model.aliases or {}).items()}

    def describe(self, name: str) -> dict[str, Any]:
        """Versions, aliases, metrics, lineage and alias history, as plain data (for ``--json`` and the API)."""
        from mlflow.exceptions import MlflowException

        try:
            model = self.client.get_registered_model(name)
        except MlflowException:
            raise LookupError(f"model {name!r} is not registered in MLflow at {self.tracking_uri}") from None
        aliases = dict(sorted((model.aliases or {}).items()))
        versions = self.versions(name)
        return {
            "name": name,
            "tracking_uri": self.tracking_uri,
            "aliases": aliases,
            "versions": [
                {
                    "version": info.version,
                    "run_id": info.run_id,
                    "status": info.status,
                    "created_at_ms": info.created_at_ms,
                    # Version search results carry no aliases; the registered model's map is the truth.
                    "aliases": sorted(alias for alias, holder in aliases.items() if holder == info.version),
                    "metrics": info.metrics,
                    "lineage": info.lineage,
                }
                for info in versions
            ],
            "alias_history": [
                {**event.__dict__, "created_at": event.created_at.isoformat()}
                for event in self.store.alias_history(name)
            ],
        }

    def _info(self, version: ModelVersion, with_metrics: bool = False) -> VersionInfo:
        metrics: dict[str, float] = {}
        if with_metrics and version.run_id:
            metrics = dict(self.client.get_run(version.run_id).data.metrics)
        return VersionInfo(
            version=str(version.version),
            run_id=version.run_id,
            status=str(version.status),
            created_at_ms=int(version.creation_timestamp or 0),
            aliases=sorted(version.aliases or []),
            tags=dict(version.tags or {}),
            metrics=metrics,
        )
