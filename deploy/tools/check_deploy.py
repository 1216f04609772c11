#!/usr/bin/env python3
"""Offline checks of deploy/ that no off-the-shelf linter does: each artefact against the
workspace, the binaries and the other artefacts. Run by deploy/check.sh with the tools' venv
(PyYAML, kubernetes-validate, cfn-lint).

  check_deploy.py REPO BIN_DIR K8S_VERSION RENDERED_K8S_YAML    all checks
  check_deploy.py --extract-aws-scripts REPO OUT_DIR             the worker's scripts from the
                                                                 AWS template (for shellcheck
                                                                 and the live test)

Every failure is printed; the exit status is the number of failures (capped at 1).
"""

import json
import pathlib
import re
import subprocess
import sys
import tomllib

import yaml

failures = []


VERBOSE = bool(__import__("os").environ.get("VERBOSE"))
passed = [0]


def check(ok, what):
    """One check; only failures print (VERBOSE=1 prints every check)."""
    if not ok or VERBOSE:
        print(f"    {'ok  ' if ok else 'FAIL'} {what}")
    if ok:
        passed[0] += 1
    else:
        failures.append(what)
    return ok


def seconds(text):
    """'3500s', '65m', '1h', '90s', 3600 -> seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", str(text))
    if not m:
        raise ValueError(f"not a duration: {text!r}")
    n, unit = float(m.group(1)), m.group(2) or "s"
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


# ------------------------------------------------------------------------ the binaries
def binary_facts(bindir):
    """Env names and defaults each binary accepts, from its own --help."""
    facts = {}
    for name in ["bridgepool-worker", "bridgepool-scheduler"]:
        out = subprocess.run([str(bindir / name), "--help"], capture_output=True, text=True,
                             check=True).stdout
        envs = set(re.findall(r"\[env: (BRIDGEPOOL_[A-Z_]+)=", out))
        defaults = dict(re.findall(r"\[env: (BRIDGEPOOL_[A-Z_]+)=[^\]]*\]\s*\[default: ([^\]]+)\]",
                                   out.replace("\n", " ")))
        facts[name] = {"env": envs, "default": defaults}
    return facts


def rules(repo):
    doc = yaml.safe_load((repo / "deploy/prometheus/rules.yml").read_text())
    recorded, alerts = set(), {}
    for g in doc["groups"]:
        for r in g["rules"]:
            if "record" in r:
                recorded.add(r["record"])
            else:
                alerts.setdefault(r["alert"], []).append(r)
    return doc, recorded, alerts


# ------------------------------------------------------------------------ Dockerfile
def dockerfile_instructions(text):
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def check_dockerfile(repo, facts):
    print("  Dockerfile against the workspace")
    ins = dockerfile_instructions((repo / "deploy/Dockerfile").read_text())
    stages, current = {}, None
    for word, rest in ins:
        if word == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            current = m.group(2) or f"stage{len(stages)}"
            stages[current] = {"from": m.group(1), "ins": []}
        elif current:
            stages[current]["ins"].append((word, rest))
    names = list(stages)
    check(len(stages) >= 2, f"multi-stage build (stages: {names})")
    builder, runtime = stages[names[0]], stages[names[-1]]
    check("slim" in runtime["from"] or "distroless" in runtime["from"],
          f"runtime stage is a small base ({runtime['from']})")
    users = [r for w, r in runtime["ins"] if w == "USER"]
    check(bool(users) and users[-1].split(":")[0] not in ("0", "root"),
          f"runtime runs as a non-root user ({users[-1] if users else 'none'})")

    cargo = tomllib.loads((repo / "Cargo.toml").read_text())
    members = cargo["workspace"]["members"]
    copies = [r.split() for w, r in builder["ins"] if w == "COPY" and not r.startswith("--from")]
    sources = {src.rstrip("/") for c in copies for src in c[:-1]}
    for m in members:
        check(m in sources, f"builder COPYs workspace member {m}/")
    for f in ["Cargo.toml", "Cargo.lock", "rust-toolchain.toml"]:
        check(f in sources, f"builder COPYs {f}")
    ignore = [l.strip() for l in (repo / "deploy/Dockerfile.dockerignore").read_text().splitlines()
              if l.strip() and not l.startswith("#")]
    for src in sorted(sources):
        check((repo / src).exists(), f"COPY source {src} exists")
        check(src.split("/")[0] not in ignore, f"COPY source {src} is not in the .dockerignore")

    meta = json.loads(subprocess.run(
        ["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"],
        cwd=repo, capture_output=True, text=True, check=True).stdout)
    bins = {p["name"]: {t["name"] for t in p["targets"] if "bin" in t["kind"]}
            for p in meta["packages"]}
    run = " ".join(r for w, r in builder["ins"] if w == "RUN")
    build = re.search(r"cargo build([^&;]*)", run)
    built = re.findall(r"-p\s+(\S+)", build.group(1)) if build else []
    check(bool(built), f"builder builds packages {built}")
    for p in built:
        check(p in bins and bins[p], f"-p {p} is a workspace package with a binary")
    for b in set(re.findall(r"target/release/(\S+)", run)):
        check(any(b in bins.get(p, ()) for p in built), f"copied binary {b} is built")
    check(bool(build) and "--locked" in build.group(1), "cargo build --locked (the image builds what Cargo.lock says)")

    exposed = " ".join(r for w, r in runtime["ins"] if w == "EXPOSE")
    for binary, env in [("bridgepool-worker", "BRIDGEPOOL_GRPC_LISTEN"),
                        ("bridgepool-worker", "BRIDGEPOOL_METRICS_LISTEN"),
                        ("bridgepool-scheduler", "BRIDGEPOOL_GRPC_LISTEN"),
                        ("bridgepool-scheduler", "BRIDGEPOOL_METRICS_LISTEN")]:
        port = facts[binary]["default"][env].rsplit(":", 1)[1]
        check(f"{port}/tcp" in exposed, f"EXPOSE has {binary}'s default {env} port {port}")
    rtp = (facts["bridgepool-worker"]["default"]["BRIDGEPOOL_RTP_PORT_MIN"],
           facts["bridgepool-worker"]["default"]["BRIDGEPOOL_RTP_PORT_MAX"])
    check(f"{rtp[0]}-{rtp[1]}/udp" in exposed, f"EXPOSE has the default RTP range {rtp[0]}-{rtp[1]}")
    for w, r in runtime["ins"]:
        if w == "ENV" and "BRIDGEPOOL_LOADGEN_SPEECH" in r:
            path = r.split("=", 1)[1]
            copied = [c for ww, c in runtime["ins"] if ww == "COPY" and "testdata/speech" in c]
            ok = bool(copied) and path.startswith(copied[0].split()[-1])
            ok = ok and (repo / "testdata/speech" / pathlib.Path(path).name).exists()
            check(ok, f"loadgen speech sample {path} is copied into the image")


# ------------------------------------------------------------------------ Kubernetes
CRD_GROUPS = ("keda.sh/", "monitoring.coreos.com/")


def labels_match(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_k8s(repo, facts, version, rendered, recorded, alerts):
    import kubernetes_validate

    docs = [d for d in yaml.safe_load_all(rendered.read_text()) if d]
    print(f"  Kubernetes: {len(docs)} objects, schemas of Kubernetes {version} (strict)")
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
        name = f"{d['kind']}/{d['metadata']['name']}"
        if d["apiVersion"].startswith(CRD_GROUPS):
            continue  # no schema shipped for CRDs: checked structurally below
        try:
            kubernetes_validate.validate(d, version, strict=True)
            check(True, f"{name} valid")
        except kubernetes_validate.ValidationError as e:
            check(False, f"{name}: {e.message} at {'.'.join(map(str, e.path))}")
        except kubernetes_validate.SchemaNotFoundError as e:
            check(False, f"{name}: no schema ({e})")

    workloads = by_kind.get("Deployment", []) + by_kind.get("StatefulSet", [])
    protos = " ".join(p.read_text() for p in (repo / "proto/proto").rglob("*.proto"))
    package = re.search(r"^package\s+([\w.]+);", protos, re.M).group(1)
    grpc_services = {f"{package}.{s}" for s in re.findall(r"^service\s+(\w+)", protos, re.M)}

    def container(w):
        return w["spec"]["template"]["spec"]["containers"][0]

    for w in workloads:
        name = f"{w['kind']}/{w['metadata']['name']}"
        c = container(w)
        binary = c["command"][0]
        envs = {e["name"]: e for e in c.get("env", [])}
        for e in envs:
            check(e in facts[binary]["env"], f"{name}: env {e} is a flag of {binary}")
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        for probe in ("readinessProbe", "livenessProbe"):
            g = c.get(probe, {}).get("grpc")
            check(g is not None, f"{name}: {probe} is a grpc.health.v1 probe")
            if g:
                check(g["port"] == ports.get("grpc"), f"{name}: {probe} on the gRPC port")
                svc = g.get("service")
                if svc:
                    check(svc in grpc_services, f"{name}: {probe} service {svc} is in the protos")
        if w["spec"]["template"]["spec"].get("hostNetwork"):
            for p in c["ports"]:
                check(p.get("hostPort") == p["containerPort"],
                      f"{name}: hostNetwork port {p['name']} has hostPort = containerPort")

    for s in by_kind.get("Service", []):
        sel = s["spec"].get("selector", {})
        target = [w for w in workloads if labels_match(sel, w["spec"]["template"]["metadata"]["labels"])]
        check(len(target) == 1, f"Service/{s['metadata']['name']} selects one workload")
        if target:
            names = {p["name"] for p in container(target[0])["ports"]}
            for p in s["spec"]["ports"]:
                check(p["targetPort"] in names,
                      f"Service/{s['metadata']['name']} port {p['name']} targets a container port")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        sel = pdb["spec"]["selector"]["matchLabels"]
        check(any(labels_match(sel, w["spec"]["template"]["metadata"]["labels"]) for w in workloads),
              f"PodDisruptionBudget/{pdb['metadata']['name']} selects a workload")

    # Workers heartbeat to every scheduler replica, by stable name.
    sts = by_kind["StatefulSet"][0]
    worker = by_kind["Deployment"][0]
    headless = [s for s in by_kind["Service"] if s["metadata"]["name"] == sts["spec"]["serviceName"]]
    check(len(headless) == 1 and headless[0]["spec"].get("clusterIP") == "None",
          f"StatefulSet serviceName {sts['spec']['serviceName']} is a headless Service")
    if headless:
        check(headless[0]["spec"].get("publishNotReadyAddresses") is True,
              "headless Service publishes not-ready replicas (heartbeats come before readiness)")
    sched_port = {p["name"]: p["containerPort"] for p in container(sts)["ports"]}["grpc"]
    expected = [f"http://{sts['metadata']['name']}-{i}.{sts['spec']['serviceName']}:{sched_port}"
                for i in range(sts["spec"]["replicas"])]
    wenv = {e["name"]: e.get("value") for e in container(worker)["env"]}
    got = wenv["BRIDGEPOOL_SCHEDULERS"].split(",")
    check(got == expected, f"worker BRIDGEPOOL_SCHEDULERS names each of the "
          f"{sts['spec']['replicas']} scheduler replicas (expected {expected})")
    media = [e for e in container(worker)["env"] if e["name"] == "BRIDGEPOOL_MEDIA_IP"]
    check(bool(media) and media[0].get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
          == "status.hostIP", "worker media IP is the node's (status.hostIP)")
    check(worker["spec"]["template"]["spec"].get("dnsPolicy") == "ClusterFirstWithHostNet",
          "worker resolves cluster names from the host network")

    # Drain: grace > drain deadline; the alert waits longer than the drain.
    drain = seconds(wenv["BRIDGEPOOL_DRAIN_DEADLINE"])
    grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    check(grace > drain, f"worker terminationGracePeriodSeconds {grace} > drain deadline {drain:.0f}s")
    stuck = seconds(alerts["BridgepoolDrainStuck"][0]["for"])
    check(stuck > grace, f"BridgepoolDrainStuck `for` {stuck:.0f}s > grace period {grace}s")
    check("replicas" not in worker["spec"], "worker Deployment leaves replicas to the autoscaler")

    # KEDA ScaledObject.
    for so in by_kind.get("ScaledObject", []):
        spec = so["spec"]
        check(so["apiVersion"] == "keda.sh/v1alpha1", "ScaledObject apiVersion keda.sh/v1alpha1")
        ref = spec.get("scaleTargetRef", {})
        check(ref.get("name") == worker["metadata"]["name"] and ref.get("kind", "Deployment") == "Deployment",
              f"ScaledObject targets Deployment/{ref.get('name')}")
        lo, hi = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
        check(1 <= lo <= hi, f"ScaledObject replicas {lo}..{hi}")
        fb = spec.get("fallback")
        check(fb is None or lo <= fb["replicas"] <= hi, "ScaledObject fallback within min..max")
        for t in spec.get("triggers", []):
            md = t.get("metadata", {})
            check(t.get("type") == "prometheus" and {"serverAddress", "query", "threshold"} <= md.keys(),
                  "trigger is prometheus with serverAddress, query, threshold")
            check(fb is None or t.get("metricType", "AverageValue") == "AverageValue",
                  "trigger metricType AverageValue (KEDA's fallback ignores Value)")
            check(md.get("query") in recorded, f"trigger query {md.get('query')} is a recording rule")
            check(0 < float(md.get("threshold", 0)) < 1, f"trigger threshold {md.get('threshold')}")
            check(md.get("ignoreNullValues") == "false", "no data is an error (fallback), not 0")
        behavior = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior", {})
        check(behavior.get("scaleDown", {}).get("stabilizationWindowSeconds", 0) >= 300,
              "scale-in waits (stabilization >= 5 minutes)")
        try:  # the embedded behaviour is an autoscaling/v2 HPA's: validate it as one
            kubernetes_validate.validate({
                "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "x"},
                "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"}, "maxReplicas": hi,
                         "behavior": behavior}}, version, strict=True)
            check(True, "ScaledObject HPA behaviour valid as autoscaling/v2")
        except kubernetes_validate.ValidationError as e:
            check(False, f"ScaledObject HPA behaviour: {e.message}")

    # ServiceMonitor: finds both Services, and the job names the rules expect.
    for sm in by_kind.get("ServiceMonitor", []):
        spec = sm["spec"]
        sel = spec["selector"]["matchLabels"]
        svcs = [s for s in by_kind["Service"] if labels_match(sel, s["metadata"].get("labels", {}))]
        jobs = sorted(s["metadata"]["labels"].get(spec.get("jobLabel", ""), s["metadata"]["name"]) for s in svcs)
        check(jobs == ["bridgepool-scheduler", "bridgepool-worker"],
              f"ServiceMonitor selects the scheduler and worker Services, jobs {jobs}")
        for e in spec["endpoints"]:
            for s in svcs:
                check(e["port"] in {p["name"] for p in s["spec"]["ports"]},
                      f"ServiceMonitor port {e['port']} on Service/{s['metadata']['name']}")
    for pr in by_kind.get("PrometheusRule", []):
        src = yaml.safe_load((repo / "deploy/prometheus/rules.yml").read_text())
        check(pr["spec"] == src, "PrometheusRule spec is rules.yml")
    for cm in by_kind.get("ConfigMap", []):
        if "grafana_dashboard" in cm["metadata"].get("labels", {}):
            src = json.loads((repo / "deploy/grafana/dashboards/bridgepool.json").read_text())
            check(json.loads(cm["data"]["bridgepool.json"]) == src, "dashboard ConfigMap is bridgepool.json")


def canary(version):
    """The validator must reject what it should: an unknown field and a wrong type."""
    import kubernetes_validate

    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
           "spec": {"replicas": "two", "selector": {}, "template": {"spec": {"containers": [],
                                                                        "hostNetwrk": True}}}}
    try:
        kubernetes_validate.validate(bad, version, strict=True)
        check(False, "kubernetes-validate rejects a broken Deployment (canary)")
    except kubernetes_validate.ValidationError:
        check(True, "kubernetes-validate rejects a broken Deployment (canary)")


# ------------------------------------------------------------------------ compose
def check_compose(repo, facts):
    print("  compose")
    deploy = repo / "deploy"
    c = yaml.safe_load((deploy / "compose.yaml").read_text())
    services = c["services"]
    scheds = [n for n, s in services.items() if s.get("command", [None])[0] == "bridgepool-scheduler"]
    workers = [n for n, s in services.items() if s.get("command", [None])[0] == "bridgepool-worker"]
    check(len(scheds) == 2 and len(workers) == 2, f"two schedulers {scheds}, two workers {workers}")
    for n in ["prometheus", "grafana", "otel-collector", "jaeger"]:
        check(n in services, f"service {n}")
    for n in scheds + workers:
        s = services[n]
        binary = s["command"][0]
        for e in s.get("environment", {}):
            check(e in facts[binary]["env"], f"{n}: env {e} is a flag of {binary}")
    for n in workers:
        env = services[n]["environment"]
        urls = env.get("BRIDGEPOOL_SCHEDULERS", "").split(",")
        check(sorted(urls) == sorted(f"http://{s}:50051" for s in scheds), f"{n} heartbeats to every scheduler")
        grace = seconds(services[n].get("stop_grace_period", "10s"))
        # The binary's default when unset: compose's grace must outlast whichever applies.
        drain = env.get("BRIDGEPOOL_DRAIN_DEADLINE", facts["bridgepool-worker"]["default"]["BRIDGEPOOL_DRAIN_DEADLINE"])
        check(grace > seconds(drain), f"{n}: stop_grace_period {grace:.0f}s > drain deadline {drain}")
        ip = env.get("BRIDGEPOOL_MEDIA_IP")
        check(services[n]["networks"]["bridgepool"]["ipv4_address"] == ip, f"{n}: media IP is its address")
    for s in services.values():
        for v in s.get("volumes", []):
            src = v.split(":")[0]
            check((deploy / src).exists(), f"volume source {src} exists")
    prom = yaml.safe_load((deploy / "prometheus/prometheus.yml").read_text())
    jobs = {j["job_name"]: [t for sc in j["static_configs"] for t in sc["targets"]]
            for j in prom["scrape_configs"]}
    check(sorted(jobs.get("bridgepool-scheduler", [])) == sorted(f"{s}:9101" for s in scheds),
          "prometheus.yml scrapes every scheduler")
    check(sorted(jobs.get("bridgepool-worker", [])) == sorted(f"{w}:9102" for w in workers),
          "prometheus.yml scrapes every worker")
    check(prom["rule_files"] == ["rules.yml"], "prometheus.yml loads rules.yml")
    otel = yaml.safe_load((deploy / "otel/collector.yaml").read_text())
    for kind in ["receivers", "processors", "exporters"]:
        for name in otel["service"]["pipelines"]["traces"][kind]:
            check(name in otel.get(kind, {}), f"collector pipeline {kind[:-1]} {name} is defined")


# ------------------------------------------------------------------------ Grafana
def check_dashboard(repo, recorded):
    print("  Grafana dashboard")
    d = json.loads((repo / "deploy/grafana/dashboards/bridgepool.json").read_text())
    panels = d["panels"]
    ids = [p["id"] for p in panels]
    check(len(ids) == len(set(ids)), f"{len(ids)} panels, unique ids")
    check(any(v["name"] == "datasource" for v in d["templating"]["list"]), "datasource variable")
    for p in panels:
        g = p["gridPos"]
        check(g["x"] + g["w"] <= 24, f"panel {p['title']!r} fits the grid")
        for t in p.get("targets", []):
            check(t.get("expr") and t.get("refId"), f"panel {p['title']!r} target {t.get('refId')}")
            for r in re.findall(r"bridgepool:[a-z0-9_:]+", t.get("expr", "")):
                check(r in recorded, f"panel {p['title']!r}: {r} is a recording rule")
    prov = yaml.safe_load((repo / "deploy/grafana/provisioning/dashboards/bridgepool.yaml").read_text())
    path = prov["providers"][0]["options"]["path"]
    compose = (repo / "deploy/compose.yaml").read_text()
    check(f"./grafana/dashboards:{path}" in compose, "compose mounts the dashboards where the provider looks")


# ------------------------------------------------------------------------ AWS
def aws_template(repo):
    from cfnlint.decode import decode

    tpl, matches = decode(str(repo / "deploy/aws/bridgepool.yaml"))
    if matches:
        raise SystemExit(f"cannot decode the AWS template: {matches}")
    return tpl


def sub_text(node):
    """The text of a Fn::Base64 {Fn::Sub} user data."""
    sub = node["Fn::Base64"]["Fn::Sub"]
    return sub[0] if isinstance(sub, list) else sub


def render_sub(text, values):
    """Fn::Sub as CloudFormation does it, with sample values; ${!x} becomes ${x}."""
    def repl(m):
        key = m.group(1)
        if key.startswith("!"):
            return "${" + key[1:] + "}"
        return str(values.get(key, f"sample-{key.replace('::', '-')}"))
    return re.sub(r"\$\{([^}]+)\}", repl, text)


def worker_scripts(repo):
    tpl = aws_template(repo)
    res = tpl["Resources"]
    values = {k: v.get("Default", f"sample-{k}") for k, v in tpl["Parameters"].items()}
    values.update({"SchedulerIpA": "10.0.1.10", "SchedulerIpB": "10.0.2.10",
                   "ImageUri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/bridgepool:0.1.0",
                   "AWS::Region": "eu-west-1", "AWS::StackName": "bp", "AWS::AccountId": "123456789012",
                   "AWS::Partition": "aws"})
    out = {"worker-user-data": render_sub(sub_text(res["WorkerLaunchTemplate"]["Properties"]
                                                   ["LaunchTemplateData"]["UserData"]), values),
           "scheduler-user-data": render_sub(sub_text(res["SchedulerA"]["Properties"]["UserData"]), values)}
    for marker, name in [("WATCH", "drain-watch"), ("PUBLISH", "publish-capacity")]:
        m = re.search(rf"<<'{marker}'\n(.*?)\n{marker}\n", out["worker-user-data"], re.S)
        out[name] = m.group(1) + "\n" if m else ""
    return tpl, out


def check_aws(repo, facts, alerts):
    print("  AWS template, cross-checks")
    tpl, scripts = worker_scripts(repo)
    res = tpl["Resources"]
    p = tpl["Parameters"]
    check(scripts["drain-watch"] and scripts["publish-capacity"], "drain watcher and publisher found")
    asg = res["WorkerGroup"]["Properties"]
    types = p["WorkerInstanceTypes"]["Default"].split(",")
    check(all(re.match(r"c(5n|6gn|7gn)\.", t) for t in types), f"network-optimized worker types {types}")
    hooks = asg["LifecycleHookSpecificationList"]
    term = [h for h in hooks if h["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"]
    check(len(term) == 1 and term[0]["DefaultResult"] == "CONTINUE", "termination hook, CONTINUE on timeout")
    wud = scripts["worker-user-data"]
    if term:
        check(f"HOOK={term[0]['LifecycleHookName']}" in wud, "the watcher completes the hook by its name")
        check("record-lifecycle-action-heartbeat" in scripts["drain-watch"]
              and int(term[0]["HeartbeatTimeout"]) > 60,
              "the watcher heartbeats the hook more often than its timeout (every 60 s)")
    check("spot/instance-action" in scripts["drain-watch"], "the watcher reads spot interruption notices")
    check("systemctl stop bridgepool-worker" in scripts["drain-watch"], "the watcher drains with SIGTERM")
    check(asg.get("CapacityRebalance") is True, "capacity rebalancing (drain before the spot notice)")
    name = asg["AutoScalingGroupName"]["Fn::Sub"]
    check(f"ASG={name}" in sub_text(res["WorkerLaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]),
          "scripts name the group as it is named")
    pol = res["WorkerRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    check(pol[0]["Resource"]["Fn::Sub"].endswith(f"autoScalingGroupName/{name}"), "IAM allows the hook on that group")
    ns = pol[1]["Condition"]["StringEquals"]["cloudwatch:namespace"]
    metrics = res["WorkerScaling"]["Properties"]["TargetTrackingConfiguration"]["CustomizedMetricSpecification"]["Metrics"]
    for m in metrics:
        if "MetricStat" in m:
            mm = m["MetricStat"]["Metric"]
            check(mm["Namespace"] == ns and f"MetricName={mm['MetricName']}," in scripts["publish-capacity"]
                  and f"--namespace {ns}" in scripts["publish-capacity"],
                  f"scaling metric {mm['MetricName']} is what the workers publish, namespace {ns}")
    env = dict(re.findall(r"^(BRIDGEPOOL_[A-Z_]+)=(.*)$", wud, re.M))
    for e in env:
        check(e in facts["bridgepool-worker"]["env"], f"worker env {e} is a flag")
    drain = seconds(env["BRIDGEPOOL_DRAIN_DEADLINE"])
    check(seconds(alerts["BridgepoolDrainStuck"][0]["for"]) > drain + 120,
          "BridgepoolDrainStuck waits longer than the drain and the stop timeouts")
    stop = re.search(r"stop_s=\$\(\((\d+) \+ (\d+)\)\)", wud)
    unit = re.search(r"unit_stop_s=\$\(\((\d+) \+ (\d+)\)\)", wud)
    check(bool(stop and unit) and int(stop.group(1)) == drain
          and 0 < int(stop.group(2)) < int(unit.group(2)),
          "drain deadline < docker stop timeout < systemd stop timeout")
    check("--time $stop_s" in wud and "TimeoutStopSec=$unit_stop_s" in wud, "both timeouts are used")
    sched_urls = env["BRIDGEPOOL_SCHEDULERS"].split(",")
    check(sched_urls == ["http://10.0.1.10:50051", "http://10.0.2.10:50051"],
          "workers heartbeat to both schedulers' fixed addresses")
    tg = res["SchedulerTargetGroup"]["Properties"]
    check({t["Id"]["Ref"] for t in tg["Targets"]} == {"SchedulerA", "SchedulerB"}, "the NLB targets both schedulers")


# ------------------------------------------------------------------------ kustomize fallback
CLUSTER_SCOPED = {"Namespace"}


def render_k8s(repo):
    """What `kubectl kustomize deploy/k8s` renders, for machines without kubectl. Only the
    features deploy/k8s/kustomization.yaml uses; anything else is an error, not ignored."""
    base = repo / "deploy/k8s"
    k = yaml.safe_load((base / "kustomization.yaml").read_text())
    known = {"apiVersion", "kind", "namespace", "labels", "resources", "images"}
    if set(k) - known:
        raise SystemExit(f"render fallback: unsupported kustomization keys {sorted(set(k) - known)}")
    docs = []
    for r in k["resources"]:
        docs += [d for d in yaml.safe_load_all((base / r).read_text()) if d]
    images = {i["name"]: f"{i.get('newName', i['name'])}:{i['newTag']}" for i in k.get("images", [])}
    for d in docs:
        md = d.setdefault("metadata", {})
        if k.get("namespace") and d["kind"] not in CLUSTER_SCOPED:
            md["namespace"] = k["namespace"]
        for group in k.get("labels", []):
            if group.get("includeSelectors") or group.get("includeTemplates"):
                raise SystemExit("render fallback: labels into selectors/templates not supported")
            md.setdefault("labels", {}).update(group["pairs"])
        spec = d.get("spec", {})
        pod = spec.get("template", {}).get("spec", {})
        for c in pod.get("containers", []) + pod.get("initContainers", []):
            c["image"] = images.get(c["image"], c["image"])
    return docs


def same_objects(a, b):
    key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
    return sorted(a, key=key) == sorted(b, key=key)


def main():
    if sys.argv[1] == "--render-k8s":
        docs = render_k8s(pathlib.Path(sys.argv[2]))
        if len(sys.argv) > 3:  # compare with kubectl's rendering
            theirs = [d for d in yaml.safe_load_all(pathlib.Path(sys.argv[3]).read_text()) if d]
            if not same_objects(docs, theirs):
                raise SystemExit("render fallback differs from kubectl kustomize")
            print("  the fallback renderer agrees with kubectl kustomize")
            return
        print(yaml.safe_dump_all(docs, sort_keys=False), end="")
        return
    if sys.argv[1] == "--extract-aws-scripts":
        repo, out = pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
        out.mkdir(parents=True, exist_ok=True)
        for name, text in worker_scripts(repo)[1].items():
            (out / name).write_text(text)
            (out / name).chmod(0o755)
        return
    repo, bindir, version, rendered = (pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]),
                                       sys.argv[3], pathlib.Path(sys.argv[4]))
    facts = binary_facts(bindir)
    _, recorded, alerts = rules(repo)
    for a in alerts:
        anchor = a.lower()
        for r in alerts[a]:
            check(r["annotations"]["runbook_url"] == f"docs/operations.md#{anchor}",
                  f"alert {a} links its runbook")
    ops = (repo / "docs/operations.md").read_text()
    for a in alerts:
        check(re.search(rf"^#+ {a}\s*$", ops, re.M) is not None, f"docs/operations.md has a section {a}")
    check_dockerfile(repo, facts)
    canary(version)
    check_k8s(repo, facts, version, rendered, recorded, alerts)
    check_compose(repo, facts)
    check_dashboard(repo, recorded)
    check_aws(repo, facts, alerts)
    print(f"  {passed[0]} structural checks passed, {len(failures)} failed")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
