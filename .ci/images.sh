#!/usr/bin/env bash
# Build the local container images used by CI/dev (no registry here, so
# nothing can be pulled): a Debian base from debootstrap, Debian-packaged
# servers on top of it, and Jaeger, VictoriaLogs and the OpenTelemetry Collector built from Go
# modules.
#
# Each image carries a label with a hash of its inputs (its folder under
# .ci/images/, the base image id, pinned versions); an image whose label
# matches is skipped, so a second run takes a second or two.
# Needs the engine from .ci/podman.sh. Writes .ci/images.env.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IMAGES=$HERE/images
CACHE=${AMPEL_CI_CACHE:-/var/cache/ampel-ci}   # go caches + built binaries
LABEL=ampel.ci.inputs

BASE=localhost/debian:bookworm
JAEGER_VERSION=v1.76.0        # Go module tag; the same release is Jaeger v2.13.0
JAEGER_V2_VERSION=v2.13.0
VL_VERSION=v1.52.1

say() { echo "[images.sh] $*" >&2; }
command -v podman >/dev/null || { say "podman missing: run .ci/podman.sh first"; exit 1; }
[[ -d /usr/local/go/bin ]] && PATH=$PATH:/usr/local/go/bin

mkdir -p "$CACHE/bin"
# One run at a time (two CI jobs or a dev + CI on one machine).
exec 9>"$CACHE/images.lock"
flock 9

# sha256 over every file in DIR (names + contents) and any extra strings.
inputs_hash() {
  local dir=$1; shift
  { (cd "$dir" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    printf '%s\n' "$@"; } | sha256sum | cut -d' ' -f1
}
label_of() { podman image inspect --format "{{ index .Labels \"$LABEL\" }}" "$1" 2>/dev/null || true; }

# ---------------------------------------------------------------- base image
# Host apt settings that builds inside containers need too: the host's
# Debian sources (this machine's mirror is a dated snapshot, including
# -updates/-security) and Acquire options (proxy, Check-Valid-Until=false:
# the snapshot's Release files are past their Valid-Until date).
host_apt_files() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/debian.sources; do
    [[ -s $f ]] && echo "$f"
  done
  grep -l -E 'Proxy|Check-Valid-Until|Check-Date' /etc/apt/apt.conf.d/* 2>/dev/null || true
}

build_base() {
  local files hash dir t=$SECONDS
  mapfile -t files < <(host_apt_files)
  hash=$(inputs_hash "$IMAGES/debian" "debootstrap bookworm minbase recipe=1" \
         "$(for f in "${files[@]}"; do echo "== $f"; cat "$f"; done)")
  if [[ "$(label_of "$BASE")" == "$hash" ]]; then say "$BASE up to date"; return; fi
  say "debootstrap bookworm (minbase) -> $BASE"
  dir=$(mktemp -d /var/tmp/ampel-debootstrap.XXXXXX)
  # shellcheck disable=SC2064
  trap "rm -rf '$dir'" EXIT
  debootstrap --variant=minbase bookworm "$dir" http://deb.debian.org/debian \
    >"$CACHE/debootstrap.log" 2>&1 || { tail -30 "$CACHE/debootstrap.log"; exit 1; }
  install -m 755 "$IMAGES/debian/policy-rc.d" "$dir/usr/sbin/policy-rc.d"
  install -m 644 "$IMAGES/debian/docker-clean.conf" "$dir/etc/apt/apt.conf.d/docker-clean"
  install -m 644 "$IMAGES/debian/docker-excludes" "$dir/etc/dpkg/dpkg.cfg.d/docker-excludes"
  for f in "${files[@]}"; do
    [[ $f == /etc/apt/sources.list.d/debian.sources ]] && : >"$dir/etc/apt/sources.list"
    install -D -m 644 "$f" "$dir$f"
  done
  # Podman provides these at run time; don't bake in the host's.
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb
  rm -f "$dir/etc/hostname" "$dir/etc/resolv.conf"
  tar -C "$dir" -c . | podman import -q \
    --change 'CMD ["/bin/bash"]' --change "LABEL $LABEL=$hash" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    - "$BASE" >/dev/null
  rm -rf "$dir"; trap - EXIT
  say "built $BASE in $((SECONDS - t)) s"
}

# ------------------------------------------------------------- go binaries
# go_bin MODULE VERSION PKG NAME LDFLAGS -> prints the path of the binary.
# Built from the module's own directory (as main module) rather than with
# `go install mod@ver`, which refuses modules whose go.mod has replace
# directives (Jaeger's does). Cached per version; caches are optional.
go_bin() {
  local module=$1 version=$2 pkg=$3 name=$4 ldflags=$5 out dir t=$SECONDS
  out=$CACHE/bin/$name-$version/$name
  if [[ -x $out ]]; then echo "$out"; return; fi
  command -v go >/dev/null || { say "go not found"; exit 1; }
  export GOCACHE=$CACHE/go-build GOMODCACHE=$CACHE/gomod CGO_ENABLED=0
  say "go build $module@$version ($pkg)"
  local log=$CACHE/go-$name.log
  dir=$(cd / && go mod download -json "$module@$version" 2>"$log" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [[ -d $dir ]] || { cat "$log" >&2; say "go mod download $module@$version failed"; exit 1; }
  mkdir -p "$(dirname "$out")"
  (cd "$dir" && go build -trimpath -mod=readonly -ldflags "$ldflags" -o "$out.tmp" "./$pkg") >>"$log" 2>&1 \
    || { tail -40 "$log" >&2; say "go build $module@$version failed"; exit 1; }
  mv "$out.tmp" "$out"
  say "built $name $version in $((SECONDS - t)) s"
  echo "$out"
}

prep_jaeger() {
  cp "$(go_bin github.com/jaegertracing/jaeger "$JAEGER_VERSION" cmd/jaeger jaeger \
    "-s -w -X github.com/jaegertracing/jaeger/internal/version.latestVersion=$JAEGER_V2_VERSION")" "$1/jaeger"
}
prep_victorialogs() {
  cp "$(go_bin github.com/VictoriaMetrics/VictoriaLogs "$VL_VERSION" app/victoria-logs victoria-logs \
    "-s -w -X github.com/VictoriaMetrics/VictoriaMetrics/lib/buildinfo.Version=victoria-logs-$VL_VERSION")" "$1/victoria-logs"
}

# The OpenTelemetry Collector: the collector builder (OCB, at the manifest's release) compiles
# only the manifest's components; every module is of that one release (strict versioning).
# Cached per hash of the manifest and the Go version; prints the binary's path.
otelcol_bin() {
  local manifest=$IMAGES/otel-collector/manifest.yaml version hash out builder work log t=$SECONDS
  version=$(sed -n 's/^  version: *\([0-9.]*\)$/\1/p' "$manifest")
  [[ -n $version ]] || { say "no dist.version in $manifest"; exit 1; }
  hash=$({ cat "$manifest"; go version; } | sha256sum | cut -c1-12)
  out=$CACHE/bin/otelcol-ampel-$version-$hash/otelcol-ampel
  if [[ -x $out ]]; then echo "$out"; return; fi
  export GOCACHE=$CACHE/go-build GOMODCACHE=$CACHE/gomod CGO_ENABLED=0 GOTOOLCHAIN=local
  log=$CACHE/go-otelcol.log
  builder=$CACHE/bin/ocb-$version/builder
  if [[ ! -x $builder ]]; then
    say "go install the collector builder v$version"
    GOBIN=$(dirname "$builder") go install "go.opentelemetry.io/collector/cmd/builder@v$version" >"$log" 2>&1 \
      || { tail -40 "$log" >&2; say "collector builder install failed"; exit 1; }
  fi
  say "building the collector $version (OCB; log: $log)"
  work=$(mktemp -d /var/tmp/ampel-otelcol.XXXXXX)
  cp "$manifest" "$work/"
  (cd "$work" && "$builder" --config manifest.yaml --skip-strict-versioning=false) >>"$log" 2>&1 \
    || { tail -40 "$log" >&2; rm -rf "$work"; say "collector build failed"; exit 1; }
  mkdir -p "$(dirname "$out")"
  mv "$work/_build/otelcol-ampel" "$out"
  rm -rf "$work"
  say "built otelcol-ampel $version in $((SECONDS - t)) s"
  echo "$out"
}
prep_otel_collector() {
  cp "$(otelcol_bin)" "$1/otelcol-ampel"
}

# --------------------------------------------------------- derived images
# build_image DIRNAME REF [PREP_FN] [EXTRA_HASH_INPUT...]
build_image() {
  local name=$1 ref=$2 prep=${3:-} hash ctx t=$SECONDS
  shift $(($# < 3 ? $# : 3))
  hash=$(inputs_hash "$IMAGES/$name" "base=$(podman image inspect --format '{{.Id}}' "$BASE")" "$@")
  if [[ "$(label_of "$ref")" == "$hash" ]]; then say "$ref up to date"; return; fi
  say "building $ref"
  ctx=$(mktemp -d /var/tmp/ampel-ctx.XXXXXX)
  cp -a "$IMAGES/$name/." "$ctx/"
  [[ -n $prep ]] && "$prep" "$ctx"
  # --pull=never: everything is local; a pull attempt would only fail.
  podman build --pull=never --label "$LABEL=$hash" -t "$ref" -f "$ctx/Containerfile" "$ctx" \
    >"$CACHE/build-$name.log" 2>&1 || { tail -40 "$CACHE/build-$name.log"; rm -rf "$ctx"; exit 1; }
  rm -rf "$ctx"
  say "built $ref in $((SECONDS - t)) s"
}

T0=$SECONDS
build_base
build_image postgres          localhost/ampel-ci/postgres:15
build_image redis             localhost/ampel-ci/redis:7
build_image prometheus        localhost/ampel-ci/prometheus:2
build_image alertmanager      localhost/ampel-ci/alertmanager:0.25
build_image postgres-exporter localhost/ampel-ci/postgres-exporter:latest
build_image redis-exporter    localhost/ampel-ci/redis-exporter:latest
build_image jaeger            localhost/ampel-ci/jaeger:1.76.0 prep_jaeger "jaeger=$JAEGER_VERSION"
build_image victorialogs      localhost/ampel-ci/victorialogs:1.52.1 prep_victorialogs "victorialogs=$VL_VERSION"
build_image otel-collector    localhost/ampel-ci/otel-collector:0.161.0 prep_otel_collector
# A stable name for `cargo xtask check`'s `validate` of the collector config (AMPEL_OTELCOL).
ln -sfn "$(otelcol_bin)" "$CACHE/bin/otelcol-ampel"
# Drop superseded (now untagged) builds of our images.
podman image prune -f --filter "label=$LABEL" >/dev/null 2>&1 || true
# The binaries are kept per version in $CACHE/bin; Go's build cache (1.7 GB after Jaeger and
# VictoriaLogs) would only speed up a rebuild at a version bump, and CI disks can be short.
rm -rf "$CACHE/go-build"

cat >"$HERE/images.env" <<'EOF'
# Local images built by .ci/images.sh (source this file).
export AMPEL_RUNTIME_BASE_IMAGE=localhost/debian:bookworm
export AMPEL_POSTGRES_IMAGE=localhost/ampel-ci/postgres:15
export AMPEL_REDIS_IMAGE=localhost/ampel-ci/redis:7
export AMPEL_PROMETHEUS_IMAGE=localhost/ampel-ci/prometheus:2
export AMPEL_ALERTMANAGER_IMAGE=localhost/ampel-ci/alertmanager:0.25
export AMPEL_POSTGRES_EXPORTER_IMAGE=localhost/ampel-ci/postgres-exporter:latest
export AMPEL_REDIS_EXPORTER_IMAGE=localhost/ampel-ci/redis-exporter:latest
export AMPEL_JAEGER_IMAGE=localhost/ampel-ci/jaeger:1.76.0
export AMPEL_VICTORIALOGS_IMAGE=localhost/ampel-ci/victorialogs:1.52.1
export AMPEL_OTEL_COLLECTOR_IMAGE=localhost/ampel-ci/otel-collector:0.161.0
# The same images for otel-testkit's own container tests (crates/testkit).
export OTEL_TESTKIT_PROMETHEUS_IMAGE=localhost/ampel-ci/prometheus:2
export OTEL_TESTKIT_JAEGER_IMAGE=localhost/ampel-ci/jaeger:1.76.0
export OTEL_TESTKIT_VICTORIALOGS_IMAGE=localhost/ampel-ci/victorialogs:1.52.1
EOF
# The collector binary the image holds, for `cargo xtask check` (its cache folder may be moved).
echo "export AMPEL_OTELCOL=$CACHE/bin/otelcol-ampel" >>"$HERE/images.env"
say "images ready in $((SECONDS - T0)) s; env: $HERE/images.env"
