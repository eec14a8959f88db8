#!/usr/bin/env bash
# Side-by-side benchmarks of rancher-cert-guard against the manual procedure and a plain
# restart (issue 5). One command, from a fresh machine:
#
#   bash bench/run.sh
#
# Builds what it needs (tool image + its static binary, simulated Rancher image, the in-process
# inventory bench), measures, prints a human table and then one `key: value` line per figure,
# and rewrites bench/RESULTS.md. Interleaves tool and baseline runs (A B A B …, order flipped
# every other round) and reports medians. Network: loopback and `--network none` only.
#
# Everything it creates carries the labels rancher-cert-guard.test=true and
# rancher-cert-guard.bench=<run id>; it removes by the run label (never other people's test
# containers) and kills only the processes it started.
#
# Knobs (environment): BENCH_SKIP_BUILD=1 (use what is built), BENCH_ROUNDS_CHECK (15),
# BENCH_ROUNDS_REPAIR (5), BENCH_ROUNDS_DETECT (5), BENCH_IDLE_SECONDS (60), BENCH_SETTLE (1),
# BENCH_BOOT_SECONDS (0.3, SIM_BOOT_SECONDS of every simulated Rancher, tool and baseline
# alike), BENCH_SCALE (100), BENCH_RESULTS (bench/RESULTS.md; empty: do not write),
# BENCH_SKIP_HOSTILE=1 (skip bench/hostile.sh, the peak RSS of check on hostile trees),
# IMAGE / SIM_IMAGE (image tags to build and measure; default the :local ones).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CALLER_PWD="$PWD"
cd "$ROOT"
SCRIPT_START=${EPOCHREALTIME/./}

ROUNDS_CHECK="${BENCH_ROUNDS_CHECK:-15}"
ROUNDS_REPAIR="${BENCH_ROUNDS_REPAIR:-5}"
ROUNDS_DETECT="${BENCH_ROUNDS_DETECT:-5}"
IDLE_SECONDS="${BENCH_IDLE_SECONDS:-60}"
SETTLE="${BENCH_SETTLE:-1}"
BOOT="${BENCH_BOOT_SECONDS:-0.3}"
SCALE="${BENCH_SCALE:-100}"
RESULTS="${BENCH_RESULTS-$ROOT/bench/RESULTS.md}"
TLS=/var/lib/rancher/k3s/server/tls
SIM_IMAGE="${SIM_IMAGE:-rancher-cert-guard-sim:local}"
TOOL_IMAGE="${IMAGE:-rancher-cert-guard:local}"
export SIM_IMAGE IMAGE="$TOOL_IMAGE"   # what scripts/build-*.sh build
TRIPLE=x86_64-unknown-linux-gnu

# The developer's CERT_GUARD_* settings must not leak into the measured runs.
for v in $(compgen -e); do case "$v" in CERT_GUARD_*) unset "$v" ;; esac; done

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

# ------------------------------------------------------------------ engine and tools
bash scripts/ensure-docker.sh >&2
if ! command -v curl >/dev/null 2>&1; then
  log "installing curl"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends curl >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends curl >/dev/null; }
fi
command -v openssl >/dev/null || die "openssl missing"
BUSYBOX=/bin/busybox; [ -x "$BUSYBOX" ] || BUSYBOX=/usr/bin/busybox
[ -x "$BUSYBOX" ] || die "busybox missing (apt-get install busybox-static)"
if [ -x /usr/bin/docker ]; then DOCKER_BUILD=/usr/bin/docker; else DOCKER_BUILD=docker; fi
SOCK=/var/run/docker.sock
case "${DOCKER_HOST:-}" in unix://*) SOCK="${DOCKER_HOST#unix://}" ;; "") ;; *) die "DOCKER_HOST=$DOCKER_HOST: the bare archive baseline needs a unix socket" ;; esac

RUN_ID="b$(date +%s)$$"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/rcg-bench.XXXXXX")"
LABELS=(--label rancher-cert-guard.test=true --label "rancher-cert-guard.bench=$RUN_ID")
STARTED_PIDS=()
TREE_IMAGE="rancher-cert-guard-bench-tree:$RUN_ID"

cleanup() {
  local rc=$? pid ids
  set +e
  for pid in "${STARTED_PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null
      for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
      wait "$pid" 2>/dev/null
    fi
  done
  ids=$(docker ps -aq --filter "label=rancher-cert-guard.bench=$RUN_ID" 2>/dev/null)
  [ -z "$ids" ] || docker rm -f -v $ids >/dev/null 2>&1
  docker image rm -f "$TREE_IMAGE" >/dev/null 2>&1
  rm -rf "$WORK"
  [ "$rc" -eq 0 ] || log "exit $rc (cleaned up run $RUN_ID)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ helpers
# Microseconds now (no fork).
us() { local t=$EPOCHREALTIME; REPLY=${t/./}; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.6f", (b-a)/1e6}'; }
add() { printf '%s\n' "$2" >>"$WORK/s.$1"; }
median() {
  [ -s "$WORK/s.$1" ] || { echo nan; return; }
  sort -g "$WORK/s.$1" | awk '{a[NR]=$1} END{ if (NR%2) printf "%.6f\n", a[(NR+1)/2]; else printf "%.6f\n", (a[NR/2]+a[NR/2+1])/2 }'
}
count() { [ -s "$WORK/s.$1" ] && wc -l <"$WORK/s.$1" || echo 0; }
minmax() { sort -g "$WORK/s.$1" | awk 'NR==1{m=$1} {x=$1} END{printf "%.3f–%.3f", m, x}'; }
calc() { awk "BEGIN{ printf \"$1\", $2 }"; }

ping_sim() { [ "$(docker exec "$1" wget -qO- http://127.0.0.1:80/ping 2>/dev/null || true)" = pong ]; }
wait_pong() {
  local deadline=$(( ${EPOCHREALTIME%.*} + ${2:-60} ))
  until ping_sim "$1"; do
    [ "${EPOCHREALTIME%.*}" -lt "$deadline" ] || die "$1 never answered pong"
    sleep 0.05
  done
}
# sim NAME [docker run args...]: a simulated Rancher, healthy when this returns.
sim() {
  local name=$1; shift
  docker run -d --name "$name" --network none "${LABELS[@]}" -e "SIM_BOOT_SECONDS=$BOOT" "$@" "$SIM_IMAGE" >/dev/null
  wait_pong "$name"
}
rm_c() { docker rm -f -v "$@" >/dev/null 2>&1 || true; }

# watch_start NAME ARGS...: a `watch` on the host; sets WPID and WADDR.
watch_start() {
  local name=$1; shift
  rm -f "$WORK/$name.addr"
  "$BIN" watch --monitor-only --interval 3600 --listen 127.0.0.1:0 \
    --addr-file "$WORK/$name.addr" --log-format json "$@" >"$WORK/$name.log" 2>&1 &
  WPID=$!
  STARTED_PIDS+=("$WPID")
  local i
  for i in $(seq 1 300); do [ -s "$WORK/$name.addr" ] && break; sleep 0.02; done
  [ -s "$WORK/$name.addr" ] || { tail -5 "$WORK/$name.log" >&2; die "watch $name did not start"; }
  WADDR=$(tr -d '[:space:]' <"$WORK/$name.addr")
}
# Wait for /readyz 200 (polled every 20 ms); REPLY = microseconds when it answered.
wait_ready() {
  local deadline=$(( ${EPOCHREALTIME%.*} + ${2:-60} ))
  until curl -fs -o /dev/null --max-time 2 "http://$1/readyz"; do
    [ "${EPOCHREALTIME%.*}" -lt "$deadline" ] || die "watch at $1 never became ready"
    sleep 0.02
  done
  us
}
watch_stop() {
  kill -TERM "$1" 2>/dev/null || true
  local i
  for i in $(seq 1 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
proc_kb() { awk -v k="$2:" '$1==k {print $2}' "/proc/$1/status"; }
proc_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
checks_ok() {
  { curl -fs --max-time 2 "http://$1/metrics" || true; } \
    | awk -v c="container=\"$2\"" '/^rancher_cert_guard_checks_total\{/ && index($0, c) && index($0, "result=\"ok\"") {print $NF; f=1} END{if(!f) print 0}'
}
# Seconds of the day of an RFC 3339 timestamp in a JSON log line with MESSAGE.
log_ts() {
  grep -m1 "\"message\":\"$2" "$1" | sed -n 's/.*"timestamp":"[0-9-]*T\([0-9:.]*\)Z".*/\1/p' \
    | awk -F: 'NF==3 {printf "%.6f\n", $1*3600 + $2*60 + $3}'
}

# ------------------------------------------------------------------ build
BUILD_START=${EPOCHREALTIME/./}
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$CALLER_PWD/$TARGET_DIR" ;; esac
export CARGO_TARGET_DIR="$TARGET_DIR"
HAVE_IMAGE_SCRIPT=0; [ -f scripts/build-image.sh ] && HAVE_IMAGE_SCRIPT=1
if [ "$HAVE_IMAGE_SCRIPT" = 1 ]; then
  # The image's own static binary is also the one measured on the host.
  BIN="$TARGET_DIR/$TRIPLE/release/rancher-cert-guard"
else
  BIN="$TARGET_DIR/release/rancher-cert-guard"
fi
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  if [ "$HAVE_IMAGE_SCRIPT" = 1 ]; then
    log "building $TOOL_IMAGE (static binary, scripts/build-image.sh)"
    bash scripts/build-image.sh >/dev/null 2>"$WORK/build-image.log" || { tail -30 "$WORK/build-image.log" >&2; die "build-image.sh"; }
  else
    log "building the release binary (no scripts/build-image.sh yet)"
    cargo build --release -q
  fi
  log "building $SIM_IMAGE"
  bash scripts/build-sim-image.sh >/dev/null 2>"$WORK/build-sim.log" || { tail -30 "$WORK/build-sim.log" >&2; die "build-sim-image.sh"; }
  log "building the inventory bench"
  # Same triple and RUSTFLAGS as the image build: most dependencies are shared.
  RUSTFLAGS='-C target-feature=+crt-static' cargo bench -q --bench inventory --target "$TRIPLE" --no-run 2>"$WORK/build-bench.log" \
    || { tail -30 "$WORK/build-bench.log" >&2; die "cargo bench --no-run"; }
fi
BUILD_END=${EPOCHREALTIME/./}
[ -x "$BIN" ] || die "$BIN missing (run without BENCH_SKIP_BUILD)"
HAVE_WATCH=0
"$BIN" watch --help >/dev/null 2>&1 && HAVE_WATCH=1
MEASURE_START=${EPOCHREALTIME/./}

# ------------------------------------------------------------------ machine
M_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
M_NPROC=$(nproc)
M_MEM=$(awk '/^MemTotal:/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
M_KERNEL=$(uname -r)
M_DOCKER=$(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null || echo '?')
M_DRIVER=$(docker info --format '{{.Driver}}' 2>/dev/null || echo '?')
M_CPU=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
M_COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
# Dirty: anything changed or untracked besides the results file this script writes.
if [ -n "$(git status --porcelain 2>/dev/null | grep -v ' bench/RESULTS.md$' || true)" ]; then
  M_COMMIT="$M_COMMIT (with uncommitted changes)"
fi
M_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------------ parse (in process)
log "inventory throughput on a 1,000-file tree (in process)"
RUSTFLAGS='-C target-feature=+crt-static' cargo bench -q --bench inventory --target "$TRIPLE" \
  >"$WORK/parse.out" 2>"$WORK/parse.err" || { cat "$WORK/parse.err" >&2; die "inventory bench"; }
kv() { awk -v k="$2:" '$1==k {print $2}' "$1"; }
PARSE_CPS=$(kv "$WORK/parse.out" parse_certs_per_second)
PARSE_FPS=$(kv "$WORK/parse.out" parse_files_per_second)
PARSE_CERTS=$(kv "$WORK/parse.out" parse_tree_certificates)
PARSE_FILES=$(kv "$WORK/parse.out" parse_tree_files)
PARSE_MS=$(kv "$WORK/parse.out" parse_median_ms)
[ -n "$PARSE_CPS" ] || die "the inventory bench printed no figure"

# ------------------------------------------------------------------ check vs manual vs archive
log "check: tool vs manual loop vs bare archive call ($ROUNDS_CHECK interleaved rounds)"
C1="rcg-bench-$RUN_ID-check"
sim "$C1"
ARCHIVE_URL="http://localhost/containers/$C1/archive?path=$TLS"
mkdir -p "$WORK/dirtree"
docker cp -q "$C1:$TLS" "$WORK/dirtree/" 2>/dev/null || docker cp "$C1:$TLS" "$WORK/dirtree/" >/dev/null
CRT_FILES=$(ls "$WORK/dirtree/tls/"*.crt | wc -l)
ALL_FILES=$(find "$WORK/dirtree/tls" -type f | wc -l)

run_check() { "$BIN" check --container "$C1" -o json >"$WORK/check.json" 2>/dev/null || echo "$?" >"$WORK/check.rc"; }
run_manual() {
  # The manual loop of the Rancher v2.3 write-ups (docker cp, then openssl x509 per file).
  docker cp "$C1:$TLS" "$WORK/manual/" >/dev/null 2>&1
  for i in $(ls "$WORK/manual/tls/"*.crt); do echo "$i"; openssl x509 -enddate -noout -in "$i"; done >"$WORK/manual.out"
}
run_archive() { curl -sS --unix-socket "$SOCK" -o /dev/null "$ARCHIVE_URL"; }
run_cp() { docker cp "$C1:$TLS" "$WORK/cponly/" >/dev/null 2>&1; }
run_version() { curl -sS --unix-socket "$SOCK" -o /dev/null "http://localhost/version"; }
run_dir() { "$BIN" check --dir "$WORK/dirtree/tls" -o json >/dev/null 2>&1 || true; }

measure() { # measure KEY FUNCTION
  rm -rf "$WORK/manual" "$WORK/cponly"; mkdir -p "$WORK/manual" "$WORK/cponly"
  us; local t0=$REPLY
  "$2"
  us; add "$1" "$(secs "$t0" "$REPLY")"
}
# Warm-up (page cache, dockerd's first mount of the container).
for f in run_check run_manual run_archive run_cp run_version run_dir; do rm -rf "$WORK/manual" "$WORK/cponly"; mkdir -p "$WORK/manual" "$WORK/cponly"; "$f"; done
rm -f "$WORK/check.rc"
ORDER=(check:run_check manual:run_manual archive:run_archive cp:run_cp version:run_version dir:run_dir)
for r in $(seq 1 "$ROUNDS_CHECK"); do
  if (( r % 2 )); then seq_idx=(0 1 2 3 4 5); else seq_idx=(5 4 3 2 1 0); fi
  for j in "${seq_idx[@]}"; do measure "${ORDER[$j]%%:*}" "${ORDER[$j]#*:}"; done
done
[ ! -s "$WORK/check.rc" ] || die "check exited $(cat "$WORK/check.rc") on a healthy simulated Rancher"
grep -q '"status": *"ok"' "$WORK/check.json" || die "check did not report ok"
CHECK_CERTS=$(grep -c '"not_after"' "$WORK/check.json" || true)
MANUAL_LINES=$(grep -c '^notAfter=' "$WORK/manual.out" || true)
[ "$MANUAL_LINES" = "$CRT_FILES" ] || die "the manual loop printed $MANUAL_LINES dates for $CRT_FILES files"
MED_CHECK=$(median check); MED_MANUAL=$(median manual); MED_ARCHIVE=$(median archive)
MED_CP=$(median cp); MED_VERSION=$(median version); MED_DIR=$(median dir)
CHECK_SPEEDUP=$(calc '%.2f' "$MED_MANUAL / $MED_CHECK")
CHECK_VS_ARCHIVE=$(calc '%.3f' "$MED_CHECK / $MED_ARCHIVE")
CEILING=$(calc '%.2f' "$MED_MANUAL / $MED_ARCHIVE")
DIR_SPEEDUP=$(calc '%.1f' "$MED_MANUAL / $MED_DIR")
OPENSSL_EACH=$(calc '%.4f' "($MED_MANUAL - $MED_CP) / $CRT_FILES")

# ------------------------------------------------------------------ repair vs restart
log "repair vs docker restart + /ping + settle ${SETTLE}s ($ROUNDS_REPAIR interleaved pairs, fresh simulated Rancher each)"
mkdir -p "$WORK/backups"
: >"$WORK/restarts"; : >"$WORK/steps"
run_repair() {
  local n=$1 rc=0
  us; local t0=$REPLY
  "$BIN" repair --container "$n" --backup-dir "$WORK/backups" --settle "$SETTLE" --timeout 300 \
    -o json --log-format json >"$WORK/repair.json" 2>"$WORK/repair.log" || rc=$?
  us; add repair "$(secs "$t0" "$REPLY")"
  grep -q '"result": *"repaired"' "$WORK/repair.json" || { tail -5 "$WORK/repair.log" >&2; die "repair of $n exited $rc without result repaired"; }
  grep -o '"restarts": *[0-9]*' "$WORK/repair.json" | head -1 | grep -o '[0-9]*$' >>"$WORK/restarts"
  # Per-step seconds of the ladder, from its JSON log.
  grep '"step":' "$WORK/repair.log" | sed -n 's/.*"step":"\([a-z-]*\)".*"seconds":\([0-9.e-]*\).*/\1 \2/p' >>"$WORK/steps"
}
run_restart() {
  local n=$1
  us; local t0=$REPLY
  docker restart "$n" >/dev/null
  wait_pong "$n"
  sleep "$SETTLE"
  us; add restart "$(secs "$t0" "$REPLY")"
}
for r in $(seq 1 "$ROUNDS_REPAIR"); do
  if (( r % 2 )); then kinds=(repair restart); else kinds=(restart repair); fi
  for k in "${kinds[@]}"; do
    n="rcg-bench-$RUN_ID-$k-$r"
    sim "$n" -e SIM_LEAF_DAYS=20
    "run_$k" "$n"
    rm_c "$n"
  done
done
MED_REPAIR=$(median repair); MED_RESTART=$(median restart)
REPAIR_OVERHEAD=$(calc '%.3f' "$MED_REPAIR - $MED_RESTART")
REPAIR_RESTARTS=$(sort -n "$WORK/restarts" | uniq | paste -sd/ -)
STEPS_TABLE=$(awk '{n[$1]++; v[$1, n[$1]]=$2; if (!($1 in seen)) {seen[$1]=1; order[++k]=$1}}
  END { for (i=1;i<=k;i++) { s=order[i]; m=n[s]; for (a=1;a<=m;a++) x[a]=v[s,a];
        for (a=1;a<=m;a++) for (b=a+1;b<=m;b++) if (x[b]<x[a]) {t=x[a];x[a]=x[b];x[b]=t}
        med = (m%2) ? x[(m+1)/2] : (x[m/2]+x[m/2+1])/2; printf "%s %.3f\n", s, med } }' "$WORK/steps")

# ------------------------------------------------------------------ watch: idle, detect
IDLE_RSS=n/a; IDLE_CPU=n/a; IDLE_HWM=n/a; DETECT=n/a; DETECT_AFTER=n/a; RESTART_DUR=n/a
if [ "$HAVE_WATCH" = 1 ]; then
  log "watch idle: ${IDLE_SECONDS}s with one target"
  W="rcg-bench-$RUN_ID-watched"
  sim "$W"
  watch_start idle --container "$W"
  W1PID=$WPID; W1ADDR=$WADDR
  wait_ready "$W1ADDR" >/dev/null
  sleep 2
  t_a=$(proc_ticks "$W1PID")
  sleep "$IDLE_SECONDS"
  t_b=$(proc_ticks "$W1PID")
  IDLE_RSS=$(( $(proc_kb "$W1PID" VmRSS) * 1024 ))
  IDLE_HWM=$(( $(proc_kb "$W1PID" VmHWM) * 1024 ))
  CLK=$(getconf CLK_TCK)
  IDLE_CPU=$(calc '%.3f' "($t_b - $t_a) / $CLK * 60 / $IDLE_SECONDS")
  IDLE_TICKS=$(( t_b - t_a ))

  log "watch: restart detection ($ROUNDS_DETECT restarts)"
  for r in $(seq 1 "$ROUNDS_DETECT"); do
    sleep 6 # watch spaces event-triggered looks at one container by 5 s
    c0=$(checks_ok "$W1ADDR" "$W")
    us; t0=$REPLY
    docker restart "$W" >/dev/null
    us; t1=$REPLY
    found=0
    for _ in $(seq 1 750); do
      c=$(checks_ok "$W1ADDR" "$W")
      if [ "$c" -gt "$c0" ]; then found=1; break; fi
      sleep 0.02
    done
    us; t2=$REPLY
    [ "$found" = 1 ] || die "watch did not re-check $W within 15 s of its restart"
    add detect "$(secs "$t0" "$t2")"
    add detect_after "$(secs "$t1" "$t2")"
    add restart_dur "$(secs "$t0" "$t1")"
  done
  watch_stop "$W1PID"
  rm_c "$W"
  DETECT=$(median detect); DETECT_AFTER=$(median detect_after); RESTART_DUR=$(median restart_dur)
fi

# ------------------------------------------------------------------ scale
S_CYCLE=n/a; S_READY=n/a; S_HWM=n/a; S_FLOOR=n/a; S_CREATE=n/a; LIN=n/a
declare -A S_CYC S_RDY S_MEM S_CPU
CLK=$(getconf CLK_TCK)
# Busy ticks of the whole machine, and of dockerd with its reaped children (docker-tar re-execs).
sys_busy() { awk '$1=="cpu" {print $2+$3+$4+$7+$8+$9}' /proc/stat; }
DPID=$(pgrep -xo dockerd 2>/dev/null || true)
dockerd_ticks() { [ -n "$DPID" ] && [ -r "/proc/$DPID/stat" ] && sed 's/^.*) //' "/proc/$DPID/stat" | awk '{print $12+$13+$14+$15}' || true; }
if [ "$HAVE_WATCH" = 1 ]; then
  log "scale: $SCALE stopped containers holding a K3s tree"
  ctx="$WORK/tree-image"; mkdir -p "$ctx"
  cp "$BUSYBOX" "$ctx/busybox"; cp -r "$WORK/dirtree/tls" "$ctx/tls"
  printf 'FROM scratch\nCOPY busybox /bin/busybox\nCOPY tls %s\nCMD ["/bin/busybox","sleep","3600"]\n' "$TLS" >"$ctx/Dockerfile"
  DOCKER_BUILDKIT=0 "$DOCKER_BUILD" build -q --network none "${LABELS[@]}" -t "$TREE_IMAGE" "$ctx" >/dev/null
  SIZES=(10 50 "$SCALE")
  create_one() {
    local i=$1 extra=() s
    for s in "${SIZES[@]}"; do [ "$i" -le "$s" ] && extra+=(--label "rancher-cert-guard.bench.scale$s=$RUN_ID"); done
    docker create --name "rcg-bench-$RUN_ID-t$i" --network none "${LABELS[@]}" "${extra[@]}" "$TREE_IMAGE" >/dev/null
  }
  us; t0=$REPLY
  for i in $(seq 1 "$SCALE"); do
    create_one "$i" &
    (( i % 8 )) || wait
  done
  wait
  us; S_CREATE=$(secs "$t0" "$REPLY")
  n_created=$(docker ps -aq --filter "label=rancher-cert-guard.bench.scale$SCALE=$RUN_ID" | wc -l)
  [ "$n_created" = "$SCALE" ] || die "created $n_created of $SCALE containers"
  # Floor: the same $SCALE archive calls, all at once (watch starts its looks all at once too).
  us; t0=$REPLY
  for i in $(seq 1 "$SCALE"); do
    curl -sS --unix-socket "$SOCK" -o /dev/null "http://localhost/containers/rcg-bench-$RUN_ID-t$i/archive?path=$TLS" &
  done
  wait
  us; S_FLOOR=$(secs "$t0" "$REPLY")
  for n in "${SIZES[@]}"; do
    sys0=$(sys_busy); d0=$(dockerd_ticks)
    us; t0=$REPLY
    watch_start "scale$n" --label "rancher-cert-guard.bench.scale$n=$RUN_ID"
    wait_ready "$WADDR" 120; t1=$REPLY
    sys1=$(sys_busy); d1=$(dockerd_ticks); wt=$(proc_ticks "$WPID")
    S_CPU[$n]="$(calc '%.2f' "($sys1 - $sys0) / $CLK") $( [ -n "$d0" ] && calc '%.2f' "($d1 - $d0) / $CLK" || echo n/a) $(calc '%.2f' "$wt / $CLK")"
    S_RDY[$n]=$(secs "$t0" "$t1")
    S_MEM[$n]=$(( $(proc_kb "$WPID" VmHWM) * 1024 ))
    up=$(curl -fs "http://$WADDR/metrics" | grep -c '^rancher_cert_guard_target_up{.*} 1$' || true)
    [ "$up" = "$n" ] || die "watch saw $up of $n targets up"
    a=$(log_ts "$WORK/scale$n.log" "subscribed to Docker container events")
    b=$(log_ts "$WORK/scale$n.log" "first scan done")
    [ -n "$a" ] && [ -n "$b" ] || die "scale$n: no timestamps in the watch log"
    S_CYC[$n]=$(awk -v a="$a" -v b="$b" 'BEGIN{d=b-a; if (d<0) d+=86400; printf "%.6f", d}')
    watch_stop "$WPID"
  done
  S_CYCLE=${S_CYC[$SCALE]}; S_READY=${S_RDY[$SCALE]}; S_HWM=${S_MEM[$SCALE]}
  # Marginal cost per container, 50→SCALE over 10→50 (1.0 = linear).
  LIN=$(calc '%.2f' "((${S_CYC[$SCALE]} - ${S_CYC[50]}) / ($SCALE - 50)) / ((${S_CYC[50]} - ${S_CYC[10]}) / 40)")
  ids=$(docker ps -aq --filter "label=rancher-cert-guard.bench=$RUN_ID")
  [ -z "$ids" ] || docker rm -f -v $ids >/dev/null 2>&1 || true
fi

# ------------------------------------------------------------------ hostile trees (issue 10)
HOSTILE_BLOCK=""; HOSTILE_KEYS=""
if [ "${BENCH_SKIP_HOSTILE:-0}" != 1 ]; then
  log "hostile trees: peak RSS of check (bench/hostile.sh)"
  BIN="$BIN" bash bench/hostile.sh >"$WORK/hostile.out" || die "bench/hostile.sh"
  HOSTILE_BLOCK=$(sed -n '/^<!-- hostile:begin -->$/,/^<!-- hostile:end -->$/p' "$WORK/hostile.out")
  HOSTILE_KEYS=$(grep '^hostile_[a-z0-9_]*: ' "$WORK/hostile.out" || true)
fi

# ------------------------------------------------------------------ image
IMAGE_BYTES=n/a
docker image inspect "$TOOL_IMAGE" >/dev/null 2>&1 && IMAGE_BYTES=$(docker image inspect --format '{{.Size}}' "$TOOL_IMAGE")

MEASURE_END=${EPOCHREALTIME/./}
BUILD_S=$(secs "$BUILD_START" "$BUILD_END")
MEASURE_S=$(secs "$MEASURE_START" "$MEASURE_END")
TOTAL_S=$(secs "$SCRIPT_START" "$MEASURE_END")

# ------------------------------------------------------------------ goals
# verdict VALUE OP LIMIT -> met / MISSED / n/a
verdict() {
  case "$1" in n/a|nan|"") echo n/a; return ;; esac
  if awk -v v="$1" -v l="$3" "BEGIN{exit !(v $2 l)}"; then echo met; else echo MISSED; fi
}
MIB=1048576
G_SPEED=$(verdict "$CHECK_SPEEDUP" '>=' 15)
G_FLOOR=$(verdict "$CHECK_VS_ARCHIVE" '<=' 1.5)
G_REPAIR=$(verdict "$REPAIR_OVERHEAD" '<=' 1)
if [ "$REPAIR_RESTARTS" = 1 ]; then G_RESTARTS=met; else G_RESTARTS=MISSED; fi
G_IMAGE=$(verdict "$IMAGE_BYTES" '<=' 8000000)
G_IRSS=$(verdict "$IDLE_RSS" '<=' $((8 * MIB)))
G_ICPU=$(verdict "$IDLE_CPU" '<=' 0.06)
G_SCALE=$(verdict "$S_CYCLE" '<=' 2)
G_SRSS=$(verdict "$S_HWM" '<=' $((24 * MIB)))
if [ "$LIN" = n/a ]; then G_LIN=n/a; else G_LIN=$(awk -v x="$LIN" 'BEGIN{print (x >= 0.5 && x <= 1.5) ? "met" : "MISSED"}'); fi
G_DETECT=$(verdict "$DETECT" '<=' 2)

fmt_ms() { case "$1" in n/a|nan) echo n/a ;; *) calc '%.1f ms' "$1 * 1000" ;; esac; }
fmt_s() { case "$1" in n/a|nan) echo n/a ;; *) calc '%.2f s' "$1" ;; esac; }
fmt_mib() { case "$1" in n/a) echo n/a ;; *) calc '%.1f MiB' "$1 / 1048576" ;; esac; }
fmt_mb() { case "$1" in n/a) echo n/a ;; *) calc '%.2f MB' "$1 / 1000000" ;; esac; }

# ------------------------------------------------------------------ the table
TABLE=$(cat <<EOF
| figure | tool | baseline | result | goal | verdict |
|---|---|---|---|---|---|
| check a K3s tree (${ALL_FILES} files, ${CRT_FILES} top-level \`*.crt\`), median of $(count check) | \`check --container\` $(fmt_ms "$MED_CHECK") | manual loop $(fmt_ms "$MED_MANUAL") | **${CHECK_SPEEDUP}×** faster | ≥ 15× | $G_SPEED |
| check vs the floor | \`check --container\` $(fmt_ms "$MED_CHECK") | bare \`GET /archive\` (curl) $(fmt_ms "$MED_ARCHIVE") | **${CHECK_VS_ARCHIVE}×** the floor | ≤ 1.5× | $G_FLOOR |
| repair, one restart, settle ${SETTLE}s, median of $(count repair) | \`repair\` $(fmt_s "$MED_REPAIR") | restart + /ping + settle $(fmt_s "$MED_RESTART") | **+$(fmt_s "$REPAIR_OVERHEAD")** overhead | ≤ 1 s | $G_REPAIR |
| restarts used by repair (CA intact) | $REPAIR_RESTARTS | — | $REPAIR_RESTARTS | exactly 1 | $G_RESTARTS |
| image \`$TOOL_IMAGE\` | $(fmt_mb "$IMAGE_BYTES") | — | $IMAGE_BYTES bytes | ≤ 8 MB | $G_IMAGE |
| \`watch\` RSS after ${IDLE_SECONDS} s idle, 1 target | $(fmt_mib "$IDLE_RSS") | — | $IDLE_RSS bytes | ≤ 8 MiB | $G_IRSS |
| \`watch\` CPU over that idle time | ${IDLE_CPU} s/min | — | ${IDLE_CPU} s/min | ≈ 0 (≤ 0.06 s/min = 0.1 %) | $G_ICPU |
| \`watch\` first full cycle over ${SCALE} containers (discovery + every look: inspect, archive, logs, judge) | $(fmt_s "$S_CYCLE") | ${SCALE} bare archive calls at once $(fmt_s "$S_FLOOR") | $(fmt_s "$S_CYCLE") | ≤ 2 s | $G_SCALE |
| peak RSS (VmHWM) of that \`watch\` | $(fmt_mib "$S_HWM") | — | $S_HWM bytes | ≤ 24 MiB | $G_SRSS |
| cost growth, marginal s/container 50→${SCALE} ÷ 10→50 | ${LIN} | — | ${LIN} | linear (0.5–1.5) | $G_LIN |
| restart → \`watch\` re-checked it (checks counter in /metrics), median of $(count detect) | $(fmt_s "$DETECT") | (\`docker restart\` itself: $(fmt_s "$RESTART_DUR")) | $(fmt_s "$DETECT") | ≤ 2 s | $G_DETECT |
| inventory in process, ${PARSE_FILES} files / ${PARSE_CERTS} certificates | ${PARSE_CPS} certs/s | — | ${PARSE_MS} ms per tree | — | — |
EOF
)

DETAIL=$(cat <<EOF
| measurement | median | min–max | n |
|---|---|---|---|
| \`check --container\` | $(fmt_ms "$MED_CHECK") | $(minmax check) s | $(count check) |
| manual: \`docker cp\` + \`openssl x509 -enddate\` × ${CRT_FILES} | $(fmt_ms "$MED_MANUAL") | $(minmax manual) s | $(count manual) |
| … of which \`docker cp\` alone | $(fmt_ms "$MED_CP") | $(minmax cp) s | $(count cp) |
| … so one \`openssl x509\` ≈ | $(fmt_ms "$OPENSSL_EACH") | | |
| bare \`GET /containers/{id}/archive\` (curl, output discarded) | $(fmt_ms "$MED_ARCHIVE") | $(minmax archive) s | $(count archive) |
| bare \`GET /version\` (curl): one API round trip + a process start | $(fmt_ms "$MED_VERSION") | $(minmax version) s | $(count version) |
| \`check --dir\` on the same tree copied to the host | $(fmt_ms "$MED_DIR") | $(minmax dir) s | $(count dir) |
| \`repair\` (one restart, settle ${SETTLE}s) | $(fmt_s "$MED_REPAIR") | $(minmax repair) s | $(count repair) |
| \`docker restart\` + poll /ping + settle ${SETTLE}s | $(fmt_s "$MED_RESTART") | $(minmax restart) s | $(count restart) |
| restart → re-checked, from \`docker restart\` returning | $(fmt_s "$DETECT_AFTER") | $( [ "$HAVE_WATCH" = 1 ] && minmax detect_after) s | $(count detect_after) |
| \`watch\` start → /readyz 200, 10 / 50 / ${SCALE} containers | $(fmt_s "${S_RDY[10]:-n/a}") / $(fmt_s "${S_RDY[50]:-n/a}") / $(fmt_s "${S_RDY[$SCALE]:-n/a}") | | 1 each |
| \`watch\` first cycle (log: events subscribed → first scan done), 10 / 50 / ${SCALE} | $(fmt_s "${S_CYC[10]:-n/a}") / $(fmt_s "${S_CYC[50]:-n/a}") / $(fmt_s "${S_CYC[$SCALE]:-n/a}") | | 1 each |
| \`watch\` peak RSS, 10 / 50 / ${SCALE} | $(fmt_mib "${S_MEM[10]:-n/a}") / $(fmt_mib "${S_MEM[50]:-n/a}") / $(fmt_mib "${S_MEM[$SCALE]:-n/a}") | | 1 each |
| CPU seconds during start → ready, ${SCALE} containers: whole machine / dockerd + its reaped children / \`watch\` | $(echo "${S_CPU[$SCALE]:-n/a n/a n/a}" | awk '{printf "%s / %s / %s", $1, $2, $3}') | | 1 |
| same, 10 / 50 containers | $(echo "${S_CPU[10]:-n/a n/a n/a}" | awk '{printf "%s / %s / %s", $1, $2, $3}') — $(echo "${S_CPU[50]:-n/a n/a n/a}" | awk '{printf "%s / %s / %s", $1, $2, $3}') | | 1 each |
| \`docker create\` × ${SCALE} (setup, 8 at a time) | $(fmt_s "$S_CREATE") | | 1 |

Median seconds per step of \`repair\` (from its JSON log):

| step | seconds |
|---|---|
$(printf '%s\n' "$STEPS_TABLE" | awk 'NF==2 {printf "| %s | %s |\n", $1, $2}')
EOF
)

KEYS=$(cat <<EOF
check_speedup_vs_manual: $CHECK_SPEEDUP
check_vs_archive_call: $CHECK_VS_ARCHIVE
repair_overhead_seconds: $REPAIR_OVERHEAD
repair_restarts: $REPAIR_RESTARTS
image_bytes: $IMAGE_BYTES
idle_rss_bytes: $IDLE_RSS
idle_cpu_seconds_per_minute: $IDLE_CPU
scale_100_check_seconds: $S_CYCLE
scale_100_rss_bytes: $S_HWM
detect_restart_seconds: $DETECT
parse_certs_per_second: $PARSE_CPS
check_seconds: $MED_CHECK
manual_loop_seconds: $MED_MANUAL
manual_docker_cp_seconds: $MED_CP
archive_call_seconds: $MED_ARCHIVE
api_version_call_seconds: $MED_VERSION
check_speedup_ceiling_via_archive_api: $CEILING
check_dir_seconds: $MED_DIR
check_dir_speedup_vs_manual: $DIR_SPEEDUP
repair_seconds: $MED_REPAIR
restart_baseline_seconds: $MED_RESTART
idle_peak_rss_bytes: $IDLE_HWM
scale_100_start_to_ready_seconds: $S_READY
scale_100_archive_floor_seconds: $S_FLOOR
scale_marginal_cost_ratio: $LIN
scale_100_cpu_seconds_machine: $(echo "${S_CPU[$SCALE]:-n/a}" | awk '{print $1}')
scale_100_cpu_seconds_dockerd: $(echo "${S_CPU[$SCALE]:-n/a n/a}" | awk '{print $2}')
scale_100_cpu_seconds_watch: $(echo "${S_CPU[$SCALE]:-n/a n/a n/a}" | awk '{print $3}')
scale_10_check_seconds: ${S_CYC[10]:-n/a}
scale_50_check_seconds: ${S_CYC[50]:-n/a}
detect_after_restart_returned_seconds: $DETECT_AFTER
parse_files_per_second: $PARSE_FPS
build_seconds: $BUILD_S
measure_seconds: $MEASURE_S
EOF
)
# New keys go after the existing ones, whose order scripts may rely on.
[ -z "$HOSTILE_KEYS" ] || KEYS+=$'\n'"$HOSTILE_KEYS"

# ------------------------------------------------------------------ explanations of misses
NOTES=""
note() { NOTES+="$1"$'\n\n'; }
if [ "$G_SPEED" = MISSED ]; then
  note "- **check ≥ 15× faster than the manual loop: missed (${CHECK_SPEEDUP}×).** The tool cannot go below the Docker archive API it reads through, and that call alone takes $(fmt_ms "$MED_ARCHIVE") here: with the manual loop at $(fmt_ms "$MED_MANUAL"), *no* reader of the archive API can be more than **${CEILING}×** faster on this engine (\`check_speedup_ceiling_via_archive_api\`). \`check\` itself is at ${CHECK_VS_ARCHIVE}× that floor. Breakdown of the manual loop: \`docker cp\` $(fmt_ms "$MED_CP") (the same archive call plus the CLI) + ${CRT_FILES} × \`openssl x509\` at ≈ $(fmt_ms "$OPENSSL_EACH") each. Breakdown of the floor: a bare API round trip with a process start (\`GET /version\` by curl) is $(fmt_ms "$MED_VERSION"); the rest of the archive call is dockerd's own work — for *every* archive request Docker 20.10 mounts the container's root filesystem and volumes and re-executes its own binary (\`/proc/self/exe docker-tar <path> <rootfs>\`, then \`chroot\`) to produce the tar (see *Profiles* below). Reading the tree without the archive API — \`check --dir\` on a directory, here the same tree copied to the host — is **${DIR_SPEEDUP}×** faster than the manual loop ($(fmt_ms "$MED_DIR"), \`check_dir_speedup_vs_manual\`); with the Rancher volume mounted into the tool's container that path would meet the goal (not measured on a live volume). Through the archive API the 15× goal needs an engine whose archive call is under $(calc '%.0f' "$MED_MANUAL / 15 * 1000") ms; nothing in the tool can change that."
fi
if [ "$G_FLOOR" = MISSED ]; then
  note "- **check ≤ 1.5× the bare archive call: missed (${CHECK_VS_ARCHIVE}×).** check = process start + two \`GET /version\` (negotiation) + the archive call + parsing (${PARSE_MS} ms per 1,000 files in process) + JSON output; compare \`api_version_call_seconds\` ($(fmt_ms "$MED_VERSION")) and \`check_dir_seconds\` ($(fmt_ms "$MED_DIR"), no Docker at all)."
fi
if [ "$G_REPAIR" = MISSED ]; then
  note "- **repair overhead ≤ 1 s: missed (+${REPAIR_OVERHEAD} s).** See the per-step medians above: the steps a plain restart does not have (inspect, backup, reset-secret, stop + helper-container wipe, verify) are the overhead."
fi
if [ "$G_REPAIR" = met ] && awk -v v="$REPAIR_OVERHEAD" 'BEGIN{exit !(v > 0.75)}'; then
  note "- **repair overhead ≤ 1 s: met, narrowly (+${REPAIR_OVERHEAD} s).** The overhead is the sum of the steps a plain restart does not have — inspect, backup, reset-secret, the helper-container wipe (the largest) — plus the settle step running past its ${SETTLE} s (the ladder polls every 250 ms after a probe of its own, so it overshoots by up to one poll) and the tree re-read of verify; all are Docker calls that slow down with the machine's load (see the per-step medians in *Detail*)."
fi
if [ "$G_RESTARTS" = MISSED ]; then
  note "- **exactly one restart: missed (${REPAIR_RESTARTS}).**"
fi
if [ "$G_IMAGE" = MISSED ]; then note "- **image ≤ 8 MB: missed ($(fmt_mb "$IMAGE_BYTES")).**"; fi
if [ "$G_IRSS" = MISSED ]; then note "- **idle RSS ≤ 8 MiB: missed ($(fmt_mib "$IDLE_RSS")).** Peak during start: $(fmt_mib "$IDLE_HWM")."; fi
if [ "$G_ICPU" = MISSED ]; then note "- **idle CPU ≈ 0: missed (${IDLE_CPU} s/min, ${IDLE_TICKS:-?} ticks).** The engine is shared: \`watch\` receives every container event of the host (other engineers' tests here) through the events stream and filters it itself."; fi
if [ "$G_SCALE" = MISSED ]; then
  note "- **${SCALE} containers in ≤ 2 s: missed ($(fmt_s "$S_CYCLE")).** The same ${SCALE} bare archive calls, fired at once with curl, take $(fmt_s "$S_FLOOR") on this engine (\`scale_100_archive_floor_seconds\`): each archive call costs dockerd a rootfs mount and a re-exec of itself (see *Profiles*), on ${M_NPROC} cores. CPU during that cycle (process start → ready): whole machine $(echo "${S_CPU[$SCALE]}" | awk '{print $1}') s, of which dockerd and the children it reaped $(echo "${S_CPU[$SCALE]}" | awk '{print $2}') s and \`watch\` itself $(echo "${S_CPU[$SCALE]}" | awk '{print $3}') s (the rest: fuse-overlayfs mounts, other tenants). With ${M_NPROC} cores, the engine's work alone needs ≈ $(echo "${S_CPU[$SCALE]}" | awk -v c="$M_NPROC" '{printf "%.1f", $2/c}') s of wall time. The tool's share of the wall time is the difference to the floor — one \`inspect\` per container during discovery, then one \`inspect\` + archive + \`logs\` per look."
fi
if [ "$G_SRSS" = MISSED ]; then note "- **RSS ≤ 24 MiB at ${SCALE} containers: missed ($(fmt_mib "$S_HWM")).**"; fi
if [ "$G_LIN" = MISSED ]; then note "- **linear growth: missed (marginal cost ratio ${LIN}; 10 / 50 / ${SCALE}: ${S_CYC[10]} / ${S_CYC[50]} / ${S_CYC[$SCALE]} s).** With all looks started at once, the cost per container rises as dockerd's archive re-execs compete for ${M_NPROC} cores."; fi
if [ "$G_DETECT" = MISSED ]; then note "- **restart detected within 2 s: missed ($(fmt_s "$DETECT")).**"; fi
[ -n "$NOTES" ] || NOTES="All goals met in this run."$'\n'
GOALS_LIST=$(cat <<EOF
| goal (issue 5) | this run | verdict |
|---|---|---|
| check ≥ 15× faster than the manual loop | ${CHECK_SPEEDUP}× | $G_SPEED |
| check ≤ 1.5× a bare archive call | ${CHECK_VS_ARCHIVE}× | $G_FLOOR |
| repair overhead ≤ 1 s | ${REPAIR_OVERHEAD} s | $G_REPAIR |
| … with exactly one restart | $REPAIR_RESTARTS | $G_RESTARTS |
| image ≤ 8 MB | $(fmt_mb "$IMAGE_BYTES") | $G_IMAGE |
| idle RSS ≤ 8 MiB | $(fmt_mib "$IDLE_RSS") | $G_IRSS |
| idle CPU ≈ 0 (here: ≤ 0.06 s per minute) | ${IDLE_CPU} s/min | $G_ICPU |
| ${SCALE} containers checked in ≤ 2 s | $(fmt_s "$S_CYCLE") | $G_SCALE |
| … with RSS ≤ 24 MiB | $(fmt_mib "$S_HWM") | $G_SRSS |
| … cost growing linearly (marginal cost ratio 0.5–1.5) | $LIN | $G_LIN |
| restart detected within 2 s | $(fmt_s "$DETECT") | $G_DETECT |
EOF
)

# ------------------------------------------------------------------ print
{
  echo
  echo "rancher-cert-guard benchmarks — $M_DATE, commit $M_COMMIT"
  echo "machine: $M_NPROC cores ($M_CPU), $M_MEM, kernel $M_KERNEL, Docker $M_DOCKER, storage $M_DRIVER, load at start $M_LOAD"
  echo "build ${BUILD_S}s, measurements ${MEASURE_S}s, total ${TOTAL_S}s"
  echo
  printf '%s\n\n%s\n\n' "$TABLE" "$DETAIL"
  [ -z "$HOSTILE_BLOCK" ] || printf '%s\n\n' "$HOSTILE_BLOCK"
  printf '%s\n' "$KEYS"
} >&1

if [ -n "$RESULTS" ]; then
  cat >"$RESULTS" <<EOF
# Benchmark results

Generated by \`bash bench/run.sh\` (it rewrites this file; the \`key: value\` block at the end is
what the script prints last). Absolute times do not carry over between machines: compare the
tool with the baselines measured in the same run, on the same machine.

- **Date:** $M_DATE
- **Commit:** $M_COMMIT
- **Machine:** \`nproc\` $M_NPROC ($M_CPU), memory $M_MEM, kernel $M_KERNEL
- **Docker:** $M_DOCKER, storage driver $M_DRIVER
- **Load average at start:** $M_LOAD
- **Run time of bench/run.sh:** build $(calc %.0f "$BUILD_S") s, measurements $(calc %.0f "$MEASURE_S") s, total $(calc %.0f "$TOTAL_S") s
- **Settings:** SIM_BOOT_SECONDS=$BOOT for every simulated Rancher (tool and baselines alike),
  settle ${SETTLE} s, ${ROUNDS_CHECK} check rounds, ${ROUNDS_REPAIR} repair pairs,
  ${ROUNDS_DETECT} restarts, ${IDLE_SECONDS} s idle, ${SCALE} containers.
$( [ "${BENCH_NOTE:-}" ] && printf -- '- **Note:** %s\n' "$BENCH_NOTE" )

## Results

$TABLE

## Goals

$GOALS_LIST

$NOTES
## Detail

$DETAIL

## How each figure is measured

- **Binary.** The tool measured on the host is \`$(echo "$BIN" | sed "s#^$ROOT/##")\`: the static
  binary that \`scripts/build-image.sh\` puts into the image (release profile), so host figures
  and image figures are of one build.
- **Interleaving.** Every timed command runs in rounds; each round runs all variants once, in
  reverse order every other round (A B … / … B A), so drift on a shared machine hits all
  variants alike. Medians are reported; min–max is in the detail table.
- **check** (\`check_speedup_vs_manual\`, \`check_vs_archive_call\`): one healthy simulated Rancher.
  Tool: \`rancher-cert-guard check --container C -o json\` (process start, Docker connection and
  version negotiation, archive stream, inventory of every file, JSON). Manual loop (the seed
  article's): \`docker cp C:$TLS DIR\`, then \`for i in \$(ls DIR/tls/*.crt); do echo \$i; openssl
  x509 -enddate -noout -in \$i; done\` — ${CRT_FILES} files, only the top level as in the
  article, while the tool reads all ${ALL_FILES} files including \`etcd/\` (so the ratio
  is conservative). Floor: \`curl --unix-socket $SOCK http://localhost/containers/C/archive?path=$TLS\`,
  output discarded — one process start and one API call, as the tool at best.
- **repair** (\`repair_overhead_seconds\`, \`repair_restarts\`): every run gets a fresh simulated Rancher
  with \`SIM_LEAF_DAYS=20\` (leaves inside the 90-day window), healthy before the clock starts.
  Tool: \`repair --backup-dir DIR --settle ${SETTLE} --timeout 300 -o json\` (result must be
  \`repaired\`). Baseline: \`docker restart\`, then \`docker exec C wget -qO- http://127.0.0.1:80/ping\`
  every 50 ms until \`pong\`, then the same settle of ${SETTLE} s.
- **image** (\`image_bytes\`): \`docker image inspect --format '{{.Size}}' $TOOL_IMAGE\` as built
  by \`scripts/build-image.sh\` in this run.
- **idle** (\`idle_rss_bytes\`, \`idle_cpu_seconds_per_minute\`): \`watch --container C
  --monitor-only --interval 3600\` run directly on the host with one healthy target; after
  /readyz answers and 2 s more, \`utime+stime\` of \`/proc/PID/stat\` over ${IDLE_SECONDS} s, and
  \`VmRSS\` of \`/proc/PID/status\` at the end.
- **scale** (\`scale_100_check_seconds\`, \`scale_100_rss_bytes\`): ${SCALE} containers created (not
  started: the archive API reads stopped containers) from a FROM-scratch image holding busybox
  and a copy of the simulated Rancher's TLS tree. \`watch --label … --monitor-only\` selects them;
  the figure is **one full first cycle of \`watch\`**: from its log line *subscribed to Docker
  container events* (which triggers discovery) to *first scan done* — the listing, one
  \`inspect\` per container, then for every container a look (\`inspect\`, the archive stream,
  the logs since start, the inventory). Process start → /readyz 200 is reported too
  (\`scale_100_start_to_ready_seconds\`). RSS is \`VmHWM\` (peak) of the process after that
  cycle. The same is run with 10 and 50 of the containers for the growth.
- **detect** (\`detect_restart_seconds\`): on the idle \`watch\` above, \`docker restart C\`; the
  figure is from issuing the restart to \`rancher_cert_guard_checks_total{container=C,result="ok"}\`
  in /metrics going up (polled every 20 ms; \`last_check_timestamp\` has 1 s resolution, the
  counter does not). 6 s between restarts (\`watch\` spaces event-triggered looks by 5 s).
- **parse** (\`parse_certs_per_second\`): \`cargo bench --bench inventory\`
  (\`benches/inventory.rs\`): 25 distinct K3s trees generated with the test fixtures, 1,000
  files in one in-memory tree, \`inventory()\` timed alone (median of 30), certificate blocks ÷
  seconds. Built with the release profile (\`opt-level = "s"\`, LTO), static like the image.

## Profiles

How the floor of the archive API was found (trial run, Docker 20.10.24, fuse-overlayfs):
\`strace -f -tt -e trace=execve,mount,chroot -p \$(pgrep -x dockerd)\` during one
\`GET /containers/C/archive?path=$TLS\` shows, for every request, dockerd mounting the
container's volume and \`resolv.conf\`/\`hostname\`/\`hosts\` into the merged rootfs, then
\`execve("/proc/self/exe", ["docker-tar", "$TLS", "<rootfs>"])\` — a re-exec of the ~75 MB
dockerd binary (Debian's 20.10) — followed by \`chroot\` into the rootfs before any byte of tar is written.
\`docker cp\` goes through the same call. The tool's own work on top of that floor is small: the
inventory of a ${ALL_FILES}-file K3s tree costs ≈ $(calc '%.2f' "$PARSE_MS * $ALL_FILES / $PARSE_FILES") ms in process (${PARSE_CPS} certificates/s), and
\`check --dir\` on the same tree, process start included, takes $(fmt_ms "$MED_DIR").

The lead makes the final run on a quiet machine; the trial runs that proved this script were
made on 2 cores shared with engineers compiling and running their own Docker tests.

$HOSTILE_BLOCK

## Keys

\`\`\`
$KEYS
\`\`\`
EOF
  log "wrote ${RESULTS#$ROOT/}"
fi
log "done in ${TOTAL_S}s (build ${BUILD_S}s, measurements ${MEASURE_S}s)"
