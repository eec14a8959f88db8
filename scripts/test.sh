#!/usr/bin/env bash
# The whole test suite on a real Docker engine, from a fresh machine:
#   bash scripts/test.sh
# Installs and starts what is missing (Debian's docker.io, busybox-static), builds every test
# image from local files (no registry), runs fmt/clippy and `cargo test`, removes what the
# tests labelled rancher-cert-guard.test=true.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-docker.sh

cleanup() {
  local ids
  ids=$(docker ps -aq --filter label=rancher-cert-guard.test=true 2>/dev/null || true)
  [ -z "$ids" ] || docker rm -f -v $ids >/dev/null 2>&1 || true
  ids=$(docker ps -aq --filter label=rancher-cert-guard.helper 2>/dev/null || true)
  [ -z "$ids" ] || docker rm -f -v $ids >/dev/null 2>&1 || true
  ids=$(docker volume ls -q --filter label=rancher-cert-guard.test=true 2>/dev/null || true)
  [ -z "$ids" ] || docker volume rm -f $ids >/dev/null 2>&1 || true
  ids=$(docker images -q --filter label=rancher-cert-guard.test=true --filter dangling=false 2>/dev/null | sort -u || true)
  # Keep the two images the suite builds (rebuilt incrementally); remove per-test ones.
  for img in $(docker images --filter label=rancher-cert-guard.test=true --format '{{.Repository}}:{{.Tag}}' 2>/dev/null); do
    case "$img" in rancher-cert-guard-sim:local|rancher-cert-guard:local) ;; *) docker rmi -f "$img" >/dev/null 2>&1 || true ;; esac
  done
}
trap cleanup EXIT

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

bash scripts/build-sim-image.sh
if [ -f scripts/build-image.sh ]; then bash scripts/build-image.sh; fi

log="$(mktemp "${TMPDIR:-/tmp}/rcg-test.XXXXXX")"
set +e
cargo test --workspace -- --test-threads="${TEST_THREADS:-4}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole suite (cargo prints one per test binary, the last being the
# doc-tests of a crate that has none).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed/) p += $(i-1); if ($(i) ~ /^failed/) f += $(i-1); if ($(i) ~ /^ignored/) s += $(i-1) } }
     END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' "$log" | tr -d ';'
rm -f "$log"
exit "$status"
