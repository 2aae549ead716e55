"""The first admin: from settings, or with a one-time generated password that the caller prints once.

There is never a default password.  The generated one is returned, not logged: only the CLI that started the
server shows it, once, on its terminal.
"""

from __future__ import annotations

import secrets

from mlplatform.config import Settings
from mlplatform.store.auth import AuthRepository


def bootstrap_admin(settings: Settings, auth: AuthRepository) -> str | None:
    """Create the initial admin if there are no users; returns the generated password when one was made."""
    if auth.count_users() > 0:
        return None
    configured = settings.api.admin_password
    password = configured.get_secret_value() if configured is not None else secrets.token_urlsafe(18)
    auth.create_user(settings.api.admin_username, "admin", password)
    return None if configured is not None else password
