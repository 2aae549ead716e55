"""``mlplatform data generate|example``: the bundled examples' data (the demo model's data set, tables to onboard).

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
    help="Bundled examples' data: the demo model's data set, and tables to bring through `models init`.",
    no_args_is_help=True,
)


@data_app.callback()
def data_group() -> None:
    """Bundled examples' data: the demo model's data set, and tables to bring through `models init`."""


def today_midnight_utc() -> datetime:
    """Today's 00:00 UTC: the default end of generated data and of materialisation, so features are fresh."""
    now = datetime.now(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


@data_app.command("generate")
def generate_command(
    entities: Annotated[int, typer.Option(min=1, help="Number of entities.")] = 2000,
    days: Annotated[int, typer.Option(min=1, help="Days of events, ending at --end.")] = 90,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 7,
    drift_after: Annotated[
        str | None,
        typer.Option("--drift", "--drift-after", help="ISO time after which distributions shift (drift demo)."),
    ] = None,
    end: Annotated[str | None, typer.Option("--end", help="End of the range (default: today 00:00 UTC).")] = None,
) -> None:
    """Write the demo model's seeded data set into that model's data directory (<data dir>/<model>/)."""
    from mlplatform.config import get_settings
    from mlplatform.demo.generators import DEMO_DESCRIPTION, DEMO_MODEL, DRIFT_GENERATORS

    settings = get_settings()
    generator = DRIFT_GENERATORS[DEMO_MODEL](entities, days, seed)
    with fresh_console().status(f"generating {DEMO_DESCRIPTION}"):
        result = generator(
            settings.model_data_dir(DEMO_MODEL),
            end=parse_timestamp(end, "--end") or today_midnight_utc(),
            drift_after=parse_timestamp(drift_after, "--drift-after"),
            progress=say_progress,
        )
    fresh_console().print(f"[green]wrote[/green] {result.summary()}")


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
