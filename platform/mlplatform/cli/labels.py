"""``mlplatform labels ...``: ingest late labels of served predictions from a file, and see the online quality.

The file is read here and sent to the API in batches (``operations.outcomes.MAX_LABELS_PER_REQUEST`` rows), so a
remote platform takes files of any size within its body limit.  Each batch is checked and stored on its own: if one
is refused, the batches before it are kept (ingesting the fixed file again skips them as duplicates) and the
message names the rows.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mlplatform.cli._common import AsJson, ModelArg, api, console, emit_json, fail
from mlplatform.cli.platform_api_client import PlatformError

labels_app = typer.Typer(
    help="Late labels of served predictions, and the online quality they measure.", no_args_is_help=True
)
BATCH_ROWS = 5_000


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The file's rows as JSON values (times as ISO 8601, missing values as null); a file that cannot be read (or
    holds more rows than one ingest takes) ends the command with the reason."""
    import pandas as pd

    from mlplatform.monitoring.outcomes import LabelError, read_label_table

    try:
        frame = read_label_table(path)
    except LabelError as error:
        fail(str(error))
        raise  # unreachable: fail() exits
    for column in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            frame[column] = frame[column].map(lambda moment: None if pd.isna(moment) else moment.isoformat())
    return [{str(key): _plain(value) for key, value in row.items()} for row in frame.to_dict("records")]


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    item = getattr(value, "item", None)
    return item() if callable(item) else value


@labels_app.command("ingest")
def ingest(
    ctx: typer.Context,
    model: ModelArg,
    file: Annotated[
        Path,
        typer.Argument(
            help="Parquet or CSV: entity key, label, and request_id or event time.", exists=True, dir_okay=False
        ),
    ],
    as_json: AsJson = False,
) -> None:
    """Store the file's labels once each (duplicates skipped, contradictions reported), then show the quality."""
    rows = read_rows(file)
    answers = []
    with api(ctx) as client:
        for first in range(0, len(rows), BATCH_ROWS):
            try:
                final = first + BATCH_ROWS >= len(rows)  # the quality is measured once, after the last batch
                answers.append(client.ingest_labels(model, rows[first : first + BATCH_ROWS], file.name, final))
            except PlatformError as error:
                last = min(first + BATCH_ROWS, len(rows)) - 1
                kept = f"rows 0-{first - 1} were stored; " if first else ""
                fail(
                    f"rows {first}-{last} refused: {error.title}: {error.detail}\n  {kept}fix the file and ingest it "
                    "again (stored labels are skipped as duplicates)"
                )
    if as_json:
        emit_json(answers)
        return
    inserted = sum(answer["inserted"] for answer in answers)
    duplicates = sum(answer["duplicates"] for answer in answers)
    conflicts = [conflict for answer in answers for conflict in answer["conflicts"]]
    console.print(
        f"{file.name}: {inserted} labels stored, {duplicates} duplicates skipped, {len(conflicts)} conflicts",
        highlight=False,
    )
    for conflict in conflicts[:10]:
        console.print(f"  [yellow]conflict:[/] {conflict}", highlight=False)
    if answers:
        joined = answers[-1]["joined"]
        console.print(
            f"quality window: {joined.get('matched', 0)} labels matched a prediction, {joined.get('unknown', 0)} "
            f"unknown, {joined.get('before_prediction', 0)} before their entity's first prediction",
            highlight=False,
        )
        _print_quality(answers[-1]["quality"])


@labels_app.command("quality")
def quality(ctx: typer.Context, model: ModelArg, as_json: AsJson = False) -> None:
    """The latest online quality of each version and arm."""
    with api(ctx) as client:
        answer = client.quality(model)
    if as_json:
        emit_json(answer)
        return
    _print_quality(answer)


def _print_quality(rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print("no labelled predictions in the quality window yet")
        return
    names = sorted({name for row in rows for name in row["metrics"]})
    table = Table("version", "arm", "labelled", *names)
    for row in rows:
        values = [row["metrics"].get(name) for name in names]
        table.add_row(
            f"v{row['model_version']}",
            row["arm"],
            str(row["labelled"]),
            *("-" if v is None else f"{v:.4f}" for v in values),
        )
    console.print(table)
