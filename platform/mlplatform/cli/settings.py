"""``mlplatform settings docs|show``: the settings catalogue and the effective settings."""

from __future__ import annotations

import sys

import typer

from mlplatform.config import get_settings

settings_app = typer.Typer(help="Inspect the platform's settings.", no_args_is_help=True)


@settings_app.command("docs")
def settings_docs() -> None:
    """Print the settings catalogue (docs/settings.md) as Markdown."""
    from mlplatform.cli.settings_catalogue import render_catalogue

    sys.stdout.write(render_catalogue())


@settings_app.command("show")
def settings_show() -> None:
    """The effective settings (secrets masked) as JSON."""
    sys.stdout.write(get_settings().model_dump_json(indent=2) + "\n")
