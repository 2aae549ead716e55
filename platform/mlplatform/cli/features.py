"""``mlplatform features apply|materialize``: register the Feast definitions and load the online store.

Settings are built inside each command and Feast is imported there too, so ``mlplatform --help`` stays fast.
Commands only parse arguments and print; the work happens in ``FeatureStoreAdapter``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from mlplatform.cli._common import fresh_console, parse_timestamp, say_progress

features_app = typer.Typer(
    help="Feast feature store: register definitions, load the online store.", no_args_is_help=True
)


@features_app.callback()
def features_group() -> None:
    """Feast feature store: register definitions, load the online store."""


@features_app.command("apply")
def apply_command() -> None:
    """Register the definitions in feature_repo/definitions.py with the Feast registry (idempotent)."""
    from mlplatform.config import get_settings
    from mlplatform.features.store import FeatureStoreAdapter

    settings = get_settings()
    try:
        names = FeatureStoreAdapter(settings, progress=say_progress).apply()
    except (OSError, ImportError, AttributeError, TypeError) as error:
        fresh_console().print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    fresh_console().print(
        f"[green]applied[/green] {len(names)} objects to project [bold]{settings.feast.project}[/bold]"
    )


@features_app.command("materialize")
def materialize_command(
    end: Annotated[
        str | None, typer.Option("--end", help="Load values up to this ISO time (default: now, UTC).")
    ] = None,
    start: Annotated[
        str | None, typer.Option("--start", help="Load from this ISO time; omitted: continue from the last run.")
    ] = None,
) -> None:
    """Load the latest feature values into the online store (incremental unless --start is given)."""
    from mlplatform.config import get_settings
    from mlplatform.features.store import FeatureStoreAdapter

    settings = get_settings()
    end_at = parse_timestamp(end, "--end") or datetime.now(UTC)
    start_at = parse_timestamp(start, "--start")
    try:
        result = FeatureStoreAdapter(settings, progress=say_progress).materialize(end_at, start_at)
    except (RuntimeError, ValueError) as error:
        fresh_console().print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    fresh_console().print(
        f"[green]materialized[/green] {', '.join(result.feature_views)} into {result.online_store} "
        f"up to {result.end.isoformat()} in {result.seconds:.1f} s"
    )
