#!/usr/bin/env bash
# Density side by side, one run on this machine: the same loadgen runs against rtpengine
# (Debian's rtpengine-daemon, userspace only, one thread) and against bridgepool (a scheduler and a
# worker with one media thread), each system's media on core 1 and the loadgen on core 0:
#   - a ramp to the service level (loss <= 0.1 %, p99 latency <= 40 ms, no refusals);
#   - a fixed run of $QUALITY_CALLS calls for 30 s, every call's audio scored against the input
#     (PESQ P.862.1 NB per direction, P.862.2 WB for the Opus output, and correlation), for quality
#     and CPU per call at the same load.
# The load is the representative one (issue 10): the Opus leg as WebRTC browsers and mobile apps
# send it (48 kHz voices through libopus, 70/30), the G.711 leg as a gateway; LOAD=legacy plays the
# old SILK narrowband load instead. Each ramp step scores QUALITY_PER_STEP of its new calls; with
# MIN_PESQ set (e.g. 3.6, or rtpengine's own figure) a step below it in either direction does not
# hold, so the densities are at equal quality; the default 0 reports PESQ without judging it.
#
#   scripts/compare-rtpengine.sh [OUT_DIR]     (default target/compare)
#
# Environment: RTPE_START/RTPE_STEP and BP_START/BP_STEP (calls), STEP_SECONDS, BP_MAX, LOAD,
# MIN_PESQ, QUALITY_CALLS, QUALITY_PER_STEP. BP_ADMISSION sets the worker's admission target
# (--admission-busy, default the worker's 0.8): 0.95 lets the ramp find where the service level
# breaks, as rtpengine's ramp does, instead of stopping at the safety margin a deployment keeps.
# RTPENGINE_BIN picks another rtpengine binary (e.g. a newer one built locally) instead of Debian's.
# Needs: apt-get install rtpengine-daemon. Writes OUT_DIR/{rtpengine,bridgepool}-{ramp,fixed}.*
# and prints a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/compare}
mkdir -p "$out"
rtpe_bin=${RTPENGINE_BIN:-rtpengine}
command -v "$rtpe_bin" >/dev/null || { echo "$rtpe_bin not found: apt-get install rtpengine-daemon, or set RTPENGINE_BIN" >&2; exit 1; }
cargo build --release --locked -q -p bridgepool-worker -p bridgepool-scheduler -p bridgepool-loadgen
bin=target/release
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
step_s=${STEP_SECONDS:-8}
quality_calls=${QUALITY_CALLS:-10}
per_step=${QUALITY_PER_STEP:-2}
floor=${MIN_PESQ:-0}
load=(--load "${LOAD:-client}" --min-pesq-a-to-b "$floor" --min-pesq-b-to-a "$floor")
ramp() { # name, extra args...
  local name=$1; shift
  taskset -c 0 "$bin/bridgepool-loadgen" ramp "${load[@]}" --step-duration "${step_s}s" \
    --quality-calls "$per_step" \
    --json "$out/$name-ramp.json" --html "$out/$name-ramp.html" --no-progress "$@" | sed -n '/ramp steps/,$p'
}
fixed() { # name, extra args...
  local name=$1; shift
  taskset -c 0 "$bin/bridgepool-loadgen" fixed "${load[@]}" --calls "$quality_calls" --duration 30s \
    --quality-calls "$quality_calls" --json "$out/$name-fixed.json" --html "$out/$name-fixed.html" \
    --no-progress "$@" | grep -vE '^\s+lg-'
}

echo "== rtpengine $("$rtpe_bin" --version 2>&1 | head -1)"
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
taskset -c 1 "$rtpe_bin" --config-file="$tmp/rtpengine.conf" --num-threads=1 2>"$tmp/rtpengine.log" &
rtpe=$!; pids+=("$rtpe")
sleep 1
rtpe_args=(--target rtpengine --rtpengine-ng 127.0.0.1:22299 --measure-pid "$rtpe")
fixed rtpengine "${rtpe_args[@]}" || true
ramp rtpengine "${rtpe_args[@]}" --start-calls "${RTPE_START:-10}" --step-calls "${RTPE_STEP:-5}" \
  --max-calls 200 || true
kill "$rtpe"; wait "$rtpe" 2>/dev/null || true

echo "== bridgepool (worker on core 1, one media thread)"
taskset -c 0 "$bin/bridgepool-scheduler" --grpc-listen 127.0.0.1:50251 --metrics-listen 127.0.0.1:9291 \
  --log warn &
sched=$!; pids+=("$sched")
# Media on core 1; the worker puts its control threads on core 0 by itself.
"$bin/bridgepool-worker" --cores 1 --grpc-listen 127.0.0.1:50261 \
  --metrics-listen 127.0.0.1:9292 --media-ip 127.0.0.1 --rtp-port-min 30000 --rtp-port-max 33999 \
  --scheduler http://127.0.0.1:50251 --worker-id bench-worker --log warn \
  ${BP_ADMISSION:+--admission-busy "$BP_ADMISSION"} &
worker=$!; pids+=("$worker")
sleep 3
bp_args=(--target bridgepool --scheduler http://127.0.0.1:50251 --measure-pid "$worker" --measure-pid "$sched")
fixed bridgepool "${bp_args[@]}" || true
sleep 2
ramp bridgepool "${bp_args[@]}" --start-calls "${BP_START:-50}" --step-calls "${BP_STEP:-25}" \
  --max-calls "${BP_MAX:-800}" || true
echo "== worker metrics at the end"
curl -s http://127.0.0.1:9292/metrics | grep -E "^bridgepool_worker_(capacity_sessions|core_busy|deadline_misses)" || true

echo "== summary"
python3 scripts/compare-summary.py "$out" rtpengine bridgepool
