"""``mlplatform db ...``: the platform database's schema and roles, run by whoever owns the database.

Migrations run here only (``stack up`` calls ``upgrade``; in the chart, the migration hook Job does):
every other process checks the revision and refuses a schema it was not written for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlplatform.cli._common import console, fail, platform_store
from mlplatform.config import Settings, get_settings

db_app = typer.Typer(help="The platform database: schema migrations and least-privilege roles.", no_args_is_help=True)


def _migrated_urls(settings: Settings) -> list[str]:
    """The platform DB, and the prediction log's database when it is another one (it holds the same schema)."""
    urls = [settings.db_url]
    serving = settings.serving
    if serving.prediction_log == "postgres" and serving.prediction_log_url not in (None, settings.db_url):
        urls.append(str(serving.prediction_log_url))
    return urls


@db_app.command()
def upgrade() -> None:
    """Bring the platform DB's schema to this release's revision (safe to repeat; refuses a newer schema)."""
    from mlplatform.store import PlatformStore
    from mlplatform.store.db import SchemaVersionError, head_revision

    for url in _migrated_urls(get_settings()):
        try:
            store = PlatformStore.migrated(url)
        except SchemaVersionError as error:
            fail(str(error))
            return
        store.dispose()
    console.print(f"platform DB schema at revision {head_revision()}", highlight=False)


@db_app.command()
def revision() -> None:
    """Print the schema's revision and this release's; exit 1 unless they match."""
    from mlplatform.store import PlatformStore
    from mlplatform.store.db import head_revision

    store = PlatformStore(get_settings().db_url)
    try:
        current = store.revision()
    finally:
        store.dispose()
    console.print(f"database: {current or 'empty'}, this release: {head_revision()}", highlight=False)
    if current != head_revision():
        raise typer.Exit(code=1)


@db_app.command("grant-prediction-writer")
def grant_prediction_writer(
    role: Annotated[str, typer.Option(help="Login role to create or update, e.g. mlp_prediction_writer.")],
    password_file: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, readable=True, help="File holding the role's password.")
    ],
) -> None:
    """Create or update a PostgreSQL role that may only insert into the prediction log (for model servers).

    Acts on the prediction log's database (serving.prediction_log_url, else db_url), whose schema must be
    current. Give model servers a URL with this role: they then cannot read users or tokens, change the schema,
    or alter logged predictions."""
    from mlplatform.store.roles import RoleError
    from mlplatform.store.roles import grant_prediction_writer as grant

    settings = get_settings()
    url = settings.serving.prediction_log_url or settings.db_url
    password = password_file.read_text().strip()
    store = platform_store(url)
    try:
        grant(store, role, password)
    except RoleError as error:
        fail(str(error))
        return
    finally:
        store.dispose()
    console.print(
        f"role [bold]{role}[/] may insert into the prediction log and nothing else; give model servers "
        f"MLP_SERVING__PREDICTION_LOG_URL with it",
        highlight=False,
    )
