"""The platform database: durable records the registry and orchestrator do not keep themselves."""

from mlplatform.store.db import AliasEvent, PlatformStore

__all__ = ["AliasEvent", "PlatformStore"]
