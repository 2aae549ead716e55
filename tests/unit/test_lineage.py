"""Lineage tags: staged on the run, copied to the version, shown by short name."""

from __future__ import annotations

from dataclasses import fields

from mlplatform.registry.lineage import Lineage


def _lineage() -> Lineage:
    return Lineage(**{item.name: f"<{item.name}>" for item in fields(Lineage)})


def test_run_tags_become_version_tags_and_read_back_by_short_name() -> None:
    lineage = _lineage()
    run_tags = {**lineage.run_tags(), Lineage.STAGE_TAG: "trained", "other": "x"}
    assert run_tags["mlplatform.lineage.dag_run_id"] == "<dag_run_id>"
    version_tags = Lineage.version_tags(run_tags)
    assert version_tags[Lineage.FEATURE_SERVICE_TAG] == "<feature_service>"
    assert set(version_tags) == {f"mlplatform.{item.name}" for item in fields(Lineage)}
    shown = Lineage.of_version({**version_tags, Lineage.GATE_TAG: "{}", "mlflow.note": "n"})
    assert shown == {**{item.name: f"<{item.name}>" for item in fields(Lineage)}, "gate": "{}"}


def test_a_run_staged_with_other_keys_keeps_them() -> None:
    assert Lineage.version_tags({"mlplatform.lineage.legacy": "v"}) == {"mlplatform.legacy": "v"}
