# syntax=docker/dockerfile:1
# mlplatform-serving: the KServe and BentoML model servers (serving/) around the platform's Predictor. The model
# is not in the image: a server loads models:/<name>@champion from MLflow at start and follows the alias.
#   docker build -f infrastructure/docker/serving.Dockerfile -t ghcr.io/mlplatform/mlplatform-serving:0.1.0 .
# Run: python serving/kserve/server.py --model <name>   or   python serving/bentoml/service.py --model <name>
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.9.5

FROM ${UV_IMAGE} AS uv

FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_PROJECT_ENVIRONMENT=/opt/venv UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project \
      --extra serving --extra features --extra training --extra postgres
COPY platform ./platform
RUN uv sync --frozen --no-dev --no-editable \
      --extra serving --extra features --extra training --extra postgres

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="mlplatform-serving" \
      org.opencontainers.image.source="https://github.com/mlplatform/mlplatform" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 10001 mlp && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
      --shell /usr/sbin/nologin mlp
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY pipelines/models ./pipelines/models
COPY feature_repo ./feature_repo
COPY serving/kserve/server.py ./serving/kserve/server.py
COPY serving/bentoml/service.py serving/bentoml/bentofile.yaml ./serving/bentoml/
# In a cluster the server listens on all interfaces, port 8080 (KServe's convention; the chart's serving.port).
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp BENTOML_HOME=/tmp/bentoml \
    MLP_STATE_DIR=/var/lib/mlplatform MLP_SERVING__HOST=0.0.0.0 MLP_SERVING__PORT=8080
USER 10001:10001
EXPOSE 8080
CMD ["python", "serving/kserve/server.py", "--model", "fraud_detector"]
