#!/usr/bin/env bash
# Lints what cargo does not see: the GitHub workflows (actionlint, with shellcheck on their
# `run:` scripts) and flake.nix (Nix's parser). Idempotent; installs what it needs:
#   - actionlint, pinned, built from the Go module proxy once and cached by version;
#   - shellcheck and nix-instantiate (Debian's nix-bin) with apt when missing.
#
#   bash .ci/lint.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ACTIONLINT_VERSION=v1.7.12

# apt as root here, through sudo on a CI runner's normal user.
apt_install() {
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
  if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null; then
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  fi
}

# The same cache as .ci/images.sh where it is writable (root), else the user's.
cache=${AMPEL_CI_CACHE:-/var/cache/ampel-ci}
if ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/ampel-ci
  mkdir -p "$cache"
fi

actionlint_dir=$cache/bin/actionlint-$ACTIONLINT_VERSION
if [ ! -x "$actionlint_dir/actionlint" ]; then
  if ! command -v go >/dev/null; then
    echo "lint.sh: go is not on PATH; install Go >= 1.25 (or run \`nix develop\`), then run this again" >&2
    exit 1
  fi
  echo "==> building actionlint $ACTIONLINT_VERSION into $actionlint_dir"
  # GOTOOLCHAIN=local: use the Go that is installed, never download another one.
  GOBIN=$actionlint_dir GOTOOLCHAIN=local GOFLAGS=-mod=mod \
    GOMODCACHE=$cache/gomod GOCACHE=$cache/go-build \
    go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
fi

command -v shellcheck >/dev/null || apt_install shellcheck
command -v nix-instantiate >/dev/null || apt_install nix-bin

echo "==> actionlint $ACTIONLINT_VERSION: .github/workflows"
"$actionlint_dir/actionlint" -shellcheck "$(command -v shellcheck)"

echo "==> nix-instantiate --parse flake.nix"
nix-instantiate --parse flake.nix >/dev/null
# flake.lock is JSON that nix reads; a hand edit that breaks it should fail here, not in `nix develop`.
python3 -c 'import json, sys; json.load(open(sys.argv[1]))' flake.lock

echo "lint: ok"
