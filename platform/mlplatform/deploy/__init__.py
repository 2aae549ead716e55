"""Deployers: put a model server in front of a registered model (local processes here, Kubernetes later)."""
