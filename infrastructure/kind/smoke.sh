#!/usr/bin/env bash
# Smoke test of the kind cluster made by up.sh: port-forward the platform API, log in, prepare demo data and
# features, train through Airflow, deploy through the platform (it creates an InferenceService), predict.
# Needs kubectl, curl, python3 and the repository's environment (`make install`) for the `mlplatform` CLI.
set -euo pipefail
NS="mlplatform"
RELEASE="mlp"
MODEL="fraud_detector"
API_PORT="${API_PORT:-18400}"
MODEL_PORT="${MODEL_PORT:-18080}"
cd "$(dirname "$0")/../.."
API="http://127.0.0.1:$API_PORT"
MLP=(uv run --frozen --no-sync mlplatform)

say() { printf '\n==> %s\n' "$*"; }
json() { python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }
wait_for() {  # URL: up to 60 s
  for _ in $(seq 60); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 1; done
  echo "no answer from $1" >&2; return 1
}
forwards=()
trap 'kill "${forwards[@]}" 2>/dev/null || true; rm -f "${JAR:-}"' EXIT

say "port-forward the platform API to $API"
kubectl port-forward -n "$NS" "svc/$RELEASE-mlplatform-platform" "$API_PORT:8400" >/dev/null &
forwards+=($!)
wait_for "$API/readyz"

say "log in as admin and issue an API token"
PASSWORD="$(kubectl get secret -n "$NS" mlp-platform -o jsonpath='{.data.admin-password}' | base64 -d)"
JAR="$(mktemp)"
curl -fsS -c "$JAR" -H 'Content-Type: application/json' \
  -d "{\"username\": \"admin\", \"password\": \"$PASSWORD\"}" "$API/api/v1/session" >/dev/null
CSRF="$(curl -fsS -b "$JAR" "$API/api/v1/session" | json '["csrf_token"]')"
TOKEN="$(curl -fsS -b "$JAR" -H "X-CSRF-Token: $CSRF" -H 'Content-Type: application/json' \
  -d '{"name": "kind-smoke", "ttl_days": 1}' "$API/api/v1/tokens" | json '["token"]')"
export MLP_API_URL="$API" MLP_API_TOKEN="$TOKEN"

say "demo data and features on the shared Feast volume (inside the platform pod)"
kubectl exec -n "$NS" "deploy/$RELEASE-mlplatform-platform" -- \
  sh -c 'mlplatform data generate && mlplatform features apply && mlplatform features materialize'

say "train $MODEL through Airflow"
"${MLP[@]}" train "$MODEL" --wait --reason "kind smoke test"

say "deploy $MODEL through the platform (KServe InferenceService)"
"${MLP[@]}" deploy "$MODEL" --backend kserve --reason "kind smoke test"
kubectl get inferenceservice -n "$NS" "${MODEL//_/-}"

say "predict"
kubectl port-forward -n "$NS" "svc/${MODEL//_/-}-predictor" "$MODEL_PORT:80" >/dev/null &
forwards+=($!)
wait_for "http://127.0.0.1:$MODEL_PORT/readyz"
curl -fsS -H 'Content-Type: application/json' -d '{"instances": [{"customer_id": 1001, "amount": 42.0}]}' \
  "http://127.0.0.1:$MODEL_PORT/v1/models/$MODEL:predict"
echo
say "smoke test passed"
