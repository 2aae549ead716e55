# syntax=docker/dockerfile:1
# mlplatform-airflow: the official Airflow image (pinned) with the platform package and our DAGs, for the
# official Airflow chart (helm/airflow-values.yaml).
#   docker build -f infrastructure/docker/airflow.Dockerfile -t ghcr.io/mlplatform/mlplatform-airflow:0.1.0 .
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.9.5

FROM ${UV_IMAGE} AS uv

# -- build: the platform wheel and the locked versions of its task dependencies ------------------------------
FROM ${AIRFLOW_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
WORKDIR /tmp/src
COPY --chown=airflow:root pyproject.toml uv.lock README.md ./
COPY --chown=airflow:root platform ./platform
# Airflow itself comes from the base image: export everything else the tasks import, at the locked versions.
RUN uv export --frozen --no-dev --no-hashes --no-emit-project \
      --extra features --extra training --extra monitoring --extra postgres -o requirements.txt \
 && uv build --wheel --out-dir dist

# -- runtime ------------------------------------------------------------------------------------------------
FROM ${AIRFLOW_IMAGE}
ARG AIRFLOW_VERSION=3.3.2
LABEL org.opencontainers.image.title="mlplatform-airflow" \
      org.opencontainers.image.source="https://github.com/mlplatform/mlplatform" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /tmp/src/requirements.txt /tmp/src/dist/ /tmp/mlplatform/
# Installing with Airflow pinned keeps the base image's Airflow (the official image's documented practice).
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /tmp/mlplatform/requirements.txt \
      /tmp/mlplatform/mlplatform-*.whl
# DAG file, specs and the Feast repository; the platform's settings point at them.
COPY --chown=airflow:root pipelines/dags /opt/airflow/dags
COPY --chown=airflow:root pipelines/models /opt/airflow/pipelines/models
COPY --chown=airflow:root feature_repo /opt/airflow/feature_repo
ENV MLP_BUNDLED_MODELS_DIR=/opt/airflow/pipelines/models MLP_FEAST__REPO_PATH=/opt/airflow/feature_repo \
    MLP_AIRFLOW__DAGS_FOLDER=/opt/airflow/dags MLP_STATE_DIR=/tmp/mlplatform PYTHONDONTWRITEBYTECODE=1
# The official image's non-root user (uid 50000, gid 0).
USER 50000
