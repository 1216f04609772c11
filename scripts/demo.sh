#!/usr/bin/env bash
# The README's first command: builds the workspace's loadgen (which embeds a scheduler and a worker
# with one media thread per core), starts that pool on loopback, runs a short load against it and
# prints the report (loss, latency, PESQ per direction of the sampled calls, CPU); the JSON and
# HTML reports land in target/demo/. Extra arguments go to
# `bridgepool-loadgen demo` (e.g. --calls 100 --seconds 20 --passthrough-share 0.5; an impaired
# run: --calls 4 --seconds 8 --quality-calls 4 --impair-b-tx jitter=30/5-40 --jitter-buffer adaptive,
# or --jitter-buffer off to hear the difference).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --locked -q -p bridgepool-loadgen --bin bridgepool-loadgen
exec target/debug/bridgepool-loadgen demo "$@"
