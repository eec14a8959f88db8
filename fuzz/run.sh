#!/usr/bin/env bash
# Run every fuzz target for SECONDS each, one after the other (one fuzzer process at a time:
# the machine's 2 cores are shared), then print a summary. Not part of CI.
#
#   bash fuzz/run.sh 600            # every target, 10 minutes each
#   bash fuzz/run.sh 60 archive     # one target
#
# Needs `cargo-afl` (crates.io): `cargo install cargo-afl` (it builds AFL++ on install).
# Findings land in fuzz/out/<target>/default/{crashes,hangs}/; replay one with
# `fuzz/target/release/<target> < FILE` (RUST_BACKTRACE=1 for the backtrace).
set -euo pipefail

SECONDS_EACH=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(inventory archive journal logs window)

cd "$(dirname "$0")"
command -v cargo-afl >/dev/null || { echo "cargo-afl missing: cargo install cargo-afl" >&2; exit 2; }
cargo afl build --release --bins 2>&1 | tail -n 2

# Per-exec timeout in ms: a hang is work far beyond linear. The archive target may read a
# 16 MiB zero tail; the logs target classifies up to 256 KiB per exec.
timeout_ms() {
  case $1 in
    archive|logs) echo 2000 ;;
    *) echo 1000 ;;
  esac
}

export AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
for t in "${TARGETS[@]}"; do
  rm -rf "out/$t"
  mkdir -p out
  echo "== $t: ${SECONDS_EACH}s"
  # -m: address-space cap in MB (a runaway allocation is a crash, not a swapped machine).
  cargo afl fuzz -i "seeds/$t" -o "out/$t" -x "dict/$t.dict" -t "$(timeout_ms "$t")" -m 2048 \
    -V "$SECONDS_EACH" -- "target/release/$t" >"out/$t.log" 2>&1 || {
    echo "afl-fuzz failed for $t; see fuzz/out/$t.log" >&2
    tail -n 20 "out/$t.log" >&2
    exit 1
  }
done

stat() { grep -E "^$2 +:" "out/$1/default/fuzzer_stats" | sed 's/.*: //'; }
echo
printf '%-10s %8s %12s %9s %8s %8s %7s %7s\n' target seconds execs execs/s corpus edges crashes hangs
status=0
for t in "${TARGETS[@]}"; do
  printf '%-10s %8s %12s %9s %8s %8s %7s %7s\n' "$t" "$(stat "$t" run_time)" "$(stat "$t" execs_done)" \
    "$(stat "$t" execs_per_sec)" "$(stat "$t" corpus_count)" "$(stat "$t" edges_found)" \
    "$(stat "$t" saved_crashes)" "$(stat "$t" saved_hangs)"
  n=$(( $(stat "$t" saved_crashes) + $(stat "$t" saved_hangs) ))
  if [ "$n" -gt 0 ]; then
    status=1
    ls "out/$t/default/crashes/" "out/$t/default/hangs/" 2>/dev/null | grep -v README | sed "s|^|  $t: |"
  fi
done
exit $status
