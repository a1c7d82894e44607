#!/usr/bin/env bash
# Makes sure a RabbitMQ broker answers on 127.0.0.1:5672 and prints its AMQP URL.
#
# Idempotent: when a broker already answers, nothing is installed or started.
# COURIER_AMQP_URL overrides everything (the script then only prints it), so a
# developer or CI can point the tests at any broker.
set -euo pipefail

if [ -n "${COURIER_AMQP_URL:-}" ]; then
  echo "$COURIER_AMQP_URL"
  exit 0
fi

url="amqp://guest:guest@127.0.0.1:5672/%2f"

answers() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }

# The AMQP port opens before the broker accepts connections; `rabbitmqctl await_startup`
# is the documented readiness check, so use it when the tools are here.
ready() {
  answers || return 1
  if command -v rabbitmqctl >/dev/null 2>&1; then
    timeout 20 rabbitmqctl -q await_startup >/dev/null 2>&1 || return 1
  fi
}

if answers; then
  ready_deadline=$((SECONDS + 60))
  until ready; do
    [ $SECONDS -lt $ready_deadline ] || { echo "ensure-rabbitmq: port 5672 answers but the broker never became ready" >&2; exit 1; }
    sleep 1
  done
  echo "$url"
  exit 0
fi

sudo_() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v rabbitmq-server >/dev/null 2>&1; then
  echo "ensure-rabbitmq: installing rabbitmq-server from Debian's packages" >&2
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  # policy-rc.d-less containers may try to start the service during install; that is harmless.
  sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rabbitmq-server >&2
fi

echo "ensure-rabbitmq: starting rabbitmq-server" >&2
# No systemd on CI machines: start the broker directly, detached, as the rabbitmq user
# that the package created (it owns /var/lib/rabbitmq, where the Erlang cookie lives).
log=/tmp/courier-rabbitmq.log
if id rabbitmq >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  (setsid su rabbitmq -s /bin/sh -c "rabbitmq-server" >"$log" 2>&1 &)
else
  (setsid sudo_ rabbitmq-server >"$log" 2>&1 &)
fi

deadline=$((SECONDS + 120))
until ready; do
  if [ $SECONDS -ge $deadline ]; then
    echo "ensure-rabbitmq: broker not ready after 120 s; last lines of $log:" >&2
    tail -n 30 "$log" >&2 || true
    exit 1
  fi
  sleep 1
done
echo "$url"
