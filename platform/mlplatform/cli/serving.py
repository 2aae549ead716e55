"""Serving commands: ``deploy``, ``undeploy`` and ``deployments`` through the platform API; ``predict`` and
``traffic`` straight to a model's local server.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from mlplatform.cli._common import AsJson, api, api_answer, cli_settings, console, fail, parse_key_values
from mlplatform.config import get_settings
from mlplatform.deploy.base import Deployment


def deploy(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model spec name; its champion is served.")],
    backend: Annotated[str | None, typer.Option(help="bentoml or kserve (default: MLP_SERVING__BACKEND).")] = None,
    port: Annotated[
        int | None,
        typer.Option(
            min=1024,
            max=65535,
            help="Local deploys: the port the server listens on (default: the first free one from "
            "MLP_SERVING__PORT up, or the one the model held).",
        ),
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why (recorded in the audit log).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's answer as JSON.")] = False,
) -> None:
    """Serve the model's champion through the platform API (locally: a supervised server on its own port, beside
    any other deployed model; logs in the state dir)."""
    if not as_json:
        console.print(f"deploying {model} with {backend or cli_settings(ctx).serving.backend} ...", highlight=False)
    deployment = api_answer(ctx, as_json, lambda client: client.deploy(model, backend, reason, port))
    if deployment is None:
        return
    console.print(f"[bold green]{model}[/] served by {deployment['backend']} at {deployment['url']}", highlight=False)


def undeploy(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model whose server is stopped.")],
    reason: Annotated[str | None, typer.Option(help="Why (recorded in the audit log).")] = None,
) -> None:
    """Stop the model's server through the platform API (its prediction log is flushed first)."""
    with api(ctx) as client:
        stopped = client.undeploy(model, reason)
    console.print(f"{model}: stopped" if stopped["was_running"] else f"{model}: was not deployed", highlight=False)


def deployments(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Deployed models: backend, URL, readiness, canary share and who deployed them."""
    found = api_answer(ctx, as_json, lambda client: client.deployments())
    if found is None:
        return
    table = Table("model", "backend", "url", "state", "canary %", "deployed by")
    for item in found:
        state = "ready" if item["ready"] else ("running" if item["running"] else "stopped")
        table.add_row(
            item["model"], item["backend"], item["url"], state, str(item["canary_percent"]), str(item["deployed_by"])
        )
    console.print(table)


def _deployment_of(model: str) -> Deployment:
    """The model's local server, at the URL its deployment recorded."""
    from mlplatform.deploy.local import LocalProcessDeployer

    for deployment in LocalProcessDeployer(get_settings()).list():
        if deployment.model == model and deployment.running:
            return deployment
    fail(f"{model} is not deployed; run `mlplatform deploy {model}`")
    raise AssertionError("unreachable")


def _parse_entity(text: str) -> dict[str, Any]:
    """`my_key=42,my_value=1.5` -> {"my_key": 42, "my_value": 1.5} (values parsed as JSON when valid)."""
    return parse_key_values([part.strip() for part in text.split(",") if part.strip()])


def predict(
    model: Annotated[str, typer.Argument(help="Deployed model.")],
    entity: Annotated[
        list[str],
        typer.Option(
            "--entity",
            "-e",
            help="One entity as key=value pairs: the model's entity key and its request columns (spec: entity_key, "
            "label.request_columns), e.g. my_key=42 or my_key=42,my_value=1.5. Repeat for a batch.",
        ),
    ],
) -> None:
    """Send one prediction request to the model's local server and print the answer as JSON.

    Example: mlplatform predict my_model --entity my_key=42
    """
    from mlplatform.serving.client import PredictionError
    from mlplatform.serving.client import predict as send

    deployment = _deployment_of(model)
    try:
        answer = send(deployment, [_parse_entity(item) for item in entity])
    except PredictionError as error:
        fail(str(error))
        return
    sys.stdout.write(json.dumps(answer, indent=2) + "\n")


def traffic(
    model: Annotated[str, typer.Argument(help="Deployed model.")],
    requests: Annotated[int, typer.Option(min=1, max=100_000, help="How many single-entity requests.")] = 200,
    rate: Annotated[float, typer.Option(min=1.0, max=5000.0, help="Requests per second (open loop).")] = 50.0,
) -> None:
    """Send a burst of realistic requests and print latency percentiles: entity ids the feature store holds most
    recently, with request-time values from the model's label table (when it has request columns)."""
    from mlplatform.loop.traffic import NoRequestsError, sample_requests
    from mlplatform.serving.client import send_traffic
    from mlplatform.specs import find_spec

    settings = get_settings()
    spec = find_spec(settings.model_roots, model)
    deployment = _deployment_of(model)
    try:
        entities = sample_requests(settings, spec, requests)
    except NoRequestsError as error:
        fail(str(error))
        return
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
