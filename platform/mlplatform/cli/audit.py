"""``mlplatform audit``: the platform's audit log through the API, as a table or with ``--json`` as the API answered."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from mlplatform.cli._common import AsJson, api_answer, console


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
    events = api_answer(
        ctx,
        as_json,
        lambda client: client.audit(
            limit=limit, actor=actor, action=action, target=target, result=result, before_id=before_id
        ),
    )
    if events is None:
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
