"""Airflow DAG file: a training, a monitoring (drift check) and a labels (late labels, online quality) DAG per model
spec. All logic lives in mlplatform.

The model folders come from MLP_BUNDLED_MODELS_DIR and MLP_MODELS_DIR (the state directory's models folder when
unset), and whether schedules run from MLP_AIRFLOW__RUN_SCHEDULES (the embedded stack and the Helm chart set them);
specs are small YAML files, so parsing stays fast and imports nothing heavy.  A model created while Airflow runs
appears at the next parse of this file, without a restart.
"""

from mlplatform.config import get_settings
from mlplatform.orchestration.dags import build_labels_dags, build_monitoring_dags, build_training_dags
from mlplatform.specs import load_specs

settings = get_settings()
specs = load_specs(settings.model_roots)
globals().update(build_training_dags(specs, settings.airflow.run_schedules))
globals().update(build_monitoring_dags(specs, settings.airflow.run_schedules))
globals().update(build_labels_dags(specs, settings.airflow.run_schedules))
