"""Model spec validation: good specs load, bad ones fail naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlplatform.specs import SpecError, find_spec, load_spec, load_specs

REPO_SPECS = Path(__file__).resolve().parents[2] / "pipelines" / "specs"


def _write(tmp_path: Path, data: object, name: str = "fraud_detector") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _valid() -> dict[str, object]:
    spec: dict[str, object] = yaml.safe_load((REPO_SPECS / "fraud_detector.yaml").read_text())
    return spec


def test_shipped_specs_load() -> None:
    specs = load_specs(REPO_SPECS)
    spec = specs["fraud_detector"]
    assert spec.training_dag_id == "train_fraud_detector"
    assert spec.features.service == "fraud_detector_v1"
    assert spec.gates.minimums["roc_auc"] == pytest.approx(0.85)
    assert spec.estimator.resolve().__name__ == "HistGradientBoostingClassifier"


def test_fingerprint_is_stable_and_content_sensitive(tmp_path: Path) -> None:
    first = load_spec(_write(tmp_path, _valid()))
    again = load_spec(_write(tmp_path, _valid()))
    changed_data = _valid()
    changed_data["estimator"]["params"]["max_iter"] = 11  # type: ignore[index]
    changed = load_spec(_write(tmp_path, changed_data))
    assert first.fingerprint() == again.fingerprint() != changed.fingerprint()


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["gates"]["minimums"].update(roc_auc=1.5), "gates.minimums"),
        (lambda d: d["gates"]["minimums"].update(accuracy=0.9), "gates.minimums.accuracy"),
        (lambda d: d.update(colour="blue"), "colour: Extra inputs are not permitted"),
        (lambda d: d["estimator"].update(class_path="os.system"), "estimator.class_path"),
        (lambda d: d["split"].update(holdout_fraction=0), "split.holdout_fraction"),
        (lambda d: d.pop("entity_key"), "entity_key: Field required"),
        (lambda d: d["label"].update(source="../../etc/passwd"), "label.source"),
        (lambda d: d["label"].update(request_columns=["is_fraud"]), "label.column must not be a request column"),
    ],
)
def test_invalid_specs_name_file_and_field(tmp_path: Path, mutate: object, expected: str) -> None:
    data = _valid()
    mutate(data)  # type: ignore[operator]
    path = _write(tmp_path, data)
    with pytest.raises(SpecError) as raised:
        load_spec(path)
    assert str(path) in str(raised.value)
    assert expected in str(raised.value)


def test_malformed_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "fraud_detector.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match=r"fraud_detector\.yaml: not valid YAML"):
        load_spec(path)


def test_non_mapping_and_name_mismatch(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="must be a YAML mapping"):
        load_spec(_write(tmp_path, ["a", "list"]))
    with pytest.raises(SpecError, match="must match the file name 'other'"):
        load_spec(_write(tmp_path, _valid(), name="other"))


def test_find_spec_rejects_path_tricks_and_lists_known_models(tmp_path: Path) -> None:
    _write(tmp_path, _valid())
    with pytest.raises(SpecError, match="invalid model name"):
        find_spec(tmp_path, "../fraud_detector")
    with pytest.raises(SpecError, match="known models: fraud_detector"):
        find_spec(tmp_path, "churn")
    assert find_spec(tmp_path, "fraud_detector").name == "fraud_detector"


def test_unknown_estimator_class_is_a_spec_error(tmp_path: Path) -> None:
    data = _valid()
    data["estimator"]["class_path"] = "sklearn.ensemble.NoSuchClassifier"  # type: ignore[index]
    spec = load_spec(_write(tmp_path, data))
    with pytest.raises(SpecError, match=r"cannot import 'sklearn\.ensemble\.NoSuchClassifier'"):
        spec.estimator.resolve()
