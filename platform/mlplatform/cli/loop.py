"""``mlplatform loop run MODEL``: the closed loop on the embedded stack, step by step, then its timeline;
``mlplatform loop rollout MODEL``: a candidate rolled out against the champion on replayed events and late labels,
decided by the platform's sequential test.

The command only parses options, picks the model's data (a bundled model's generator from
``mlplatform.demo.generators``, or the user's ``--drifted`` table), and prints; ``mlplatform.loop`` does the work
(the e2e test and ``benchmarks/loop.py`` call the same function).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from mlplatform.cli._common import ModelArg, console, errors, fail

if TYPE_CHECKING:
    from mlplatform.config import Settings
    from mlplatform.loop.driver import RegenerateData
    from mlplatform.loop.timeline import LoopResult, Step

loop_app = typer.Typer(
    help="The closed loop: drift -> alert -> retrain -> gated promotion -> the server swaps.", no_args_is_help=True
)
GENERATED_DEFAULTS = {"entities": 2000, "days": 90, "seed": 7}
"""World size of a bundled generator when not given (as `data generate`)."""


@loop_app.callback()
def loop_group() -> None:
    """The closed loop: drift -> alert -> retrain -> gated promotion -> the server swaps."""


@loop_app.command("run")
def run_command(
    model: ModelArg,
    drifted: Annotated[
        Path | None,
        typer.Option(
            help="Parquet file: one of the model's feature tables (same columns) with drifted values, usually at "
            "later timestamps. Its rows are appended to that table and materialized, so served features drift; "
            "the table is put back as it was at the next run's start. Needed unless the model has a bundled data "
            "generator.",
            dir_okay=False,
        ),
    ] = None,
    entities: Annotated[
        int | None, typer.Option(min=1, help="Bundled generator only: entities of the generated data (2000).")
    ] = None,
    days: Annotated[
        int | None, typer.Option(min=1, help="Bundled generator only: days of generated data (90).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Bundled generator only: seed of the generated data (7).")] = None,
    drift_days: Annotated[int, typer.Option(min=1, help="Bundled generator only: the last N days of data drift.")] = 30,
    requests: Annotated[int, typer.Option(min=1, help="Requests per traffic burst (baseline, drifted).")] = 400,
    rate: Annotated[float, typer.Option(min=1.0, max=5000.0, help="Requests per second.")] = 50.0,
    retrain_timeout: Annotated[float, typer.Option(help="Seconds to wait for the retrain run.")] = 1200.0,
) -> None:
    """Send drifted traffic and follow the loop to the new champion serving; print a timeline with timestamps.

    Example: mlplatform loop run my_model --drifted my_features_drifted.parquet
    """
    from mlplatform.config import get_settings
    from mlplatform.loop.driver import LoopOptions, LoopTimeouts, run_loop
    from mlplatform.loop.timeline import OUTCOME_PROMOTED, LoopStalledError

    settings = get_settings()
    data = model_data(settings, model, drifted, {"entities": entities, "days": days, "seed": seed})
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
            result = run_loop(settings, options, data, say=lambda message: status.update(message), on_step=_print_step)
        except LoopStalledError as error:
            errors.print(f"[bold red]loop stalled at {error.step}:[/] {error}", highlight=False)
            raise typer.Exit(code=1) from None
        except ValueError as error:  # the options do not fit the model (e.g. fewer requests than its drift min_rows)
            fail(str(error))
    print_timeline(result)
    if result.outcome != OUTCOME_PROMOTED:
        console.print(f"[yellow]{result.message}[/]", highlight=False)
        return
    console.print(f"[bold green]{result.message}[/]", highlight=False)


@loop_app.command("rollout")
def rollout_command(
    model: ModelArg,
    candidate: Annotated[
        str | None,
        typer.Option(
            help="Version or alias to roll out. Default: the `challenger` alias (e.g. of `mlplatform train MODEL "
            "--no-promote`)."
        ),
    ] = None,
    policy: Annotated[
        list[str] | None,
        typer.Option(
            "--policy",
            help="FIELD=VALUE over the demo's policy (itself over the spec's `rollout:`), e.g. --policy "
            "max_duration=5m or --policy guardrails.max_prediction_shift=0.5. Repeatable.",
        ),
    ] = None,
    known_at: Annotated[
        str | None,
        typer.Option(help="Label-table column of when each label became known (its delay); default: no delay."),
    ] = None,
    day_seconds: Annotated[float, typer.Option(min=0.0, max=3600.0, help="Wall seconds per day of label delay.")] = 2.0,
    rate: Annotated[float, typer.Option(min=1.0, max=2000.0, help="Requests per second.")] = 100.0,
    timeout: Annotated[float, typer.Option(min=10.0, max=3600.0, help="Seconds to wait for a decision.")] = 90.0,
) -> None:
    """Roll a candidate out as a shadow, then a split; the platform's evaluator promotes or rolls it back.

    The command replays the model's latest labelled events as requests and returns each label after its delay; the
    decision is the platform's own (docs/rollouts.md). Example: mlplatform loop rollout my_model
    --known-at label_known_at
    """
    from mlplatform.config import get_settings
    from mlplatform.loop.rollout import DEMO_POLICY, RolloutOptions, run_rollout
    from mlplatform.loop.timeline import OUTCOME_PROMOTED, LoopStalledError
    from mlplatform.rollouts.control import RolloutError, overlay

    options = RolloutOptions(
        model=model,
        candidate=candidate,
        policy=overlay(DEMO_POLICY, _policy_overrides(policy or [])),
        rate=rate,
        known_at=known_at,
        day_seconds=day_seconds,
        timeout=timeout,
    )
    console.print(f"[bold]rollout[/] for {model}: shadow, split, the test decides", highlight=False)
    with console.status("starting") as status:
        try:
            result = run_rollout(
                get_settings(), options, say=lambda message: status.update(message), on_step=_print_step
            )
        except LoopStalledError as error:
            errors.print(f"[bold red]rollout stalled at {error.step}:[/] {error}", highlight=False)
            raise typer.Exit(code=1) from None
        except RolloutError as error:
            fail(str(error))
    print_timeline(result, "rollout timeline")
    colour = "bold green" if result.outcome == OUTCOME_PROMOTED else "yellow"
    console.print(f"[{colour}]{result.message}[/]", highlight=False)


def _policy_overrides(pairs: list[str]) -> dict[str, Any]:
    """FIELD=VALUE pairs, a guardrail as guardrails.FIELD=VALUE (the policy validates the values, naming a bad one)."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        section, dot, field = name.strip().rpartition(".")
        if not equals or not field or (dot and section != "guardrails"):
            fail(f"--policy {pair!r}: expected FIELD=VALUE or guardrails.FIELD=VALUE, e.g. max_duration=5m")
        if dot:
            overrides.setdefault(section, {})[field] = value.strip()
        else:
            overrides[field] = value.strip()
    return overrides


def model_data(settings: Settings, model: str, drifted: Path | None, sizes: dict[str, int | None]) -> RegenerateData:
    """The loop's data for ``model``: ``--drifted`` when given, else the model's bundled generator, else an error
    that says what to pass."""
    from mlplatform.demo.generators import DRIFT_GENERATORS
    from mlplatform.loop.drifted import DriftedTable, DriftedTableError
    from mlplatform.specs import SpecError, find_spec

    try:
        spec = find_spec(settings.model_roots, model)
    except SpecError as error:
        fail(str(error))
        raise
    if drifted is not None:
        given = [f"--{name}" for name, value in sizes.items() if value is not None]
        if given:
            fail(f"{', '.join(given)} size a bundled generator's data; with --drifted the file is the data")
        try:
            return DriftedTable(settings, spec, drifted)
        except DriftedTableError as error:
            fail(str(error))
            raise
    factory = DRIFT_GENERATORS.get(spec.name)
    if factory is None:
        fail(
            f"{model} has no bundled data generator: pass --drifted FILE, a copy of one of its feature tables "
            "(same columns) with drifted values"
        )
        raise AssertionError("unreachable")
    size = {name: GENERATED_DEFAULTS[name] if value is None else value for name, value in sizes.items()}
    return factory(size["entities"], size["days"], size["seed"])


def _print_step(step: Step) -> None:
    console.print(
        f"  [dim]{step.finished:%H:%M:%S}[/] [bold]{step.name}[/] ({step.seconds:.1f}s): {step.detail}",
        highlight=False,
    )


def print_timeline(result: LoopResult, title: str = "closed loop timeline") -> None:
    """Every step with its start (UTC), its duration and the elapsed time, then the totals."""
    table = Table("step", "started (UTC)", "took", "elapsed", "detail", title=title)
    for step in result.steps:
        elapsed = (step.finished - result.started).total_seconds()
        table.add_row(step.name, f"{step.started:%H:%M:%S}", f"{step.seconds:.1f}s", f"{elapsed:.1f}s", step.detail)
    console.print(table)
    console.print(f"total {result.total_seconds:.1f}s", highlight=False)
    if result.loop_seconds is not None:
        console.print(
            f"first drifted request -> new champion serving: [bold]{result.loop_seconds:.1f}s[/]", highlight=False
        )
