"""What the command modules share, so none of them imports another: the consoles and how a command fails, JSON
output, the top-level options, the platform API client for a command, and argument parsers used by several groups.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from mlplatform.cli.platform_api_client import PlatformClient, PlatformError, platform_client
from mlplatform.config import Settings, get_settings

if TYPE_CHECKING:
    from mlplatform.store import PlatformStore

console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON answer unchanged.")]
ModelArg = Annotated[str, typer.Argument(help="Model name (a folder with a spec.yaml), e.g. my_model.")]


def fail(message: str) -> None:
    """Exit 1 with the message on stderr."""
    errors.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=1)


def platform_store(url: str) -> PlatformStore:
    """The platform DB at this code's schema revision; otherwise the command fails with what to run."""
    from mlplatform.store import PlatformStore
    from mlplatform.store.db import SchemaVersionError

    try:
        return PlatformStore.connect(url)
    except SchemaVersionError as error:
        fail(str(error))
        raise  # unreachable: fail() exits


def fresh_console() -> Console:
    """A console bound to the current stdout (test runners swap it between invocations)."""
    return Console()


def say_progress(message: str) -> None:
    """One dimmed progress line of a long step (Feast apply and materialize, data generation)."""
    fresh_console().print(f"[dim]·[/dim] {message}")


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


def api_answer(ctx: typer.Context, as_json: bool, call: Callable[[PlatformClient], Any]) -> Any | None:
    """The API's answer to ``call``, for the command to render; with ``--json`` it is printed unchanged instead and
    None comes back, so every command prints its JSON the same way."""
    with api(ctx) as client:
        answer = call(client)
    if as_json:
        emit_json(answer)
        return None
    return answer


def fail_with(error: PlatformError, settings: Settings) -> None:
    """Exit 1 with the problem's title and detail, and the likely fix for an embedded stack that is down."""
    message = f"{error.title}: {error.detail}" if error.detail else error.title
    if settings.api_url is None and error.status in (502, 503) and "stack up" not in message:
        message += "\n  is the embedded stack running? start it with `mlplatform stack up`"
    errors.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=1)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def parse_key_values(pairs: list[str]) -> dict[str, Any]:
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


def parse_timestamp(value: str | None, option: str) -> datetime | None:
    """An ISO-8601 date or datetime; a naive one is taken as UTC (the platform's only zone)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO-8601 date/time (e.g. 2025-06-01T00:00:00Z)", param_hint=option
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
