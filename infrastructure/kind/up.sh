#!/usr/bin/env bash
# Create a kind cluster with everything mlplatform runs on, then install the chart: `make kind-up`.
# Needs Docker, kind, kubectl and helm on PATH. Re-runnable: existing pieces are upgraded in place.
# (Not run in this repository's CI: no Docker engine there. See README.md.)
set -euo pipefail

# -- Pinned versions: everything this script installs ------------------------------------------------------------
KIND_NODE_IMAGE="kindest/node:v1.33.1"
CERT_MANAGER_VERSION="v1.18.2"
KSERVE_VERSION="v0.20.0"
KUBE_PROMETHEUS_STACK_VERSION="75.15.0"
AIRFLOW_CHART_VERSION="1.18.0"
POSTGRES_IMAGE="postgres:16.9-alpine"
REDIS_IMAGE="redis:7.4.7-alpine"
MINIO_IMAGE="quay.io/minio/minio:RELEASE.2025-07-23T15-54-02Z"
MC_IMAGE="quay.io/minio/mc:RELEASE.2025-07-21T05-28-08Z"
# ------------------------------------------------------------------------------------------------------------------

CLUSTER="${KIND_CLUSTER:-mlplatform}"
NS="mlplatform"
RELEASE="mlp"  # helm/airflow-values.yaml and helm/kube-prometheus-stack-values.yaml assume this release name
cd "$(dirname "$0")/../.."
KIND_DIR="infrastructure/kind"
MLP_TAG="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)"

say() { printf '\n==> %s\n' "$*"; }
for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "up.sh needs $tool on PATH" >&2; exit 1; }
done
random() { head -c "${1:-24}" /dev/urandom | base64 | tr -d '/+=\n' | head -c "${1:-24}"; }
# Create or update a Secret from key=value arguments (idempotent).
secret() {
  local namespace="$1" name="$2"; shift 2
  kubectl create secret generic "$name" -n "$namespace" "${@/#/--from-literal=}" --dry-run=client -o yaml \
    | kubectl apply -f - >/dev/null
}
stored() { kubectl get secret kind-backing -n "$NS" -o "jsonpath={.data.$1}" | base64 -d; }

say "kind cluster $CLUSTER ($KIND_NODE_IMAGE)"
if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --image "$KIND_NODE_IMAGE" --config "$KIND_DIR/cluster.yaml"
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null

say "images mlplatform-{platform,serving,airflow}:$MLP_TAG (built here, loaded into the node)"
# BuildKit, for the Dockerfiles' RUN --mount (uv's cache, the optional CA bundle). By default every image starts from
# the base the Dockerfiles pin; MLP_BASE_IMAGE replaces it, MLP_CA_BUNDLE is a CA bundle the builds trust for their
# downloads (a build secret: it never lands in a layer).
build_args=()
if [ -n "${MLP_BASE_IMAGE:-}" ]; then build_args+=(--build-arg "BASE_IMAGE=$MLP_BASE_IMAGE"); fi
if [ -n "${MLP_CA_BUNDLE:-}" ]; then build_args+=(--secret "id=ca-bundle,src=$MLP_CA_BUNDLE"); fi
for image in platform serving airflow; do
  DOCKER_BUILDKIT=1 docker build -q ${build_args[@]+"${build_args[@]}"} -f "infrastructure/docker/$image.Dockerfile" \
    -t "ghcr.io/mlplatform/mlplatform-$image:$MLP_TAG" .
  kind load docker-image --name "$CLUSTER" "ghcr.io/mlplatform/mlplatform-$image:$MLP_TAG"
done

say "cert-manager $CERT_MANAGER_VERSION (KServe's webhook certificates)"
helm upgrade --install cert-manager cert-manager --repo https://charts.jetstack.io --version "$CERT_MANAGER_VERSION" \
  -n cert-manager --create-namespace --set crds.enabled=true --wait

say "KServe $KSERVE_VERSION in RawDeployment mode (no Knative, no Istio)"
helm upgrade --install kserve-crd oci://ghcr.io/kserve/charts/kserve-crd --version "$KSERVE_VERSION" \
  -n kserve --create-namespace --wait
helm upgrade --install kserve-resources oci://ghcr.io/kserve/charts/kserve-resources --version "$KSERVE_VERSION" \
  -n kserve --set kserve.controller.deploymentMode=RawDeployment \
  --set kserve.controller.gateway.disableIngressCreation=true --wait

say "Secrets (generated once, kept in Secret $NS/kind-backing)"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl create namespace monitoring --dry-run=client -o yaml | kubectl apply -f - >/dev/null
if ! kubectl get secret kind-backing -n "$NS" >/dev/null 2>&1; then
  secret "$NS" kind-backing "postgres-password=$(random)" "admin-password=$(random)" "webhook-token=$(random 32)" \
    "airflow-password=$(random)" "s3-secret=$(random 32)" "session-secret=$(random 48)" \
    "fernet-key=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_')" "airflow-api-secret=$(random 32)" \
    "airflow-jwt=$(random 32)" "writer-password=$(random 32)" "mlflow-admin=$(random 32)" \
    "mlflow-writer=$(random 32)" "mlflow-reader=$(random 32)" "mlflow-flask-secret=$(random 48)"
fi
PG="postgresql://mlplatform:$(stored postgres-password)@postgres:5432"
secret "$NS" mlp-platform-db "url=${PG/postgresql/postgresql+psycopg}/mlplatform"
secret "$NS" mlp-mlflow-db "url=$PG/mlflow"
secret "$NS" mlp-airflow-db "connection=$PG/airflow"
secret "$NS" mlp-redis "connection-string=redis:6379"
secret "$NS" mlp-object-store "access-key-id=mlplatform" "secret-access-key=$(stored s3-secret)"
WRITER_URL="postgresql+psycopg://mlp_prediction_writer:$(stored writer-password)@postgres:5432/mlplatform"
secret "$NS" mlp-prediction-writer "password=$(stored writer-password)" "url=$WRITER_URL"
# MLflow's basic auth: its config (admin, users DB), the writer's and reader's client credentials files and the key
# signing its CSRF tokens; the
# writer and reader users are created with MLflow's auth API once MLflow runs (docs/platform-engineer-guide.md).
secret "$NS" mlp-mlflow-auth \
  "basic_auth.ini=$(printf '[mlflow]\ndefault_permission = READ\ndatabase_uri = %s\nadmin_username = admin\nadmin_password = %s\n' "$PG/mlflow" "$(stored mlflow-admin)")" \
  "writer-credentials=$(printf '[mlflow]\nmlflow_tracking_username = mlplatform\nmlflow_tracking_password = %s\n' "$(stored mlflow-writer)")" \
  "reader-credentials=$(printf '[mlflow]\nmlflow_tracking_username = model-server\nmlflow_tracking_password = %s\n' "$(stored mlflow-reader)")" \
  "flask-secret-key=$(stored mlflow-flask-secret)"
secret "$NS" mlp-platform "session-secret=$(stored session-secret)" "admin-password=$(stored admin-password)" \
  "alertmanager-webhook-token=$(stored webhook-token)" "airflow-password=$(stored airflow-password)"
secret "$NS" mlp-airflow-users "passwords.json={\"admin\": \"$(stored airflow-password)\"}"
secret "$NS" mlp-airflow-fernet "fernet-key=$(stored fernet-key)"
secret "$NS" mlp-airflow-api-secret "api-secret-key=$(stored airflow-api-secret)"
secret "$NS" mlp-airflow-jwt "jwt-secret=$(stored airflow-jwt)"
secret monitoring mlp-alertmanager-webhook "token=$(stored webhook-token)"

say "PostgreSQL, Redis, MinIO (throwaway, in $NS)"
sed -e "s|@POSTGRES_IMAGE@|$POSTGRES_IMAGE|" -e "s|@REDIS_IMAGE@|$REDIS_IMAGE|" \
  -e "s|@MINIO_IMAGE@|$MINIO_IMAGE|" -e "s|@MC_IMAGE@|$MC_IMAGE|" "$KIND_DIR/backing-services.yaml" \
  | kubectl apply -n "$NS" -f -
kubectl rollout status -n "$NS" deployment/postgres deployment/redis deployment/minio --timeout=5m
kubectl wait -n "$NS" --for=condition=complete job/minio-bucket --timeout=5m

say "kube-prometheus-stack $KUBE_PROMETHEUS_STACK_VERSION"
helm upgrade --install kube-prometheus-stack kube-prometheus-stack \
  --repo https://prometheus-community.github.io/helm-charts --version "$KUBE_PROMETHEUS_STACK_VERSION" \
  -n monitoring -f helm/kube-prometheus-stack-values.yaml --wait --timeout 10m

say "mlplatform chart (helm/mlplatform) as release $RELEASE"
helm upgrade --install "$RELEASE" helm/mlplatform -n "$NS" -f "$KIND_DIR/values.yaml" \
  --set image.tag="$MLP_TAG" --wait --timeout 10m

say "Apache Airflow chart $AIRFLOW_CHART_VERSION with helm/airflow-values.yaml"
helm upgrade --install airflow airflow --repo https://airflow.apache.org --version "$AIRFLOW_CHART_VERSION" \
  -n "$NS" -f helm/airflow-values.yaml --set images.airflow.tag="$MLP_TAG" --wait --timeout 20m

say "Ready. Smoke test: make kind-smoke   (admin password: kubectl get secret -n $NS mlp-platform \
-o jsonpath='{.data.admin-password}' | base64 -d)"
