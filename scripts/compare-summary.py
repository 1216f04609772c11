#!/usr/bin/env python3
"""Summary of two loadgen runs side by side (compare-rtpengine.sh, compare-tier.sh).

usage: compare-summary.py OUT_DIR NAME_A NAME_B  (reads OUT_DIR/NAME-{ramp,fixed}.json)
"""
import json, sys
out, names = sys.argv[1], sys.argv[2:]
def load(name):
    try:
        return json.load(open(f"{out}/{name}.json"))
    except OSError:
        return None
rows = []
for t in names:
    ramp, fixed = load(f"{t}-ramp"), load(f"{t}-fixed")
    if not ramp or not fixed:
        print(f"{t}: missing reports"); continue
    calls = fixed["calls"]["transcoded"]
    cpu = sum(c["mean_pct"] for c in fixed["cpu"] if c["role"] == "measured")
    q = {d: [x["correlation"] for x in fixed["quality"] if x["direction"] == d] for d in ("a_to_b", "b_to_a")}
    mean = lambda v: sum(v) / len(v) if v else float("nan")
    pesq = {d["name"]: d.get("pesq", {}) for d in fixed["directions"]}
    val = lambda d, k: pesq.get(d, {}).get(k) if pesq.get(d, {}).get(k) is not None else float("nan")
    rows.append((t, ramp["ramp"]["highest_held"], ramp["ramp"]["stopped_because"], cpu / max(calls, 1),
                 mean(q["a_to_b"]), mean(q["b_to_a"]), fixed["mos"], fixed["total"]["latency"]["p50_ms"],
                 fixed["total"]["latency"]["p99_ms"], val("a_to_b", "nb_mean"), val("a_to_b", "nb_min"),
                 val("a_to_b", "wb_mean"), val("b_to_a", "nb_mean"), val("b_to_a", "nb_min")))
print("PESQ: P.862.1 MOS-LQO NB mean (min) of the fixed run's calls; WB: P.862.2 of the Opus output; "
      "MOS est.: E-model from loss and jitter")
print(f"{'target':<16} {'calls/core':>10} {'cpu%/call':>9} {'PESQ a>b':>13} {'WB a>b':>6} {'PESQ b>a':>13} "
      f"{'corr a>b':>8} {'corr b>a':>8} {'MOS est.':>8} {'p50 ms':>7} {'p99 ms':>7}  stopped because")
for r in rows:
    print(f"{r[0]:<16} {r[1]:>10} {r[3]:>9.2f} {r[9]:>6.2f} ({r[10]:.2f}) {r[11]:>6.2f} {r[12]:>6.2f} ({r[13]:.2f}) "
          f"{r[4]:>8.3f} {r[5]:>8.3f} {r[6]:>8.2f} {r[7]:>7.2f} {r[8]:>7.2f}  {r[2]}")
if len(rows) == 2 and rows[0][1]:
    print(f"density ratio {rows[1][0]} / {rows[0][0]}: {rows[1][1] / rows[0][1]:.1f}x; "
          f"CPU per call ratio: {rows[0][3] / max(rows[1][3], 1e-9):.1f}x")
