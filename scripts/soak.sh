#!/usr/bin/env bash
# Soak (issue 15, item 4): a scheduler and one worker (one media core), the loadgen churning calls
# at 70 % of the worker's measured capacity for MINUTES. Every SAMPLE seconds it records, for the
# worker and the scheduler, resident memory and open file descriptors (/proc), and the worker's
# ports in use, live sessions and media core busy share (/metrics). It prints four rows: idle
# before the load, loaded after the first calls have cycled, loaded at the end, idle after; flat
# means the loaded rows match and the idle rows match.
#
#   scripts/soak.sh [OUT_DIR]      (default target/soak)
#
# Environment: MINUTES=30, SAMPLE=10 (seconds), SHARE=0.7 (of capacity), MIN_CALL=10s,
# MAX_CALL=60s, PROFILE=release (or debug: quicker to build, the session glue unoptimised),
# ADMISSION=0.8 (the worker's admission busy share), CALLS (churn this many instead of SHARE), BIN (a directory of binaries to run instead of
# building), WORKER_LOG (the worker's log filter), STOP_WAIT=60 (seconds the worker may take to
# exit after SIGTERM at the end before its stacks are dumped). A 30-minute run is a benchmark: record its
# figures in docs/reliability.md with the machine and what else ran on it.
set -euo pipefail
[ -n "${BIN:-}" ] && BIN=$(realpath "$BIN")
cd "$(dirname "$0")/.."
out=${1:-target/soak}
mkdir -p "$out"
minutes=${MINUTES:-30}
sample=${SAMPLE:-10}
share=${SHARE:-0.7}
min_call=${MIN_CALL:-10s}
max_call=${MAX_CALL:-60s}
profile=${PROFILE:-release}
flag=()
[ "$profile" = release ] && flag=(--release)
if [ -n "${BIN:-}" ]; then
  bin=$BIN # binaries built elsewhere (an A/B against an older build)
else
  cargo build "${flag[@]}" --locked -q -p bridgepool-worker -p bridgepool-scheduler -p bridgepool-loadgen
  bin=target/$profile
fi
cores=$(nproc)
media_core=$(( cores > 1 ? 1 : 0 ))
grpc=127.0.0.1:50471 wmetrics=127.0.0.1:9471 sgrpc=127.0.0.1:50472 smetrics=127.0.0.1:9472

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

"$bin/bridgepool-scheduler" --grpc-listen "$sgrpc" --metrics-listen "$smetrics" --log warn \
  2> "$out/scheduler.log" &
spid=$!
pids+=("$spid")
"$bin/bridgepool-worker" --grpc-listen "$grpc" --metrics-listen "$wmetrics" \
  --rtp-port-min 52000 --rtp-port-max 59999 --cores "$media_core" \
  --admission-busy "${ADMISSION:-0.8}" --worker-id soak --heartbeat-interval 500ms \
  --scheduler "http://$sgrpc" --log "${WORKER_LOG:-warn,bridgepool_worker::server=info}" \
  2> "$out/worker.log" &
wpid=$!
pids+=("$wpid")

# One sample of a metric (summed over its label sets).
metric() {
  curl -sf "http://$1/metrics" | awk -v m="$2" '$1 == m || index($1, m "{") == 1 { s += $2 } END { print s + 0 }'
}
# Per-core busy shares of the worker, as core=share pairs.
busy() {
  curl -sf "http://$wmetrics/metrics" | awk '/^bridgepool_worker_core_busy_ratio\{/ {
    match($1, /core="[0-9]+"/); printf "%s=%.3f ", substr($1, RSTART + 6, RLENGTH - 7), $2 }'
}
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
row() {
  printf '%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n' "$1" "$(date +%s)" "$(rss_kb "$wpid")" "$(fds "$wpid")" \
    "$(metric "$wmetrics" bridgepool_worker_ports_in_use)" \
    "$(metric "$wmetrics" bridgepool_worker_sessions)" "$(rss_kb "$spid")" "$(fds "$spid")" \
    "$(metric "$wmetrics" bridgepool_worker_deadline_misses_total)" "$(busy)"
}

# The worker measures its capacity at start, then registers with the scheduler.
capacity=0
for _ in $(seq 300); do
  capacity=$(metric "$wmetrics" bridgepool_worker_capacity_sessions 2>/dev/null || echo 0)
  [ "${capacity%.*}" -gt 0 ] 2>/dev/null && break
  sleep 0.2
done
capacity=${capacity%.*}
[ "$capacity" -gt 0 ] || { echo "the worker never reported a capacity" >&2; exit 1; }
[ -z "${CALLS:-}" ] || [ "$CALLS" -gt 0 ] 2>/dev/null || { echo "CALLS must be a positive number" >&2; exit 1; }
calls=${CALLS:-$(awk -v c="$capacity" -v s="$share" 'BEGIN { n = int(c * s); print (n < 1 ? 1 : n) }')}
sleep 2
echo "worker capacity $capacity sessions; churning $calls calls ($(awk -v n="$calls" -v c="$capacity" 'BEGIN { printf "%.2f", n / c }') of it) for ${minutes} min"

samples="$out/samples.csv"
echo "phase,unix_s,worker_rss_kb,worker_fds,ports_in_use,sessions,scheduler_rss_kb,scheduler_fds,deadline_misses,core_busy" > "$samples"
row idle-before >> "$samples"

taskset -c 0 "$bin/bridgepool-loadgen" churn --calls "$calls" --duration "${minutes}m" \
  --min-call "$min_call" --max-call "$max_call" --scheduler "http://$sgrpc" \
  --quality-calls 0 --max-refusals 1000000 --measure-pid "$wpid" \
  --json "$out/loadgen.json" > "$out/loadgen.txt" 2> "$out/loadgen.log" &
lpid=$!
pids+=("$lpid")
started=$(date +%s)
end=$(( started + minutes * 60 ))
# Sampled until the loadgen ends; bounded by the run's length plus a minute.
while kill -0 "$lpid" 2>/dev/null && [ "$(date +%s)" -lt $(( end + 60 )) ]; do
  sleep "$sample"
  kill -0 "$lpid" 2>/dev/null || break
  row loaded >> "$samples"
done
wait "$lpid" || echo "the loadgen exited non-zero (its service level, see $out/loadgen.txt)"
sleep 3
row idle-after >> "$samples"

# Rows to compare: the first loaded sample after the longest call has cycled once, the last
# loaded one, and the two idle ones.
case $max_call in
  *ms) longest=1 ;;
  *s) longest=${max_call%s} ;;
  *m) longest=$(( ${max_call%m} * 60 )) ;;
  *) longest=$max_call ;;
esac
warm=$(( started + longest ))
awk -F, -v warm="$warm" '
  NR == 1 { head = $0 }
  $1 == "idle-before" { before = $0 }
  $1 == "idle-after" { after = $0 }
  $1 == "loaded" && $2 >= warm && first == "" { first = $0 }
  $1 == "loaded" { last = $0 }
  END { print head; print before; if (first != "") print first; if (last != "") print last; print after }
' "$samples" | column -s, -t | tee "$out/summary.txt"
grep -E '^(total|calls)|refused|lost' "$out/loadgen.txt" | head -8 || true

# The worker alone gets SIGTERM, as a scale-in sends it: with nothing live it must exit within
# the gRPC close grace (5 s). A worker still running after STOP_WAIT seconds has its threads'
# stacks written to worker-stacks.txt (gdb; needs ptrace of a sibling: kernel.yama.ptrace_scope 0
# or root) and is then killed, and the script fails.
if ! kill -TERM "$wpid" 2>/dev/null; then
  echo "the worker was already gone at the end of the run" | tee -a "$out/summary.txt"
  exit 1
fi
stopped=$(date +%s%N)
for _ in $(seq $(( ${STOP_WAIT:-60} * 10 ))); do
  kill -0 "$wpid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$wpid" 2>/dev/null; then
  echo "worker still running ${STOP_WAIT:-60} s after SIGTERM; stacks in $out/worker-stacks.txt" | tee -a "$out/summary.txt"
  gdb -p "$wpid" -batch -ex 'thread apply all bt' > "$out/worker-stacks.txt" 2>&1 || true
  curl -sf "http://$wmetrics/metrics" > "$out/worker-metrics-at-hang.txt" || true
  kill -KILL "$wpid" 2>/dev/null || true
  wait "$wpid" 2>/dev/null || true
  exit 1
fi
rc=0
wait "$wpid" || rc=$?
echo "worker exited $(( ($(date +%s%N) - stopped) / 1000000 )) ms after SIGTERM, status $rc" | tee -a "$out/summary.txt"
[ "$rc" -eq 0 ] || exit 1
