"""``mlplatform train <model>`` and ``mlplatform training runs|status``: start a model's training DAG through the
platform API and follow its runs.

In embedded mode ``train --wait`` follows the run in Airflow itself, to show task progress and a failed task's log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from mlplatform.cli._common import (
    AsJson,
    ModelArg,
    api,
    api_answer,
    cli_settings,
    console,
    emit_json,
    errors,
    fail,
    parse_key_values,
)
from mlplatform.cli.platform_api_client import PlatformClient, PlatformError
from mlplatform.config import Settings
from mlplatform.waiting import WaitTimeoutError, wait_until

if TYPE_CHECKING:
    from mlplatform.orchestration.airflow_client import AirflowClient

training_app = typer.Typer(help="Training runs (Airflow DAG runs) of a model.", no_args_is_help=True)
TERMINAL_RUN_STATES = ("success", "failed")
DAG_PARSE_TIMEOUT_S = 120.0


def train(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model spec name, e.g. my_model.")],
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the DAG run to its end.")] = False,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Estimator parameter override key=value.")
    ] = None,
    window_days: Annotated[int | None, typer.Option(min=1, help="Days of labelled data to train on.")] = None,
    reason: Annotated[str, typer.Option(help="Why this run is started (recorded as lineage).")] = "manual",
    promote: Annotated[
        bool,
        typer.Option(
            "--promote/--no-promote",
            help="--no-promote: a version that passes the gate stays challenger, for a rollout to decide "
            "(`mlplatform rollouts start MODEL`).",
        ),
    ] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the run with --wait.")] = 1800.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the run as JSON (its final state with --wait); progress to stderr.")
    ] = False,
) -> None:
    """Trigger the model's training DAG through the platform API (which audits it and asks Airflow)."""
    settings = cli_settings(ctx)
    overrides = parse_key_values(param or [])
    progress = errors if as_json else console
    with api(ctx) as client:
        run = _trigger(client, model, overrides, window_days, reason, promote)
        progress.print(f"triggered [bold]{run['dag_id']}[/] run [cyan]{run['run_id']}[/]")
        if not wait:
            if as_json:
                emit_json(run)
            return
        state = _follow(client, settings, model, run, timeout, progress)
        if as_json:
            emit_json(client.training_run(model, run["run_id"]))
        if state != "success":
            fail(f"DAG run {run['run_id']} ended {state}; full logs in the Airflow UI")
        if not as_json:
            _print_outcome(client, model, run["run_id"])


def _trigger(
    client: PlatformClient, model: str, overrides: dict[str, Any], window_days: int | None, reason: str, promote: bool
) -> dict[str, Any]:
    """Trigger the run; right after `stack up` Airflow may not have parsed the DAG yet, so a missing DAG is retried."""
    unknown_run: PlatformError | None = None

    def started() -> dict[str, Any] | None:
        nonlocal unknown_run
        try:
            return client.train(model, overrides, window_days, reason, promote)
        except PlatformError as error:
            if error.type != "/problems/unknown-run":
                raise
            unknown_run = error
            return None

    try:
        return wait_until(
            started,
            timeout=DAG_PARSE_TIMEOUT_S,
            interval=3.0,
            what=f"the {model} training DAG",
            on_wait=lambda: errors.print(f"waiting for Airflow to parse the {model} training DAG ...", highlight=False),
        )
    except WaitTimeoutError:
        assert unknown_run is not None  # the only answer that keeps the wait going
        raise unknown_run from None


def _follow(
    client: PlatformClient, settings: Settings, model: str, run: dict[str, Any], timeout: float, out: Console
) -> str:
    """Wait for the run's end; embedded mode also shows task progress and failed tasks' logs from Airflow."""
    if settings.api_url is None:
        return _follow_in_airflow(settings, run["dag_id"], run["run_id"], timeout, out)
    state = run["state"]

    def ended() -> bool:
        nonlocal state
        current = client.training_run(model, run["run_id"])["state"]
        if current != state:
            out.print(f"  {current}", highlight=False)
        state = current
        return state in TERMINAL_RUN_STATES

    if state not in TERMINAL_RUN_STATES:
        try:
            wait_until(ended, timeout=timeout, interval=settings.airflow.poll_interval_s, what=f"run {run['run_id']}")
        except WaitTimeoutError:
            fail(f"DAG run {run['run_id']} still {state} after {timeout:.0f}s")
    return str(state)


def _follow_in_airflow(settings: Settings, dag_id: str, run_id: str, timeout: float, out: Console) -> str:
    from mlplatform.orchestration.airflow_client import AirflowError
    from mlplatform.stack.embedded import airflow_client

    try:
        with airflow_client(settings) as airflow:
            final = airflow.wait(
                dag_id,
                run_id,
                poll_interval=settings.airflow.poll_interval_s,
                timeout=timeout,
                on_progress=lambda states: out.print(
                    "  " + "  ".join(f"{task}={state or 'queued'}" for task, state in states.items()),
                    highlight=False,
                ),
            )
            if final.state != "success":
                _print_failed_task_logs(airflow, dag_id, run_id)
    except AirflowError as error:
        fail(str(error))
        raise AssertionError("unreachable") from error
    return str(final.state)


def _print_failed_task_logs(client: AirflowClient, dag_id: str, run_id: str, lines: int = 25) -> None:
    """The end of each failed task's last try: usually the error a data scientist needs to see."""
    for instance in client.task_instances(dag_id, run_id):
        if instance.state != "failed":
            continue
        log = client.task_log(dag_id, run_id, instance.task_id, try_number=max(instance.try_number, 1))
        tail = "\n".join(log.splitlines()[-lines:])
        errors.print(
            f"[bold]{instance.task_id}[/] failed (try {instance.try_number}); end of its log:", highlight=False
        )
        errors.print(tail, highlight=False, markup=False)


def _print_outcome(client: PlatformClient, model: str, dag_run_id: str) -> None:
    """The version the run registered, its gate verdict, and the champion now."""
    described = client.model(model)
    produced = [v for v in described["versions"] if v["lineage"].get("dag_run_id") == dag_run_id]
    if produced:
        version = client.version(model, int(produced[0]["version"]))
        gate = version.get("gate") or {}
        verdict = "promoted to champion" if gate.get("passed") else "kept as challenger"
        console.print(f"version [bold]{version['version']}[/] {verdict}: " + "; ".join(gate.get("reasons", [])))
    champion = described["aliases"].get("champion")
    console.print(f"champion: [bold green]v{champion}[/]" if champion else "no champion yet")


@training_app.command("runs")
def training_runs(
    ctx: typer.Context,
    model: ModelArg,
    limit: Annotated[int, typer.Option(min=1, max=100, help="How many recent runs.")] = 25,
    as_json: AsJson = False,
) -> None:
    """Recent training runs of the model with their state."""
    runs = api_answer(ctx, as_json, lambda client: client.training_runs(model, limit))
    if runs is None:
        return
    _print_runs(runs)


@training_app.command("status")
def training_status(
    ctx: typer.Context,
    model: ModelArg,
    run_id: Annotated[str, typer.Argument(help="DAG run id, as `train` printed it.")],
    as_json: AsJson = False,
) -> None:
    """One training run's state."""
    run = api_answer(ctx, as_json, lambda client: client.training_run(model, run_id))
    if run is None:
        return
    _print_runs([run])


def _print_runs(runs: list[dict[str, Any]]) -> None:
    table = Table("run id", "state", "queued", "started", "ended", "reason", "requested by")
    for run in runs:
        conf = run.get("conf") or {}
        table.add_row(
            run["run_id"],
            run["state"],
            *(str(run.get(key) or "-")[:19] for key in ("queued_at", "start_date", "end_date")),
            str(conf.get("reason", "")),
            str(conf.get("requested_by", "")),
        )
    console.print(table)
