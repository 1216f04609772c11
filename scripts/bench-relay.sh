#!/usr/bin/env bash
# Passthrough relay cost against transcoding (issue 14): one worker pinned with taskset to one
# core (its media thread and its control threads), the load on the other. Alternating phases of
# TRANSCODE calls and PASSTHROUGH calls, both talking both ways (20 ms packets, PCMU one way,
# WebRTC client Opus the other); per phase the worker's media busy share and process CPU, per
# call and as packets per second one core could relay; the relay / transcode ratio of one run.
#
#   scripts/bench-relay.sh [OUT_DIR]      (default target/relay)
#
# Environment: PROFILE=release (default), TRANSCODE_CALLS=100, RELAY_CALLS=300, MEASURE_SECONDS=10.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/relay}
mkdir -p "$out"
profile=${PROFILE:-release}
flag=()
[ "$profile" = release ] && flag=(--release)
cargo build "${flag[@]}" --locked -q -p bridgepool-worker --bin bridgepool-worker --example relay_bench
bin=target/$profile
cores=$(nproc)
measured=$(( cores > 1 ? 1 : 0 ))
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT

taskset -c "$measured" "$bin/bridgepool-worker" --grpc-listen 127.0.0.1:50471 \
  --metrics-listen 127.0.0.1:9471 --media-ip 127.0.0.1 --rtp-port-min 40000 --rtp-port-max 44999 \
  --cores "$measured" --admission-busy 0.95 --live-cost false --worker-id bench-relay --log info \
  2> "$out/worker.log" &
pid=$!
for _ in $(seq 100); do
  curl -sf http://127.0.0.1:9471/metrics >/dev/null 2>&1 && break
  sleep 0.2
done
taskset -c 0 "$bin/examples/relay_bench" http://127.0.0.1:50471 127.0.0.1:9471 "$pid" \
  "${TRANSCODE_CALLS:-100}" "${RELAY_CALLS:-300}" "${MEASURE_SECONDS:-10}" | tee "$out/report.txt"
# The start-up calibration's figures (core share per talking call) for the same ratio.
sed 's/\x1b\[[0-9;]*m//g' "$out/worker.log" | grep -o 'session_cost=[^ ]* relay_cost=[^ ]*' \
  | tee -a "$out/report.txt" || true
curl -s http://127.0.0.1:9471/metrics | grep -E '^bridgepool_worker_(deadline_misses_total|packets_dropped_total|session_cost_ratio)' \
  | tee -a "$out/report.txt" || true
