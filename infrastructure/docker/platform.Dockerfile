# mlplatform-platform: the platform API/UI, the CLI, MLflow server, Feast (feature server, materialization) and
# drift jobs. Build from the repository root (`make images` builds all three images with podman or Docker):
#   docker build -f infrastructure/docker/platform.Dockerfile -t ghcr.io/mlplatform/mlplatform-platform:0.1.0 .
# BASE_IMAGE: any Debian-based image with Python 3.11 and pip (infrastructure/docker/README.md, "Bases").
ARG BASE_IMAGE=python:3.11.10-slim-bookworm@sha256:5148c0e4bbb64271bca1d3322360ebf4bfb7564507ae32dd639322e4952a6b16
ARG UV_VERSION=0.9.5

# -- build: the locked environment in /opt/venv (no compilers, caches or uv in the final image) ----------------
FROM ${BASE_IMAGE} AS build
ARG UV_VERSION
ENV UV_PROJECT_ENVIRONMENT=/opt/venv UV_PYTHON=python3.11 UV_PYTHON_PREFERENCE=only-system \
    UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy PATH=/opt/uv/bin:$PATH
COPY infrastructure/docker/in-build.sh /usr/local/bin/in-build
# uv from PyPI, like every other package (no image registry besides the base's).
RUN --mount=type=secret,id=ca-bundle \
    in-build python3.11 -m pip install --no-cache-dir --disable-pip-version-check --target /opt/uv "uv==${UV_VERSION}"
WORKDIR /src
# Dependencies first (cached while only the code or the README changes), then the project itself, non-editable.
COPY pyproject.toml uv.lock ./
RUN --mount=type=secret,id=ca-bundle --mount=type=cache,id=mlplatform-uv,target=/root/.cache/uv,sharing=locked \
    in-build uv sync --frozen --no-dev --no-install-project \
      --extra api --extra features --extra training --extra monitoring --extra postgres --extra mlflow-server

# -- the project alone, into its own prefix: a code change rebuilds this small layer, not the environment --------
FROM build AS project
COPY README.md ./
COPY platform ./platform
RUN --mount=type=secret,id=ca-bundle --mount=type=cache,id=mlplatform-uv,target=/root/.cache/uv,sharing=locked \
    in-build uv build --wheel --out-dir /tmp/dist \
 && uv pip install --python /opt/venv/bin/python --no-deps --prefix /opt/project /tmp/dist/*.whl

# -- runtime ------------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="mlplatform-platform" \
      org.opencontainers.image.source="https://github.com/mlplatform/mlplatform" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 10001 mlp && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
      --shell /usr/sbin/nologin mlp
COPY --from=build /opt/venv /opt/venv
COPY --from=project /opt/project/ /opt/venv/
# The working directory holds what the settings' relative defaults point at (specs, feature repo, monitoring).
WORKDIR /app
COPY pipelines/models ./pipelines/models
COPY feature_repo ./feature_repo
COPY monitoring ./monitoring
# Absolute paths to the bundled specs and feature repo: BentoML runs a service from its own folder.
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp \
    MLP_BUNDLED_MODELS_DIR=/app/pipelines/models MLP_FEAST__REPO_PATH=/app/feature_repo \
    MLP_STATE_DIR=/var/lib/mlplatform MLP_API__HOST=0.0.0.0 MLP_API__PORT=8400
USER 10001:10001
EXPOSE 8400
CMD ["mlplatform", "api", "serve"]
