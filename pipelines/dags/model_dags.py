"""Airflow DAG file: one training DAG per model spec. All logic lives in mlplatform; this file only wires it.

The spec folder comes from MLP_SPECS_DIR and whether schedules run from MLP_AIRFLOW__RUN_SCHEDULES (the embedded
stack and the Helm chart set both); specs are small YAML files, so parsing stays fast and imports nothing heavy.
"""

from mlplatform.config import get_settings
from mlplatform.orchestration.dags import build_training_dags
from mlplatform.specs import load_specs

settings = get_settings()
globals().update(build_training_dags(load_specs(settings.specs_dir), settings.airflow.run_schedules))
