#!/usr/bin/env bash
# The worker's CPU per call under the old load and the client-like load, one after the other on the
# same worker: the release worker pinned to core 1 (`taskset -c 1`, media and control threads),
# the scheduler and the loadgen on core 0, CPU from /proc for the worker's pid (--measure-pid).
# Loads: legacy (8 kHz speech, SILK narrowband Opus), client (70 % WebRTC / 30 % mobile), webrtc
# only, mobile only. CALLS calls (default 60) for SECONDS (default 20) each.
#
#   scripts/cpu-per-call-load.sh [OUT_DIR]     (default target/cpu-load)
#
# LOADGEN=path uses an already built loadgen (its own CPU is not what is measured).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/cpu-load}
mkdir -p "$out"
calls=${CALLS:-60}
secs=${SECONDS_PER_LOAD:-20}
if [ -z "${LOADGEN:-}" ]; then
  cargo build --release --locked -q -p bridgepool-worker -p bridgepool-scheduler -p bridgepool-loadgen
  LOADGEN=target/release/bridgepool-loadgen
else
  cargo build --release --locked -q -p bridgepool-worker -p bridgepool-scheduler
fi
bin=target/release
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
taskset -c 0 "$bin/bridgepool-scheduler" --grpc-listen 127.0.0.1:50551 --metrics-listen 127.0.0.1:9591 --log warn &
pids+=($!)
taskset -c 1 "$bin/bridgepool-worker" --cores 1 --grpc-listen 127.0.0.1:50561 \
  --metrics-listen 127.0.0.1:9592 --media-ip 127.0.0.1 --rtp-port-min 38000 --rtp-port-max 39999 \
  --scheduler http://127.0.0.1:50551 --worker-id cpu-load --log warn &
worker=$!; pids+=("$worker")
sleep 3
run() { # name, loadgen options...
  local name=$1; shift
  taskset -c 0 "$LOADGEN" fixed --scheduler http://127.0.0.1:50551 --measure-pid "$worker" \
    --calls "$calls" --duration "${secs}s" --quality-calls 0 --no-progress \
    --json "$out/$name.json" "$@" > "$out/$name.txt"
  python3 - "$out/$name.json" "$name" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t = r["total"]
print(f"{sys.argv[2]:<8} {r['cpu_pct_per_call']:.3f} % of a core per call "
      f"(worker mean {sum(c['mean_pct'] for c in r['cpu'] if c['role'] == 'measured'):.1f} %, "
      f"loss {100 * t['lost'] / max(t['expected'], 1):.3f} %, p99 {t['latency']['p99_ms']:.2f} ms)")
PY
  sleep 2
}
echo "$calls calls, ${secs} s per load, worker on core 1"
run legacy --load legacy
run client
run webrtc --webrtc-share 1
run mobile --webrtc-share 0
