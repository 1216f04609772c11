#!/usr/bin/env bash
# Where a transcoded call's CPU goes, measured with a tool we did not write (Linux perf): a worker
# with one media thread on core 1, the loadgen on core 0 running CALLS client-like calls (the
# representative load: 48 kHz WebRTC/mobile Opus on one leg, 20 ms PCMU on the other), perf
# sampling the worker's threads for PERF_SECONDS in the middle of the run. Prints the share of the
# worker's samples in libopus (encoder and decoder apart), the kernel, libc/libm and our own Rust,
# and turns the shares into microseconds per call per 20 ms from the worker's CPU time over the
# sampled window (/proc, not our own meter).
#
#   scripts/profile-worker.sh [CALLS] [OUT_DIR]     (defaults 100, target/profile)
#
# Needs perf (Debian linux-perf) and root or perf_event_paranoid <= 1.
set -euo pipefail
cd "$(dirname "$0")/.."
calls=${1:-100}
out=${2:-target/profile}
secs=${SECONDS_TOTAL:-40}
perf_secs=${PERF_SECONDS:-15}
command -v perf >/dev/null || { echo "perf not found: apt-get install linux-perf" >&2; exit 1; }
mkdir -p "$out"
cargo build --release --locked -q -p bridgepool-worker -p bridgepool-scheduler -p bridgepool-loadgen
bin=target/release
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

taskset -c 0 "$bin/bridgepool-scheduler" --grpc-listen 127.0.0.1:50271 --metrics-listen 127.0.0.1:9297 \
  --log warn &
pids+=($!)
"$bin/bridgepool-worker" --cores 1 --grpc-listen 127.0.0.1:50281 --metrics-listen 127.0.0.1:9298 \
  --media-ip 127.0.0.1 --rtp-port-min 34000 --rtp-port-max 37999 --admission-busy 0.95 \
  --scheduler http://127.0.0.1:50271 --worker-id profile-worker --log warn &
worker=$!; pids+=("$worker")
sleep 3
taskset -c 0 "$bin/bridgepool-loadgen" fixed --load client --calls "$calls" --duration "${secs}s" \
  --quality-calls 4 --target bridgepool --scheduler http://127.0.0.1:50271 --measure-pid "$worker" \
  --no-progress --json "$out/fixed.json" >"$out/loadgen.txt" 2>&1 &
loadgen=$!; pids+=("$loadgen")
sleep $(( (secs - perf_secs) / 2 ))
ticks() { awk '{print $14 + $15}' "/proc/$worker/stat"; }
before=$(ticks)
perf record -q -F 1999 -e cpu-clock -p "$worker" -o "$out/perf.data" -- sleep "$perf_secs" 2>/dev/null
after=$(ticks)
wait "$loadgen" || true
grep -E '^(calls|a_to_b|b_to_a)' "$out/loadgen.txt"
perf report -i "$out/perf.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null >"$out/report.txt"
python3 - "$out/report.txt" "$calls" "$perf_secs" "$before" "$after" "$(getconf CLK_TCK)" <<'PY'
import re, sys
report, calls, secs, before, after, hz = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
# libopus symbols by side: the encoder's and the decoder's own files; shared DSP (FFT, MDCT,
# range coder helpers used by both) is counted apart.
enc = re.compile(r"^(silk_(encode|NSQ|noise_shape|pitch_analysis|find_|LPC_analysis|burg|schur|k2a|A2NLSF|NLSF_(encode|VQ|del_dec)|VQ_WMat|process_gains|quant_LTP|LTP_|residual_energy|warped|VAD|ana_filt|apply_sine|corrMatrix|energy_FLP|inner_product|insertion_sort|scale|control_|HP_variable|stereo_LR|biquad|sum_sqr|autocorr|bwexpander)|silk_Encode|opus_encode|ec_enc|celt_encode|run_analysis|tonality)")
dec = re.compile(r"^(silk_(decode|Decode|PLC|CNG|shell_decoder|NLSF_decode|gains_dequant|resampler|stereo_MS)|opus_decode|ec_dec|celt_decode|deemphasis|decode_pulses|quant_partition|alg_unquant|unquant_|anti_collapse|denormalise|clt_mdct_backward|comb_filter|tf_decode|exp_rotation|compute_theta|renormalise|deinterleave|haar1|celt_synthesis|bitexact|isqrt32|interp_bits2pulses|clt_compute_allocation|spreading_decision|cwrsi|decode_)")
dsp = re.compile(r"^(opus_fft|opus_ifft|kf_bfly|clt_mdct|celt_|silk_|ec_|opus_|pitch_|xcorr|_celt|celt)")
shares = {"libopus encoder": 0.0, "libopus decoder": 0.0, "libopus shared": 0.0, "kernel": 0.0,
          "libc/libm": 0.0, "bridgepool (Rust)": 0.0, "other": 0.0}
for line in open(report):
    m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)", line)
    if not m:
        continue
    pct, dso, kind, sym = float(m.group(1)), m.group(2), m.group(3), m.group(4).strip()
    if kind == "k":
        cat = "kernel"
    elif dso.startswith("lib") and ".so" in dso:
        cat = "libc/libm"
    elif enc.match(sym):
        cat = "libopus encoder"
    elif dec.match(sym):
        cat = "libopus decoder"
    elif dsp.match(sym):
        cat = "libopus shared"
    elif "::" in sym or sym.startswith("<"):
        cat = "bridgepool (Rust)"
    else:
        cat = "other"
    shares[cat] += pct
cpu = (after - before) / hz / secs  # share of a core over the sampled window
per_frame_us = cpu * 20_000 / calls  # microseconds per call per 20 ms
print(f"worker CPU over {secs:.0f} s: {cpu * 100:.1f} % of a core for {calls} calls = {cpu * 100 / calls:.3f} % per call = {per_frame_us:.1f} us per call per 20 ms")
for cat, pct in shares.items():
    print(f"  {cat:20} {pct:5.1f} %  {per_frame_us * pct / 100:6.1f} us per call per 20 ms")
PY
