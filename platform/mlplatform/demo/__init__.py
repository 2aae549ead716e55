"""Demo data for the platform: a synthetic card-transaction fraud data set that feeds the Feast repository."""

from mlplatform.demo.fraud_data import DEFAULT_END, MODEL, GeneratedData, generate

__all__ = ["DEFAULT_END", "MODEL", "GeneratedData", "generate"]
