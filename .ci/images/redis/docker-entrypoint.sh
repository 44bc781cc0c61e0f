#!/bin/bash
# Stand-in for the official redis image's entrypoint. Upstream compiles redis
# with protected mode off; Debian's binary has it on, which refuses clients
# coming through a published port. So `--protected-mode no` is inserted
# right after the (optional) config file; options given later still win.
set -euo pipefail
if [[ "${1:-}" == -* || "${1:-}" == *.conf ]]; then set -- redis-server "$@"; fi
if [[ "${1:-}" == redis-server ]]; then
  shift
  if [[ $# -gt 0 && "$1" != -* ]]; then
    set -- redis-server "$1" --protected-mode no "${@:2}"
  else
    set -- redis-server --protected-mode no "$@"
  fi
  if [[ "$(id -u)" == 0 ]]; then
    chown redis:redis . 2>/dev/null || true
    exec setpriv --reuid=redis --regid=redis --init-groups "$@"
  fi
fi
exec "$@"
