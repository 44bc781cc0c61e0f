#!/usr/bin/env bash
# Starts PostgreSQL and Redis on loopback from Debian's packages, for the tests that need real
# ones. Idempotent: a server that already answers is left alone. The ports are not the standard
# ones so that `cargo xtask obs-up` (which publishes 5432 and 6379) can run beside them.
# Prints nothing else but progress; the caller exports:
#   DATABASE_URL=postgres://ampel:ampel@127.0.0.1:15432/ampel  REDIS_URL=redis://127.0.0.1:16379
set -euo pipefail

state=/var/tmp/ampel-ci
mkdir -p "$state"

need=()
command -v redis-server >/dev/null || need+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  echo "services: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Polls `check` until it succeeds or `seconds` pass; no fixed sleeps.
wait_for() {
  local what=$1 seconds=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then echo "services: $what did not come up in ${seconds}s" >&2; return 1; fi
    sleep 0.2
  done
}

if ! redis-cli -h 127.0.0.1 -p 16379 ping >/dev/null 2>&1; then
  echo "services: starting redis on 127.0.0.1:16379"
  redis-server --bind 127.0.0.1 --port 16379 --daemonize yes --save '' --appendonly no \
    --logfile "$state/redis.log" --dir "$state"
  wait_for redis 20 redis-cli -h 127.0.0.1 -p 16379 ping
fi

pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
if ! "$pgbin/pg_isready" -h 127.0.0.1 -p 15432 -q; then
  data="$state/pg"
  if [ ! -f "$data/PG_VERSION" ]; then
    echo "services: creating a PostgreSQL cluster in $data"
    rm -rf "$data"; mkdir -p "$data"; chown postgres:postgres "$data"
    printf 'ampel\n' >"$state/pwfile"; chown postgres "$state/pwfile"
    runuser -u postgres -- "$pgbin/initdb" -D "$data" -U ampel --pwfile="$state/pwfile" \
      --auth=scram-sha-256 >/dev/null
  fi
  echo "services: starting PostgreSQL on 127.0.0.1:15432"
  install -o postgres -d "$state/pgrun"
  # Tests create a database each; more connections than the default 100 for parallel tests.
  runuser -u postgres -- "$pgbin/pg_ctl" -D "$data" -l "$state/pgrun/postgres.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -c port=15432 -c max_connections=300 -c unix_socket_directories=$state/pgrun -c fsync=off" start >/dev/null
  wait_for postgres 60 "$pgbin/pg_isready" -h 127.0.0.1 -p 15432 -q
  PGPASSWORD=ampel psql -h 127.0.0.1 -p 15432 -U ampel -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='ampel'" | grep -q 1 \
    || PGPASSWORD=ampel psql -h 127.0.0.1 -p 15432 -U ampel -d postgres -qc "CREATE DATABASE ampel"
fi
echo "services: PostgreSQL and Redis are up"
