"""``mlplatform rollouts ...``: start a shadow or split rollout of a candidate, follow its test, pause, stop or
decide it.  Each command is the API call of the same name (``PlatformClient``); ``--json`` prints the answer."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from mlplatform.cli._common import AsJson, ModelArg, api_answer, console

rollouts_app = typer.Typer(
    help="Rollouts: a candidate against the champion, shadowed or split, decided by a sequential test.",
    no_args_is_help=True,
)
RolloutArg = Annotated[int, typer.Argument(help="Rollout id (see `mlplatform rollouts list MODEL`).", min=1)]
ReasonOption = Annotated[str | None, typer.Option(help="Why (kept in the audit log).")]


def _number(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "-"


def _print_rollout(rollout: dict[str, Any]) -> None:
    share = "" if rollout["mode"] == "shadow" else f" {rollout['share']:.0%}"
    console.print(
        f"[bold]rollout {rollout['id']}[/] of {rollout['model']}: v{rollout['candidate_version']} against champion "
        f"v{rollout['champion_version']}, {rollout['mode']}{share}, [bold]{rollout['state']}[/]",
        highlight=False,
    )
    if rollout.get("recommendation"):
        console.print(f"  the test recommends: {rollout['recommendation']}", highlight=False)
    if rollout.get("decision"):
        console.print(
            f"  decision: {rollout['decision']} by {rollout['decided_by']}: {rollout['decision_reason']}",
            highlight=False,
        )


@rollouts_app.command("start")
def start(
    ctx: typer.Context,
    model: ModelArg,
    candidate: Annotated[str, typer.Option(help="A version number, or an alias.")] = "challenger",
    mode: Annotated[str | None, typer.Option(help="shadow or split (default: the spec's rollout.mode).")] = None,
    share: Annotated[float | None, typer.Option(help="split: the candidate's share (default: the spec's).")] = None,
    reason: ReasonOption = None,
    as_json: AsJson = False,
) -> None:
    """Roll the candidate out against the champion under the spec's rollout policy."""
    answer = api_answer(ctx, as_json, lambda client: client.start_rollout(model, candidate, mode, share, reason))
    if answer is not None:
        _print_rollout(answer)


@rollouts_app.command("list")
def list_rollouts(ctx: typer.Context, model: ModelArg, as_json: AsJson = False) -> None:
    """A model's rollouts, newest first."""
    answer = api_answer(ctx, as_json, lambda client: client.rollouts(model))
    if answer is None:
        return
    table = Table("id", "candidate", "champion", "mode", "state", "decision", "started")
    for item in answer:
        table.add_row(
            str(item["id"]),
            f"v{item['candidate_version']}",
            f"v{item['champion_version']}",
            item["mode"],
            item["state"],
            item["decision"] or item["recommendation"] or "-",
            item["started_at"][:19],
        )
    console.print(table)


@rollouts_app.command("show")
def show(ctx: typer.Context, rollout_id: RolloutArg, as_json: AsJson = False) -> None:
    """A rollout with its latest evaluation: the estimate and its always-valid band, each arm, the guardrails."""
    answer = api_answer(ctx, as_json, lambda client: client.rollout(rollout_id))
    if answer is not None:
        _print_rollout(answer)
        _print_latest(answer["evaluations"])


def _print_latest(evaluations: list[dict[str, Any]]) -> None:
    if not evaluations:
        console.print("  not evaluated yet")
        return
    latest = evaluations[-1]
    console.print(f"  {latest['verdict']}: {latest['reason']}", highlight=False)
    detail = latest["detail"]
    arms = Table("arm", "version", "entities", "failures", "p99 ms", "labelled", "mean loss", "band")
    for arm in detail.get("arms", []):
        band = f"[{_number(arm['lower'])}, {_number(arm['upper'])}]" if arm["lower"] is not None else "-"
        p99 = arm["p99_latency_s"]
        arms.add_row(
            arm["arm"],
            f"v{arm['version']}",
            str(arm["entities"]),
            str(arm["failures"]),
            _number(None if p99 is None else p99 * 1000, 2),
            str(arm["labelled"]),
            _number(arm["mean_loss"]),
            band,
        )
    console.print(arms)
    for check in detail.get("guardrails", []):
        mark = "[red]✗[/]" if check["breached"] else ("[green]✓[/]" if check["judged"] else "[dim]·[/]")
        console.print(f"  {mark} {check['summary']}", highlight=False)


def _action(action: str) -> Any:
    def command(
        ctx: typer.Context, rollout_id: RolloutArg, reason: ReasonOption = None, as_json: AsJson = False
    ) -> None:
        answer = api_answer(ctx, as_json, lambda client: client.rollout_action(rollout_id, action, reason))
        if answer is not None:
            _print_rollout(answer)

    return command


rollouts_app.command("pause", help="The champion answers everything until resumed.")(_action("pause"))
rollouts_app.command("resume", help="Route to the candidate again.")(_action("resume"))
rollouts_app.command("stop", help="End the rollout undecided: the candidate leaves, the champion stays.")(
    _action("stop")
)


@rollouts_app.command("evaluate")
def evaluate(ctx: typer.Context, rollout_id: RolloutArg, as_json: AsJson = False) -> None:
    """Evaluate now (and act as the policy says) instead of at the next interval."""
    answer = api_answer(ctx, as_json, lambda client: client.rollout_action(rollout_id, "evaluate", None))
    if answer is not None:
        _print_rollout(answer)
        _print_latest(answer["evaluations"])


@rollouts_app.command("decide")
def decide(
    ctx: typer.Context,
    rollout_id: RolloutArg,
    decision: Annotated[str, typer.Argument(help="promote or rollback.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
    as_json: AsJson = False,
) -> None:
    """A person's decision: promote the candidate (through the gate) or roll it back."""
    answer = api_answer(ctx, as_json, lambda client: client.decide_rollout(rollout_id, decision, reason))
    if answer is not None:
        _print_rollout(answer)
