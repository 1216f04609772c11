#!/usr/bin/env bash
# Worker density on one pinned core against the codec-only ceiling, in one run:
#   1. criterion: the four codec calls of a two-way call frame alone (one hot codec state, and 200
#      states in turn as a loaded core holds them), and a whole sans-IO session frame, pinned to
#      core 1 (Opus complexity $COMPLEXITY, default 5);
#   2. a worker with one media thread on core 1 (control threads on core 0), admission up to 95 %
#      busy, and the loadgen on core 0 ramping calls until a packet is lost;
#   3. a fixed run at 80 % of the highest zero-loss density: loss and p99 latency;
#   4. a ramp to the highest density whose p99 stays under 1 ms.
# Steps 2 to 4 run twice: media thread sleeping between packets (the default), then
# --busy-poll (it spins on its sockets).
#
# The load is the representative one (issue 10): Opus as WebRTC browsers and mobile apps send it
# (48 kHz voices through libopus, 70/30), G.711 as a gateway (LOAD=legacy: the old SILK narrowband
# load). Steps 3 and 4 print PESQ per direction (P.862.1 NB, P.862.2 WB); step 4 scores
# QUALITY_PER_STEP of each step's new calls, and with MIN_PESQ set (e.g. 3.6) a step below it does
# not hold (default 0: reported, not judged).
#
#   scripts/bench-density.sh [OUT_DIR]     (default target/density)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/density}
mkdir -p "$out"
c=${COMPLEXITY:-5}
floor=${MIN_PESQ:-0}
load=(--load "${LOAD:-client}" --min-pesq-a-to-b "$floor" --min-pesq-b-to-a "$floor")
cargo build --release --locked -q -p bridgepool-worker -p bridgepool-scheduler -p bridgepool-loadgen
bin=target/release
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

echo "== 1. codec-only and session frame (criterion, core 1, complexity $c)"
taskset -c 1 cargo bench --locked -q -p bridgepool-worker --bench session -- "frame_both_ways.*/c$c\$" \
  --warm-up-time 1 --measurement-time 4 2>&1 | grep -E "^(codec_only|session)/|time:" || true
median_ns() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['median']['point_estimate'])" "$1"; }
codec_ns=$(median_ns "target/criterion/codec_only_frame_both_ways_c$c/new/estimates.json")
session_ns=$(median_ns "target/criterion/session_frame_both_ways_c$c/new/estimates.json")
calls_ns=$(median_ns "target/criterion/codec_only_frame_both_ways_200_calls_c$c/new/estimates.json")
codec_ceiling=$(python3 -c "print(int(20e6 / $codec_ns))")
echo "codec-only frame both ways: $(python3 -c "print(round($codec_ns/1000,1))") us -> ceiling $codec_ceiling calls per core"
echo "codec-only, 200 states:     $(python3 -c "print(round($calls_ns/1000,1))") us -> $(python3 -c "print(int(20e6 / $calls_ns))") calls per core"
echo "sans-IO session frame:      $(python3 -c "print(round($session_ns/1000,1))") us"

taskset -c 0 "$bin/bridgepool-scheduler" --grpc-listen 127.0.0.1:50351 --metrics-listen 127.0.0.1:9391 --log warn &
pids+=($!)

# measure NAME [worker options]: steps 2 to 4 against one worker started with those options.
measure() {
  local name=$1; shift
  echo "== 2. [$name] ramp to the first lost packet (worker media thread on core 1, loadgen on core 0)"
  "$bin/bridgepool-worker" --cores 1 --admission-busy 0.95 --grpc-listen 127.0.0.1:50361 \
    --metrics-listen 127.0.0.1:9392 --media-ip 127.0.0.1 --rtp-port-min 34000 --rtp-port-max 37999 \
    --scheduler http://127.0.0.1:50351 --worker-id "density-$name" --log warn "$@" &
  local worker=$!; pids+=("$worker")
  sleep 3
  local start=$(( codec_ceiling * 40 / 100 / 10 * 10 ))
  taskset -c 0 "$bin/bridgepool-loadgen" ramp "${load[@]}" --scheduler http://127.0.0.1:50351 --measure-pid "$worker" \
    --start-calls "$start" --step-calls 20 --step-duration 8s --max-calls "$codec_ceiling" \
    --max-loss-pct 0 --max-p99-ms 20 --quality-calls 0 --no-progress \
    --json "$out/$name-ramp.json" --html "$out/$name-ramp.html" | sed -n '/ramp steps/,$p'
  local held
  held=$(python3 -c "import json; print(json.load(open('$out/$name-ramp.json'))['ramp']['highest_held'])")
  echo "[$name] highest zero-loss density: $held calls = $(python3 -c "print(round($held/$codec_ceiling*100,1))") % of the codec-only ceiling ($codec_ceiling)"
  [ "$held" -gt 0 ] || { echo "no step held: nothing to run at 80 %" >&2; exit 1; }
  local calls80=$(( held * 80 / 100 ))
  echo "== 3. [$name] fixed run at 80 % of that: $calls80 calls for 30 s"
  sleep 2
  taskset -c 0 "$bin/bridgepool-loadgen" fixed "${load[@]}" --scheduler http://127.0.0.1:50351 --measure-pid "$worker" \
    --calls "$calls80" --duration 30s --quality-calls 5 --no-progress \
    --json "$out/$name-fixed80.json" --html "$out/$name-fixed80.html" | grep -vE '^\s+lg-'
  curl -s http://127.0.0.1:9392/metrics | grep -E '^bridgepool_worker_(core_busy_ratio|capacity_sessions|deadline_misses_total)' || true
  echo "== 4. [$name] the highest density with p99 under 1 ms (zero loss)"
  sleep 2
  taskset -c 0 "$bin/bridgepool-loadgen" ramp "${load[@]}" --scheduler http://127.0.0.1:50351 --measure-pid "$worker" \
    --start-calls 100 --step-calls 20 --step-duration 8s --max-calls "$codec_ceiling" \
    --max-loss-pct 0 --max-p99-ms 1 --quality-calls "${QUALITY_PER_STEP:-2}" --no-progress \
    --json "$out/$name-ramp-1ms.json" | sed -n '/ramp steps/,$p'
  kill "$worker"; wait "$worker" 2>/dev/null || true
  sleep 4 # the scheduler's lease on the old worker runs out before the next one registers
}

measure sleeping
measure busy-poll --busy-poll
