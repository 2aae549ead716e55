#!/usr/bin/env bash
# Installs the system tools the platform and its tests use, when they are missing and this machine can install
# them; otherwise prints one line per missing tool saying what will be skipped and how to get it.
#
#   prometheus, promtool            Debian package prometheus              the loop's alert path, rule tests
#   alertmanager, amtool            Debian package prometheus-alertmanager the loop's alert path, routing tests
#   chromium, chromedriver          Debian packages chromium, chromium-driver  the browser tests of the UI
#   podman, buildah, runc           Debian packages podman, buildah, runc  `make images`, `make images-smoke`
#   debootstrap                     Debian package debootstrap             the images' local base (no registry)
#
# On macOS only podman applies (`brew install podman`; its machine holds the rest): a "-" formula marks a tool
# macOS does without, so it is neither installed nor reported there.
#
# `make install` runs it, so both of the README's commands (`make demo`, `make test`) and CI (which runs those
# commands) get the same set-up. It installs with apt-get as root, or through `sudo -n` where that works, and never
# starts the packages' own daemons (a temporary policy-rc.d answers "not allowed" while apt runs): the embedded
# stack starts Prometheus and Alertmanager itself, on its own ports. MLP_SKIP_SYSTEM_TOOLS=1 only reports.
# Never fails the build: a tool it cannot install is a skip the tests name, not a broken `make`.
set -uo pipefail

# tool on PATH (or a path) | Debian package | Homebrew formula (or cask; "-": not needed on macOS) | what needs it
TOOLS=(
  "prometheus|prometheus|prometheus|the closed loop's alert path (make demo) and the live alert tests"
  "promtool|prometheus|prometheus|the alert-rule tests (promtool check/test rules)"
  "alertmanager prometheus-alertmanager|prometheus-alertmanager|alertmanager|the closed loop's alert path (make demo) and the live alert tests"
  "amtool|prometheus-alertmanager|alertmanager|the Alertmanager routing tests (amtool check-config)"
  "chromium|chromium|--cask chromium|the browser tests of the UI (tests/ui)"
  "chromedriver|chromium-driver|--cask chromedriver|the browser tests of the UI (tests/ui)"
  "podman|podman|podman|the OCI images (make images) and the pod smoke test (make images-smoke)"
  "buildah|buildah|-|the OCI images' builds (make images)"
  "runc|runc|-|the pod smoke test's runtime where crun cannot start containers (make images-smoke)"
  "debootstrap|debootstrap|-|the images' local Debian base when no image registry answers (make images)"
)

found() {
  local name
  for name in $1; do command -v "$name" >/dev/null 2>&1 && return 0; done
  return 1
}

missing_packages() {
  local entry names package
  for entry in "${TOOLS[@]}"; do
    IFS='|' read -r names package _ _ <<<"$entry"
    found "$names" || echo "$package"
  done | sort -u
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi
}

can_apt_install() {
  command -v apt-get >/dev/null 2>&1 || return 1
  [ "$(id -u)" = 0 ] || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }
}

apt_install() {
  local policy=/usr/sbin/policy-rc.d added_policy="" status=0 package
  local -a lean=() full=()
  # Prometheus' recommends are exporters nobody here uses; Chromium's are the fonts its screenshots need; podman's
  # (slirp4netns, uidmap, fuse-overlayfs) are what it needs to run without root.
  for package in "$@"; do
    case "$package" in chromium* | podman) full+=("$package") ;; *) lean+=("$package") ;; esac
  done
  if [ ! -e "$policy" ]; then
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod +x $policy" && added_policy=1
  fi
  echo "installing Debian packages: $* (once; the packages' own daemons are not started)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq || status=$?
  if [ $status = 0 ] && [ ${#lean[@]} -gt 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${lean[@]}" >/dev/null \
      || status=$?
  fi
  if [ $status = 0 ] && [ ${#full[@]} -gt 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${full[@]}" >/dev/null || status=$?
  fi
  if [ -n "$added_policy" ]; then as_root rm -f "$policy"; fi
  return $status
}

report_missing() {
  local entry names package brew what how
  for entry in "${TOOLS[@]}"; do
    IFS='|' read -r names package brew what <<<"$entry"
    found "$names" && continue
    if [ "$(uname -s)" = Darwin ]; then
      [ "$brew" = - ] && continue
      how="brew install $brew"
    else
      how="sudo apt-get install $package"
    fi
    echo "missing ${names%% *}: skipped: $what; install it with \`$how\`"
  done
}

mapfile -t wanted < <(missing_packages)
if [ ${#wanted[@]} -gt 0 ] && [ -z "${MLP_SKIP_SYSTEM_TOOLS:-}" ] && can_apt_install; then
  apt_install "${wanted[@]}" || echo "apt-get could not install ${wanted[*]}; the tools below stay missing" >&2
fi
report_missing
exit 0
