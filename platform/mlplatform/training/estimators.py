"""Estimators from specs, and the only way a fitted one is saved and loaded: skops with the platform's trust policy.

Why one module: training builds and saves models, the gate and the model servers load them, and
``models validate`` does all three on a sample.  Keeping the build (spec -> scikit-learn objects) and the trust
policy (which types a saved model may contain) together means the check that keeps a spec from naming arbitrary
code and the check that keeps an artifact from loading arbitrary code are written once.

Trust policy: a saved model may contain types from the libraries the platform trains with (scikit-learn,
LightGBM, XGBoost) and the numeric libraries under them; skops refuses everything else, so an artifact someone
replaced in the artifact store cannot run code when a server loads it.  Functions are never trusted.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any, Final

from mlplatform.specs import COLUMN_KEYWORDS, EstimatorSpec, SpecError, import_class

TRUSTED_MODULE_PREFIXES: Final = ("sklearn.", "lightgbm.", "xgboost.", "numpy.", "scipy.")
"""Modules whose types a saved model may contain (checked on every load, whatever the artifact says)."""
TRUSTED_BUILTINS: Final = frozenset({"builtins.slice", "collections.OrderedDict", "collections.defaultdict"})
"""Plain containers outside those libraries that fitted models hold (LightGBM keeps its parameters in an
``OrderedDict``); types only."""
SKOPS_FILE: Final = "model.skops"
"""The estimator's file inside an MLflow model directory logged with ``serialization_format="skops"``."""


class UntrustedModelError(ValueError):
    """A saved model holds a type outside the trust policy; it is not loaded."""


def build_estimator(spec: EstimatorSpec) -> Any:
    """The unfitted scikit-learn-compatible object a spec describes (Pipelines and ColumnTransformers included).

    A constructor that rejects its parameters is a ``SpecError`` naming the class, as is a class that cannot be
    imported.
    """
    if spec.class_path in COLUMN_KEYWORDS:
        return spec.class_path
    params = {key: _param_value(value) for key, value in spec.params.items()}
    if spec.steps is not None:
        params["steps"] = [(step.name, build_estimator(step)) for step in spec.steps]
    if spec.transformers is not None:
        params["transformers"] = [(part.name, build_estimator(part), list(part.columns)) for part in spec.transformers]
    estimator_class = import_class(spec.class_path)
    try:
        return estimator_class(**params)
    except TypeError as error:
        raise SpecError(f"estimator {spec.class_path} rejected its parameters: {error}") from None


def _param_value(value: Any) -> Any:
    """A nested estimator (a mapping with ``class_path``) is built; anything else passes as it is."""
    if isinstance(value, dict) and "class_path" in value:
        return build_estimator(EstimatorSpec.model_validate(value))
    return value


def check_task(estimator: Any, task: str, class_path: str) -> None:
    """Refuse, before fitting, an estimator that cannot do the spec's task: a classifier for regression, a
    regressor for classification, or a classifier without class probabilities (what classification is judged and
    served by).  ``class_path`` names the predicting class in the message (a Pipeline's last step)."""
    from sklearn.base import is_classifier, is_regressor

    if task == "regression":
        if not is_regressor(estimator):
            raise SpecError(f"task regression needs a regressor; estimator {class_path} is not one")
        return
    if not is_classifier(estimator):
        raise SpecError(f"task {task} needs a classifier; estimator {class_path} is not one")
    if not hasattr(estimator, "predict_proba"):
        raise SpecError(
            f"estimator {class_path} gives no class probabilities (predict_proba), which task {task} is scored and "
            "served by: for SVC set probability: true, otherwise wrap it in sklearn.calibration.CalibratedClassifierCV"
        )


def is_trusted_type(type_name: str) -> bool:
    """Whether the trust policy admits a name as skops reports it (``module.Class``): a class (never a function)
    from a trusted library, or one of the few builtin containers models hold.

    Why resolve the name: skops reports functions by the same dotted names as classes, and a function from a
    trusted library is still a function a loaded model would call (``numpy.savetxt`` inside a FunctionTransformer
    writes files), so the prefix alone is not enough.
    """
    if type_name in TRUSTED_BUILTINS:
        return True
    if not type_name.startswith(TRUSTED_MODULE_PREFIXES):
        return False
    return isinstance(_resolve(type_name), type)


def _resolve(dotted: str) -> object:
    """The object a dotted name names inside an already trusted library, or ``None``."""
    module_name, _, attribute = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attribute, None)
    except ImportError:
        return None


def _skops_io() -> ModuleType:
    """``skops.io``, its first import with warnings silenced.

    At import skops looks every scipy function up by name in every loaded module (``pickle.whichmodule``); in an
    Airflow task that includes Airflow's deprecated-import shims, each of which warns on the lookup: 1,160 task-log
    lines and about a second in each of the train and gate tasks.
    """
    if "skops.io" not in sys.modules:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # Airflow's DeprecatedImportWarning is a FutureWarning
            importlib.import_module("skops.io")
    return sys.modules["skops.io"]


def trusted_types_of(blob: bytes) -> list[str]:
    """The types skops would refuse by default in a saved model, all of which the policy must admit."""
    untrusted = [str(name) for name in _skops_io().get_untrusted_types(data=blob)]
    refused = [name for name in untrusted if not is_trusted_type(name)]
    if refused:
        raise UntrustedModelError(
            "the model holds types or functions outside the platform's trust policy (classes of "
            f"{', '.join(TRUSTED_MODULE_PREFIXES)}; never functions): {', '.join(sorted(refused))}"
        )
    return untrusted


def dumps(estimator: Any) -> bytes:
    """The estimator in skops format; fails if it holds a type the platform would refuse to load."""
    blob: bytes = _skops_io().dumps(estimator)
    trusted_types_of(blob)
    return blob


def loads(blob: bytes) -> Any:
    """An estimator from skops bytes, admitting only the types the policy trusts."""
    return _skops_io().loads(blob, trusted=trusted_types_of(blob))


def load_estimator(model_dir: Path) -> Any:
    """The estimator of an MLflow model directory, loaded under the trust policy (never unpickled)."""
    path = model_dir / SKOPS_FILE
    if not path.is_file():
        raise UntrustedModelError(
            f"{model_dir} has no {SKOPS_FILE}: only models saved in skops format are loaded (pickles never are)"
        )
    return loads(path.read_bytes())
