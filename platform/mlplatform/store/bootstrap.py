"""The first admin: from settings, or with a one-time generated password kept in a file only its owner can read.

There is never a default password, and the generated one is never logged: supervised servers write to log files.
``mlplatform stack up`` shows it once when it runs on a terminal (piped output ends up in CI logs, so there it
names the file instead).  It lives in ``state_dir/api/initial_admin_password`` (mode 0600) until the admin changes
it; ``login_hint`` tells people where to find it and removes the file once it no longer opens the door.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from mlplatform.config import Settings
from mlplatform.state import write_private
from mlplatform.store.auth import AuthRepository


def bootstrap_admin(settings: Settings, auth: AuthRepository) -> str | None:
    """Create the initial admin if there are no users; returns the generated password when one was made."""
    if auth.count_users() > 0:
        return None
    configured = settings.api.admin_password
    password = configured.get_secret_value() if configured is not None else secrets.token_urlsafe(18)
    auth.create_user(settings.api.admin_username, "admin", password)
    return None if configured is not None else password


def ensure_admin(settings: Settings, auth: AuthRepository) -> Path | None:
    """Create the initial admin if there are no users; a generated password goes to its 0600 file (returned)."""
    generated = bootstrap_admin(settings, auth)
    if generated is None:
        return None
    path = settings.layout.initial_admin_password
    write_private(path, generated + "\n")
    return path


def login_hint(settings: Settings, auth: AuthRepository) -> str:
    """How the admin logs in, naming where the password is but never showing it.

    A password file that no longer matches (the admin changed the password) is deleted here: a stale secret on disk
    helps no one and would mislead the next reader.
    """
    user = settings.api.admin_username
    if settings.api.admin_password is not None:
        return f"user {user}, password from MLP_API__ADMIN_PASSWORD"
    path = settings.layout.initial_admin_password
    if path.is_file():
        if auth.verify_password(user, path.read_text().strip()) is not None:
            return f"user {user}, one-time password in {path} (readable only by you; change it after logging in)"
        path.unlink()
    return f"user {user} with the password you set (forgotten: `mlplatform api users set-password {user}`)"
