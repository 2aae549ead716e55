"""What the tests share: the Kubernetes schema validator, one fake per interface, waits, and helpers."""
