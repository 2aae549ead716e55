"""``mlplatform drift check <model>``: run a drift check now and show (or print as JSON) what was recorded.

A sub-app so the main CLI mounts it with one line; Evidently and MLflow are imported only when a check runs.
"""

from __future__ import annotations

import getpass
import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from mlplatform.store.drift import DriftCheck

drift_app = typer.Typer(help="Drift checks: served traffic against the champion's training reference.")

ModelArgument = Annotated[str, typer.Argument(help="Model name (as in its spec).")]
WindowOption = Annotated[
    int | None,
    typer.Option("--window-hours", min=1, max=24 * 90, help="Hours of the prediction log to check (default: spec)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the recorded check as JSON.")]


@drift_app.callback()
def drift_group() -> None:
    """Drift checks: served traffic against the champion's training reference."""


def _print_check(console: Console, check: DriftCheck) -> None:
    window = f"{check.window_start:%Y-%m-%d %H:%M} .. {check.window_end:%Y-%m-%d %H:%M} UTC"
    console.print(f"check {check.id}: [bold]{check.status}[/bold] for {check.model} v{check.model_version}, {window}")
    if check.status == "insufficient_data":
        console.print(f"{check.rows} rows in the window; at least {check.min_rows} needed for a verdict")
        return
    console.print(
        f"{check.rows_compared} of {check.rows} rows compared with {check.reference_rows} reference rows; "
        f"drift share {check.drift_share:.2f} (threshold {check.drift_share_threshold:.2f})"
    )
    if check.prediction_method is not None:
        score = f"{check.prediction_method} {check.prediction_drift_score:.4f}"
        console.print(f"prediction drift: {'yes' if check.prediction_drifted else 'no'} ({score})")
    table = Table("feature", "method", "score", "threshold", "drifted", "missing", "out of range")
    for feature in check.features:
        table.add_row(
            feature.feature,
            feature.method or "",
            f"{feature.score:.4f}" if feature.score is not None else "",
            f"{feature.threshold:g}" if feature.threshold is not None else "",
            "yes" if feature.drifted else "no",
            str(feature.missing_count),
            str(feature.out_of_range_count),
        )
    console.print(table)


@drift_app.command("check")
def check_command(model: ModelArgument, window_hours: WindowOption = None, as_json: JsonOption = False) -> None:
    """Compare the last hours of served traffic with the champion's reference and record the result."""
    from mlplatform.config import get_settings
    from mlplatform.monitoring.drift_check import DriftCheckError, check_json, run_drift_check
    from mlplatform.specs import SpecError

    console = Console(stderr=as_json)
    try:
        check = run_drift_check(get_settings(), model, actor=f"cli:{getpass.getuser()}", window_hours=window_hours)
    except (SpecError, DriftCheckError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    if as_json:
        sys.stdout.write(json.dumps(check_json(check), indent=2) + "\n")
        return
    _print_check(console, check)
