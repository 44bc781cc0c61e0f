#!/bin/sh
# Starts Alertmanager with its settings taken from the environment, which Alertmanager itself does
# not read: each secret goes to a file of its own (mode 600) that a `*_file` setting names, and every
# `${NAME}` in alertmanager.yml is replaced by that variable's value. A variable that is not set
# stops the start, naming it. POSIX sh and awk: it runs in the upstream image (busybox) and in
# Debian's.
#
#   entrypoint.sh [alertmanager flags...]     # render, then exec alertmanager with the flags
#   entrypoint.sh --render-only               # render, print the rendered config's path, exit
set -eu

template=${ALERTMANAGER_TEMPLATE:-/etc/alertmanager/alertmanager.yml}
export ALERTMANAGER_SECRETS_DIR="${ALERTMANAGER_SECRETS_DIR:-/tmp/alertmanager}"
umask 077
mkdir -p "$ALERTMANAGER_SECRETS_DIR"
printf '%s' "${PAGERDUTY_ROUTING_KEY:?set PAGERDUTY_ROUTING_KEY}" >"$ALERTMANAGER_SECRETS_DIR/pagerduty_routing_key"
printf '%s' "${SLACK_WEBHOOK_URL:?set SLACK_WEBHOOK_URL}" >"$ALERTMANAGER_SECRETS_DIR/slack_webhook_url"
printf '%s' "${SMTP_PASSWORD:-}" >"$ALERTMANAGER_SECRETS_DIR/smtp_password"
unset PAGERDUTY_ROUTING_KEY SLACK_WEBHOOK_URL SMTP_PASSWORD

config=$ALERTMANAGER_SECRETS_DIR/alertmanager.yml
awk '{
  line = $0
  while (match(line, /\$\{[A-Z_][A-Z0-9_]*\}/)) {
    name = substr(line, RSTART + 2, RLENGTH - 3)
    if (!(name in ENVIRON)) { print "alertmanager.yml line " NR ": set " name > "/dev/stderr"; exit 1 }
    out = out substr(line, 1, RSTART - 1) ENVIRON[name]
    line = substr(line, RSTART + RLENGTH)
  }
  print out line; out = ""
}' "$template" >"$config"

if [ "${1:-}" = "--render-only" ]; then
  echo "$config"
  exit 0
fi
exec /bin/alertmanager --config.file="$config" "$@"
