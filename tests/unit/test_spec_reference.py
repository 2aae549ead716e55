"""The spec reference (docs/spec.md) is generated from the schema; a stale copy fails here."""

from __future__ import annotations

from pathlib import Path

from mlplatform.cli.spec_reference import render_spec_reference
from mlplatform.specs import ModelSpec

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_spec_reference_matches_the_schema() -> None:
    documented = (REPO_ROOT / "docs" / "spec.md").read_text()
    assert documented == render_spec_reference(), "docs/spec.md is stale: run `make spec-docs`"


def test_every_top_level_field_and_task_is_documented() -> None:
    reference = render_spec_reference()
    for field in ModelSpec.model_fields:
        assert f"| `{field}` |" in reference
    for task in ("binary", "multiclass", "regression"):
        assert f"| `{task}` |" in reference
    assert "| `estimator.steps` | list of step or null |" in reference
