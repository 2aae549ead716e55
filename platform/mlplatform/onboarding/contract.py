"""The data contract of a model brought by a data scientist: what ``models init`` accepts, converts or refuses.

Files: parquet; one or more feature tables, one label table.

- **Entity key** (``--entity-key``): a column of every file; 64-bit integers (any integer width is widened to
  int64) or strings, the same kind in every file; no nulls.  Refused otherwise, naming the file and column.
- **Event timestamp** (``--timestamp-column``, default ``event_timestamp``): a column of every file, stored as a
  timestamp; no nulls.  Converted to timezone-aware UTC with microsecond precision: nanosecond values are truncated
  to microseconds (a notice says so); naive values are read as UTC, or in ``--timezone`` when given (a notice says
  so); other zones are converted to UTC.  Text timestamps are refused (store them as parquet timestamps).
- **Features**: every other column of a feature table; integers, floats or booleans.  A text, categorical or
  date column is refused with the fix (encode it as numbers, or drop it).  A feature name in two feature tables is
  refused (rename one); a feature table without a feature column is refused.
- **Label** (``--label``): a column of the label table, no nulls, not a column of a feature table.
  Classification: integer or boolean class codes; text labels are refused (encode them as integers); one class is
  refused; two classes make the task ``binary`` and must be coded 0 and 1 (booleans become 0/1); more make it
  ``multiclass`` and must be coded 0..K-1, each code present (what every supported library expects).
  Regression: numbers (integers are widened to float64).
- **Rows**: at least ``MIN_LABELLED_ROWS`` labelled rows (enough to hold out a fifth and still fit and score).
- **Time span**: label rows earlier than the first feature row get missing features (point-in-time join); a
  warning counts them.  The label span should lie within the feature span.

Every refusal is a ``ContractError`` whose message names the file, the column and the fix; nothing is written or
registered when one is raised (the checks run on in-memory tables before ``scaffold`` writes anything).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    import pandas as pd

MIN_LABELLED_ROWS: Final = 50
"""Fewest labelled rows a model is created from: a fifth is held out, and both parts must be usable."""
DEFAULT_TIMESTAMP_COLUMN: Final = "event_timestamp"
TaskKind = Literal["classification", "regression"]
KeyType = Literal["int64", "string"]
FeatureType = Literal["float64", "int64", "bool"]


class ContractError(ValueError):
    """Input tables that break the data contract; the message names the file, the column and the fix."""


@dataclass(frozen=True)
class FeatureTable:
    """One checked feature table: its frame (converted), its source name and its feature columns with types."""

    path: Path
    frame: pd.DataFrame
    features: dict[str, FeatureType]

    @property
    def stem(self) -> str:
        return self.path.stem


@dataclass(frozen=True)
class CheckedData:
    """Tables that meet the contract, converted, with what the model folder needs to describe them."""

    entity_key: str
    key_type: KeyType
    timestamp_column: str
    label: str
    task: Literal["binary", "multiclass", "regression"]
    feature_tables: list[FeatureTable]
    labels_path: Path
    labels: pd.DataFrame
    start: datetime
    end: datetime
    notices: list[str] = field(default_factory=list)

    @property
    def feature_end(self) -> datetime:
        """The latest feature timestamp: what the online store is loaded up to."""
        latest: datetime = max(
            table.frame[self.timestamp_column].max() for table in self.feature_tables
        ).to_pydatetime()
        return latest


def check_tables(
    features: list[Path],
    labels: Path,
    *,
    entity_key: str,
    label: str,
    task: TaskKind = "classification",
    timestamp_column: str = DEFAULT_TIMESTAMP_COLUMN,
    timezone: str | None = None,
) -> CheckedData:
    """Read, check and convert the tables; a ``ContractError`` names the first broken rule and its fix."""
    if not features:
        raise ContractError("no feature table given: pass at least one parquet file with --features")
    _check_distinct_names([*features, labels])
    notices: list[str] = []
    key_types: dict[Path, KeyType] = {}
    tables: list[FeatureTable] = []
    for path in features:
        frame = _read(path)
        key_types[path] = _check_key(frame, path, entity_key)
        frame = _convert_timestamps(frame, path, timestamp_column, timezone, notices)
        if label in frame.columns:
            raise ContractError(
                f"{path}: column {label!r} is the label; a feature table must not hold it (fix: drop it there)"
            )
        tables.append(FeatureTable(path, frame, _feature_types(frame, path, entity_key, timestamp_column)))
    label_frame = _read(labels)
    key_types[labels] = _check_key(label_frame, labels, entity_key)
    _check_same_key_type(key_types, entity_key)
    label_frame = _convert_timestamps(label_frame, labels, timestamp_column, timezone, notices)
    _check_unique_features(tables)
    if len(label_frame) < MIN_LABELLED_ROWS:
        raise ContractError(
            f"{labels}: {len(label_frame)} labelled rows; a model needs at least {MIN_LABELLED_ROWS} "
            "(fix: add labelled rows)"
        )
    kind, label_frame = _check_label(label_frame, labels, label, task)
    key_type = key_types[labels]
    tables = [FeatureTable(t.path, _normalise_key(t.frame, entity_key, key_type), t.features) for t in tables]
    label_frame = _normalise_key(label_frame, entity_key, key_type)
    start, end = _span(tables, label_frame, timestamp_column, labels, notices)
    return CheckedData(
        entity_key=entity_key,
        key_type=key_type,
        timestamp_column=timestamp_column,
        label=label,
        task=kind,
        feature_tables=tables,
        labels_path=labels,
        labels=label_frame,
        start=start,
        end=end,
        notices=notices,
    )


def _check_distinct_names(paths: list[Path]) -> None:
    """Files are copied into one data directory by name, so two files may not share one."""
    seen: dict[str, Path] = {}
    for path in paths:
        if path.name in seen:
            raise ContractError(f"{path} and {seen[path.name]} have the same file name; rename one")
        seen[path.name] = path


def _read(path: Path) -> pd.DataFrame:
    import pandas as pd

    if not path.is_file():
        raise ContractError(f"{path}: no such file")
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as error:
        raise ContractError(f"{path}: not a readable parquet file ({error}); fix: write it with to_parquet") from None


def _present_without_nulls(
    frame: pd.DataFrame, path: Path, column: str, *, missing: str, missing_fix: str, nulls: str, nulls_fix: str
) -> pd.Series:
    """The column, refused (naming the file and the fix) when it is absent or holds nulls."""
    if column not in frame.columns:
        raise ContractError(f"{path}: {missing} (columns: {', '.join(map(str, frame.columns))}); fix: {missing_fix}")
    values = frame[column]
    if values.isna().any():
        raise ContractError(f"{path}: {nulls} has {int(values.isna().sum())} null(s); fix: {nulls_fix}")
    return values


def _check_key(frame: pd.DataFrame, path: Path, key: str) -> KeyType:
    import pandas as pd

    column = _present_without_nulls(
        frame,
        path,
        key,
        missing=f"no entity key column {key!r}",
        missing_fix="add it, or name the right one with --entity-key",
        nulls=f"column {key!r} (entity key)",
        nulls_fix="drop them",
    )
    if pd.api.types.is_bool_dtype(column) or not (
        pd.api.types.is_integer_dtype(column) or pd.api.types.is_string_dtype(column)
    ):
        raise ContractError(
            f"{path}: column {key!r} (entity key) is {column.dtype}; it must be integers or strings "
            "(fix: cast it to int64 or str)"
        )
    if pd.api.types.is_integer_dtype(column):
        return "int64"
    if not column.map(lambda value: isinstance(value, str)).all():
        raise ContractError(f"{path}: column {key!r} (entity key) mixes strings and other values; fix: cast it to str")
    return "string"


def _check_same_key_type(types: dict[Path, KeyType], key: str) -> None:
    if len(set(types.values())) > 1:
        listed = ", ".join(f"{path.name}: {kind}" for path, kind in types.items())
        raise ContractError(
            f"column {key!r} (entity key) has different types across files ({listed}); "
            "fix: use the same type (int64 or string) in every file"
        )


def _normalise_key(frame: pd.DataFrame, key: str, key_type: KeyType) -> pd.DataFrame:
    converted = frame.copy()
    converted[key] = converted[key].astype("int64" if key_type == "int64" else "object")
    return converted


def _convert_timestamps(
    frame: pd.DataFrame, path: Path, column: str, timezone: str | None, notices: list[str]
) -> pd.DataFrame:
    """The timestamp column as UTC microseconds; what was converted is said in ``notices``."""
    import pandas as pd

    if column not in frame.columns:
        raise ContractError(
            f"{path}: no event timestamp column {column!r} (columns: {', '.join(map(str, frame.columns))}); "
            "fix: add it, or name it with --timestamp-column"
        )
    values = frame[column]
    if not pd.api.types.is_datetime64_any_dtype(values):
        raise ContractError(
            f"{path}: column {column!r} (event timestamp) is {values.dtype}, not a timestamp; "
            "fix: convert it with pandas.to_datetime before writing the parquet file"
        )
    if values.isna().any():
        raise ContractError(
            f"{path}: column {column!r} has {int(values.isna().sum())} null timestamp(s); fix: drop them"
        )
    if values.dt.tz is None:
        zone = timezone or "UTC"
        try:
            values = values.dt.tz_localize(zone)
        except (KeyError, ValueError) as error:
            raise ContractError(
                f"--timezone {zone!r}: not a usable time zone ({error}); fix: e.g. Europe/Berlin"
            ) from None
        notices.append(
            f"{path.name}: {column} has no time zone; read as {zone}" + (" (--timezone)" if timezone else "")
        )
    unit = getattr(values.dtype, "unit", "ns")
    if unit == "ns":
        truncated = int((values.dt.nanosecond != 0).sum())
        notices.append(
            f"{path.name}: {column} has nanosecond precision; converted to microseconds"
            + (f" ({truncated} value(s) truncated)" if truncated else "")
        )
    converted = frame.copy()
    converted[column] = values.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    return converted


def _feature_types(frame: pd.DataFrame, path: Path, key: str, timestamp: str) -> dict[str, FeatureType]:
    import pandas as pd

    types: dict[str, FeatureType] = {}
    for name in frame.columns:
        if name in (key, timestamp):
            continue
        column = frame[name]
        if pd.api.types.is_bool_dtype(column):
            types[str(name)] = "bool"
        elif pd.api.types.is_integer_dtype(column):
            types[str(name)] = "int64"
        elif pd.api.types.is_float_dtype(column):
            types[str(name)] = "float64"
        else:
            raise ContractError(
                f"{path}: column {name!r} is {column.dtype}; features must be numbers or booleans "
                "(fix: encode text or categories as numbers, or drop the column)"
            )
    if not types:
        raise ContractError(f"{path}: no feature columns besides {key!r} and {timestamp!r}; fix: add some")
    return types


def _check_unique_features(tables: list[FeatureTable]) -> None:
    owners: dict[str, Path] = {}
    for table in tables:
        for name in table.features:
            if name in owners:
                raise ContractError(
                    f"{table.path}: feature column {name!r} is also in {owners[name]}; fix: rename one of them"
                )
            owners[name] = table.path


def _check_label(
    frame: pd.DataFrame, path: Path, label: str, task: TaskKind
) -> tuple[Literal["binary", "multiclass", "regression"], pd.DataFrame]:
    import pandas as pd

    column = _present_without_nulls(
        frame,
        path,
        label,
        missing=f"no label column {label!r}",
        missing_fix="name the right one with --label",
        nulls=f"label column {label!r}",
        nulls_fix="drop those rows",
    )
    converted = frame.copy()
    if task == "regression":
        if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
            raise ContractError(
                f"{path}: label column {label!r} is {column.dtype}; regression needs numbers "
                "(fix: use --task classification for classes, or store the label as numbers)"
            )
        converted[label] = column.astype("float64")
        return "regression", converted
    if not (pd.api.types.is_bool_dtype(column) or pd.api.types.is_integer_dtype(column)):
        raise ContractError(
            f"{path}: label column {label!r} is {column.dtype}; classification needs integer or boolean class codes "
            "(fix: encode the classes as integers 0, 1, 2, ...)"
        )
    codes = column.astype("int64")
    classes = sorted(codes.unique().tolist())
    if len(classes) < 2:
        raise ContractError(
            f"{path}: label column {label!r} has one class only ({classes[0]}); fix: add rows of the other class(es)"
        )
    if len(classes) == 2 and classes != [0, 1]:
        raise ContractError(
            f"{path}: label column {label!r} has classes {classes}; a binary label must be 0 and 1 "
            "(fix: code the positive class as 1 and the other as 0)"
        )
    if classes != list(range(len(classes))):
        raise ContractError(
            f"{path}: label column {label!r} has classes {classes}; multi-class labels must be the codes "
            f"0..{len(classes) - 1}, each present (fix: recode the classes as 0, 1, 2, ... in a fixed order)"
        )
    converted[label] = codes
    return ("binary" if len(classes) == 2 else "multiclass"), converted


def _span(
    tables: list[FeatureTable], labels: pd.DataFrame, column: str, labels_path: Path, notices: list[str]
) -> tuple[datetime, datetime]:
    """The whole data's span; labels outside the feature span are counted in a warning."""
    first = min(table.frame[column].min() for table in tables)
    last = max(table.frame[column].max() for table in tables)
    times = labels[column]
    early, late = int((times < first).sum()), int((times > last).sum())
    if early:
        notices.append(
            f"warning: {labels_path.name}: {early} label row(s) before the first feature row ({first.isoformat()}) "
            "get missing features"
        )
    if late:
        notices.append(
            f"warning: {labels_path.name}: {late} label row(s) after the last feature row ({last.isoformat()}) "
            "use the latest feature values"
        )
    return min(first, times.min()).to_pydatetime(), max(last, times.max()).to_pydatetime()
