#!/usr/bin/env bash
# Density side by side, one run on this machine: the same loadgen ramp against rtpengine
# (Debian's rtpengine-daemon, userspace only, one thread) and against bridgepool (a scheduler and a
# worker with one media core), each system pinned to core 1 and the loadgen to core 0.
#
#   scripts/compare-rtpengine.sh [OUT_DIR]     (default target/compare)
#
# Environment: RTPE_START/RTPE_STEP and BP_START/BP_STEP (calls), STEP_SECONDS, BP_MAX.
# Needs: apt-get install rtpengine-daemon. Writes OUT_DIR/{rtpengine,bridgepool}.{json,html}.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/compare}
mkdir -p "$out"
command -v rtpengine >/dev/null || { echo "rtpengine is not installed: apt-get install rtpengine-daemon" >&2; exit 1; }
cargo build --release --locked -q -p bridgepool-worker -p bridgepool-scheduler -p bridgepool-loadgen
bin=target/release
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
step_s=${STEP_SECONDS:-8}
ramp() { # target, json, extra args...
  local name=$1; shift
  taskset -c 0 "$bin/bridgepool-loadgen" ramp --step-duration "${step_s}s" --quality-calls 2 \
    --json "$out/$name.json" --html "$out/$name.html" --no-progress "$@"
}

echo "== rtpengine $(rtpengine --version 2>&1 | head -1)"
cat > "$tmp/rtpengine.conf" <<CONF
[rtpengine]
table = -1
interface = 127.0.0.1
listen-ng = 127.0.0.1:22299
foreground = true
log-stderr = true
log-level = 3
port-min = 47000
port-max = 49998
timeout = 60
delete-delay = 0
pidfile = $tmp/rtpengine.pid
CONF
taskset -c 1 rtpengine --config-file="$tmp/rtpengine.conf" --num-threads=1 2>"$tmp/rtpengine.log" &
rtpe=$!; pids+=("$rtpe")
sleep 1
ramp rtpengine --target rtpengine --rtpengine-ng 127.0.0.1:22299 --measure-pid "$rtpe" \
  --start-calls "${RTPE_START:-10}" --step-calls "${RTPE_STEP:-5}" --max-calls 200 || true
kill "$rtpe"; wait "$rtpe" 2>/dev/null || true

echo "== bridgepool (worker on core 1, one media thread)"
taskset -c 0 "$bin/bridgepool-scheduler" --grpc-listen 127.0.0.1:50251 --metrics-listen 127.0.0.1:9291 \
  --log warn &
sched=$!; pids+=("$sched")
taskset -c 1 "$bin/bridgepool-worker" --cores 1 --grpc-listen 127.0.0.1:50261 \
  --metrics-listen 127.0.0.1:9292 --media-ip 127.0.0.1 --rtp-port-min 30000 --rtp-port-max 33999 \
  --scheduler http://127.0.0.1:50251 --worker-id bench-worker --log warn &
worker=$!; pids+=("$worker")
sleep 3
ramp bridgepool --target bridgepool --scheduler http://127.0.0.1:50251 \
  --measure-pid "$worker" --measure-pid "$sched" \
  --start-calls "${BP_START:-50}" --step-calls "${BP_STEP:-25}" --max-calls "${BP_MAX:-600}" || true
echo "== worker metrics at the end"
curl -s http://127.0.0.1:9292/metrics | grep -E "^bridgepool_worker_(capacity|headroom|core_busy|deadline_misses|sessions_refused)" || true
