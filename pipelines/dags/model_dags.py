"""Airflow DAG file: a training and a monitoring (drift check) DAG per model spec. All logic lives in mlplatform.

The spec folder comes from MLP_SPECS_DIR and whether schedules run from MLP_AIRFLOW__RUN_SCHEDULES (the embedded
stack and the Helm chart set both); specs are small YAML files, so parsing stays fast and imports nothing heavy.
"""

from mlplatform.config import get_settings
from mlplatform.orchestration.dags import build_monitoring_dags, build_training_dags
from mlplatform.specs import load_specs

settings = get_settings()
specs = load_specs(settings.specs_dir)
globals().update(build_training_dags(specs, settings.airflow.run_schedules))
globals().update(build_monitoring_dags(specs, settings.airflow.run_schedules))
