"""The first admin: a generated password lives in a 0600 file, is shown once on a terminal only, the login hint
names the file without showing it, and the file goes away once the admin has changed the password."""

from __future__ import annotations

import sys

import pytest
from pydantic import SecretStr

from mlplatform.config import Settings
from mlplatform.store import PlatformStore
from mlplatform.store.auth import AuthRepository
from mlplatform.store.bootstrap import ensure_admin, login_hint
from tests.support.api_world import cheap_hash


def _auth(settings: Settings) -> AuthRepository:
    return AuthRepository(PlatformStore.connect(settings.db_url), cheap_hash())


def test_generated_password_is_kept_private_and_hinted_not_shown(settings: Settings) -> None:
    auth = _auth(settings)
    path = ensure_admin(settings, auth)
    assert path == settings.layout.initial_admin_password
    assert path.stat().st_mode & 0o777 == 0o600
    password = path.read_text().strip()
    assert auth.verify_password("admin", password) is not None
    hint = login_hint(settings, auth)
    assert str(path) in hint and password not in hint
    assert ensure_admin(settings, auth) is None  # once only
    assert path.read_text().strip() == password


def test_the_file_is_removed_once_the_password_was_changed(settings: Settings) -> None:
    auth = _auth(settings)
    path = ensure_admin(settings, auth)
    assert path is not None
    auth.update_user("admin", password="a brand new password")
    hint = login_hint(settings, auth)
    assert not path.exists()
    assert "the password you set" in hint and "set-password admin" in hint


def test_a_configured_password_writes_no_file(settings: Settings) -> None:
    api = settings.api.model_copy(update={"admin_password": SecretStr("configured-pass-1")})
    settings = settings.model_copy(update={"api": api})
    auth = _auth(settings)
    assert ensure_admin(settings, auth) is None
    assert not settings.layout.initial_admin_password.exists()
    assert login_hint(settings, auth) == "user admin, password from MLP_API__ADMIN_PASSWORD"


def test_stack_up_shows_the_one_time_password_once_on_a_terminal_only(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlplatform.stack.embedded import admin_created_message

    path = ensure_admin(settings, _auth(settings))
    assert path is not None
    password = path.read_text().strip()
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    shown = admin_created_message("admin", path)
    assert password in shown and "shown once" in shown
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)  # piped, e.g. into a CI log
    piped = admin_created_message("admin", path)
    assert password not in piped and str(path) in piped
