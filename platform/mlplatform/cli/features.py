"""``mlplatform features apply|materialize|list|get``: register every model's feature definitions, load the
online store, and look at what it holds.

Settings are built inside each command and Feast is imported there too, so ``mlplatform --help`` stays fast.
Commands only parse arguments and print; the work happens in ``FeatureStoreAdapter`` and
``mlplatform.features.catalog``.  Like the rest of the group they act on the feature store directly, not through
the platform API.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from mlplatform.cli._common import fail, fresh_console, parse_timestamp, say_progress

if TYPE_CHECKING:
    from mlplatform.features.store import MaterializeResult

features_app = typer.Typer(
    help="Feast feature store: register every model's definitions, load the online store, inspect it.",
    no_args_is_help=True,
)


@features_app.callback()
def features_group() -> None:
    """Feast feature store: register every model's definitions, load the online store, inspect it."""


@features_app.command("apply")
def apply_command() -> None:
    """Register every model's features.yaml (and features.py) with the Feast registry (idempotent)."""
    from mlplatform.config import get_settings
    from mlplatform.features.store import FeatureStoreAdapter

    settings = get_settings()
    try:
        names = FeatureStoreAdapter(settings, progress=say_progress).apply()
    except (OSError, ValueError) as error:  # FeatureDefinitionError and SpecError are ValueErrors
        fail(str(error))
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
    except (RuntimeError, ValueError) as error:  # MaterializeError is a RuntimeError
        fail(str(error))
    _print_materialized(result)


def _print_materialized(result: MaterializeResult) -> None:
    """Rows read per view, a warning per view that loaded nothing, then the summary line."""
    console = fresh_console()
    for load in result.loads:
        rows = "up to date" if load.skipped else "rows unknown" if load.rows is None else f"{load.rows:,} rows"
        console.print(f"  {load.view}: {rows}", highlight=False)
    for load in result.empty:
        console.print(f"[yellow]warning:[/yellow] {load.warning()}", highlight=False)
    console.print(
        f"[green]materialized[/green] {', '.join(result.feature_views)} into {result.online_store} "
        f"up to {result.end.isoformat()} in {result.seconds:.1f} s"
    )


@features_app.command("list")
def list_command() -> None:
    """Every feature view: entity, number of features, source rows, latest event and how far it is materialized."""
    from rich.table import Table

    from mlplatform.config import get_settings
    from mlplatform.features.catalog import service_views, view_summaries
    from mlplatform.features.store import FeatureStoreAdapter

    adapter = FeatureStoreAdapter(get_settings())
    try:
        views, services = view_summaries(adapter), service_views(adapter)
    except (RuntimeError, ValueError) as error:
        fail(str(error))
    table = Table("view", "kind", "entity", "features", "source rows", "latest event", "materialized to", "source")
    for view in views:
        table.add_row(
            view.name,
            view.kind,
            ", ".join(view.entities) or "-",
            str(view.features),
            "-" if view.source_rows is None else f"{view.source_rows:,}",
            _when(view.latest_event),
            _when(view.materialized_until) if view.kind == "batch" else "-",
            view.source,
        )
    console = fresh_console()
    console.print(table)
    for service, names in services.items():
        console.print(f"service [bold]{service}[/bold]: {', '.join(names)}", highlight=False)


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@features_app.command("get")
def get_command(
    name: Annotated[str, typer.Argument(help="A feature view or feature service.")],
    entity: Annotated[
        list[str],
        typer.Option("--entity", help="key=value: the entity's join key (and request values an on-demand view needs)."),
    ],
) -> None:
    """One entity's online values of a feature view or service."""
    from rich.table import Table

    from mlplatform.config import get_settings
    from mlplatform.features.catalog import online_values, parse_entity
    from mlplatform.features.store import FeatureStoreAdapter

    try:
        pairs = parse_entity(entity)
        values = online_values(FeatureStoreAdapter(get_settings()), name, pairs)
    except (RuntimeError, ValueError) as error:  # FeatureLookupError is a ValueError
        fail(str(error))
    table = Table("feature", "value")
    for feature, value in values.items():
        table.add_row(feature, "null" if value is None else str(value))
    fresh_console().print(table)
