#!/usr/bin/env bash
# The relay tier measured (issue 13): the same loadgen, as Kamailio would drive it, sets calls up
# through a transform-capable rtpengine (RTPENGINE_BIN, mr13.3.1.1 or later; never built or
# shipped by this project) in two configurations, one after the other on this machine:
#   - "rtpengine-alone": the relay transcodes PCMU <-> Opus itself;
#   - "relay+pool":      the same relay with transcode-config sections handing both directions to
#                        bridgepool (a scheduler with --ng-listen and one worker) by ng `transform`.
# The tier's media (the relay, and the worker's media thread) share core 1; the loadgen and the
# scheduler run on core 0. So "calls/core" is the tier's density on one core, and "cpu%/call" sums
# relay + worker + scheduler. The relay forwards in user space (no kernel module on this VM):
# with the kernel module, a passthrough relay's own cost per call is far lower.
#
#   RTPENGINE_BIN=/path/to/rtpengine scripts/compare-tier.sh [OUT_DIR]   (default target/compare-tier)
#
# Environment as compare-rtpengine.sh: STEP_SECONDS, QUALITY_CALLS, QUALITY_PER_STEP, MIN_PESQ, LOAD,
# START/STEP (calls, both systems), MAX.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/compare-tier}
mkdir -p "$out"
rtpe_bin=${RTPENGINE_BIN:?set RTPENGINE_BIN to a transform-capable rtpengine (mr13.3.1.1+; Debian 12 ships 10.5, too old)}
"$rtpe_bin" --help 2>&1 | grep -q -- --transcode-config ||
  { echo "$rtpe_bin has no --transcode-config: too old for transform" >&2; exit 1; }
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
run() { # name, extra args...
  local name=$1; shift
  taskset -c 0 "$bin/bridgepool-loadgen" fixed "${load[@]}" --calls "$quality_calls" --duration 30s \
    --quality-calls "$quality_calls" --json "$out/$name-fixed.json" --html "$out/$name-fixed.html" \
    --no-progress "$@" | grep -vE '^\s+lg-' || true
  sleep 2
  taskset -c 0 "$bin/bridgepool-loadgen" ramp "${load[@]}" --step-duration "${step_s}s" \
    --quality-calls "$per_step" --start-calls "${START:-10}" --step-calls "${STEP:-5}" \
    --max-calls "${MAX:-300}" --json "$out/$name-ramp.json" --html "$out/$name-ramp.html" \
    --no-progress "$@" | sed -n '/ramp steps/,$p' || true
}
relay_conf() { # ng port, then transform sections (or none)
  cat <<CONF
[rtpengine]
table = -1
interface = 127.0.0.1
listen-ng = 127.0.0.1:$1
foreground = true
log-stderr = true
log-level = 3
port-min = 47000
port-max = 49998
timeout = 60
delete-delay = 0
pidfile = $tmp/relay-$1.pid
CONF
  local transform=${2:-} src dst
  if [ -n "$transform" ]; then
    printf 'transcode-config = tc\n'
    for pair in "PCMU opus" "opus PCMU" "PCMU opus/48000/1" "opus/48000/1 PCMU"; do
      read -r src dst <<<"$pair"
      printf '\n[tc-%s-%s]\nsource = %s\ndestination = %s\ntransform = %s\n' \
        "${src//\//_}" "${dst//\//_}" "$src" "$dst" "$transform"
    done
  fi
}

echo "== rtpengine-alone: $("$rtpe_bin" --version 2>&1 | head -1), one thread on core 1"
relay_conf 22311 > "$tmp/alone.conf"
taskset -c 1 "$rtpe_bin" --config-file="$tmp/alone.conf" --num-threads=1 2>"$tmp/alone.log" &
relay=$!; pids+=("$relay")
sleep 1
run rtpengine-alone --target rtpengine --rtpengine-ng 127.0.0.1:22311 --measure-pid "$relay"
kill "$relay"; wait "$relay" 2>/dev/null || true

echo "== relay+pool: the same relay offloading to bridgepool; relay and worker media on core 1"
taskset -c 0 "$bin/bridgepool-scheduler" --grpc-listen 127.0.0.1:50271 --metrics-listen 127.0.0.1:9271 \
  --ng-listen 127.0.0.1:22312 --log warn &
sched=$!; pids+=("$sched")
"$bin/bridgepool-worker" --cores 1 --grpc-listen 127.0.0.1:50281 \
  --metrics-listen 127.0.0.1:9281 --media-ip 127.0.0.1 --rtp-port-min 30000 --rtp-port-max 33999 \
  --scheduler http://127.0.0.1:50271 --worker-id tier-worker --log warn &
worker=$!; pids+=("$worker")
relay_conf 22313 127.0.0.1:22312 > "$tmp/relay.conf"
taskset -c 1 "$rtpe_bin" --config-file="$tmp/relay.conf" --num-threads=1 2>"$tmp/relay.log" &
relay=$!; pids+=("$relay")
sleep 3
run relay+pool --target rtpengine --rtpengine-ng 127.0.0.1:22313 \
  --measure-pid "$relay" --measure-pid "$worker" --measure-pid "$sched"
echo "== pool side: jobs created and refused (a refused transform is transcoded by the relay)"
curl -s http://127.0.0.1:9271/metrics |
  grep -E '^bridgepool_scheduler_ng_(jobs_created_total|requests_total\{command="transform")' || true

echo "== summary"
python3 scripts/compare-summary.py "$out" rtpengine-alone relay+pool
