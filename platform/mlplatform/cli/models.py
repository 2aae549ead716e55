"""CLI commands that mirror the platform API: models, versions, comparison, promotion, rollback, training runs,
deployments and the audit log.

Each command makes the API call of the same name through ``PlatformClient`` (remote with ``--api-url``/
``MLP_API_URL`` and ``MLP_API_TOKEN``, else the embedded app in-process) and prints the answer as a table, or with
``--json`` exactly as the API returned it, for scripts.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from mlplatform.cli.platform_api_client import PlatformClient, PlatformError, platform_client
from mlplatform.config import Settings, get_settings

models_app = typer.Typer(
    help="Registered models: versions, aliases, metrics, lineage, promotion.", no_args_is_help=True
)
training_app = typer.Typer(help="Training runs (Airflow DAG runs) of a model.", no_args_is_help=True)
console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON answer unchanged.")]
ModelArg = Annotated[str, typer.Argument(help="Model name, e.g. fraud_detector.")]


@dataclass(frozen=True)
class CliOptions:
    """Options of the top-level command that every subcommand's settings honour."""

    api_url: str | None = None


def cli_settings(ctx: typer.Context) -> Settings:
    """Settings from the environment, with ``--api-url`` (given before the subcommand) on top."""
    options = ctx.find_object(CliOptions)
    if options is not None and options.api_url:
        return get_settings(api_url=options.api_url)
    return get_settings()


@contextmanager
def api(ctx: typer.Context) -> Iterator[PlatformClient]:
    """The platform client for this command; an API refusal ends the command with its problem detail."""
    settings = cli_settings(ctx)
    try:
        with platform_client(settings, notify=lambda message: errors.print(message, highlight=False)) as client:
            yield client
    except PlatformError as error:
        fail_with(error, settings)


def fail_with(error: PlatformError, settings: Settings) -> None:
    """Exit 1 with the problem's title and detail, and the likely fix for an embedded stack that is down."""
    message = f"{error.title}: {error.detail}" if error.detail else error.title
    if settings.api_url is None and error.status in (502, 503) and "stack up" not in message:
        message += "\n  is the embedded stack running? start it with `mlplatform stack up`"
    errors.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=1)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _metric(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


# -- models ------------------------------------------------------------------------------------------------------


@models_app.command("list")
def models_list(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Models the platform knows (from their specs)."""
    with api(ctx) as client:
        models = client.models()
    if as_json:
        emit_json(models)
        return
    table = Table("model", "owner", "primary metric", "training DAG", "schedule")
    for model in models:
        table.add_row(
            model["name"],
            *(str(model.get(key) or "-") for key in ("owner", "primary_metric", "training_dag_id", "schedule")),
        )
    console.print(table)


@models_app.command("show")
def models_show(ctx: typer.Context, model: ModelArg, as_json: AsJson = False) -> None:
    """Versions, aliases, metrics and lineage of one model."""
    with api(ctx) as client:
        described = client.model(model)
    if as_json:
        emit_json(described)
        return
    aliases = ", ".join(f"{alias}=v{version}" for alias, version in described["aliases"].items()) or "none"
    console.print(f"[bold]{model}[/]  aliases: {aliases}", highlight=False)
    console.print(f"MLflow UI: {described['tracking_uri']}/#/models/{model}", highlight=False)
    _print_versions(described["versions"])


@models_app.command("versions")
def models_versions(ctx: typer.Context, model: ModelArg, as_json: AsJson = False) -> None:
    """The model's registered versions, newest first, with aliases, metrics and data window."""
    with api(ctx) as client:
        versions = client.model(model)["versions"]
    if as_json:
        emit_json(versions)
        return
    _print_versions(versions)


def _print_versions(versions: list[dict[str, Any]]) -> None:
    table = Table("version", "aliases", "roc_auc", "avg precision", "rows", "data window", "gate")
    for version in versions:
        metrics, lineage = version["metrics"], version["lineage"]
        gate = json.loads(lineage.get("gate", "{}"))
        table.add_row(
            version["version"],
            ",".join(version["aliases"]),
            _metric(metrics.get("roc_auc")),
            _metric(metrics.get("average_precision")),
            lineage.get("row_count", ""),
            f"{lineage.get('data_window_start', '')[:10]}..{lineage.get('data_window_end', '')[:10]}",
            "passed" if gate.get("passed") else ("failed" if gate else ""),
        )
    console.print(table)


@models_app.command("version")
def models_version(
    ctx: typer.Context,
    model: ModelArg,
    version: Annotated[int, typer.Argument(min=1, help="Version number.")],
    as_json: AsJson = False,
) -> None:
    """One version: metrics, lineage, aliases and the gate decision recorded by its pipeline run."""
    with api(ctx) as client:
        found = client.version(model, version)
    if as_json:
        emit_json(found)
        return
    aliases = ", ".join(found["aliases"]) or "none"
    console.print(f"[bold]{model} v{found['version']}[/]  aliases: {aliases}  run: {found['run_id']}", highlight=False)
    for name, value in sorted(found["metrics"].items()):
        console.print(f"  {name:<28} {_metric(value)}", highlight=False)
    for name, value in sorted(found["lineage"].items()):
        console.print(f"  {name:<28} {value}", highlight=False)
    gate = found.get("gate")
    if gate:
        verdict = "passed" if gate.get("passed") else "failed"
        console.print(f"  gate: {verdict}: " + "; ".join(gate.get("reasons", [])), highlight=False)


@models_app.command("compare")
def models_compare(
    ctx: typer.Context,
    model: ModelArg,
    a: Annotated[int, typer.Argument(min=1, help="First version.")],
    b: Annotated[int, typer.Argument(min=1, help="Second version.")],
    as_json: AsJson = False,
) -> None:
    """Two versions' metrics side by side (difference is b - a)."""
    with api(ctx) as client:
        compared = client.compare(model, a, b)
    if as_json:
        emit_json(compared)
        return
    table = Table("metric", f"v{a}", f"v{b}", "difference")
    for row in compared["metrics"]:
        difference = row["difference"]
        table.add_row(
            row["metric"], _metric(row["a"]), _metric(row["b"]), "-" if difference is None else f"{difference:+.4f}"
        )
    console.print(table)


@models_app.command("promote")
def models_promote(
    ctx: typer.Context,
    model: ModelArg,
    version: Annotated[int, typer.Argument(min=1, help="Version to make champion.")],
    reason: Annotated[
        str | None, typer.Option(help="Why (recorded in the audit log); required with --override.")
    ] = None,
    override: Annotated[bool, typer.Option(help="Promote although the gate refuses (admin, with --reason).")] = False,
    as_json: AsJson = False,
) -> None:
    """Make a version champion through the promotion gate."""
    with api(ctx) as client:
        outcome = client.promote(model, version, reason, override)
    if as_json:
        emit_json(outcome)
        return
    gate = outcome["gate"]
    if not outcome["promoted"]:
        console.print(f"{model} v{version} already is the champion", highlight=False)
        return
    was = f"v{outcome['previous_champion']}" if outcome["previous_champion"] else "none"
    verdict = "gate overridden" if outcome["overridden"] else "gate passed"
    console.print(f"[bold green]{model} v{version} is champion[/] (was {was}; {verdict})", highlight=False)
    for line in gate["reasons"]:
        console.print(f"  {line}", highlight=False)


@models_app.command("rollback")
def models_rollback(
    ctx: typer.Context,
    model: ModelArg,
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit log).")],
    as_json: AsJson = False,
) -> None:
    """Move champion back to the version that held it before."""
    with api(ctx) as client:
        outcome = client.rollback(model, reason)
    if as_json:
        emit_json(outcome)
        return
    console.print(
        f"[bold]{model}[/] champion rolled back from v{outcome['from_version']} to v{outcome['to_version']}",
        highlight=False,
    )


# -- training runs ------------------------------------------------------------------------------------------------


@training_app.command("runs")
def training_runs(
    ctx: typer.Context,
    model: ModelArg,
    limit: Annotated[int, typer.Option(min=1, max=100, help="How many recent runs.")] = 25,
    as_json: AsJson = False,
) -> None:
    """Recent training runs of the model with their state."""
    with api(ctx) as client:
        runs = client.training_runs(model, limit)
    if as_json:
        emit_json(runs)
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
    with api(ctx) as client:
        run = client.training_run(model, run_id)
    if as_json:
        emit_json(run)
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


# -- deployments and audit ----------------------------------------------------------------------------------------


def deployments(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Deployed models: backend, URL, readiness, canary share and who deployed them."""
    with api(ctx) as client:
        found = client.deployments()
    if as_json:
        emit_json(found)
        return
    table = Table("model", "backend", "url", "state", "canary %", "deployed by")
    for item in found:
        state = "ready" if item["ready"] else ("running" if item["running"] else "stopped")
        table.add_row(
            item["model"], item["backend"], item["url"], state, str(item["canary_percent"]), str(item["deployed_by"])
        )
    console.print(table)


def audit(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many events.")] = 50,
    actor: Annotated[str | None, typer.Option(help="Only this actor.")] = None,
    action: Annotated[str | None, typer.Option(help="Only this action, e.g. model.promote.")] = None,
    target: Annotated[str | None, typer.Option(help="Only this model (with its versions) or user.")] = None,
    result: Annotated[str | None, typer.Option(help="Only this result, e.g. denied.")] = None,
    before_id: Annotated[int | None, typer.Option(min=1, help="Page: events older than this id.")] = None,
    as_json: AsJson = False,
) -> None:
    """The audit log, newest first: who did what, when, from, to, why, and the result."""
    with api(ctx) as client:
        events = client.audit(
            limit=limit, actor=actor, action=action, target=target, result=result, before_id=before_id
        )
    if as_json:
        emit_json(events)
        return
    table = Table("id", "when (UTC)", "actor", "action", "target", "from -> to", "result", "reason")
    for event in events:
        change = f"{event['from_value'] or ''} -> {event['to_value'] or ''}" if event["to_value"] else ""
        table.add_row(
            str(event["id"]),
            event["created_at"][:19].replace("T", " "),
            event["actor"],
            event["action"],
            event["target"],
            change,
            event["result"],
            event["reason"],
        )
    console.print(table)
