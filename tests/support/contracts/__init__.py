"""Contract suites: the same checks run against each backend of a store (Feast's universal tests, in small)."""
