#!/usr/bin/env bash
# PESQ under seeded network impairments (issue 11): the same loadgen load, the same seeded
# impairment pattern, against rtpengine and against bridgepool (the loadgen's embedded pool) with
# its jitter buffer adaptive and off. Prints one line per scenario and system: PESQ NB mean and
# min per direction over the sampled calls, and the loss the receiver saw. `b-loss-5-fec` has
# the Opus clients expect the 5 % loss they suffer (as WebRTC sets it from RTCP), so they send FEC.
#
#   scripts/impair-table.sh [OUT_DIR]          (default target/impair)
#
# Environment: CALLS (default 6), SECONDS_PER_RUN (12), SEED (7), SCENARIOS (a subset of the names below,
# space separated), SYSTEMS (default "rtpengine bp-adaptive bp-off"), RTPENGINE_BIN (default
# Debian's rtpengine), LOADGEN (default target/release/bridgepool-loadgen).
# rtpengine runs on core 1, the loadgen (and the embedded pool) on core 0 for rtpengine, both
# cores for the embedded pool: quality, not CPU, is measured here.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/impair}
mkdir -p "$out"
calls=${CALLS:-6}
secs=${SECONDS_PER_RUN:-12}
seed=${SEED:-7}
lg=${LOADGEN:-target/release/bridgepool-loadgen}
rtpe_bin=${RTPENGINE_BIN:-rtpengine}
systems=${SYSTEMS:-rtpengine bp-adaptive bp-off}

declare -A scenario=(
  [clean]=""
  [b-jitter-40]="--impair-b-tx jitter=30/5-40"
  [b-jitter-40-inorder]="--impair-b-tx jitter=30/5-40,order=keep"
  [b-jitter-80]="--impair-b-tx jitter=30/5-80"
  [b-jitter-80-inorder]="--impair-b-tx jitter=30/5-80,order=keep"
  [b-loss-2]="--impair-b-tx loss=2"
  [b-loss-5]="--impair-b-tx loss=5"
  [b-loss-5-fec]="--impair-b-tx loss=5 --client-loss 5"
  [b-loss-10]="--impair-b-tx loss=10"
  [b-burst-5]="--impair-b-tx burst=5/3"
  [a-loss-2]="--impair-a-tx loss=2"
  [a-loss-5]="--impair-a-tx loss=5"
  [a-loss-10]="--impair-a-tx loss=10"
  [a-burst-5]="--impair-a-tx burst=5/3"
)
order="clean b-jitter-40 b-jitter-40-inorder b-jitter-80 b-jitter-80-inorder b-loss-2 b-loss-5 b-loss-5-fec b-loss-10 b-burst-5 a-loss-2 a-loss-5 a-loss-10 a-burst-5"
names=${SCENARIOS:-$order}

tmp=$(mktemp -d)
rtpe=""
cleanup() { [ -n "$rtpe" ] && kill "$rtpe" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
if [[ " $systems " == *" rtpengine "* ]]; then
  cat > "$tmp/rtpengine.conf" <<CONF
[rtpengine]
table = -1
interface = 127.0.0.1
listen-ng = 127.0.0.1:22399
foreground = true
log-stderr = true
log-level = 3
port-min = 43000
port-max = 44998
timeout = 60
delete-delay = 0
pidfile = $tmp/rtpengine.pid
CONF
  taskset -c 1 "$rtpe_bin" --config-file="$tmp/rtpengine.conf" --num-threads=1 2>"$tmp/rtpengine.log" &
  rtpe=$!
  sleep 1
fi

common=(--calls "$calls" --quality-calls "$calls" --seed "$seed" --no-progress
  --min-pesq-a-to-b 0 --min-pesq-b-to-a 0 --max-loss-pct 100 --max-p99-ms 100000)
summary() { # json -> "a_to_b mean/min  b_to_a mean/min"
  python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
def walk(o):
    if isinstance(o, dict):
        yield o
        for v in o.values(): yield from walk(v)
    elif isinstance(o, list):
        for v in o: yield from walk(v)
scores = {"a_to_b": [], "b_to_a": []}
for d in walk(r):
    dirn = d.get("direction")
    if dirn in scores and d.get("pesq_nb") is not None:
        scores[dirn].append(d["pesq_nb"])
out = []
for k in ("a_to_b", "b_to_a"):
    v = scores[k]
    out.append(f"{k} {sum(v)/len(v):.2f} (min {min(v):.2f}, n={len(v)})" if v else f"{k} -")
print("  ".join(out))
PY
}
for name in $names; do
  imp=${scenario[$name]}
  for sys in $systems; do
    json="$out/$name-$sys.json"
    case $sys in
      rtpengine)
        # shellcheck disable=SC2086
        taskset -c 0 "$lg" fixed --duration "${secs}s" --target rtpengine \
          --rtpengine-ng 127.0.0.1:22399 "${common[@]}" $imp --json "$json" >"$out/$name-$sys.txt" 2>&1 || true ;;
      bp-adaptive|bp-off|bp-fixed)
        mode=${sys#bp-}
        # shellcheck disable=SC2086
        "$lg" demo --seconds "$secs" --rtp-port-min 45000 --report-dir "$tmp/demo" \
          --jitter-buffer "$mode" "${common[@]}" $imp --json "$json" >"$out/$name-$sys.txt" 2>&1 || true ;;
    esac
    if [ -s "$json" ]; then
      printf '%-22s %-12s %s\n' "$name" "$sys" "$(summary "$json")"
    else
      printf '%-22s %-12s failed (see %s)\n' "$name" "$sys" "$out/$name-$sys.txt"
    fi
  done
done
