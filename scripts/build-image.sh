#!/usr/bin/env bash
# Build the product image `rancher-cert-guard:local` offline: a static binary built here
# (crt-static glibc, no registry, no musl toolchain needed) in a FROM-scratch image, through
# the `local` stage of the Dockerfile. Honours CARGO_TARGET_DIR and IMAGE. Prints the image
# id on stdout and its size on stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGE="${IMAGE:-rancher-cert-guard:local}"
TARGET=x86_64-unknown-linux-gnu
MAX_BYTES=$((8 * 1000 * 1000))

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$PWD/$TARGET_DIR" ;; esac
export CARGO_TARGET_DIR="$TARGET_DIR"

if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi

cd "$ROOT"
# The explicit --target keeps RUSTFLAGS away from build scripts and proc macros.
RUSTFLAGS='-C target-feature=+crt-static' \
  cargo build --release -p rancher-cert-guard --target "$TARGET" >&2
BIN="$TARGET_DIR/$TARGET/release/rancher-cert-guard"

# A dynamically linked binary would fail in FROM scratch only at run time: refuse it here.
if command -v readelf >/dev/null 2>&1 && readelf -d "$BIN" 2>/dev/null | grep -q '(NEEDED)'; then
  echo "build-image: $BIN is dynamically linked; cannot go into a FROM-scratch image" >&2
  exit 1
fi

ctx="$(mktemp -d "${TMPDIR:-/tmp}/rcg-image.XXXXXX")"
trap 'rm -rf "$ctx"' EXIT
cp -p "$BIN" "$ctx/rancher-cert-guard"
# Directories of the image, copied with their modes (`COPY rootfs/ /` keeps the mode of each
# directory inside; `COPY tmp/ /tmp/` would copy only the contents into a 0755 /tmp):
# /tmp 1777, and /backups 0700, the mount point of the backups volume: Docker gives a fresh
# named volume the mode of the image directory it is mounted on, so it is private from birth.
mkdir -p "$ctx/rootfs"
mkdir -m 1777 "$ctx/rootfs/tmp"
chmod 1777 "$ctx/rootfs/tmp"
mkdir -m 700 "$ctx/rootfs/backups"
chmod 700 "$ctx/rootfs/backups"
cp "$ROOT/Dockerfile" "$ctx/Dockerfile"

VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)"
REVISION="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if ! git -C "$ROOT" diff --quiet HEAD 2>/dev/null; then REVISION="$REVISION-dirty"; fi

# Classic builder, --target local: the registry stages after it are never reached. With a
# buildx-less BuildKit, DOCKER_BUILDKIT=1 /usr/bin/docker build --network none works too.
# The image this build replaces, removed afterwards so rebuilds leave no dangling images.
old_id="$("$DOCKER" image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}" "$DOCKER" build --network none --target local \
  --build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" \
  -t "$IMAGE" "$ctx" >&2

size="$("$DOCKER" image inspect --format '{{.Size}}' "$IMAGE")"
echo "build-image: $IMAGE is $size bytes ($(awk "BEGIN{printf \"%.1f\", $size/1000000}") MB)" >&2
if [ "$size" -gt "$MAX_BYTES" ]; then
  echo "build-image: warning: over the 8 MB budget" >&2
fi
new_id="$("$DOCKER" image inspect --format '{{.Id}}' "$IMAGE")"
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
  "$DOCKER" rmi "$old_id" >/dev/null 2>&1 || true   # still used by a container: leave it
fi
echo "$new_id"
