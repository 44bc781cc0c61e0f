#!/usr/bin/env bash
# Smoke test of the local stack on this machine: `cargo xtask obs-up --peers` on Podman with the
# local images, `cargo xtask status` (every service must answer), `cargo xtask obs-down --volumes`.
# Prints how long each obs-up took until every service answered, and the median.
#
#   bash .ci/obs-smoke.sh                  # one run (CI)
#   OBS_SMOKE_RUNS=3 bash .ci/obs-smoke.sh # the measurement: median of three
#
# Why --peers: no Grafana, Loki or Tempo image can be had here (.ci/README.md); Jaeger and
# VictoriaLogs stand in. Why -prebuilt: no rust: image either, so obs-up compiles the binaries on
# the host and the Dockerfile only packages them on localhost/debian:bookworm.
# Runs as root; idempotent; leaves no container or volume of the stack behind, even on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${OBS_SMOKE_RUNS:-1}
say() { printf '[obs-smoke] %s\n' "$*"; }

bash .ci/podman.sh
export DOCKER_HOST=unix:///run/podman/podman.sock
bash .ci/images.sh
# shellcheck source=/dev/null
source .ci/images.env
export AMPEL_APP_TARGET_SUFFIX=-prebuilt

# Compile xtask first so its build time is not counted as start-up time.
cargo build --quiet -p xtask

cleanup() { cargo xtask obs-down --volumes >/dev/null 2>&1 || true; }
trap cleanup EXIT
# A stack left behind by an earlier, interrupted run would make the first obs-up a no-op.
cleanup
# An app image left by an earlier run would test old code: package this commit's binaries first.
say "obs-up --build: this commit's binaries into the app images (not timed)"
cargo xtask obs-up --peers --build
cleanup

times_ms=()
for ((run = 1; run <= runs; run++)); do
  say "run $run/$runs: obs-up"
  started=$(date +%s%N)
  cargo xtask obs-up --peers
  finished=$(date +%s%N)
  times_ms+=("$(((finished - started) / 1000000))")
  say "run $run/$runs: status"
  cargo xtask status
  say "run $run/$runs: obs-down"
  cargo xtask obs-down --volumes
done

seconds() { printf '%d.%03d' "$(($1 / 1000))" "$(($1 % 1000))"; }
mapfile -t sorted < <(printf '%s\n' "${times_ms[@]}" | sort -n)
list=""
for ms in "${sorted[@]}"; do list+="$(seconds "$ms") "; done
say "obs-up until every service answered, sorted (s): $list"
say "median of $runs: $(seconds "${sorted[$(((runs - 1) / 2))]}") s"
