#!/usr/bin/env bash
# Smoke test of the images from .ci/images.sh (~20-30 s): start each one with
# its port published on 127.0.0.1, then check it really serves: psql with a
# password, redis PING, prometheus ready, exporters report pg_up/redis_up for
# the db containers (reached by name on a user-defined network), one OTLP
# trace through Jaeger, one log through VictoriaLogs (Loki JSON and OTLP
# protobuf). Polls with deadlines; cleans up after itself.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=/dev/null
source "$HERE/images.env"

ID=ampel-smoke-$$
NET=$ID
PGPASS=smoke-secret
T0=$SECONDS
say() { echo "[smoke] $(printf '%3d' $((SECONDS - T0)))s $*"; }
fail() { echo "[smoke] FAIL: $*" >&2; exit 1; }

cleanup() {
  podman rm -f -t 0 "$ID-pg" "$ID-redis" "$ID-prom" "$ID-pgexp" "$ID-redisexp" "$ID-jaeger" "$ID-vl" >/dev/null 2>&1 || true
  podman network rm -f "$NET" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# wait_for DESC SECONDS CMD... : retry CMD until it succeeds or the deadline passes.
wait_for() {
  local desc=$1 limit=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "$desc (not within ${limit}s)"
    sleep 0.25
  done
  say "ok: $desc"
}
# host port that PORT/tcp of container NAME is published on
hport() { podman port "$1" "$2/tcp" 2>/dev/null | head -1 | sed 's/.*://'; }
run() { local name=$1; shift; podman run -d --name "$ID-$name" --network "$NET" "$@" >/dev/null; }

podman network create "$NET" >/dev/null

run pg -p 127.0.0.1::5432 -e POSTGRES_USER=ampel -e POSTGRES_PASSWORD=$PGPASS -e POSTGRES_DB=ampel_smoke "$AMPEL_POSTGRES_IMAGE"
run redis -p 127.0.0.1::6379 "$AMPEL_REDIS_IMAGE"
run prom -p 127.0.0.1::9090 "$AMPEL_PROMETHEUS_IMAGE"
run jaeger -p 127.0.0.1::4318 -p 127.0.0.1::16686 -p 127.0.0.1::4317 "$AMPEL_JAEGER_IMAGE"
run vl -p 127.0.0.1::9428 "$AMPEL_VICTORIALOGS_IMAGE"
run pgexp -p 127.0.0.1::9187 \
  -e DATA_SOURCE_NAME="postgresql://ampel:$PGPASS@$ID-pg:5432/ampel_smoke?sslmode=disable" "$AMPEL_POSTGRES_EXPORTER_IMAGE"
run redisexp -p 127.0.0.1::9121 -e REDIS_ADDR="redis://$ID-redis:6379" "$AMPEL_REDIS_EXPORTER_IMAGE"
say "containers started"

# --- postgres: password auth over the published port ---
PG=$(hport "$ID-pg" 5432)
psql_ok() {
  if command -v psql >/dev/null; then
    PGPASSWORD=$PGPASS PGCONNECT_TIMEOUT=2 psql -h 127.0.0.1 -p "$PG" -U ampel -d ampel_smoke -tAc 'select 42' | grep -qx 42
  else # no client on the host: use the image's psql over TCP on the network
    podman run --rm --network "$NET" -e PGPASSWORD=$PGPASS "$AMPEL_POSTGRES_IMAGE" \
      psql -h "$ID-pg" -U ampel -d ampel_smoke -tAc 'select 42' | grep -qx 42
  fi
}
wait_for "postgres: psql with password on 127.0.0.1:$PG" 60 psql_ok
wait_for "postgres: pg_isready in container" 10 podman exec "$ID-pg" pg_isready -U ampel -d ampel_smoke

# --- redis: PING over the published port ---
RP=$(hport "$ID-redis" 6379)
redis_ping() { exec 3<>"/dev/tcp/127.0.0.1/$RP" && printf 'PING\r\n' >&3 && timeout 2 head -c 5 <&3 | grep -q PONG; local rc=$?; exec 3>&-; return $rc; }
wait_for "redis: PING on 127.0.0.1:$RP" 30 redis_ping
wait_for "redis: redis-cli in container" 10 podman exec "$ID-redis" redis-cli ping

# --- prometheus ---
PP=$(hport "$ID-prom" 9090)
wait_for "prometheus: /-/ready on 127.0.0.1:$PP" 60 curl -fsS "http://127.0.0.1:$PP/-/ready"
wait_for "prometheus: promtool in image" 10 podman exec "$ID-prom" promtool check config /etc/prometheus/prometheus.yml

# --- exporters, pointed at the containers above by name ---
EP=$(hport "$ID-pgexp" 9187)
wait_for "postgres-exporter: pg_up 1 on 127.0.0.1:$EP" 60 \
  bash -c "curl -fsS http://127.0.0.1:$EP/metrics | grep -qx 'pg_up 1'"
EP=$(hport "$ID-redisexp" 9121)
wait_for "redis-exporter: redis_up 1 on 127.0.0.1:$EP" 60 \
  bash -c "curl -fsS http://127.0.0.1:$EP/metrics | grep -qx 'redis_up 1'"

# --- jaeger: one OTLP/HTTP JSON span in, read back via the query API v3 ---
JO=$(hport "$ID-jaeger" 4318); JQ=$(hport "$ID-jaeger" 16686)
TRACE=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n'); SPAN=${TRACE:0:16}
NOW=$(date +%s%N)
SPANJSON=$(cat <<EOF
{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"ampel-smoke"}}]},
 "scopeSpans":[{"scope":{"name":"smoke"},"spans":[{"traceId":"$TRACE","spanId":"$SPAN","name":"smoke-span",
 "kind":1,"startTimeUnixNano":"$((NOW - 1000000))","endTimeUnixNano":"$NOW"}]}]}]}
EOF
)
wait_for "jaeger: OTLP/HTTP POST /v1/traces on 127.0.0.1:$JO" 60 \
  curl -fsS -H 'Content-Type: application/json' -d "$SPANJSON" "http://127.0.0.1:$JO/v1/traces"
wait_for "jaeger: GET /api/v3/traces/$TRACE on 127.0.0.1:$JQ" 30 \
  bash -c "curl -fsS http://127.0.0.1:$JQ/api/v3/traces/$TRACE | grep -q smoke-span"
JG=$(hport "$ID-jaeger" 4317)
wait_for "jaeger: OTLP gRPC port 4317 accepts connections (127.0.0.1:$JG)" 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$JG"

# --- victorialogs: Loki JSON push and OTLP protobuf logs, read back via LogsQL ---
VP=$(hport "$ID-vl" 9428)
wait_for "victorialogs: /health on 127.0.0.1:$VP" 60 curl -fsS "http://127.0.0.1:$VP/health"
curl -fsS -H 'Content-Type: application/json' "http://127.0.0.1:$VP/insert/loki/api/v1/push" \
  -d "{\"streams\":[{\"stream\":{\"app\":\"ampel-smoke\"},\"values\":[[\"$(date +%s%N)\",\"loki-line-$ID\"]]}]}"
# Hand-encoded OTLP ExportLogsServiceRequest (protobuf): one record, string body.
OTLP=$(mktemp); python3 - "$OTLP" "otlp-line-$ID" <<'EOF'
import struct, sys, time
def ld(field, payload): # length-delimited field
    n, out = len(payload), bytearray([field << 3 | 2])
    while True:
        b = n & 0x7f; n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n: return bytes(out) + payload
body = ld(1, sys.argv[2].encode())                       # AnyValue.string_value
ts = bytes([1 << 3 | 1]) + struct.pack('<Q', time.time_ns())  # LogRecord.time_unix_nano (fixed64)
rec = ts + ld(5, body)                                   # LogRecord.body
attr = ld(1, b'service.name') + ld(2, ld(1, b'ampel-smoke'))  # KeyValue
res = ld(1, ld(1, attr))                                 # ResourceLogs.resource{attributes}
open(sys.argv[1], 'wb').write(ld(1, res + ld(2, ld(2, rec))))  # resource_logs{resource, scope_logs{log_records}}
EOF
curl -fsS -H 'Content-Type: application/x-protobuf' --data-binary "@$OTLP" "http://127.0.0.1:$VP/insert/opentelemetry/v1/logs" >/dev/null
rm -f "$OTLP"
wait_for "victorialogs: Loki push visible in /select/logsql/query" 30 \
  bash -c "curl -fsS 'http://127.0.0.1:$VP/select/logsql/query?query=*' | grep -q loki-line-$ID"
wait_for "victorialogs: OTLP protobuf log visible in /select/logsql/query" 30 \
  bash -c "curl -fsS 'http://127.0.0.1:$VP/select/logsql/query?query=*' | grep -q otlp-line-$ID"

# --- postgres restart keeps its data dir and skips init ---
podman restart -t 10 "$ID-pg" >/dev/null
PG=$(hport "$ID-pg" 5432)
wait_for "postgres: accepts psql again after restart" 60 psql_ok

say "all images OK"
