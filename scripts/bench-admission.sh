#!/usr/bin/env bash
# Admission under ring-then-talk (issue 12): one worker, one media core, offered load ramped in
# steps to 2x its capacity; every call rings 0..RING_MAX s (uniform) before it talks both ways
# for TALK s. Per step: offered, admitted, refused, packets the admitted calls lost, and the
# media busy share the cost model predicted against what the core measured while all talked.
#
#   scripts/bench-admission.sh [OUT_DIR]      (default target/admission)
#
# Environment: PROFILE=release (default debug: the codecs are optimised in the dev profile too,
# the session glue is not), ADMISSION=0.5 (admission busy share, keeps the call count modest on
# a small machine), RING_MAX=20, TALK=8, STEPS=0.5,1,1.5,2.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/admission}
mkdir -p "$out"
profile=${PROFILE:-debug}
flag=()
[ "$profile" = release ] && flag=(--release)
cargo build "${flag[@]}" --locked -q -p bridgepool-worker --bin bridgepool-worker --example admission_bench
bin=target/$profile
cores=$(nproc)
media_core=$(( cores > 1 ? 1 : 0 ))
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT

# The worker's media thread on its own core; the driver (and the worker's control threads) on
# core 0.
"$bin/bridgepool-worker" --grpc-listen 127.0.0.1:50461 --metrics-listen 127.0.0.1:9461 \
  --rtp-port-min 52000 --rtp-port-max 59999 --cores "$media_core" \
  --admission-busy "${ADMISSION:-0.5}" --worker-id bench-admission --log info \
  2> "$out/worker.log" &
pid=$!
for _ in $(seq 100); do
  curl -sf http://127.0.0.1:9461/metrics >/dev/null 2>&1 && break
  sleep 0.2
done
taskset -c 0 "$bin/examples/admission_bench" http://127.0.0.1:50461 127.0.0.1:9461 \
  "${RING_MAX:-20}" "${TALK:-8}" "${STEPS:-0.5,1,1.5,2}" | tee "$out/report.txt"
curl -s http://127.0.0.1:9461/metrics | grep -E '^bridgepool_worker_(deadline_misses_total|packets_dropped_total\{reason="late"|overloaded|session_cost_ratio|sessions_refused_total)' \
  | tee -a "$out/report.txt"
grep -E 'WARN|overload' "$out/worker.log" | tail -5 || true
