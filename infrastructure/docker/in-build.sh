#!/bin/sh
# Runs one build step trusting the build secret "ca-bundle" when one was passed: a corporate CA bundle for a
# TLS-intercepting proxy between the build and the package index. The engine mounts a secret for that step
# only (at /run/secrets/<id>), so the bundle never lands in a layer:
#   podman build --secret id=ca-bundle,src=/etc/ssl/certs/ca-certificates.crt ...   (docker build: the same flag)
# Without the secret the step runs with the base image's own trust store.
set -eu
bundle=/run/secrets/ca-bundle
if [ -s "$bundle" ]; then
  export SSL_CERT_FILE="$bundle" PIP_CERT="$bundle" REQUESTS_CA_BUNDLE="$bundle"
fi
exec "$@"
