"""Feast adapter: apply definitions, materialise, point-in-time training sets, online lookups."""

from mlplatform.features.store import FeatureStoreAdapter, MaterializeResult

__all__ = ["FeatureStoreAdapter", "MaterializeResult"]
