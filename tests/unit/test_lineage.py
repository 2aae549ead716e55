"""Lineage tags: staged on the run, copied to the version, shown by short name."""

from __future__ import annotations

import subprocess
from dataclasses import fields
from pathlib import Path

from mlplatform.registry.lineage import Lineage, model_files_dirty, model_files_hash


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


def test_model_files_hash_follows_content_and_git_flags_uncommitted_changes(tmp_path: Path) -> None:
    folder = tmp_path / "repo" / "models" / "m"
    folder.mkdir(parents=True)
    (folder / "spec.yaml").write_text("name: m\n")
    first = model_files_hash(folder)
    assert model_files_dirty(folder) == "unknown"  # not in a git work tree
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path / "repo", check=True)
    subprocess.run([*git, "add", "."], cwd=tmp_path / "repo", check=True)
    subprocess.run([*git, "commit", "-qm", "m"], cwd=tmp_path / "repo", check=True)
    assert model_files_dirty(folder) == "false"
    (folder / "spec.yaml").write_text("name: m\ndescription: edited\n")
    assert model_files_hash(folder) != first
    assert model_files_dirty(folder) == "true"
    (folder / "features.yaml").write_text("views: []\n")
    assert model_files_dirty(folder) == "true"
