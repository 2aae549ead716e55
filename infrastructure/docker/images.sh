#!/usr/bin/env bash
# `make images`: builds mlplatform-platform, mlplatform-serving and mlplatform-airflow from infrastructure/docker/
# with whichever container engine answers (podman, else Docker), and prints each image's size.
#
#   MLP_IMAGE_REGISTRY  name prefix of the images (default localhost/mlplatform: local builds claim no registry)
#   MLP_IMAGE_TAG       tag (default: the chart's appVersion)
#   MLP_BASE_IMAGE      the base of every image (default: the Dockerfiles' pinned public base when its registry
#                       answers, else a local Debian bookworm base with Python 3.11 made by debootstrap)
#   MLP_CA_BUNDLE       CA bundle the builds trust for package downloads, passed as a build secret, never baked
#                       in (default: the host's bundle when SSL_CERT_FILE names one)
#   MLP_IMAGES_MIN_FREE_GB  free disk the engine's storage needs before a build starts (default 15)
#
# `images.sh engine` prints the engine and exits. With no engine at all it says what to install in one line and
# exits 0, or 1 under CI (CI=true).
set -euo pipefail
cd "$(dirname "$0")/../.."

HERE=infrastructure/docker
IMAGES=(platform serving airflow)
PUBLIC_BASE="$(sed -n 's/^ARG BASE_IMAGE=//p' "$HERE/platform.Dockerfile")"
BASE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin  # an imported root filesystem has no ENV
REGISTRY="${MLP_IMAGE_REGISTRY:-localhost/mlplatform}"
TAG="${MLP_IMAGE_TAG:-$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' helm/mlplatform/Chart.yaml)}"

say() { echo "images: $*" >&2; }

# The engine that answers: `podman info` / `docker info` succeed only with a working engine (a Docker client
# without a daemon does not count).
find_engine() {
  if command -v podman >/dev/null 2>&1 && podman info >/dev/null 2>&1; then echo podman
  elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then echo docker
  else return 1
  fi
}

# Without an engine nothing can be built: one line saying what to install; a failure under CI (CI=true).
no_engine() {
  echo "no container engine answers (podman info / docker info): images not built; install podman (Debian:" \
    "apt-get install podman buildah runc debootstrap; macOS: brew install podman) or start Docker" >&2
  case "${CI:-}" in "" | 0 | false | no) exit 0 ;; *) exit 1 ;; esac
}

# podman's defaults fail on some hosts (crun on hybrid cgroups; setrlimit refused): probe them, and fall back to
# the project's containers.conf (runc, explicit limits) only where they fail.
settle_podman() {
  local image="$1"
  [ "$ENGINE" = podman ] && [ -z "${CONTAINERS_CONF:-}" ] || return 0
  podman run --rm --network none "$image" true >/dev/null 2>&1 && return 0
  export CONTAINERS_CONF="$PWD/$HERE/containers.conf"
  say "podman's defaults cannot start a container here: using $CONTAINERS_CONF"
  podman run --rm --network none "$image" true
}

check_disk() {
  local root need="${MLP_IMAGES_MIN_FREE_GB:-15}" free
  if [ "$ENGINE" = podman ]; then root="$(podman info --format '{{.Store.GraphRoot}}')"
  else root="$(docker info --format '{{.DockerRootDir}}')"; fi
  mkdir -p "$root" 2>/dev/null || true
  free="$(df -P -BG "$root" | awk 'NR == 2 { sub("G", "", $4); print $4 }')"
  if [ "$free" -lt "$need" ]; then
    say "only ${free} GB free under $root; the three images and their build layers need ${need} GB" \
      "(MLP_IMAGES_MIN_FREE_GB). Free some space (podman/docker system prune) and run again"
    exit 1
  fi
  say "$free GB free under $root"
}

debian_mirror() {
  local uri
  uri="$(grep -hs -E '^(URIs:|deb ) *' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | grep -v security | sed -E 's/^URIs: *//; s/^deb +(\[[^]]*\] +)?//; s/ .*//' | head -n 1)"
  echo "${MLP_DEBIAN_MIRROR:-${uri:-http://deb.debian.org/debian}}"
}

# A base made from Debian packages alone: bookworm (minbase) with Python 3.11, pip and CA certificates, cleaned of
# package lists, caches and documentation, imported as an image (no registry involved). Made once per machine.
make_local_base() {
  if $ENGINE image inspect "$LOCAL_BASE" >/dev/null 2>&1; then
    say "local base $LOCAL_BASE already made"
    return
  fi
  command -v debootstrap >/dev/null || { say "the public base cannot be pulled and debootstrap is missing" \
    "(apt-get install debootstrap), or set MLP_BASE_IMAGE to a base you have"; exit 1; }
  [ "$(id -u)" = 0 ] || { say "debootstrap needs root to make the local base; or set MLP_BASE_IMAGE"; exit 1; }
  local root mirror
  root="$(mktemp -d /var/tmp/mlplatform-base.XXXXXX)"
  mirror="$(debian_mirror)"
  say "making the local base $LOCAL_BASE from $mirror (debootstrap, about a minute)"
  debootstrap --variant=minbase --include=python3.11,python3-pip,ca-certificates bookworm "$root" "$mirror" \
    >"$root.log" 2>&1 || { tail -n 20 "$root.log" >&2; rm -f "$root.log"; exit 1; }
  rm -f "$root.log"
  rm -rf "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
  echo "deb $mirror bookworm main" >"$root/etc/apt/sources.list"
  tar -C "$root" -c . | $ENGINE import --change "ENV PATH=$BASE_PATH" --change 'CMD ["python3.11"]' - "$LOCAL_BASE" >/dev/null 2>"$root.log" \
    || { cat "$root.log" >&2; rm -rf "$root" "$root.log"; exit 1; }
  rm -rf "$root" "$root.log"
}

# The local base's tag names its recipe (this script's function and PATH), so a changed recipe makes a new base.
local_base_tag() {
  local recipe
  recipe="$(declare -f make_local_base)$BASE_PATH"
  echo "localhost/mlplatform-base:bookworm-py3.11-$(printf '%s' "$recipe" | sha256sum | cut -c1-12)"
}

choose_base() {
  if [ -n "${MLP_BASE_IMAGE:-}" ]; then echo "$MLP_BASE_IMAGE"; return; fi
  if $ENGINE image inspect "$PUBLIC_BASE" >/dev/null 2>&1 \
    || timeout 120 $ENGINE pull --quiet "$PUBLIC_BASE" >/dev/null 2>&1; then
    echo "$PUBLIC_BASE"
    return
  fi
  say "the public base $PUBLIC_BASE cannot be pulled (no registry answers): using a local Debian base"
  LOCAL_BASE="$(local_base_tag)"
  make_local_base
  echo "$LOCAL_BASE"
}

# The build secret flags for the CA bundle (none without one), in the array CA_SECRET.
set_ca_secret() {
  local bundle="${MLP_CA_BUNDLE:-${SSL_CERT_FILE:-}}"
  CA_SECRET=()
  if [ -n "$bundle" ] && [ -s "$bundle" ]; then CA_SECRET=(--secret "id=ca-bundle,src=$bundle"); fi
}

build() {
  local image="$1" base="$2" started=$SECONDS
  say "building $REGISTRY/mlplatform-$image:$TAG"
  $ENGINE build --file "$HERE/$image.Dockerfile" --tag "$REGISTRY/mlplatform-$image:$TAG" \
    --build-arg "BASE_IMAGE=$base" ${CA_SECRET[@]+"${CA_SECRET[@]}"} . >"/tmp/mlplatform-image-$image.log" 2>&1 \
    || { tail -n 40 "/tmp/mlplatform-image-$image.log" >&2; say "build of $image failed (log above)"; exit 1; }
  say "built $image in $((SECONDS - started)) s"
}

sizes() {
  local image
  printf '%-40s %s\n' image "size (MB)"
  for image in "$@"; do
    printf '%-40s %s\n' "mlplatform-$image:$TAG" \
      "$(( $($ENGINE image inspect --format '{{.Size}}' "$REGISTRY/mlplatform-$image:$TAG") / 1000000 ))"
  done
}

main() {
  ENGINE="$(find_engine)" || no_engine
  if [ "${1:-}" = engine ]; then echo "$ENGINE"; return; fi
  say "engine: $ENGINE"
  export DOCKER_BUILDKIT=1  # Docker's builder for RUN --mount (secrets, caches); podman ignores it
  check_disk
  local base
  base="$(choose_base)"
  settle_podman "$base"
  local -a wanted=("${@:-${IMAGES[@]}}")
  set_ca_secret
  local image
  for image in "${wanted[@]}"; do build "$image" "$base"; done
  sizes "${wanted[@]}"
}

main "$@"
