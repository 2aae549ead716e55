"""The state directory's layout and its private files: 0600 from the first byte, created once when asked to."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mlplatform.config import Settings
from mlplatform.state import StateLayout, WeakSecretError, generated_secret, write_private


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_private_file_is_0600_and_its_parents_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "secret"
    write_private(path, "s3cret\n")
    assert path.read_text() == "s3cret\n" and _mode(path) == 0o600


def test_replacing_a_wider_file_narrows_it_to_0600(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("an old and much longer value\n")
    path.chmod(0o644)
    write_private(path, "new\n")
    assert path.read_text() == "new\n" and _mode(path) == 0o600


def test_exclusive_refuses_an_existing_file_and_leaves_no_draft(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    write_private(path, "first\n", exclusive=True)
    assert _mode(path) == 0o600
    with pytest.raises(FileExistsError):
        write_private(path, "second\n", exclusive=True)
    assert path.read_text() == "first\n"
    assert [p.name for p in tmp_path.iterdir()] == ["secret"]


def test_a_generated_secret_is_made_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "api" / "session_secret"
    first = generated_secret(path, nbytes=48, prefix="mlp_")
    assert first.startswith("mlp_") and len(first) > 60 and _mode(path) == 0o600
    assert generated_secret(path, nbytes=48, prefix="mlp_") == first


def test_an_existing_secret_is_read_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "token"
    by_hand = "configured-by-hand-" + "x" * 40
    path.write_text(f"{by_hand}\n")
    assert generated_secret(path) == by_hand


@pytest.mark.parametrize("kept", ["", "\n", "short-key\n"], ids=["empty", "blank", "short"])
def test_a_kept_secret_shorter_than_a_generated_one_is_refused_not_used(tmp_path: Path, kept: str) -> None:
    """An empty key would sign session cookies that anyone can forge."""
    path = tmp_path / "api" / "session_secret"
    path.parent.mkdir()
    path.write_text(kept)
    with pytest.raises(WeakSecretError, match=r"fewer than the 64 of a generated one; delete the file"):
        generated_secret(path, nbytes=48)
    assert path.read_text() == kept  # nothing is overwritten: the operator decides


def _layout_paths(layout: StateLayout) -> list[Path]:
    """Every path the layout names: each attribute, and each method called with a sample argument."""
    paths = []
    for name in dir(layout):
        if name.startswith("_") or name == "root":
            continue
        member = getattr(layout, name)
        if isinstance(member, Path):
            paths.append(member)
        elif callable(member):
            arguments = ("fraud_detector", 7) if name == "drift_report" else ("name",)
            paths.append(member(*arguments))
    return paths


def test_every_layout_path_is_under_the_state_directory_and_distinct(tmp_path: Path) -> None:
    layout = StateLayout(tmp_path / "state")
    paths = _layout_paths(layout)
    assert len(paths) > 25
    assert all(path.is_relative_to(layout.root) and path != layout.root for path in paths)
    assert len(set(paths)) == len(paths)
    assert not layout.root.exists(), "naming a path creates nothing"


def test_settings_derive_their_default_locations_from_the_layout(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "s")
    layout = settings.layout
    assert layout == StateLayout(tmp_path / "s")
    assert settings.feast_registry_path == layout.feast_registry
    assert settings.feast_online_path == layout.feast_online
    assert settings.data_dir == layout.data_dir
    assert settings.serving_dir == layout.serving_dir
    assert settings.db_url == f"sqlite:///{layout.platform_db}"
