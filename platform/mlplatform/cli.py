"""The `mlplatform` command line.

Commands parse their arguments, build the settings once, and call the same services the API and DAGs use: what
the API offers (models, promotion, training, deployments, audit) goes through the API itself, remote with
`--api-url` or in-process in embedded mode (``mlplatform.client``).  Heavy libraries are imported inside commands
so `mlplatform --help` stays instant.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from mlplatform.api_cli import api_app
from mlplatform.client import PlatformClient, PlatformError
from mlplatform.config import Settings, get_settings
from mlplatform.control_cli import (
    CliOptions,
    api,
    audit,
    cli_settings,
    deployments,
    emit_json,
    models_app,
    training_app,
)
from mlplatform.deploy.base import Deployment
from mlplatform.features.cli import data_app, features_app
from mlplatform.loop_cli import loop_app
from mlplatform.monitoring.cli import monitoring_app
from mlplatform.monitoring.drift_cli import drift_app
from mlplatform.stack.cli import stack_app

if TYPE_CHECKING:
    from mlplatform.orchestration.airflow_client import AirflowClient

app = typer.Typer(help="mlplatform: features -> training -> registry -> serving -> monitoring.", no_args_is_help=True)
settings_app = typer.Typer(help="Inspect the platform's settings.", no_args_is_help=True)
app.add_typer(
    stack_app, name="stack", help="Start, stop and inspect the embedded stack (MLflow, Airflow, platform API/UI)."
)
app.add_typer(features_app, name="features", help="Apply Feast definitions and materialize online features.")
app.add_typer(data_app, name="data", help="Generate the demo data set.")
app.add_typer(models_app, name="models")
app.add_typer(training_app, name="training")
app.add_typer(api_app, name="api", help="The platform API server, its users and API tokens.")
app.add_typer(settings_app, name="settings")
app.add_typer(monitoring_app, name="monitoring", help="Monitoring assets: Grafana dashboards generated from code.")
app.add_typer(drift_app, name="drift", help="Drift checks: served traffic against the champion's training reference.")
app.add_typer(loop_app, name="loop", help="The closed loop: drift -> alert -> retrain -> promotion -> swap.")
app.command()(deployments)
app.command()(audit)
TERMINAL_RUN_STATES = ("success", "failed")
DAG_PARSE_TIMEOUT_S = 120.0

console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)


def _fail(message: str) -> None:
    errors.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=1)


@app.callback()
def global_options(
    ctx: typer.Context,
    api_url: Annotated[
        str | None,
        typer.Option(
            "--api-url",
            help="Platform API to talk to, e.g. https://mlp.example.com (default: MLP_API_URL; unset: embedded "
            "mode, the API in-process over the local state). The token comes from MLP_API_TOKEN.",
        ),
    ] = None,
) -> None:
    """mlplatform: features -> training -> registry -> serving -> monitoring."""
    ctx.obj = CliOptions(api_url=api_url)


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
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model spec name, e.g. fraud_detector.")],
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the DAG run to its end.")] = False,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Estimator parameter override key=value.")
    ] = None,
    window_days: Annotated[int | None, typer.Option(min=1, help="Days of labelled data to train on.")] = None,
    reason: Annotated[str, typer.Option(help="Why this run is started (recorded as lineage).")] = "manual",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the run with --wait.")] = 1800.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the run as JSON (its final state with --wait); progress to stderr.")
    ] = False,
) -> None:
    """Trigger the model's training DAG through the platform API (which audits it and asks Airflow)."""
    settings = cli_settings(ctx)
    overrides = _parse_overrides(param or [])
    progress = errors if as_json else console
    with api(ctx) as client:
        run = _trigger(client, model, overrides, window_days, reason)
        progress.print(f"triggered [bold]{run['dag_id']}[/] run [cyan]{run['run_id']}[/]")
        if not wait:
            if as_json:
                emit_json(run)
            return
        state = _follow(client, settings, model, run, timeout, progress)
        if as_json:
            emit_json(client.training_run(model, run["run_id"]))
        if state != "success":
            _fail(f"DAG run {run['run_id']} ended {state}; full logs in the Airflow UI")
        if not as_json:
            _print_outcome(client, model, run["run_id"])


def _trigger(
    client: PlatformClient, model: str, overrides: dict[str, Any], window_days: int | None, reason: str
) -> dict[str, Any]:
    """Trigger the run; right after `stack up` Airflow may not have parsed the DAG yet, so a missing DAG is retried."""
    deadline = time.monotonic() + DAG_PARSE_TIMEOUT_S
    while True:
        try:
            return client.train(model, overrides, window_days, reason)
        except PlatformError as error:
            if error.type != "/problems/unknown-run" or time.monotonic() > deadline:
                raise
            errors.print(f"waiting for Airflow to parse the {model} training DAG ...", highlight=False)
            time.sleep(3.0)


def _follow(
    client: PlatformClient, settings: Settings, model: str, run: dict[str, Any], timeout: float, out: Console
) -> str:
    """Wait for the run's end; embedded mode also shows task progress and failed tasks' logs from Airflow."""
    if settings.api_url is None:
        return _follow_in_airflow(settings, run["dag_id"], run["run_id"], timeout, out)
    deadline = time.monotonic() + timeout
    state = run["state"]
    while state not in TERMINAL_RUN_STATES:
        if time.monotonic() > deadline:
            _fail(f"DAG run {run['run_id']} still {state} after {timeout:.0f}s")
        time.sleep(settings.airflow.poll_interval_s)
        current = client.training_run(model, run["run_id"])["state"]
        if current != state:
            out.print(f"  {current}", highlight=False)
        state = current
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
        _fail(str(error))
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


@app.command()
def deploy(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model spec name; its champion is served.")],
    backend: Annotated[str | None, typer.Option(help="bentoml or kserve (default: MLP_SERVING__BACKEND).")] = None,
    reason: Annotated[str | None, typer.Option(help="Why (recorded in the audit log).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's answer as JSON.")] = False,
) -> None:
    """Serve the model's champion through the platform API (locally: a supervised server, logs in the state dir)."""
    if not as_json:
        console.print(f"deploying {model} with {backend or cli_settings(ctx).serving.backend} ...", highlight=False)
    with api(ctx) as client:
        deployment = client.deploy(model, backend, reason)
    if as_json:
        emit_json(deployment)
        return
    console.print(f"[bold green]{model}[/] served by {deployment['backend']} at {deployment['url']}", highlight=False)


@app.command()
def undeploy(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model whose server is stopped.")],
    reason: Annotated[str | None, typer.Option(help="Why (recorded in the audit log).")] = None,
) -> None:
    """Stop the model's server through the platform API (its prediction log is flushed first)."""
    with api(ctx) as client:
        stopped = client.undeploy(model, reason)
    console.print(f"{model}: stopped" if stopped["was_running"] else f"{model}: was not deployed", highlight=False)


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
