"""``mlplatform models ...``: registered models, their versions, comparison, promotion and rollback.

Each command makes the API call of the same name through ``PlatformClient`` (remote with ``--api-url``/
``MLP_API_URL`` and ``MLP_API_TOKEN``, else the embedded app in-process) and prints the answer as a table, or with
``--json`` exactly as the API returned it, for scripts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.table import Table

from mlplatform.cli._common import AsJson, ModelArg, api_answer, console, emit_json, fail

models_app = typer.Typer(
    help="Registered models: versions, aliases, metrics, lineage, promotion.", no_args_is_help=True
)


def _metric(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


@models_app.command("init")
def models_init(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name of the new model (lowercase letters, digits, underscores).")],
    entity_key: Annotated[str, typer.Option(help="Entity key column, present in every file.")],
    features: Annotated[
        list[Path], typer.Option(help="Feature table (parquet); repeat for several.", exists=True, dir_okay=False)
    ],
    labels: Annotated[Path, typer.Option(help="Label table (parquet).", exists=True, dir_okay=False)],
    label: Annotated[str, typer.Option(help="Label column of the label table.")],
    task: Annotated[
        str, typer.Option(help="classification (binary or multi-class from the labels) or regression.")
    ] = "classification",
    estimator: Annotated[
        str | None, typer.Option(help="Estimator class path. Default: a random forest for the task.")
    ] = None,
    timestamp_column: Annotated[str, typer.Option(help="Event timestamp column, in every file.")] = "event_timestamp",
    timezone: Annotated[str | None, typer.Option(help="Zone of naive timestamps (default UTC).")] = None,
    as_json: AsJson = False,
) -> None:
    """Create a model from a feature table and a label table: check the data contract, write the model folder,
    register and load its features, and validate it."""
    fields = {
        "name": name,
        "entity_key": entity_key,
        "label": label,
        "task": task,
        "timestamp_column": timestamp_column,
    }
    fields.update({key: value for key, value in (("estimator", estimator), ("timezone", timezone)) if value})
    created = api_answer(ctx, as_json, lambda client: client.create_model(fields, features, labels))
    if created is None:
        return
    for notice in created["notices"]:
        console.print(f"[yellow]note:[/] {notice}", highlight=False)
    console.print(f"[bold]{name}[/] ({created['task']}): {created['folder']}", highlight=False)
    console.print(f"  data: {created['data_dir']}", highlight=False)
    console.print(
        f"  features: {', '.join(created['feature_views'])}, online up to {created['materialized_up_to']}",
        highlight=False,
    )
    _print_validation(created["validation"])


@models_app.command("validate")
def models_validate(ctx: typer.Context, model: ModelArg, as_json: AsJson = False) -> None:
    """Check a model as a training run would, in seconds: spec, estimator classes, feature service, labels,
    data window, and a fit, save, load and score on a sample."""
    report = api_answer(ctx, as_json, lambda client: client.validate_model(model))
    if report is None:
        return
    _print_validation(report)


def _print_validation(report: dict[str, Any]) -> None:
    """One line per check; exit 1 when any failed, so scripts stop before training."""
    for check in report["checks"]:
        mark = "[green]ok[/]  " if check["passed"] else "[red]FAIL[/]"
        console.print(f"  {mark} {check['name']}: {check['detail']}", highlight=False)
    if not report["passed"]:
        fail(
            f"model {report['model']} is not ready to train; fix the failed check(s) and run `mlplatform models "
            f"validate {report['model']}`"
        )
    console.print(f"[bold green]{report['model']} is ready to train[/]: mlplatform train {report['model']}")


@models_app.command("list")
def models_list(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Models the platform knows (from their specs)."""
    models = api_answer(ctx, as_json, lambda client: client.models())
    if models is None:
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
    described = api_answer(ctx, as_json, lambda client: client.model(model))
    if described is None:
        return
    aliases = ", ".join(f"{alias}=v{version}" for alias, version in described["aliases"].items()) or "none"
    console.print(f"[bold]{model}[/]  aliases: {aliases}", highlight=False)
    console.print(f"MLflow UI: {described['tracking_uri']}/#/models/{model}", highlight=False)
    _print_versions(described["versions"], _metric_columns(described))


@models_app.command("versions")
def models_versions(ctx: typer.Context, model: ModelArg, as_json: AsJson = False) -> None:
    """The model's registered versions, newest first, with aliases, metrics and data window."""
    described = cast(dict[str, Any], api_answer(ctx, False, lambda client: client.model(model)))
    if as_json:
        emit_json(described["versions"])
        return
    _print_versions(described["versions"], _metric_columns(described))


def _metric_columns(described: dict[str, Any]) -> list[str]:
    """The model's primary metric, then the next one its task computes: the two figures a version is judged by."""
    from mlplatform.specs import TASK_METRICS

    primary = str(described.get("primary_metric", "roc_auc"))
    others = [metric for metric in TASK_METRICS.get(str(described.get("task", "binary")), ()) if metric != primary]
    return [primary, *others[:1]]


def _print_versions(versions: list[dict[str, Any]], metric_columns: list[str]) -> None:
    table = Table("version", "aliases", *metric_columns, "rows", "data window", "gate")
    for version in versions:
        metrics, lineage = version["metrics"], version["lineage"]
        gate = json.loads(lineage.get("gate", "{}"))
        table.add_row(
            version["version"],
            ",".join(version["aliases"]),
            *(_metric(metrics.get(metric)) for metric in metric_columns),
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
    found = api_answer(ctx, as_json, lambda client: client.version(model, version))
    if found is None:
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
    compared = api_answer(ctx, as_json, lambda client: client.compare(model, a, b))
    if compared is None:
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
    outcome = api_answer(ctx, as_json, lambda client: client.promote(model, version, reason, override))
    if outcome is None:
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
    outcome = api_answer(ctx, as_json, lambda client: client.rollback(model, reason))
    if outcome is None:
        return
    console.print(
        f"[bold]{model}[/] champion rolled back from v{outcome['from_version']} to v{outcome['to_version']}",
        highlight=False,
    )
