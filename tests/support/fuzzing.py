"""Schemathesis configuration shared by the API's fuzz tests (``tests/unit/test_api_fuzz.py`` for an admin,
``tests/integration/test_schema_fuzz.py`` for every role)."""

from __future__ import annotations

from typing import Any

from tests.support.api_world import MODEL


def fuzzing_config(examples_per_operation: int) -> dict[str, Any]:
    """Generation settings, with dictionaries of the world's real names and versions: random ones almost never
    name the fake registry's model or versions, so every request would stop at a 404.  These make most generated
    values real ones (schemathesis keeps invalid-mode cases invalid), which sends the fuzzer through the gate,
    rollback, training and deployment code."""
    return {
        "dictionaries": {
            "models": {"values": [MODEL]},
            "versions": {"values": [1, 2, 3, 4]},
            "users": {"values": ["viewer", "approver", "admin"]},
        },
        "parameters": {
            **{key: {"dictionary": "models", "probability": 0.8} for key in ("path.name", "path.model", "body.model")},
            **{key: {"dictionary": "versions", "probability": 0.8} for key in ("body.version", "query.a", "query.b")},
            "path.username": {"dictionary": "users", "probability": 0.5},
        },
        "generation": {"max-examples": examples_per_operation, "deterministic": True},
        # A schema cannot say that an uploaded file must be parquet holding the named columns: a new model's upload
        # that matches the schema may still break the data contract, refused with 422 naming the file and column.
        "operations": [
            {
                "include-path-regex": "^/api/v1/models$",
                "include-method": "POST",
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
                    }
                },
            }
        ],
    }
