"""``mlplatform monitoring ...``: regenerate (or check) the committed Grafana dashboards.

A sub-app of its own so the main CLI mounts it with one line (``make dashboards`` runs
``mlplatform monitoring dashboards``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mlplatform.monitoring.dashboards import DEFAULT_DIRECTORY, stale_dashboards, write_dashboards

monitoring_app = typer.Typer(help="Monitoring assets: Grafana dashboards generated from code.", no_args_is_help=True)

OutOption = Annotated[
    Path, typer.Option("--out", help="Directory of the dashboard JSON files (relative to the current directory).")
]
CheckOption = Annotated[
    bool, typer.Option("--check", help="Write nothing; exit 1 if a committed file differs from the generator.")
]


@monitoring_app.callback()
def monitoring_group() -> None:
    """Monitoring assets: Grafana dashboards generated from code."""


@monitoring_app.command("dashboards")
def dashboards_command(out: OutOption = DEFAULT_DIRECTORY, check: CheckOption = False) -> None:
    """Write the serving, drift and pipelines dashboards as Grafana JSON (or check the committed ones)."""
    console = Console()
    if check:
        stale = stale_dashboards(out)
        if stale:
            console.print(f"[red]stale:[/red] {', '.join(stale)} in {out}; regenerate with `make dashboards`")
            raise typer.Exit(1)
        console.print(f"[green]up to date[/green]: the dashboards in {out}")
        return
    for path in write_dashboards(out):
        console.print(f"[green]wrote[/green] {path}")
