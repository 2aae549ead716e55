# mlplatform-airflow: Airflow (from PyPI, at uv.lock's version) with the platform package and our DAGs, for the
# official Airflow chart (helm/airflow-values.yaml), which runs `bash -c "exec airflow <component>"` in it.
#   docker build -f infrastructure/docker/airflow.Dockerfile -t ghcr.io/mlplatform/mlplatform-airflow:0.1.0 .
# No registry-only base: the same BASE_IMAGE as the other images.
ARG BASE_IMAGE=python:3.11.10-slim-bookworm@sha256:5148c0e4bbb64271bca1d3322360ebf4bfb7564507ae32dd639322e4952a6b16
ARG UV_VERSION=0.9.5

FROM ${BASE_IMAGE} AS build
ARG UV_VERSION
ENV UV_PROJECT_ENVIRONMENT=/opt/venv UV_PYTHON=python3.11 UV_PYTHON_PREFERENCE=only-system \
    UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy PATH=/opt/uv/bin:$PATH
COPY infrastructure/docker/in-build.sh /usr/local/bin/in-build
RUN --mount=type=secret,id=ca-bundle \
    in-build python3.11 -m pip install --no-cache-dir --disable-pip-version-check --target /opt/uv "uv==${UV_VERSION}"
WORKDIR /src
COPY pyproject.toml uv.lock ./
RUN --mount=type=secret,id=ca-bundle --mount=type=cache,id=mlplatform-uv,target=/root/.cache/uv,sharing=locked \
    in-build uv sync --frozen --no-dev --no-install-project \
      --extra airflow --extra features --extra training --extra monitoring --extra postgres

# -- the project alone, into its own prefix: a code change rebuilds this small layer, not the environment --------
FROM build AS project
COPY README.md ./
COPY platform ./platform
RUN --mount=type=secret,id=ca-bundle --mount=type=cache,id=mlplatform-uv,target=/root/.cache/uv,sharing=locked \
    in-build uv build --wheel --out-dir /tmp/dist \
 && uv pip install --python /opt/venv/bin/python --no-deps --prefix /opt/project /tmp/dist/*.whl

# -- runtime ------------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="mlplatform-airflow" \
      org.opencontainers.image.source="https://github.com/mlplatform/mlplatform" \
      org.opencontainers.image.licenses="Apache-2.0"
# The official image's user (uid 50000, gid 0), which the official chart's securityContext expects; AIRFLOW_HOME
# group-writable as there (logs, the standalone config).
RUN useradd --uid 50000 --gid 0 --create-home --home-dir /home/airflow --shell /bin/bash airflow \
 && mkdir -p /opt/airflow/logs && chown -R 50000:0 /opt/airflow && chmod -R g+rwX /opt/airflow
COPY --from=build /opt/venv /opt/venv
COPY --from=project /opt/project/ /opt/venv/
# DAG file, specs and the Feast repository; the platform's settings point at them.
COPY --chown=50000:0 pipelines/dags /opt/airflow/dags
COPY --chown=50000:0 pipelines/models /opt/airflow/pipelines/models
COPY --chown=50000:0 feature_repo /opt/airflow/feature_repo
ENV PATH=/opt/venv/bin:$PATH AIRFLOW_HOME=/opt/airflow HOME=/home/airflow PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 MLP_BUNDLED_MODELS_DIR=/opt/airflow/pipelines/models \
    MLP_FEAST__REPO_PATH=/opt/airflow/feature_repo MLP_AIRFLOW__DAGS_FOLDER=/opt/airflow/dags \
    MLP_STATE_DIR=/tmp/mlplatform
WORKDIR /opt/airflow
USER 50000
CMD ["airflow", "version"]
