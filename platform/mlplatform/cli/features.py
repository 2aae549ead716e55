"""CLI commands for features (``mlplatform features apply|materialize``) and demo data (``mlplatform data generate``).

Settings are built inside each command and Feast/pandas are imported there too, so ``mlplatform --help`` stays
fast.  Commands only parse arguments and print; the work happens in ``FeatureStoreAdapter`` and ``fraud_data``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console

features_app = typer.Typer(
    help="Feast feature store: register definitions, load the online store.", no_args_is_help=True
)
data_app = typer.Typer(
    help="Demo data: the synthetic card-fraud data set behind the feature repository.", no_args_is_help=True
)


def _out() -> Console:
    """A console bound to the current stdout (test runners swap it between invocations)."""
    return Console()


@features_app.callback()
def features_group() -> None:
    """Feast feature store: register definitions, load the online store."""


@data_app.callback()
def data_group() -> None:
    """Demo data: the synthetic card-fraud data set behind the feature repository."""


def parse_timestamp(value: str | None, option: str) -> datetime | None:
    """An ISO-8601 date or datetime; a naive one is taken as UTC (the platform's only zone)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO-8601 date/time (e.g. 2025-06-01T00:00:00Z)", param_hint=option
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def today_midnight_utc() -> datetime:
    """Today's 00:00 UTC: the default end of generated data and of materialisation, so features are fresh."""
    now = datetime.now(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _say(message: str) -> None:
    _out().print(f"[dim]·[/dim] {message}")


@features_app.command("apply")
def apply_command() -> None:
    """Register the definitions in feature_repo/definitions.py with the Feast registry (idempotent)."""
    from mlplatform.config import get_settings
    from mlplatform.features.store import FeatureStoreAdapter

    settings = get_settings()
    try:
        names = FeatureStoreAdapter(settings, progress=_say).apply()
    except (OSError, ImportError, AttributeError, TypeError) as error:
        _out().print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    _out().print(f"[green]applied[/green] {len(names)} objects to project [bold]{settings.feast.project}[/bold]")


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
        result = FeatureStoreAdapter(settings, progress=_say).materialize(end_at, start_at)
    except (RuntimeError, ValueError) as error:
        _out().print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    _out().print(
        f"[green]materialized[/green] {', '.join(result.feature_views)} into {result.online_store} "
        f"up to {result.end.isoformat()} in {result.seconds:.1f} s"
    )


@data_app.command("generate")
def generate_command(
    customers: Annotated[int, typer.Option(min=1, help="Number of customers.")] = 2000,
    days: Annotated[int, typer.Option(min=1, help="Days of transactions, ending at --end.")] = 90,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 7,
    drift_after: Annotated[
        str | None,
        typer.Option("--drift", "--drift-after", help="ISO time after which distributions shift (drift demo)."),
    ] = None,
    end: Annotated[str | None, typer.Option("--end", help="End of the range (default: today 00:00 UTC).")] = None,
) -> None:
    """Write the synthetic fraud data set (profiles, aggregates, labelled transactions) into the data directory."""
    from mlplatform.config import get_settings
    from mlplatform.demo.fraud_data import generate

    settings = get_settings()
    with _out().status("generating demo data"):
        result = generate(
            settings.data_dir,
            customers=customers,
            days=days,
            end=parse_timestamp(end, "--end") or today_midnight_utc(),
            seed=seed,
            drift_after=parse_timestamp(drift_after, "--drift-after"),
            progress=_say,
        )
    _out().print(
        f"[green]wrote[/green] {result.out_dir}: {result.transaction_rows:,} transactions "
        f"(fraud rate {result.fraud_rate:.2%}), {result.stats_rows:,} aggregate snapshots, "
        f"{result.profile_rows:,} profile rows, {result.start.date()} .. {result.end.date()}"
    )
