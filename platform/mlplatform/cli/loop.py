"""``mlplatform loop run <model>``: the closed loop on the embedded stack, step by step, then its timeline.

The command only parses options, wires the fraud demo's data generator into the loop, and prints;
``mlplatform.loop`` does the work (the e2e test and ``benchmarks/loop.py`` call the same function).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from mlplatform.cli._common import console, errors

if TYPE_CHECKING:
    from mlplatform.loop.timeline import LoopResult, Step

loop_app = typer.Typer(
    help="The closed loop: drift -> alert -> retrain -> gated promotion -> the server swaps.", no_args_is_help=True
)


@loop_app.callback()
def loop_group() -> None:
    """The closed loop: drift -> alert -> retrain -> gated promotion -> the server swaps."""


@loop_app.command("run")
def run_command(
    model: Annotated[str, typer.Argument(help="Deployed model, e.g. fraud_detector.")] = "fraud_detector",
    customers: Annotated[int, typer.Option(min=1, help="Customers of the demo data (as `data generate`).")] = 2000,
    days: Annotated[int, typer.Option(min=1, help="Days of demo data (as `data generate`).")] = 90,
    seed: Annotated[int, typer.Option(help="Seed of the demo data (as `data generate`).")] = 7,
    drift_days: Annotated[int, typer.Option(min=1, help="The last N days of data drift.")] = 30,
    requests: Annotated[int, typer.Option(min=1, help="Requests per traffic burst (baseline, drifted).")] = 400,
    rate: Annotated[float, typer.Option(min=1.0, max=5000.0, help="Requests per second.")] = 50.0,
    retrain_timeout: Annotated[float, typer.Option(help="Seconds to wait for the retrain run.")] = 1200.0,
) -> None:
    """Send drifted traffic and follow the loop to the new champion serving; print a timeline with timestamps."""
    from mlplatform.config import get_settings
    from mlplatform.demo.fraud_data import generate
    from mlplatform.loop.driver import LoopOptions, LoopTimeouts, run_loop
    from mlplatform.loop.timeline import OUTCOME_PROMOTED, LoopStalledError

    fraud_data = partial(generate, customers=customers, days=days, seed=seed)
    options = LoopOptions(
        model=model,
        drift_days=drift_days,
        requests=requests,
        rate=rate,
        timeouts=LoopTimeouts(retrain=retrain_timeout),
    )
    console.print(f"[bold]closed loop[/] for {model}: baseline, drift, alert, retrain, promotion", highlight=False)
    with console.status("starting") as status:
        try:
            result = run_loop(
                get_settings(), options, fraud_data, say=lambda message: status.update(message), on_step=_print_step
            )
        except LoopStalledError as error:
            errors.print(f"[bold red]loop stalled at {error.step}:[/] {error}", highlight=False)
            raise typer.Exit(code=1) from None
    print_timeline(result)
    if result.outcome != OUTCOME_PROMOTED:
        console.print(f"[yellow]{result.message}[/]", highlight=False)
        return
    console.print(f"[bold green]{result.message}[/]", highlight=False)


def _print_step(step: Step) -> None:
    console.print(
        f"  [dim]{step.finished:%H:%M:%S}[/] [bold]{step.name}[/] ({step.seconds:.1f}s): {step.detail}",
        highlight=False,
    )


def print_timeline(result: LoopResult) -> None:
    """Every step with its start (UTC), its duration and the elapsed time, then the totals."""
    table = Table("step", "started (UTC)", "took", "elapsed", "detail", title="closed loop timeline")
    for step in result.steps:
        elapsed = (step.finished - result.started).total_seconds()
        table.add_row(step.name, f"{step.started:%H:%M:%S}", f"{step.seconds:.1f}s", f"{elapsed:.1f}s", step.detail)
    console.print(table)
    console.print(f"total {result.total_seconds:.1f}s", highlight=False)
    if result.loop_seconds is not None:
        console.print(
            f"first drifted request -> new champion serving: [bold]{result.loop_seconds:.1f}s[/]", highlight=False
        )
