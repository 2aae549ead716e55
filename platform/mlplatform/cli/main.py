"""The `mlplatform` command line: the root app, its global options, and every command group mounted on it.

Commands parse their arguments, build the settings once, and call the same services the API and DAGs use: what
the API offers (models, promotion, training, deployments, audit) goes through the API itself, remote with
`--api-url` or in-process in embedded mode (``cli.platform_api_client``).  Heavy libraries are imported inside
commands so `mlplatform --help` stays instant.
"""

from __future__ import annotations

from typing import Annotated

import typer

from mlplatform.cli._common import CliOptions
from mlplatform.cli.api_server import api_app
from mlplatform.cli.audit import audit
from mlplatform.cli.data import data_app
from mlplatform.cli.db import db_app
from mlplatform.cli.drift import drift_app
from mlplatform.cli.features import features_app
from mlplatform.cli.labels import labels_app
from mlplatform.cli.loop import loop_app
from mlplatform.cli.models import models_app
from mlplatform.cli.monitoring import monitoring_app
from mlplatform.cli.rollouts import rollouts_app
from mlplatform.cli.serving import deploy, deployments, predict, traffic, undeploy
from mlplatform.cli.settings import settings_app
from mlplatform.cli.stack import stack_app
from mlplatform.cli.training import train, training_app

app = typer.Typer(help="mlplatform: features -> training -> registry -> serving -> monitoring.", no_args_is_help=True)
app.add_typer(
    stack_app, name="stack", help="Start, stop and inspect the embedded stack (MLflow, Airflow, platform API/UI)."
)
app.add_typer(features_app, name="features", help="Apply Feast definitions and materialize online features.")
app.add_typer(data_app, name="data", help="Generate the demo data set.")
app.add_typer(models_app, name="models")
app.add_typer(training_app, name="training")
app.add_typer(db_app, name="db", help="The platform database: schema migrations and least-privilege roles.")
app.add_typer(api_app, name="api", help="The platform API server, its users and API tokens.")
app.add_typer(settings_app, name="settings")
app.add_typer(monitoring_app, name="monitoring", help="Monitoring assets: Grafana dashboards generated from code.")
app.add_typer(drift_app, name="drift", help="Drift checks: served traffic against the champion's training reference.")
app.add_typer(labels_app, name="labels")
app.add_typer(rollouts_app, name="rollouts")
app.add_typer(loop_app, name="loop", help="The closed loop: drift -> alert -> retrain -> promotion -> swap.")
# Top-level commands, in the order `mlplatform --help` lists them.
for command in (deployments, audit, train, deploy, undeploy, predict, traffic):
    app.command()(command)


@app.command("spec-reference")
def spec_reference() -> None:
    """Print the model spec reference (docs/spec.md) as Markdown."""
    import sys

    from mlplatform.cli.spec_reference import render_spec_reference

    sys.stdout.write(render_spec_reference())


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
