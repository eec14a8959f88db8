#!/usr/bin/env bash
# The main job, on a machine with no real Rancher and no registry:
#   ./scripts/demo.sh
# Builds the tool image and the simulated Rancher image from local files, starts a simulated
# Rancher whose K3s certificates expire in 10 days (era v1.18: K3s renews leaves at start but
# never its :6443 serving certificate), shows `check`, runs the sidecar beside it, waits until
# it renewed everything on its own, shows the tables and the metrics, and cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-docker.sh
bash scripts/build-sim-image.sh >/dev/null
bash scripts/build-image.sh >/dev/null
cargo build --release -q
BIN=target/release/rancher-cert-guard

RANCHER="rcg-demo-rancher-$$"
GUARD="rcg-demo-guard-$$"
BACKUPS="$(mktemp -d "${TMPDIR:-/tmp}/rcg-demo-backups.XXXXXX")"
PORT="${DEMO_PORT:-19795}"
cleanup() {
  docker rm -f -v "$GUARD" "$RANCHER" >/dev/null 2>&1 || true
  rm -rf "$BACKUPS"
}
trap cleanup EXIT

echo "== 1. A Rancher whose embedded K3s certificates expire in 10 days"
docker run -d --name "$RANCHER" --network none --label rancher-cert-guard.test=true \
  -e SIM_LEAF_DAYS=10 -e SIM_ERA=v1.18 -e SIM_BOOT_SECONDS=1 \
  --restart unless-stopped rancher-cert-guard-sim:local >/dev/null
for _ in $(seq 1 50); do docker logs "$RANCHER" 2>&1 | grep -q "startup complete" && break; sleep 0.2; done
set +e
"$BIN" check --container "$RANCHER"
echo "(check exit code: $? — 1 means renewal due)"
set -e

echo
echo "== 2. The sidecar (rancher-cert-guard:local, FROM scratch) beside it"
docker run -d --name "$GUARD" --network host --label rancher-cert-guard.test=true \
  -v /var/run/docker.sock:/var/run/docker.sock -v "$BACKUPS":/backups \
  rancher-cert-guard:local watch --container "$RANCHER" --listen "127.0.0.1:$PORT" \
  --backup-dir /backups --settle 5 >/dev/null
echo "waiting for the sidecar to renew the certificates on its own..."
ok=0
for _ in $(seq 1 120); do
  if "$BIN" check --container "$RANCHER" >/dev/null 2>&1; then ok=1; break; fi
  sleep 1
done
# Let the sidecar finish its settle window and publish the result.
repaired=0
for _ in $(seq 1 60); do
  curl -fsS "http://127.0.0.1:$PORT/metrics" 2>/dev/null | grep -Eq 'rancher_cert_guard_repairs_total\{.*result="repaired"\} [1-9]' && { repaired=1; break; }
  sleep 1
done
docker logs "$GUARD" 2>&1 | tail -n 15

echo
echo "== 3. After"
"$BIN" check --container "$RANCHER" || true
echo
echo "== 4. Metrics (x509-certificate-exporter compatible) and status"
curl -fsS "http://127.0.0.1:$PORT/metrics" | grep -E '^(x509_cert_not_after\{.*filename="(client-admin.crt|dynamic-cert.json)"|rancher_cert_guard_(repairs_total|restarts_total|target_up))' || true
echo "backups written: $(ls "$BACKUPS" | grep -c '\.tar$' || true)"
pong="$(docker exec "$RANCHER" wget -qO- http://127.0.0.1/ping 2>/dev/null || true)"
echo "ping inside Rancher: ${pong:-no answer}"
if [ "$ok" = 1 ] && [ "$repaired" = 1 ] && [ "$pong" = pong ]; then
  echo "DEMO OK: the sidecar renewed the certificates without help; Rancher answers pong"
else
  echo "DEMO FAILED: certificates fresh=$ok, repair recorded=$repaired, ping=${pong:-none}" >&2; exit 1
fi
