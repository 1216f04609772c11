#!/usr/bin/env python3
"""Live test of the recording rules: a real Prometheus server scrapes a real scheduler and worker.

Starts bridgepool-scheduler, bridgepool-worker and prometheus (with deploy/prometheus/rules.yml,
1 s scrape and evaluation) on loopback ports picked free, drives a small load with the loadgen,
and checks through the Prometheus HTTP API that:

  1. at idle the autoscaling signal bridgepool:pool_utilization:ratio is 0;
  2. under N calls the workers and the schedulers report N sessions, and the signal equals
     sessions / capacity recomputed from the raw series Prometheus scraped at the rule's own
     evaluation time, and is > 0;
  3. the KEDA trigger query in deploy/k8s returns that same value;
  4. every bridgepool_* metric named in deploy/ and docs/operations.md is one the binaries
     export, every dashboard query runs, and the AWS capacity publisher (extracted from the
     CloudFormation template, with a stand-in `aws`) reads the same sessions and capacity;
  5. SIGTERM on the worker under load is a drain: draining=1 is scraped, the worker leaves the
     signal (no ready worker: no value), the process stays up while its calls run, every call
     completes, and it exits 0 once they are released.

Stdlib only. Every wait is bounded; every process is killed on exit.
Usage: prometheus_live.py REPO_ROOT BIN_DIR [AWS_SCRIPTS_DIR]
"""

import json
import re
import os
import pathlib
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

CALLS = 4
LOAD_SECONDS = 25
procs = []


def log(msg):
    print(f"  [prometheus-live] {msg}", flush=True)


def fail(msg):
    log(f"FAIL: {msg}")
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_udp_range(size):
    """A run of `size` UDP ports nobody holds right now (the worker binds them lazily)."""
    for _ in range(50):
        base = random.randrange(41000, 60000 - size, 2)
        socks = []
        try:
            for p in range(base, base + size):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base, base + size - 1
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    fail("no free UDP port range")


def start(name, argv, logdir):
    out = open(logdir / f"{name}.log", "wb")
    p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    p.name = name
    p.logfile = logdir / f"{name}.log"
    procs.append(p)
    return p


def cleanup(*_):
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def die_on_signal(signum, _frame):
    cleanup()
    sys.exit(128 + signum)


def wait_for(what, fn, timeout):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None and p.name != "loadgen" and not getattr(p, "may_exit", False):
                tail = p.logfile.read_text(errors="replace")[-2000:]
                fail(f"{p.name} exited with {p.returncode} while waiting for {what}:\n{tail}")
        try:
            last = fn()
            if last:
                return last
        except (OSError, ValueError, KeyError, IndexError) as e:
            last = e
        time.sleep(0.25)
    fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def http_get(url, timeout=2):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


class Prom:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"

    def query(self, expr, at=None):
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        body = json.loads(http_get(f"{self.base}/api/v1/query?{urllib.parse.urlencode(params)}"))
        if body.get("status") != "success":
            raise ValueError(f"query {expr!r}: {body}")
        return body["data"]

    def scalar(self, expr, at=None):
        """The single sample's value, or None when the result is empty."""
        data = self.query(expr, at)
        result = data["result"]
        if not result:
            return None
        if len(result) != 1:
            raise ValueError(f"{expr!r} returned {len(result)} series")
        return float(result[0]["value"][1])

    def samples(self, selector, at, window_s):
        """Raw (timestamp, value) samples of one series in (at - window, at]."""
        data = self.query(f"{selector}[{window_s}s]", at)
        result = data["result"]
        if len(result) != 1:
            raise ValueError(f"{selector!r} matched {len(result)} series")
        return [(float(t), float(v)) for t, v in result[0]["values"]]


def metric(text, name):
    """Sum of every sample of `name` in a /metrics page."""
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
            seen = True
    if not seen:
        raise KeyError(name)
    return total


def exported_names(pages):
    """Metric names in /metrics pages, histograms with their _bucket/_sum/_count series."""
    names = set()
    for page in pages:
        for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", page, re.M):
            names.add(name)
            if kind == "histogram":
                names |= {name + "_bucket", name + "_sum", name + "_count"}
    return names


def referenced_names(repo):
    files = [repo / "deploy/prometheus/rules.yml", repo / "deploy/grafana/dashboards/bridgepool.json",
             repo / "deploy/aws/bridgepool.yaml", repo / "docs/operations.md",
             *sorted((repo / "deploy/k8s").glob("*.yaml"))]
    refs = {}
    for f in files:
        for name in re.findall(r"\b(bridgepool_(?:worker|scheduler)_[a-z0-9_]+)", f.read_text()):
            refs.setdefault(name, f.relative_to(repo))
    return refs


def dashboard_exprs(repo):
    d = json.loads((repo / "deploy/grafana/dashboards/bridgepool.json").read_text())
    for p in d["panels"]:
        for t in p.get("targets", []):
            yield p["title"], t["expr"].replace("$__rate_interval", "1m").replace("$__interval", "15s")


def run_publisher(scripts, metrics_port, tmp):
    """The AWS template's capacity publisher against this worker, with `aws` recorded."""
    fake = tmp / "fakebin"
    fake.mkdir(exist_ok=True)
    (fake / "aws").write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$AWS_ARGS"\n')
    (fake / "aws").chmod(0o755)
    script = tmp / "publish-capacity"
    script.write_text((scripts / "publish-capacity").read_text()
                      .replace("127.0.0.1:9102", f"127.0.0.1:{metrics_port}"))
    script.chmod(0o755)
    args = tmp / "aws-args"
    env = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}", AWS_ARGS=str(args),
               REGION="eu-west-1", ASG="bp-workers")
    subprocess.run([str(script)], env=env, check=True, timeout=20)
    values = dict(re.findall(r"MetricName=(\w+),Value=(\d+)", args.read_text()))
    return {k: int(v) for k, v in values.items()}


def keda_query(repo):
    """The Prometheus query of the worker ScaledObject's trigger, read from the manifest."""
    text = (repo / "deploy/k8s/worker-autoscaling.yaml").read_text()
    m = re.search(r"^\s+query:\s*(.+)$", text, re.M)
    if not m:
        fail("no trigger query in deploy/k8s/worker-autoscaling.yaml")
    return m.group(1).strip().strip("'\"")


def main():
    repo = pathlib.Path(sys.argv[1]).resolve()
    bindir = pathlib.Path(sys.argv[2]).resolve()
    scripts = pathlib.Path(sys.argv[3]).resolve() if len(sys.argv) > 3 else None
    signal.signal(signal.SIGTERM, die_on_signal)
    signal.signal(signal.SIGINT, die_on_signal)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bridgepool-prom-"))
    log(f"work dir {tmp}")

    sched_grpc, sched_metrics, worker_grpc, worker_metrics, prom_port = (
        free_port() for _ in range(5)
    )
    rtp_min, rtp_max = free_udp_range(200)
    scheduler_url = f"http://127.0.0.1:{sched_grpc}"

    sched = start("scheduler", [str(bindir / "bridgepool-scheduler"),
                        "--grpc-listen", f"127.0.0.1:{sched_grpc}",
                        "--metrics-listen", f"127.0.0.1:{sched_metrics}",
                        "--log", "warn"], tmp)
    worker = start("worker", [str(bindir / "bridgepool-worker"),
                              "--grpc-listen", f"127.0.0.1:{worker_grpc}",
                              "--metrics-listen", f"127.0.0.1:{worker_metrics}",
                              "--media-ip", "127.0.0.1",
                              "--rtp-port-min", str(rtp_min), "--rtp-port-max", str(rtp_max),
                              "--scheduler", scheduler_url,
                              "--worker-id", "prom-live",
                              "--drain-deadline", "120s",
                              "--log", "info"], tmp)
    wait_for("the worker registered with the scheduler", lambda: metric(
        http_get(f"http://127.0.0.1:{sched_metrics}/metrics"),
        'bridgepool_scheduler_workers{state="ready"}') == 1, 30)

    pages = [http_get(f"http://127.0.0.1:{p}/metrics") for p in (sched_metrics, worker_metrics)]
    exported = exported_names(pages)
    unknown = {n: f for n, f in referenced_names(repo).items() if n not in exported}
    if unknown:
        fail("metrics named but not exported by the binaries: "
             + ", ".join(f"{n} ({f})" for n, f in sorted(unknown.items())))
    log(f"metric names: every one named in deploy/ and docs/operations.md is exported "
        f"({len(referenced_names(repo))} names, {len(exported)} exported series names)")

    config = tmp / "prometheus.yml"
    config.write_text(json.dumps({  # JSON is YAML: no YAML library needed
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(repo / "deploy/prometheus/rules.yml")],
        "scrape_configs": [
            {"job_name": "bridgepool-scheduler",
             "static_configs": [{"targets": [f"127.0.0.1:{sched_metrics}"]}]},
            {"job_name": "bridgepool-worker",
             "static_configs": [{"targets": [f"127.0.0.1:{worker_metrics}"]}]},
        ],
    }))
    start("prometheus", ["prometheus", f"--config.file={config}",
                         f"--storage.tsdb.path={tmp / 'tsdb'}",
                         f"--web.listen-address=127.0.0.1:{prom_port}",
                         "--log.level=warn"], tmp)
    prom = Prom(prom_port)
    wait_for("Prometheus ready", lambda: "Ready" in http_get(f"{prom.base}/-/ready"), 30)
    wait_for("both targets up", lambda: prom.scalar("sum(up)") == 2, 30)

    # 1. Idle: the signal exists and is 0 (a rule stuck at a constant would fail here or below).
    wait_for("the utilization rule at idle",
             lambda: prom.scalar("bridgepool:pool_utilization:ratio") is not None, 20)
    idle = prom.scalar("bridgepool:pool_utilization:ratio")
    if idle != 0:
        fail(f"idle utilization is {idle}, expected 0")
    log("idle: bridgepool:pool_utilization:ratio = 0")

    # 2. Load.
    report = tmp / "loadgen.json"
    lg = start("loadgen", [str(bindir / "bridgepool-loadgen"), "fixed",
                           "--calls", str(CALLS), "--duration", f"{LOAD_SECONDS}s",
                           "--scheduler", scheduler_url, "--no-progress",
                           "--json", str(report)], tmp)
    lg.may_exit = True
    wait_for(f"{CALLS} sessions scraped",
             lambda: prom.scalar("sum(bridgepool_worker_sessions)") == CALLS, 20)
    time.sleep(3)  # a few evaluations with the load steady
    t_e = prom.scalar("timestamp(bridgepool:pool_utilization:ratio)")
    rule = prom.scalar("bridgepool:pool_utilization:ratio", at=t_e)
    # The rule was evaluated at t_e over the newest samples at or before t_e. A scrape stamped
    # just before t_e may have landed just after the evaluation, so the one before it counts too.
    caps = prom.samples('bridgepool_worker_capacity_sessions{job="bridgepool-worker"}', t_e, 3)
    per_core = prom.query('bridgepool_worker_sessions{job="bridgepool-worker"}', t_e)["result"]
    sessions_now = sum(float(r["value"][1]) for r in per_core)
    if sessions_now != CALLS:
        fail(f"workers report {sessions_now} sessions at t_e, expected {CALLS}")
    sched_sessions = prom.scalar("bridgepool_scheduler_pool_sessions", at=t_e)
    if sched_sessions != CALLS:
        fail(f"the scheduler reports {sched_sessions} pool sessions, expected {CALLS}")
    draining = prom.scalar("bridgepool_worker_draining", at=t_e)
    if draining != 0:
        fail(f"worker draining={draining} before any SIGTERM")
    candidates = [CALLS / c for _, c in caps[-2:] if c > 0]
    log(f"load: rule at t={t_e:.3f} = {rule:.6f}; sessions {sessions_now:.0f}; capacity samples "
        f"{[c for _, c in caps[-2:]]} -> expected {[round(x, 6) for x in candidates]}; "
        f"scheduler gauge {prom.scalar('bridgepool_scheduler_pool_utilization', at=t_e)}")
    if not rule > 0:
        fail(f"utilization under load is {rule}, expected > 0")
    if not any(abs(rule - x) <= 1e-9 * max(1.0, x) for x in candidates):
        fail(f"rule {rule} != sessions/capacity {candidates}")

    # 3. The autoscaler's query: utilization x ready workers (one here), evaluated at t_e too.
    q = keda_query(repo)
    kv = prom.scalar(q, at=t_e)
    if kv is None or abs(kv - rule * 1) > 1e-9:
        fail(f"KEDA query {q!r} gives {kv}, expected {rule} x 1 ready worker")
    log(f"KEDA trigger query {q!r} = {kv:.6f} (1 ready worker)")

    # 4. Every dashboard query runs; the AWS publisher reads the same figures.
    bad = []
    for title, expr in dashboard_exprs(repo):
        try:
            prom.query(expr)
        except (OSError, ValueError) as e:
            bad.append(f"{title}: {expr} ({e})")
    if bad:
        fail("dashboard queries fail:\n    " + "\n    ".join(bad))
    log(f"dashboard: {sum(1 for _ in dashboard_exprs(repo))} queries run")
    if scripts:
        page = http_get(f"http://127.0.0.1:{worker_metrics}/metrics")
        published = run_publisher(scripts, worker_metrics, tmp)
        page_after = http_get(f"http://127.0.0.1:{worker_metrics}/metrics")
        caps = {metric(page, "bridgepool_worker_capacity_sessions"),
                metric(page_after, "bridgepool_worker_capacity_sessions")}
        if published.get("ReadySessions") != CALLS or published.get("ReadyCapacity") not in caps:
            fail(f"AWS publisher sent {published}, expected {CALLS} sessions and capacity in {caps}")
        log(f"AWS publisher: {published}")

    # 5. SIGTERM under load drains.
    worker.may_exit = sched.may_exit = True
    worker.send_signal(signal.SIGTERM)
    wait_for("draining=1 scraped", lambda: prom.scalar("bridgepool_worker_draining") == 1, 10)
    wait_for("the scheduler sees the worker draining", lambda: prom.scalar(
        'bridgepool_scheduler_workers{state="draining"}') == 1, 10)
    wait_for("the draining worker left the signal",
             lambda: prom.scalar("bridgepool:pool_utilization:ratio") is None, 10)
    if worker.poll() is not None:
        fail(f"the worker exited ({worker.returncode}) with {CALLS} calls live")
    live = prom.scalar("sum(bridgepool_worker_sessions)")
    if live != CALLS:
        fail(f"{live} sessions live during the drain, expected {CALLS} (calls dropped)")
    if scripts:
        published = run_publisher(scripts, worker_metrics, tmp)
        if published != {"ReadySessions": 0, "ReadyCapacity": 0}:
            fail(f"AWS publisher sent {published} for a draining worker, expected zeros")
    log(f"drain: draining=1, signal without value, {live:.0f} calls still live, worker up")
    try:
        lg_rc = lg.wait(timeout=LOAD_SECONDS + 30)
    except subprocess.TimeoutExpired:
        fail("the loadgen did not finish")
    if lg_rc != 0:
        fail(f"loadgen exited {lg_rc}: {lg.logfile.read_text(errors='replace')[-2000:]}")
    calls = json.loads(report.read_text())["calls"]
    if calls.get("transcoded") != CALLS or calls.get("failed") != 0 or calls.get("refused") != 0:
        fail(f"loadgen calls: {calls}")
    # Each scheduler holds a WatchEvents stream to the worker: the drain must close it, or the
    # graceful stop waits for it and the worker lingers until the platform's SIGKILL.
    try:
        rc = worker.wait(timeout=10)
    except subprocess.TimeoutExpired:
        fail("the drained worker is still running 10 s after its last call")
    if rc != 0:
        fail(f"the drained worker exited {rc}")
    log(f"drain: {CALLS}/{CALLS} calls completed, worker exited 0 after the last release")
    cleanup()
    shutil.rmtree(tmp, ignore_errors=True)  # kept on failure, for its logs
    log("PASS")


if __name__ == "__main__":
    try:
        main()
    finally:
        cleanup()
