#!/bin/bash
# shellcheck disable=SC1090  # init scripts are sourced, as upstream does
# Minimal stand-in for the official postgres image's entrypoint.
set -euo pipefail

# `docker run IMAGE -c foo=bar` => postgres -c foo=bar (as upstream)
if [[ "${1:-}" == -* ]]; then set -- postgres "$@"; fi

if [[ "${1:-}" == postgres ]]; then
  if [[ "$(id -u)" == 0 ]]; then
    # Fix ownership of (possibly mounted) data/socket dirs, then drop root.
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
  fi

  if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
    : "${POSTGRES_USER:=postgres}"
    : "${POSTGRES_DB:=$POSTGRES_USER}"
    AUTH=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
    if [[ -z "${POSTGRES_PASSWORD:-}" && "$AUTH" != trust ]]; then
      echo "error: POSTGRES_PASSWORD is not set (or set POSTGRES_HOST_AUTH_METHOD=trust)" >&2
      exit 1
    fi
    pwfile=$(mktemp)
    printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --encoding=UTF8 \
      --locale=C.UTF-8 --auth-local=trust --auth-host="$AUTH" \
      ${POSTGRES_INITDB_ARGS:-} -D "$PGDATA" >&2
    rm -f "$pwfile"
    # Remote clients authenticate with a password (as upstream).
    echo "host all all all $AUTH" >>"$PGDATA/pg_hba.conf"
    # Temporary server on the unix socket only, to create the db and run init scripts.
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=/var/run/postgresql" -w start >&2
    psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres)
    if [[ "$POSTGRES_DB" != postgres ]]; then
      "${psql[@]}" --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";' >&2
    fi
    for f in /docker-entrypoint-initdb.d/*; do
      [[ -e "$f" ]] || continue
      case "$f" in
        # sourced like upstream (whose entrypoint runs without -u)
        *.sh)     echo "running $f" >&2; set +u; . "$f"; set -u ;;
        *.sql)    echo "running $f" >&2; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" >&2 ;;
        *.sql.gz) echo "running $f" >&2; gunzip -c "$f" | "${psql[@]}" --dbname "$POSTGRES_DB" >&2 ;;
        *)        echo "ignoring $f" >&2 ;;
      esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >&2
    echo "PostgreSQL init process complete; ready for start up." >&2
  fi
  # listen on all interfaces; logs go to stderr (initdb's default config).
  set -- postgres -c "listen_addresses=*" "${@:2}"
fi
exec "$@"
