#!/usr/bin/env bash
# Make sure a Docker engine answers and busybox-static, openssl, docker-compose, curl, prometheus
# (promtool and the server, for the alert-rule and metrics-format tests) and
# python3-prometheus-client (a second real parser of /metrics) are installed; on a fresh machine,
# install Debian's docker.io and start dockerd without touching the host's network
# (--iptables=false --bridge=none). Prints nothing but progress; idempotent.
set -euo pipefail

need_pkgs=()
command -v docker >/dev/null 2>&1 || need_pkgs+=(docker.io)
[ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || need_pkgs+=(busybox-static)
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)
command -v docker-compose >/dev/null 2>&1 || need_pkgs+=(docker-compose)
command -v curl >/dev/null 2>&1 || need_pkgs+=(curl)
# The tests start their own Prometheus on loopback and kill it; the package's service is not
# wanted (stopped below where systemd started it).
{ command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; } || need_pkgs+=(prometheus)
/usr/bin/python3 -c 'import prometheus_client' >/dev/null 2>&1 || need_pkgs+=(python3-prometheus-client)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  echo "ensure-docker: installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  if [[ " ${need_pkgs[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi

if ! docker info >/dev/null 2>&1; then
  echo "ensure-docker: starting dockerd --iptables=false --bridge=none"
  log="${TMPDIR:-/tmp}/rancher-cert-guard-dockerd.log"
  nohup dockerd --iptables=false --bridge=none >"$log" 2>&1 &
  echo $! > "${TMPDIR:-/tmp}/rancher-cert-guard-dockerd.pid"
  for _ in $(seq 1 150); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
  docker info >/dev/null 2>&1 || { echo "ensure-docker: dockerd did not answer; see $log" >&2; tail -20 "$log" >&2; exit 1; }
fi
echo "ensure-docker: engine $(docker version --format '{{.Server.Version}}' 2>/dev/null) answers"
