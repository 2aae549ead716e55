# syntax=docker/dockerfile:1
# mlplatform-platform: the platform API/UI, the CLI, MLflow server, Feast (feature server, materialization) and
# drift jobs. Build from the repository root:
#   docker build -f infrastructure/docker/platform.Dockerfile -t ghcr.io/mlplatform/mlplatform-platform:0.1.0 .
# Bases are pinned by tag; pin the digest too in your registry mirror (see infrastructure/docker/README.md).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.9.5

FROM ${UV_IMAGE} AS uv

# -- build: the locked environment in /opt/venv (no compilers in the final image) -----------------------------
FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_PROJECT_ENVIRONMENT=/opt/venv UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
WORKDIR /src
# Dependencies first (cached while only the code changes), then the project itself, non-editable.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project \
      --extra api --extra features --extra training --extra monitoring --extra postgres
COPY platform ./platform
RUN uv sync --frozen --no-dev --no-editable \
      --extra api --extra features --extra training --extra monitoring --extra postgres

# -- runtime ------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="mlplatform-platform" \
      org.opencontainers.image.source="https://github.com/mlplatform/mlplatform" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 10001 mlp && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
      --shell /usr/sbin/nologin mlp
COPY --from=build /opt/venv /opt/venv
# The working directory holds what the settings' relative defaults point at (specs, feature repo, monitoring).
WORKDIR /app
COPY pipelines/models ./pipelines/models
COPY feature_repo ./feature_repo
COPY monitoring ./monitoring
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp \
    MLP_STATE_DIR=/var/lib/mlplatform MLP_API__HOST=0.0.0.0 MLP_API__PORT=8400
USER 10001:10001
EXPOSE 8400
CMD ["mlplatform", "api", "serve"]
