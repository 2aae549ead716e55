"""``mlplatform stack up|down|status``: the embedded MLflow, Airflow and platform API processes."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.table import Table

from mlplatform.cli._common import console, fail
from mlplatform.config import Settings, get_settings

stack_app = typer.Typer(
    help="Start, stop and inspect the embedded stack (MLflow, Airflow, platform API/UI, Prometheus, Alertmanager).",
    no_args_is_help=True,
)


def _say(message: str) -> None:
    console.print(f"  {message}", highlight=False)


@stack_app.command()
def up() -> None:
    """Start MLflow, Airflow and the platform API/UI under the state directory (running ones are left alone)."""
    from mlplatform.stack.embedded import EmbeddedStack, StackError
    from mlplatform.stack.supervisor import SupervisorError

    settings = get_settings()
    started = time.monotonic()
    try:
        EmbeddedStack(settings).up(progress=_say)
    except (StackError, SupervisorError) as error:
        fail(str(error))
        return
    console.print(f"[bold green]stack up[/] in {time.monotonic() - started:.0f}s", highlight=False)
    _print_endpoints(settings)


def _print_endpoints(settings: Settings) -> None:
    """URLs as plain lines (never cut by a table's width), so they can be clicked or copied."""
    from mlplatform.stack.embedded import EmbeddedStack
    from mlplatform.stack.prometheus import alertmanager_url, prometheus_url

    console.print(f"  MLflow UI   {settings.mlflow.resolved_tracking_uri()}", highlight=False)
    user = f"user {settings.airflow.username}, {_password_hint(settings)}"
    console.print(f"  Airflow UI  {settings.airflow.resolved_api_url()}  ({user})", highlight=False)
    platform_url = settings.api.resolved_public_url()
    console.print(f"  API docs    {platform_url}/docs", highlight=False)
    if EmbeddedStack(settings).monitoring_installed():
        console.print(f"  Prometheus  {prometheus_url(settings)}/alerts", highlight=False)
        console.print(f"  Alertmgr    {alertmanager_url(settings)}", highlight=False)
    console.print(f"  logs        {settings.layout.logs_dir}", highlight=False)
    console.print("  stop with `mlplatform stack down`", highlight=False)
    console.print(f"[bold]Platform UI[/] {platform_url}  (log in as {_admin_hint(settings)})", highlight=False)


@stack_app.command()
def down() -> None:
    """Stop every process the stack started, with all their children."""
    from mlplatform.stack.embedded import EmbeddedStack, StackError

    settings = get_settings()
    try:
        EmbeddedStack(settings).down(progress=_say)
    except StackError as error:
        fail(str(error))
        return
    console.print("[bold]stack down[/]", highlight=False)


@stack_app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Show each stack process: running, pid, URL, healthy, log file. Exit code 1 if any is not healthy."""
    from mlplatform.stack.embedded import EmbeddedStack

    settings = get_settings()
    processes = EmbeddedStack(settings).status()
    if as_json:
        rows = [
            {
                "name": p.name,
                "running": p.running,
                "pid": p.pid,
                "url": p.url,
                "healthy": p.healthy,
                "log_path": str(p.log_path),
            }
            for p in processes
        ]
        typer.echo(json.dumps(rows, indent=2))
    else:
        table = Table("process", "state", "pid", "url", "log")
        for p in processes:
            state = "[green]healthy[/]" if p.healthy else ("[yellow]unhealthy[/]" if p.running else "[red]stopped[/]")
            table.add_row(p.name, state, str(p.pid or "-"), p.url or "-", str(p.log_path))
        console.print(table)
        if any(p.running for p in processes):
            _print_endpoints(settings)
        else:
            console.print("start it with `mlplatform stack up`", highlight=False)
    if not all(p.healthy for p in processes):
        raise typer.Exit(code=1)


def _admin_hint(settings: Settings) -> str:
    """How the platform admin logs in (where the one-time password is); never the password itself."""
    from mlplatform.store import PlatformStore
    from mlplatform.store.auth import AuthRepository
    from mlplatform.store.bootstrap import login_hint

    store = PlatformStore.connect(settings.db_url)
    try:
        return login_hint(settings, AuthRepository(store))
    finally:
        store.dispose()


def _password_hint(settings: Settings) -> str:
    """Where the Airflow password comes from; the password itself is never printed."""
    if settings.airflow.password is not None:
        return "password from MLP_AIRFLOW__PASSWORD"
    return f"password in {settings.layout.airflow_passwords}"
