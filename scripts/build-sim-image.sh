#!/usr/bin/env bash
# Build the simulated Rancher image `rancher-cert-guard-sim:local` from local
# files only (no registry): a static sim-rancher binary plus /bin/busybox on
# FROM scratch. Runnable from any directory; idempotent (cargo and the Docker
# layer cache make a no-change run quick). Honours CARGO_TARGET_DIR (default
# <repo>/target) and SIM_IMAGE (the tag). Prints the image id on stdout; progress goes to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${SIM_IMAGE:-rancher-cert-guard-sim:local}"
TARGET=x86_64-unknown-linux-gnu
BUSYBOX=/bin/busybox

# Resolve a relative CARGO_TARGET_DIR against the caller's cwd before cd.
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$PWD/$TARGET_DIR" ;; esac
export CARGO_TARGET_DIR="$TARGET_DIR"

if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
[ -x "$BUSYBOX" ] || { echo "build-sim-image: $BUSYBOX missing (apt-get install busybox-static)" >&2; exit 1; }

cd "$ROOT"
# The explicit --target keeps RUSTFLAGS away from build scripts and proc macros.
unset CARGO_ENCODED_RUSTFLAGS
RUSTFLAGS='-C target-feature=+crt-static' \
  cargo build --release -p sim-rancher --target "$TARGET" >&2
BIN="$TARGET_DIR/$TARGET/release/sim-rancher"

ctx="$(mktemp -d "${TMPDIR:-/tmp}/sim-image.XXXXXX")"
trap 'rm -rf "$ctx"' EXIT
# cp -p keeps mtimes so that an unchanged file hits the layer cache.
cp -p "$BUSYBOX" "$ctx/busybox"
cp -p "$BIN" "$ctx/rancher"
cp -p "$ROOT/sim/Dockerfile" "$ctx/Dockerfile"

# Legacy builder: no frontend image to pull; --network none for RUN steps.
# The image this build replaces, removed afterwards so rebuilds leave no dangling images.
old_id="$("$DOCKER" image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
DOCKER_BUILDKIT=0 "$DOCKER" build --network none \
  --label rancher-cert-guard.test=true -t "$IMAGE" "$ctx" >&2

new_id="$("$DOCKER" image inspect --format '{{.Id}}' "$IMAGE")"
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
  "$DOCKER" rmi "$old_id" >/dev/null 2>&1 || true   # still used by a container: leave it
fi
echo "$new_id"
