"""The `mlplatform` command line.

Commands parse their arguments, build the settings once, and call the same services the API and DAGs use.
Heavy libraries are imported inside commands so `mlplatform --help` stays instant.
"""

from __future__ import annotations

import getpass
import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from mlplatform.api_cli import api_app
from mlplatform.config import get_settings
from mlplatform.deploy.base import Deployment
from mlplatform.features.cli import data_app, features_app
from mlplatform.orchestration.airflow_client import AirflowClient
from mlplatform.stack.cli import stack_app

app = typer.Typer(help="mlplatform: features -> training -> registry -> serving -> monitoring.", no_args_is_help=True)
models_app = typer.Typer(help="Registered models: versions, aliases, metrics, lineage.", no_args_is_help=True)
settings_app = typer.Typer(help="Inspect the platform's settings.", no_args_is_help=True)
app.add_typer(stack_app, name="stack", help="Start, stop and inspect the embedded stack (MLflow, Airflow).")
app.add_typer(features_app, name="features", help="Apply Feast definitions and materialize online features.")
app.add_typer(data_app, name="data", help="Generate the demo data set.")
app.add_typer(models_app, name="models")
app.add_typer(api_app, name="api", help="The platform API server, its users and API tokens.")
app.add_typer(settings_app, name="settings")

console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)


def _fail(message: str) -> None:
    errors.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=1)


def _parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs; values are parsed as JSON when they are JSON (numbers, booleans), else kept as text."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, separator, raw = pair.partition("=")
        if not separator or not key.isidentifier():
            raise typer.BadParameter(f"{pair!r} is not key=value with a parameter name as key", param_hint="--param")
        try:
            overrides[key] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key] = raw
    return overrides


@app.command()
def train(
    model: Annotated[str, typer.Argument(help="Model spec name, e.g. fraud_detector.")],
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the DAG run to its end.")] = False,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Estimator parameter override key=value.")
    ] = None,
    window_days: Annotated[int | None, typer.Option(min=1, help="Days of labelled data to train on.")] = None,
    reason: Annotated[str, typer.Option(help="Why this run is started (recorded as lineage).")] = "manual",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the run with --wait.")] = 1800.0,
) -> None:
    """Trigger the model's training DAG through Airflow's REST API."""
    from mlplatform.orchestration.airflow_client import AirflowError
    from mlplatform.specs import SpecError, find_spec

    settings = get_settings()
    try:
        spec = find_spec(settings.specs_dir, model)
    except SpecError as error:
        _fail(str(error))
        return
    conf: dict[str, Any] = {
        "estimator_params": _parse_overrides(param or []),
        "reason": reason,
        "requested_by": getpass.getuser(),
    }
    if window_days is not None:
        conf["window_days"] = window_days
    try:
        client = AirflowClient.from_settings(settings)
        client.wait_for_dag(spec.training_dag_id, timeout=120)
        client.unpause(spec.training_dag_id)
        run = client.trigger(spec.training_dag_id, conf)
        console.print(f"triggered [bold]{spec.training_dag_id}[/] run [cyan]{run.run_id}[/]")
        if not wait:
            return
        final = client.wait(
            spec.training_dag_id,
            run.run_id,
            poll_interval=settings.airflow.poll_interval_s,
            timeout=timeout,
            on_progress=lambda states: console.print(
                "  " + "  ".join(f"{task}={state or 'queued'}" for task, state in states.items()), highlight=False
            ),
        )
        if final.state != "success":
            _print_failed_task_logs(client, spec.training_dag_id, run.run_id)
    except AirflowError as error:
        _fail(str(error))
        return
    if final.state != "success":
        _fail(f"DAG run {run.run_id} ended {final.state}; full logs in the Airflow UI")
    _print_outcome(model, run.run_id)


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


def _print_outcome(model: str, dag_run_id: str) -> None:
    from mlplatform.registry.mlflow_registry import CHAMPION, ModelRegistry

    registry = ModelRegistry(get_settings())
    produced = [v for v in registry.versions(model) if v.lineage.get("dag_run_id") == dag_run_id]
    champion = registry.alias_holder(model, CHAMPION)
    if produced:
        version = produced[0]
        gate = json.loads(version.tags.get("mlplatform.gate", "{}"))
        verdict = "promoted to champion" if gate.get("passed") else "kept as challenger"
        console.print(f"version [bold]{version.version}[/] {verdict}: " + "; ".join(gate.get("reasons", [])))
    console.print(f"champion: [bold green]v{champion.version}[/]" if champion else "no champion yet")


@models_app.command("show")
def models_show(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Versions, aliases, metrics and lineage of one model."""
    from mlplatform.registry.mlflow_registry import ModelRegistry, RegistryUnavailableError

    try:
        described = ModelRegistry(get_settings()).describe(model)
    except (LookupError, RegistryUnavailableError) as error:
        _fail(str(error.args[0]))
        return
    if as_json:
        sys.stdout.write(json.dumps(described, indent=2, sort_keys=True) + "\n")
        return
    aliases = ", ".join(f"{alias}=v{version}" for alias, version in described["aliases"].items()) or "none"
    console.print(f"[bold]{model}[/]  aliases: {aliases}", highlight=False)
    console.print(f"MLflow UI: {described['tracking_uri']}/#/models/{model}", highlight=False)
    table = Table("version", "aliases", "roc_auc", "avg precision", "rows", "data window", "gate")
    for version in described["versions"]:
        metrics, lineage = version["metrics"], version["lineage"]
        gate = json.loads(lineage.get("gate", "{}"))
        table.add_row(
            version["version"],
            ",".join(version["aliases"]),
            f"{metrics.get('roc_auc', float('nan')):.4f}",
            f"{metrics.get('average_precision', float('nan')):.4f}",
            lineage.get("row_count", ""),
            f"{lineage.get('data_window_start', '')[:10]}..{lineage.get('data_window_end', '')[:10]}",
            "passed" if gate.get("passed") else ("failed" if gate else ""),
        )
    console.print(table)


@app.command()
def deploy(
    model: Annotated[str, typer.Argument(help="Model spec name; its champion is served.")],
    backend: Annotated[str | None, typer.Option(help="bentoml or kserve (default: MLP_SERVING__BACKEND).")] = None,
) -> None:
    """Serve the model's champion with a local model server (supervised, logs under the state directory)."""
    from mlplatform.deploy.base import BACKENDS, DeployError
    from mlplatform.deploy.local import LocalProcessDeployer
    from mlplatform.specs import SpecError, find_spec

    settings = get_settings()
    chosen = backend or settings.serving.backend
    try:
        find_spec(settings.specs_dir, model)
        if chosen not in BACKENDS:
            raise DeployError(f"unknown backend {chosen!r}; choose one of {', '.join(BACKENDS)}")
        console.print(f"deploying {model} with {chosen} at {LocalProcessDeployer(settings).url} ...", highlight=False)
        deployment = LocalProcessDeployer(settings).deploy(model, chosen)
    except (SpecError, DeployError) as error:
        _fail(str(error))
        return
    console.print(f"[bold green]{model}[/] served by {deployment.backend}: {deployment.predict_url}", highlight=False)
    console.print(f"  log: {deployment.log_path}", highlight=False)


@app.command()
def undeploy(model: Annotated[str, typer.Argument(help="Model whose local server is stopped.")]) -> None:
    """Stop the model's local server (its prediction log is flushed first)."""
    from mlplatform.deploy.base import DeployError
    from mlplatform.deploy.local import LocalProcessDeployer

    try:
        stopped = LocalProcessDeployer(get_settings()).undeploy(model)
    except DeployError as error:
        _fail(str(error))
        return
    console.print(f"{model}: stopped" if stopped else f"{model}: was not deployed", highlight=False)


def _deployment_of(model: str) -> Deployment:
    from mlplatform.deploy.local import LocalProcessDeployer

    for deployment in LocalProcessDeployer(get_settings()).list():
        if deployment.model == model and deployment.running:
            return deployment
    _fail(f"{model} is not deployed; run `mlplatform deploy {model}`")
    raise AssertionError("unreachable")


def _parse_entity(text: str) -> dict[str, Any]:
    """`customer_id=1001,amount=42.5` -> {"customer_id": 1001, "amount": 42.5} (values parsed as JSON when valid)."""
    return _parse_overrides([part.strip() for part in text.split(",") if part.strip()])


@app.command()
def predict(
    model: Annotated[str, typer.Argument(help="Deployed model.")],
    entity: Annotated[
        list[str], typer.Option("--entity", "-e", help="One entity as key=value pairs: customer_id=1001,amount=42.5")
    ],
) -> None:
    """Send one prediction request to the model's local server and print the answer as JSON."""
    from mlplatform.serving.client import PredictionError
    from mlplatform.serving.client import predict as send

    deployment = _deployment_of(model)
    try:
        answer = send(deployment, [_parse_entity(item) for item in entity])
    except PredictionError as error:
        _fail(str(error))
        return
    sys.stdout.write(json.dumps(answer, indent=2) + "\n")


@app.command()
def traffic(
    model: Annotated[str, typer.Argument(help="Deployed model.")],
    requests: Annotated[int, typer.Option(min=1, max=100_000, help="How many single-entity requests.")] = 200,
    rate: Annotated[float, typer.Option(min=1.0, max=5000.0, help="Requests per second (open loop).")] = 50.0,
) -> None:
    """Send a burst of realistic requests (recent customers and amounts) and print latency percentiles."""
    from mlplatform.serving.client import recent_entities, send_traffic
    from mlplatform.specs import find_spec

    settings = get_settings()
    spec = find_spec(settings.specs_dir, model)
    deployment = _deployment_of(model)
    entities = recent_entities(
        settings.data_dir / spec.label.source, spec.entity_key, spec.label.request_columns, requests
    )
    console.print(
        f"sending {len(entities)} requests at {rate:.0f}/s to {deployment.predict_url} (after 20 warm-up requests)",
        highlight=False,
    )
    report = send_traffic(deployment, entities, rate)
    for sample in report.samples:
        console.print(f"  {json.dumps(sample)}", highlight=False)
    console.print(
        f"{report.requests - report.failures}/{report.requests} ok in {report.seconds:.1f}s; latency ms "
        f"p50 {report.percentile(50):.1f}  p95 {report.percentile(95):.1f}  p99 {report.percentile(99):.1f}",
        highlight=False,
    )
    if report.failures:
        raise typer.Exit(code=1)


@settings_app.command("docs")
def settings_docs() -> None:
    """Print the settings catalogue (docs/settings.md) as Markdown."""
    from mlplatform.catalogue import render_catalogue

    sys.stdout.write(render_catalogue())


@settings_app.command("show")
def settings_show() -> None:
    """The effective settings (secrets masked) as JSON."""
    sys.stdout.write(get_settings().model_dump_json(indent=2) + "\n")


def main() -> None:
    app()
