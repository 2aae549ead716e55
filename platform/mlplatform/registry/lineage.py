"""Lineage: where a model version came from, and every ``mlplatform.*`` MLflow tag name the platform writes.

Why one owner: training writes these tags, the registry reads them back, serving and the drift job look up the
model's inputs and feature service by them.  Spelled in one place, a renamed tag cannot leave a reader behind.

Lineage travels in two steps: ``prepare`` stages it on the training run (``mlplatform.lineage.<field>``, set
before the model exists); ``register_version`` copies it onto the registered version (``mlplatform.<field>``),
where the API, UI and serving read it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar


@dataclass(frozen=True)
class Lineage:
    """The lineage of one training run; every value a string, as MLflow stores tags."""

    PREFIX: ClassVar[str] = "mlplatform."
    """Every platform tag starts so; on a version, ``mlplatform.<field>`` holds one lineage field."""
    RUN_PREFIX: ClassVar[str] = "mlplatform.lineage."
    """Lineage staged on the training run, ``mlplatform.lineage.<field>``."""
    STAGE_TAG: ClassVar[str] = "mlplatform.stage"
    """Run: how far the training pipeline got (``prepared``, ``trained``)."""
    MODEL_INPUTS_TAG: ClassVar[str] = "mlplatform.model_inputs"
    """Run: the model's input columns in fit order, a JSON list."""
    RUN_KEY_TAG: ClassVar[str] = "mlplatform.run_key"
    """Run and version: the idempotency key of the training request."""
    ACTOR_TAG: ClassVar[str] = "mlplatform.actor"
    """Run: who asked for the training."""
    MODEL_TAG: ClassVar[str] = "mlplatform.model"
    """Run: the model's name."""
    GATE_TAG: ClassVar[str] = "mlplatform.gate"
    """Version: the promotion gate's decision, JSON."""
    FEATURE_SERVICE_TAG: ClassVar[str] = "mlplatform.feature_service"
    """Version: the Feast feature service the model was trained on (the ``feature_service`` field)."""
    TASK_TAG: ClassVar[str] = "mlplatform.task"
    """Run and version: the task the model was trained for, ``binary``, ``multiclass`` or ``regression`` (versions
    from before the tag existed are binary)."""
    CLASSES_TAG: ClassVar[str] = "mlplatform.classes"
    """Run and version, classifiers only: the fitted ``classes_`` in the order of ``predict_proba``'s columns, a
    compact JSON list (``[0,1,2]``), so a server names classes without reading the spec."""
    MODEL_TAGS: ClassVar[tuple[str, ...]] = (TASK_TAG, CLASSES_TAG)
    """Set on the run when the model is fitted and copied, under the same names, onto its registered version."""

    feature_service: str
    feature_views: str
    """JSON (``lineage_json``) of the service's views and their versions."""
    data_window_start: str
    data_window_end: str
    row_count: str
    data_hash: str
    spec_hash: str
    git_commit: str
    dag_id: str
    dag_run_id: str
    reason: str
    model_files_hash: str = ""
    """Content hash of the model folder's files (``MODEL_FILES``) as trained: what ``git_commit`` alone misses."""
    model_files_dirty: str = ""
    """``true`` when git says the model folder differs from ``git_commit`` (uncommitted changes), ``false`` when it
    does not, ``unknown`` outside a git work tree (e.g. models created under the state directory)."""

    def run_tags(self) -> dict[str, str]:
        """The tags that stage this lineage on the training run."""
        return {self.RUN_PREFIX + key: value for key, value in asdict(self).items()}

    @classmethod
    def version_tags(cls, run_tags: Mapping[str, str]) -> dict[str, str]:
        """The version's lineage tags from its run's: every staged key, so runs staged by an older release keep
        theirs."""
        return {
            cls.PREFIX + key.removeprefix(cls.RUN_PREFIX): value
            for key, value in run_tags.items()
            if key.startswith(cls.RUN_PREFIX)
        }

    @classmethod
    def model_tags(cls, task: str, classes: Sequence[int | str] | None) -> dict[str, str]:
        """The task and, for a classifier, its classes, as the run and the version carry them."""
        tags = {cls.TASK_TAG: task}
        if classes is not None:
            tags[cls.CLASSES_TAG] = json.dumps(list(classes), separators=(",", ":"))
        return tags

    @classmethod
    def task_of(cls, tags: Mapping[str, str]) -> str:
        """A run's or version's task; untagged ones were trained before tasks existed, when every model was binary."""
        return tags.get(cls.TASK_TAG, "binary")

    @classmethod
    def classes_of(cls, tags: Mapping[str, str]) -> list[int | str] | None:
        """A classifier's classes in ``predict_proba`` column order; ``None`` for a regressor or an untagged one."""
        raw = tags.get(cls.CLASSES_TAG)
        return None if raw is None else list(json.loads(raw))

    @classmethod
    def of_version(cls, version_tags: Mapping[str, str]) -> dict[str, str]:
        """Every platform tag of a version by its short name (``dag_run_id``, ``gate``, ...), as shown to users."""
        return {
            key.removeprefix(cls.PREFIX): value for key, value in version_tags.items() if key.startswith(cls.PREFIX)
        }


MODEL_FILES = ("spec.yaml", "features.yaml", "features.py")
"""The files of a model folder that decide what is trained."""


def model_files_hash(folder: Path) -> str:
    """A short SHA-256 over the model folder's files (name and content; absent files count as absent)."""
    digest = hashlib.sha256()
    for name in MODEL_FILES:
        path = folder / name
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def model_files_dirty(folder: Path) -> str:
    """Whether git reports uncommitted changes among the model folder's files; ``unknown`` when git tracks none of
    them (not a work tree, or an ignored folder such as the state directory)."""
    try:
        tracked = _git(folder, "ls-files", "--", *MODEL_FILES)
        changed = _git(folder, "status", "--porcelain", "--", *MODEL_FILES)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not tracked.strip():
        return "unknown"
    return "true" if changed.strip() else "false"


def _git(folder: Path, *args: str) -> str:
    completed = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=5, check=True)
    return completed.stdout


def lineage_json(value: object) -> str:
    """Tag values are strings; structured lineage is stored as compact, sorted JSON."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
