# mlplatform-serving: the KServe and BentoML model servers (serving/) around the platform's Predictor. The model
# is not in the image: a server loads models:/<name>@champion from MLflow at start and follows the alias.
#   docker build -f infrastructure/docker/serving.Dockerfile -t ghcr.io/mlplatform/mlplatform-serving:0.1.0 .
# Run: python serving/kserve/server.py --model <name>   or   python serving/bentoml/service.py --model <name>
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
      --extra serving --extra features --extra training --extra postgres

# -- the project alone, into its own prefix: a code change rebuilds this small layer, not the environment --------
FROM build AS project
COPY README.md ./
COPY platform ./platform
RUN --mount=type=secret,id=ca-bundle --mount=type=cache,id=mlplatform-uv,target=/root/.cache/uv,sharing=locked \
    in-build uv build --wheel --out-dir /tmp/dist \
 && uv pip install --python /opt/venv/bin/python --no-deps --prefix /opt/project /tmp/dist/*.whl

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="mlplatform-serving" \
      org.opencontainers.image.source="https://github.com/mlplatform/mlplatform" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 10001 mlp && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
      --shell /usr/sbin/nologin mlp
COPY --from=build /opt/venv /opt/venv
COPY --from=project /opt/project/ /opt/venv/
WORKDIR /app
COPY pipelines/models ./pipelines/models
COPY feature_repo ./feature_repo
COPY serving/kserve/server.py ./serving/kserve/server.py
COPY serving/bentoml/service.py serving/bentoml/bentofile.yaml ./serving/bentoml/
# In a cluster the server listens on all interfaces, port 8080 (KServe's convention; the chart's serving.port).
# Absolute paths to the bundled specs and feature repo: BentoML runs a service from its own folder.
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp \
    MLP_BUNDLED_MODELS_DIR=/app/pipelines/models MLP_FEAST__REPO_PATH=/app/feature_repo BENTOML_HOME=/tmp/bentoml \
    MLP_STATE_DIR=/var/lib/mlplatform MLP_SERVING__HOST=0.0.0.0 MLP_SERVING__PORT=8080
USER 10001:10001
EXPOSE 8080
# The model is the caller's to name (the chart and the platform's deployer pass the whole command line): alone, the
# server says that --model is required.
CMD ["python", "serving/kserve/server.py"]
