"""Model registry adapter (MLflow)."""
