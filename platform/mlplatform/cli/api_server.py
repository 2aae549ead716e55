"""`mlplatform api ...`: serve the platform API and manage its users and tokens from a shell.

User and token commands act on the platform database directly (the same repositories the API uses), so an
operator can always get in, even before the server runs.  Secrets are printed once and never logged.
"""

from __future__ import annotations

import getpass
import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from mlplatform.cli._common import console, fail, platform_store
from mlplatform.config import get_settings

api_app = typer.Typer(help="The platform API server, its users and API tokens.", no_args_is_help=True)
users_app = typer.Typer(help="Local users.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens.", no_args_is_help=True)
api_app.add_typer(users_app, name="users")
api_app.add_typer(tokens_app, name="tokens")
ROLE_HELP = "viewer, data-scientist, approver or admin"


@api_app.command()
def serve() -> None:
    """Run the API with uvicorn on api.host:api.port; creates the first admin if there are no users.

    The platform DB must be at this code's schema revision (`mlplatform db upgrade`).  Everything it writes is a
    log line in ``log.format`` (JSON in a file, text on a terminal): uvicorn is told not to configure logging, and its
    access log is replaced by ``logs.RequestLog``'s (request ids, no query strings).
    """
    import logging

    import uvicorn

    from mlplatform import logs
    from mlplatform.operations.services import ApiServices
    from mlplatform.store.bootstrap import ensure_admin, login_hint
    from mlplatform.webapp import create_app

    settings = get_settings()
    logs.configure(settings.log)
    log = logging.getLogger("mlplatform.api")
    services = ApiServices.from_settings(settings, store=platform_store(settings.db_url))
    if ensure_admin(settings, services.auth) is not None:
        log.info("created the admin: %s", login_hint(settings, services.auth))
    log.info("platform API and UI at %s", settings.api.resolved_public_url())
    # uvicorn trusts X-Forwarded-For from 127.0.0.1 unless told otherwise: only the configured proxies may name
    # the client (the address logins are limited and audited by).
    proxies = settings.api.forwarded_allow_ips
    uvicorn.run(
        create_app(settings, services),
        host=settings.api.host,
        port=settings.api.port,
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
        log_config=None,
        access_log=False,
    )


@api_app.command()
def openapi() -> None:
    """Print the API's OpenAPI document (JSON, with each operation's x-required-role)."""
    from mlplatform.api.reference import reference_document

    sys.stdout.write(json.dumps(reference_document(), indent=2) + "\n")


@api_app.command()
def docs() -> None:
    """Print the API reference (docs/api.md) as Markdown, generated from the OpenAPI document."""
    from mlplatform.api.reference import reference_document, render_markdown

    sys.stdout.write(render_markdown(reference_document()))


@users_app.command("create")
def users_create(
    username: str,
    role: Annotated[str, typer.Option(help=ROLE_HELP)] = "viewer",
    password: Annotated[bool, typer.Option("--password/--no-password", help="Prompt for a password.")] = True,
) -> None:
    """Create a local user (with a password typed at a prompt, or token-only)."""
    from mlplatform.store.auth import AuthRepository, AuthStoreError

    secret = typer.prompt("password", hide_input=True, confirmation_prompt=True) if password else None
    auth = AuthRepository(platform_store(get_settings().db_url))
    try:
        user = auth.create_user(username, role, secret)
    except AuthStoreError as error:
        fail(str(error))
        return
    console.print(f"created user [bold]{user.username}[/] ({user.role})", highlight=False)


@users_app.command("set-password")
def users_set_password(username: str) -> None:
    """Set a user's password at a prompt: the way back in for an operator who can reach the platform DB."""
    from mlplatform.store.audit import RESULT_OK, AuditLog
    from mlplatform.store.auth import AuthRepository, AuthStoreError

    secret = typer.prompt("new password", hide_input=True, confirmation_prompt=True)
    store = platform_store(get_settings().db_url)
    try:
        AuthRepository(store).update_user(username, password=secret)
    except (AuthStoreError, LookupError) as error:
        fail(str(error.args[0]))
        return
    actor = f"local:{getpass.getuser()}"
    AuditLog(store).record(
        actor=actor,
        action="user.update",
        target=username,
        result=RESULT_OK,
        client="cli",
        detail={"changed": ["password"]},
    )
    console.print(f"password of [bold]{username}[/] changed", highlight=False)


@users_app.command("list")
def users_list() -> None:
    """Users and their roles."""
    from mlplatform.store.auth import AuthRepository

    table = Table("username", "role", "active", "password", "created")
    for user in AuthRepository(platform_store(get_settings().db_url)).list_users():
        table.add_row(
            user.username,
            user.role,
            str(user.active),
            "sso" if user.external_issuer else ("yes" if user.has_password else "no"),
            user.created_at.isoformat(),
        )
    console.print(table)


@tokens_app.command("create")
def tokens_create(
    username: str,
    name: Annotated[str, typer.Option(help="What the token is for (e.g. ci).")] = "cli",
    ttl_days: Annotated[int | None, typer.Option(min=1, max=3650, help="Default: api.token_ttl_days.")] = None,
    role: Annotated[str | None, typer.Option(help=f"Limit to a role: {ROLE_HELP}.")] = None,
) -> None:
    """Issue an API token for a user; the token is printed once."""
    from mlplatform.store.auth import AuthRepository, AuthStoreError

    settings = get_settings()
    auth = AuthRepository(platform_store(settings.db_url))
    try:
        issued = auth.create_token(username, name, ttl_days or settings.api.token_ttl_days, role)
    except (AuthStoreError, LookupError) as error:
        fail(str(error))
        return
    console.print(f"token {issued.token.id} for {username} (expires {issued.token.expires_at:%Y-%m-%d}):")
    print(issued.secret)  # plain stdout so scripts can capture it


@tokens_app.command("revoke")
def tokens_revoke(token_id: int) -> None:
    """Revoke a token by id."""
    from mlplatform.store.auth import AuthRepository

    revoked = AuthRepository(platform_store(get_settings().db_url)).revoke_token(token_id)
    if revoked is None:
        fail(f"no token {token_id}")
        return
    console.print(f"revoked token {token_id} ({revoked.prefix}…) of {revoked.username}", highlight=False)
