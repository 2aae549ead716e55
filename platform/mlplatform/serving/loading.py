"""Loading and swapping the served model: the registry's alias holder, downloaded, checked and cached before it
is swapped in; the last good model on disk for a start while the registry is down.

* **The served model is one immutable ``LoadedModel``** (estimator + version + lineage + the Feast feature service
  object) held in a single attribute (``ModelSlot.model``): a swap is one assignment (atomic in CPython), so a
  request in flight finishes on the model it started with.
* **A background poller thread** asks the registry every ``settings.serving.poll_interval_s`` which version holds
  the alias; a new version is downloaded, loaded, checked against its feature service and cached *completely*
  before it replaces the served one: the hot swap.
* **Lineage decides the features**: the feature service comes from the version's ``mlplatform.feature_service``
  tag and the exact input column order from its run's ``mlplatform.model_inputs`` tag, so a model is always fed
  the features it was trained on, even if the spec has since moved to another service.
* **Last good model on disk** (``settings.serving_dir/models/<name>``: the MLflow model directory plus
  ``current.json`` with version and lineage).  A server (re)started while MLflow is down serves the cached model,
  logs a warning and sets ``mlplatform_serving_model_from_cache`` to 1 until the registry answers again.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlplatform.registry.lineage import Lineage
from mlplatform.serving.task_outputs import TaskScorer, task_scorer

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlplatform.config import Settings
    from mlplatform.features.online_reader import OnlineFeatureReader
    from mlplatform.features.store import FeatureStoreAdapter
    from mlplatform.registry.traffic import TrafficPlan
    from mlplatform.serving.metrics import ServingMetrics
    from mlplatform.specs import ModelSpec

log = logging.getLogger(__name__)

CACHE_MANIFEST = "current.json"
REGISTRY_CHECK_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class LoadedModel:
    """One servable model version: immutable, swapped as a whole."""

    name: str
    version: str
    run_id: str | None
    estimator: Any
    scorer: TaskScorer
    """The task's outputs of input rows (compiled trees where exact, see ``task_outputs``)."""
    feature_service: str
    model_inputs: list[str]
    service: Any
    """The Feast ``FeatureService`` object, resolved once so requests skip the registry lookup."""
    stored_features: frozenset[str]
    """Features of batch (materialised) views: all missing means the online store does not know the entity."""
    from_cache: bool = False
    reader: OnlineFeatureReader | None = None
    """The service's online lookup planned once (``None``: the service needs Feast's general path)."""


class ModelCache:
    """The last good model of one name on local disk: ``<dir>/v<version>/`` (MLflow model) + ``current.json``."""

    def __init__(self, root: Path, name: str) -> None:
        self.dir = root / "models" / name

    def store(self, source: Path, manifest: dict[str, Any]) -> Path:
        """Copy a downloaded model in and point the manifest at it; older versions are removed afterwards."""
        self.dir.mkdir(parents=True, exist_ok=True)
        target = self.dir / f"v{manifest['version']}"
        if not target.exists():
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.dir))
            shutil.copytree(source, staging, dirs_exist_ok=True)
            staging.replace(target)
        manifest_tmp = self.dir / f".{CACHE_MANIFEST}.tmp"
        manifest_tmp.write_text(json.dumps({**manifest, "dir": target.name}, indent=2))
        manifest_tmp.replace(self.dir / CACHE_MANIFEST)
        for stale in self.dir.iterdir():
            if stale.is_dir() and stale != target:
                shutil.rmtree(stale, ignore_errors=True)
        return target

    def load_manifest(self) -> tuple[dict[str, Any], Path] | None:
        """The cached manifest and model directory, or ``None`` when nothing (complete) is cached."""
        path = self.dir / CACHE_MANIFEST
        if not path.is_file():
            return None
        manifest: dict[str, Any] = json.loads(path.read_text())
        model_dir = self.dir / str(manifest.get("dir", ""))
        return (manifest, model_dir) if model_dir.is_dir() else None


@dataclass(frozen=True)
class AliasTarget:
    """The registry version holding the alias, with its tags."""

    version: str
    run_id: str | None
    tags: dict[str, str]


class ModelLoader:
    """Loads one model's versions: asks the registry which version holds the alias, downloads, checks and caches
    it, or loads the cached one; its Feast adapter (resolving feature services) is shared with scoring."""

    def __init__(self, settings: Settings, name: str, alias: str, spec: ModelSpec) -> None:
        self.settings = settings
        self.name = name
        self.alias = alias
        self.spec = spec
        self.cache = ModelCache(settings.serving_dir, name)
        self._client: MlflowClient | None = None
        self._features: FeatureStoreAdapter | None = None

    @property
    def features(self) -> FeatureStoreAdapter:
        if self._features is None:
            from mlplatform.features.store import FeatureStoreAdapter

            self._features = FeatureStoreAdapter(self.settings)
        return self._features

    def registry_client(self) -> MlflowClient:
        from mlplatform.registry.mlflow_registry import check_reachable, mlflow_client

        check_reachable(self.settings.mlflow.resolved_tracking_uri(), timeout_s=REGISTRY_CHECK_TIMEOUT_S)
        if self._client is None:
            self._client = mlflow_client(self.settings)
        return self._client

    def alias_target(self) -> AliasTarget | None:
        """The version holding the alias (``None``: no version holds it); raises when the registry fails."""
        from mlflow.exceptions import MlflowException

        client = self.registry_client()
        try:
            version = client.get_model_version_by_alias(self.name, self.alias)
        except MlflowException as error:
            if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise
        return AliasTarget(str(version.version), version.run_id, dict(version.tags or {}))

    def traffic_plan(self) -> TrafficPlan | None:
        """The rollout routing the platform published on the registered model (``None``: no rollout); raises when
        the registry fails, and ``ValueError`` for a plan this code cannot read."""
        from mlplatform.registry.traffic import TrafficPlan

        raw = (self.registry_client().get_registered_model(self.name).tags or {}).get(TrafficPlan.TAG)
        return TrafficPlan.from_tag(raw) if raw else None

    def version_target(self, version: str) -> AliasTarget:
        """A version by number (a rollout's candidate), with its tags."""
        found = self.registry_client().get_model_version(self.name, version)
        return AliasTarget(str(found.version), found.run_id, dict(found.tags or {}))

    def load(self, target: AliasTarget, *, cache: bool = True) -> LoadedModel:
        """Download, load and validate one version, then cache it (unless ``cache`` is false: a rollout's candidate
        is not the model to fall back on): all before it can be swapped in."""
        import mlflow.artifacts

        client = self.registry_client()
        feature_service = target.tags.get(Lineage.FEATURE_SERVICE_TAG) or self.spec.features.service
        model_inputs = self._model_inputs(client, target)
        with tempfile.TemporaryDirectory(prefix="mlp-model-") as scratch:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=client.get_model_version_download_uri(self.name, target.version),
                dst_path=scratch,
                tracking_uri=self.settings.mlflow.resolved_tracking_uri(),
            )
            loaded = self.build(target.version, target.run_id, Path(local), feature_service, model_inputs, False)
            if not cache:
                return loaded
            self.cache.store(
                Path(local),
                {
                    "name": self.name,
                    "version": target.version,
                    "run_id": target.run_id,
                    "feature_service": feature_service,
                    "model_inputs": model_inputs,
                    "cached_at": datetime.now(UTC).isoformat(),
                },
            )
        return loaded

    def _model_inputs(self, client: MlflowClient, target: AliasTarget) -> list[str]:
        raw = target.tags.get(Lineage.MODEL_INPUTS_TAG)
        if raw is None and target.run_id:
            raw = client.get_run(target.run_id).data.tags.get(Lineage.MODEL_INPUTS_TAG)
        if raw is None:
            raise ValueError(
                f"version {target.version} has no {Lineage.MODEL_INPUTS_TAG} tag on its run: cannot order inputs"
            )
        inputs = json.loads(raw)
        if not isinstance(inputs, list) or not all(isinstance(item, str) for item in inputs):
            raise ValueError(
                f"{Lineage.MODEL_INPUTS_TAG} of version {target.version} is not a JSON list of column names"
            )
        return inputs

    def build(
        self,
        version: str,
        run_id: str | None,
        model_dir: Path,
        feature_service: str,
        model_inputs: list[str],
        from_cache: bool,
    ) -> LoadedModel:
        """Load the estimator (``load_scorer``) and resolve its feature service; fails (the slot keeps its model)
        on an untrusted artifact, a task mismatch or inputs the features cannot supply."""
        estimator, scorer = load_scorer(model_dir, self.spec, model_inputs, version)
        service = self.features.feature_service(feature_service)
        names = self.features.feature_names(feature_service)
        supplied = {*names, *self.spec.label.request_columns}
        missing = [name for name in model_inputs if name not in supplied]
        if missing:
            raise ValueError(
                f"version {version} needs inputs {missing} that neither feature service {feature_service!r} nor the "
                f"spec's request columns {list(self.spec.label.request_columns)} provide"
            )
        return LoadedModel(
            name=self.name,
            version=version,
            run_id=run_id,
            estimator=estimator,
            scorer=scorer,
            feature_service=feature_service,
            model_inputs=model_inputs,
            service=service,
            stored_features=frozenset(names) & self._stored_feature_names(),
            from_cache=from_cache,
            reader=self._reader(feature_service),
        )

    def _reader(self, feature_service: str) -> OnlineFeatureReader | None:
        from mlplatform.features.online_reader import UnsupportedServiceError

        try:
            return self.features.online_reader(feature_service)
        except UnsupportedServiceError as reason:
            log.info("feature service %s is read through Feast's general path: %s", feature_service, reason)
            return None

    def _stored_feature_names(self) -> frozenset[str]:
        """Features of batch views (not on-demand ones, which are computed and never 'missing' per se)."""
        views = self.features.store.list_feature_views(allow_cache=False)
        return frozenset(feature.name for view in views for feature in view.features)


class ModelSlot:
    """The served model of one name: the version holding the alias, swapped in one assignment, kept when the
    registry or a new version fails; ``reason`` says why nothing is served."""

    def __init__(self, settings: Settings, loader: ModelLoader, metrics: ServingMetrics) -> None:
        self.settings = settings
        self.name = loader.name
        self.alias = loader.alias
        self.loader = loader
        self.metrics = metrics
        self.model: LoadedModel | None = None
        """Read once per request: a swap mid-request does not affect that request."""
        self.reason = "the model has not been loaded yet"
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._registry_down_logged = False
        self.followers: list[Callable[[], None]] = []
        """Called after every poll of the alias (a rollout's candidate follows the registry on the same beat)."""

    def start(self, poll: bool) -> None:
        """Load the model (registry, else cache) and start the alias poller; never raises for a missing model."""
        self._poll_once()
        if self.model is None:
            self._load_from_cache()
        if poll:
            self._poller = threading.Thread(target=self._poll_loop, name=f"alias-poller-{self.name}", daemon=True)
            self._poller.start()

    def stop(self, timeout: float) -> None:
        """Stop polling."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout)

    def refresh(self) -> bool:
        """One poll: swap in the alias holder if it changed; returns whether the served model changed.

        Failures keep the current model and are remembered as the reason shown while nothing is served.
        """
        try:
            target = self.loader.alias_target()
        except Exception as error:  # registry down or misbehaving: keep serving what we have
            self._note_registry_problem(f"{type(error).__name__}: {error}")
            return False
        if self._registry_down_logged:
            log.info("model registry reachable again")
            self._registry_down_logged = False
        current = self.model
        if target is None:
            self.reason = f"no version of {self.name!r} holds the alias {self.alias!r} in the registry"
            return False
        if current is not None and current.version == target.version:
            if current.from_cache:
                self._install(replace(current, from_cache=False), swapped=False)
            return False
        try:
            loaded = self.loader.load(target)
        except Exception as error:  # a broken version must not take down the served one
            self.reason = f"loading {self.name} version {target.version} failed: {type(error).__name__}: {error}"
            log.exception(
                "cannot load %s version %s; still serving %s",
                self.name,
                target.version,
                current.version if current else "nothing",
            )
            return False
        self._install(loaded, swapped=current is not None)
        return True

    def _note_registry_problem(self, problem: str) -> None:
        uri = self.settings.mlflow.resolved_tracking_uri()
        self.reason = f"the model registry (MLflow at {uri}) is unavailable: {problem}"
        if not self._registry_down_logged:
            log.warning("%s; keeping %s", self.reason, f"version {self.model.version}" if self.model else "no model")
            self._registry_down_logged = True

    def _install(self, loaded: LoadedModel, swapped: bool) -> None:
        """Make ``loaded`` the served model: one reference assignment, then bookkeeping."""
        previous = self.model
        self.model = loaded
        self.metrics.set_model_version(self.name, loaded.version, loaded.from_cache)
        if swapped:
            self.metrics.swaps.labels(self.name).inc()
        log.info(
            "serving %s version %s%s (was %s)",
            self.name,
            loaded.version,
            " from the local cache" if loaded.from_cache else "",
            previous.version if previous else "nothing",
        )

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.settings.serving.poll_interval_s):
            self._poll_once()

    def _poll_once(self) -> None:
        self.refresh()
        if self._registry_down_logged:
            return  # the followers would wait for the same unreachable registry; they keep what they have
        for follow in self.followers:
            follow()

    def _load_from_cache(self) -> None:
        """Serve the last good model when the registry could not provide one at start."""
        cached = self.loader.cache.load_manifest()
        if cached is None:
            log.warning(
                "no model for %s@%s and none cached under %s: %s",
                self.name,
                self.alias,
                self.loader.cache.dir,
                self.reason,
            )
            self.reason += f"; no cached model under {self.loader.cache.dir}"
            return
        manifest, model_dir = cached
        try:
            loaded = self.loader.build(
                str(manifest["version"]),
                manifest.get("run_id"),
                model_dir,
                str(manifest["feature_service"]),
                list(manifest["model_inputs"]),
                True,
            )
        except Exception as error:  # a corrupt cache is reported, never fatal
            self.reason += f"; the cached model under {model_dir} failed to load: {type(error).__name__}: {error}"
            log.exception("cannot load the cached model under %s", model_dir)
            return
        log.warning(
            "serving %s version %s from the local cache (%s): %s", self.name, loaded.version, model_dir, self.reason
        )
        self._install(loaded, swapped=False)


def load_scorer(model_dir: Path, spec: ModelSpec, model_inputs: list[str], version: str) -> tuple[Any, TaskScorer]:
    """The estimator of an MLflow model directory and its scorer for the spec's task.

    The estimator comes only from the directory's ``model.skops`` under the platform's trust policy
    (``load_estimator``): never unpickled, so a replaced artifact cannot run code in the server.  One thread for
    the estimator's own scoring: a request is a few rows, parallelism comes from requests.
    """
    from threadpoolctl import threadpool_limits

    from mlplatform.training.estimators import load_estimator

    estimator = load_estimator(model_dir)
    arrays = accept_arrays(estimator, model_inputs, version)
    threadpool_limits(1)  # only libraries already loaded are limited, so after the estimator has loaded
    scorer = task_scorer(estimator, spec.task, model_inputs, arrays, spec.serving.threshold, version)
    log.info("version %s (%s) scores with %s", version, spec.task, scorer.how)
    return estimator, scorer


def accept_arrays(estimator: Any, model_inputs: list[str], version: str) -> bool:
    """Check the estimator's fitted column names against the lineage once, then let it take plain arrays.

    Why: scikit-learn checks a DataFrame's column names on every call; building the frame and that check cost
    about two thirds of a one-row predict (7 ms against 3 ms here).  The names are verified equal to the
    ``model_inputs`` order (a mismatch fails the load), then ``feature_names_in_`` is dropped so arrays in that
    order are accepted without a warning.  Only plain scikit-learn estimators take arrays: a Pipeline or
    ColumnTransformer may select columns by name, a meta-estimator's inner estimators keep their own names (and
    would warn on every call), and LightGBM and XGBoost check names themselves; all of those keep frames.
    """
    if not type(estimator).__module__.startswith("sklearn."):
        return False
    names = getattr(estimator, "feature_names_in_", None)
    if names is None:
        return False
    if [str(name) for name in names] != list(model_inputs):
        raise ValueError(
            f"version {version}: the model was fitted on columns {list(names)} but its lineage says {model_inputs}"
        )
    if "feature_names_in_" not in vars(estimator) or _nests_estimators(estimator):
        return False
    del estimator.feature_names_in_
    return True


def _nests_estimators(estimator: Any) -> bool:
    """Whether any constructor parameter holds an estimator (Pipeline steps, ColumnTransformer parts, a bagged or
    voting or stacking classifier's members)."""
    return any(_holds_estimator(value) for value in estimator.get_params(deep=False).values())


def _holds_estimator(value: Any) -> bool:
    if hasattr(value, "fit"):
        return True
    return isinstance(value, list | tuple) and any(_holds_estimator(item) for item in value)
