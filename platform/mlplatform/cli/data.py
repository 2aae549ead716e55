"""``mlplatform data generate``: write the demo's synthetic card-fraud data set into the data directory.

The demo generator (and pandas with it) is imported inside the command: nothing but this command and the demo's
loop uses it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from mlplatform.cli._common import fresh_console, parse_timestamp, say_progress

data_app = typer.Typer(
    help="Demo data: the synthetic card-fraud data set behind the feature repository.", no_args_is_help=True
)


@data_app.callback()
def data_group() -> None:
    """Demo data: the synthetic card-fraud data set behind the feature repository."""


def today_midnight_utc() -> datetime:
    """Today's 00:00 UTC: the default end of generated data and of materialisation, so features are fresh."""
    now = datetime.now(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


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
    """Write the synthetic fraud data set (profiles, aggregates, labelled transactions) into its model's data
    directory (<data dir>/fraud_detector/)."""
    from mlplatform.config import get_settings
    from mlplatform.demo.fraud_data import MODEL, generate

    settings = get_settings()
    with fresh_console().status("generating demo data"):
        result = generate(
            settings.model_data_dir(MODEL),
            customers=customers,
            days=days,
            end=parse_timestamp(end, "--end") or today_midnight_utc(),
            seed=seed,
            drift_after=parse_timestamp(drift_after, "--drift-after"),
            progress=say_progress,
        )
    fresh_console().print(
        f"[green]wrote[/green] {result.out_dir}: {result.transaction_rows:,} transactions "
        f"(fraud rate {result.fraud_rate:.2%}), {result.stats_rows:,} aggregate snapshots, "
        f"{result.profile_rows:,} profile rows, {result.start.date()} .. {result.end.date()}"
    )


@data_app.command("example")
def example_command(
    name: Annotated[str, typer.Argument(help="The example: diabetes (regression on scikit-learn's diabetes table).")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the tables into (created).")] = Path(
        "example-data"
    ),
    end: Annotated[str | None, typer.Option("--end", help="Last visit time (default: today 00:00 UTC).")] = None,
) -> None:
    """Write a bundled example's tables (a feature table, a label table, a drifted feature table) into --out.

    They are the input of `mlplatform models init`: see docs/guides/bring-your-own-model.md.
    """
    if name != "diabetes":
        fresh_console().print(f"[red]error:[/red] unknown example {name!r}; available: diabetes")
        raise typer.Exit(2)
    from mlplatform.demo.diabetes_data import write_example

    tables = write_example(out, end=parse_timestamp(end, "--end") or today_midnight_utc())
    fresh_console().print(
        f"[green]wrote[/green] {tables.patients} patients, {tables.start.date()} .. {tables.end.date()}:\n"
        f"  features: {tables.features}\n  labels:   {tables.labels}\n  drifted:  {tables.drifted}"
    )
