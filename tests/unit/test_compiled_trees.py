"""The compiled tree scorer gives scikit-learn's probabilities exactly, and steps aside where it cannot."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from mlplatform.serving.compiled_trees import compile_hgb, positive_scorer, verify


def _data(seed: int = 0, rows: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, 6))
    target = (features[:, 0] + 0.5 * features[:, 1] ** 2 - features[:, 2] + rng.normal(size=rows) > 0.8).astype(int)
    features[rng.random(features.shape) < 0.1] = np.nan  # missing values: the nodes learn a direction for them
    return features, target


@pytest.fixture(scope="module")
def fitted() -> HistGradientBoostingClassifier:
    features, target = _data()
    return HistGradientBoostingClassifier(max_iter=60, max_leaf_nodes=15, random_state=0).fit(features, target)


def test_probabilities_are_bit_identical_to_scikit_learn(fitted: HistGradientBoostingClassifier) -> None:
    ensemble = compile_hgb(fitted)
    assert ensemble is not None
    rows, _ = _data(seed=1, rows=500)
    rows[:3] = np.nan  # whole rows missing
    rows[3, 0] = np.inf  # beyond every threshold
    expected = fitted.predict_proba(rows)[:, 1]
    for size in (1, 2, 32, 500):
        np.testing.assert_array_equal(ensemble.predict_positive(rows[:size]), expected[:size])
    assert verify(ensemble, fitted)


def test_wrong_width_is_refused(fitted: HistGradientBoostingClassifier) -> None:
    ensemble = compile_hgb(fitted)
    assert ensemble is not None
    with pytest.raises(ValueError, match="expected rows of 6 features"):
        ensemble.predict_positive(np.zeros((1, 5)))


def test_categorical_and_multiclass_models_keep_scikit_learn() -> None:
    features, target = _data()
    categorical = np.column_stack([features[:, :5], np.random.default_rng(0).integers(0, 4, len(features))])
    with_categories = HistGradientBoostingClassifier(max_iter=10, categorical_features=[5]).fit(categorical, target)
    multiclass = HistGradientBoostingClassifier(max_iter=10).fit(
        features, (features[:, 0] > 0).astype(int) + (features[:, 1] > 0)
    )
    assert compile_hgb(with_categories) is None
    assert compile_hgb(multiclass) is None
    assert compile_hgb(LogisticRegression()) is None


def test_scorer_falls_back_to_predict_proba_for_other_estimators() -> None:
    features, target = _data()
    features = np.nan_to_num(features)
    model = LogisticRegression().fit(features, target)
    scorer, compiled = positive_scorer(model, "7")
    assert not compiled
    np.testing.assert_array_equal(scorer(features[:5]), model.predict_proba(features[:5])[:, 1])


def test_scorer_refuses_a_compiled_ensemble_that_disagrees(
    fitted: HistGradientBoostingClassifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tampered copy (one leaf changed) must fail the load-time check, and scikit-learn is used instead."""
    import mlplatform.serving.compiled_trees as compiled_trees

    honest = compile_hgb(fitted)
    assert honest is not None
    value = honest.value.copy()
    value[honest.leaf] += 0.5  # every leaf
    tampered = compiled_trees.CompiledEnsemble(**{**honest.__dict__, "value": value})
    monkeypatch.setattr(compiled_trees, "compile_hgb", lambda _: tampered)
    scorer, compiled = compiled_trees.positive_scorer(fitted, "3")
    assert not compiled
    rows, _ = _data(seed=2, rows=20)
    np.testing.assert_array_equal(scorer(rows), fitted.predict_proba(rows)[:, 1])
